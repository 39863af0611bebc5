"""The staff's collection-policy pages: the policy in plain words with its versions (and a
supervisor's new version), the agency's closure days, and the account page's Shutoff
protections panel with the "Issue shutoff order" button. Each route calls one service
(``services.collections_policy``) and renders."""

from __future__ import annotations

from datetime import date

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from ..billing_core.errors import FieldErrors, NotFound
from ..billing_core.shutoff_gate import RULES
from ..services import collections_policy as service
from ..web import FormState, PageNotFound, db, error_text, flash, now, pop_flash, redirect, require_staff, today


def _render(request: Request, template: str, context: dict, status: int = 200) -> Response:
    response = request.app.state.templates.TemplateResponse(request, template, context, status_code=status)
    response.headers["Vary"] = "HX-Request"
    return response


# --- The policy -------------------------------------------------------------------------------


def _policy_page(request: Request, form: FormState | None = None, status: int = 200) -> Response:
    with db(request) as session:
        user = require_staff(request, session)
        page = service.policy_page(session, user, today(request))
        if form is None:
            form = FormState({**service.form_values(page.policy), "effective_on": today(request).isoformat()})
        return _render(
            request,
            "staff/collections_policy/policy.html",
            {
                "page": page,
                "form": form,
                "ladder_fields": service.LADDER_FIELDS,
                "policy_fields": service.POLICY_FIELDS,
                "flash": pop_flash(request),
            },
            status,
        )


def policy_view(request: Request) -> Response:
    return _policy_page(request)


async def policy_propose(request: Request) -> Response:
    data = await request.form()
    names = [f for f, _l, _k in service.LADDER_FIELDS] + [f for f, _l in service.POLICY_FIELDS]
    names += ["office_phone", "other_ladders", "effective_on", "note"]
    form = FormState({k: str(data.get(k, ""))[:20_000] for k in names})

    def run() -> Response:
        with db(request) as session:
            user = require_staff(request, session)
        try:
            version = service.propose(request.app.state.sessions, user, dict(form.values), now(request))
        except FieldErrors as exc:
            form.errors.update({k: error_text(e) for k, e in exc.errors.items()})
            return _policy_page(request, form, 400)
        flash(request, f"Version {version} of the collection policy saved.")
        return redirect("/staff/collections/policy")

    return await run_in_threadpool(run)


# --- Closures ---------------------------------------------------------------------------------


def _closures_page(request: Request, form: FormState | None = None, status: int = 200) -> Response:
    try:
        year = int(request.query_params.get("year") or today(request).year)
    except ValueError:
        year = today(request).year
    year = min(max(year, 2000), 2100)
    with db(request) as session:
        user = require_staff(request, session)
        page = service.closures_page(session, user, year)
        return _render(
            request,
            "staff/collections_policy/closures.html",
            {"page": page, "form": form or FormState(), "flash": pop_flash(request)},
            status,
        )


def closures_view(request: Request) -> Response:
    return _closures_page(request)


async def closure_add(request: Request) -> Response:
    data = await request.form()
    form = FormState({k: str(data.get(k, ""))[:200] for k in ("day", "name")})

    def run() -> Response:
        with db(request) as session:
            user = require_staff(request, session)
        try:
            day = service.add_closure(request.app.state.sessions, user, form.get("day"), form.get("name"), now(request))
        except FieldErrors as exc:
            form.errors.update({k: error_text(e) for k, e in exc.errors.items()})
            return _closures_page(request, form, 400)
        flash(request, f"The office is closed on {day.isoformat()}: no shutoffs that day.")
        return redirect(f"/staff/collections/closures?year={day.year}")

    return await run_in_threadpool(run)


async def closure_remove(request: Request) -> Response:
    await request.form()
    closure_id = int(request.path_params["closure"])

    def run() -> Response:
        with db(request) as session:
            user = require_staff(request, session)
        try:
            day = service.remove_closure(request.app.state.sessions, user, closure_id, now(request))
        except NotFound:
            raise PageNotFound() from None
        flash(request, f"{day.isoformat()} is no longer a closure day.")
        return redirect(f"/staff/collections/closures?year={day.year}")

    return await run_in_threadpool(run)


# --- Protections and the shutoff button -------------------------------------------------------


def _panel(
    request: Request,
    number: str,
    form: FormState | None = None,
    refused: service.ShutoffRefused | None = None,
    status: int = 200,
) -> Response:
    with db(request) as session:
        user = require_staff(request, session)
        try:
            panel = service.protections_panel(session, user, number, today(request))
        except NotFound:
            raise PageNotFound() from None
        fragment = bool(request.headers.get("HX-Request"))
        name = "protections" if fragment else "protections_page"
        return _render(
            request,
            f"staff/collections_policy/{name}.html",
            {
                "panel": panel,
                "form": form or FormState({"starts_on": today(request).isoformat()}),
                "labels": service.PROTECTION_LABELS,
                "rules": RULES,
                "refused": refused,
                "flash": pop_flash(request),
            },
            status,
        )


def protections_panel(request: Request) -> Response:
    return _panel(request, request.path_params["number"])


async def protection_record(request: Request) -> Response:
    data = await request.form()
    form = FormState({k: str(data.get(k, ""))[:1000] for k in ("kind", "detail", "starts_on", "ends_on")})
    number = request.path_params["number"]

    def run() -> Response:
        with db(request) as session:
            user = require_staff(request, session)
        try:
            service.record_protection(
                request.app.state.sessions,
                user,
                number,
                kind=form.get("kind"),
                detail=form.get("detail"),
                starts_on=form.get("starts_on"),
                ends_on=form.get("ends_on"),
                now=now(request),
            )
        except NotFound:
            raise PageNotFound() from None
        except FieldErrors as exc:
            form.errors.update({k: error_text(e) for k, e in exc.errors.items()})
            return _panel(request, number, form, status=400)
        flash(request, f"Recorded: {service.PROTECTION_LABELS[form.get('kind')]}.")
        return redirect(f"/staff/accounts/{number}/protections")

    return await run_in_threadpool(run)


async def protection_revoke(request: Request) -> Response:
    await request.form()
    number = request.path_params["number"]
    protection_id = int(request.path_params["protection"])

    def run() -> Response:
        with db(request) as session:
            user = require_staff(request, session)
        try:
            kind = service.revoke_protection(request.app.state.sessions, user, number, protection_id, now(request))
        except NotFound:
            raise PageNotFound() from None
        except FieldErrors as exc:
            flash(request, error_text(next(iter(exc.errors.values()))))
            return redirect(f"/staff/accounts/{number}/protections")
        flash(request, f"Revoked: {service.PROTECTION_LABELS[kind]}.")
        return redirect(f"/staff/accounts/{number}/protections")

    return await run_in_threadpool(run)


async def shutoff_order(request: Request) -> Response:
    data = await request.form()
    number = request.path_params["number"]
    try:
        on = date.fromisoformat(str(data.get("on", "")).strip()) if data.get("on") else None
    except ValueError:
        on = None

    def run() -> Response:
        with db(request) as session:
            user = require_staff(request, session)
        try:
            done = service.issue_shutoff_order(
                request.app.state.sessions, user, number, on or today(request), now(request)
            )
        except NotFound:
            raise PageNotFound() from None
        except service.ShutoffRefused as exc:
            return _panel(request, number, refused=exc, status=409)
        flash(request, f"Shutoff order {done.order_id} issued: it is on the field orders list.")
        return redirect(f"/staff/accounts/{number}/protections")

    return await run_in_threadpool(run)
