"""Disputes, appeals and investigations (``services/disputes.py``): the staff register with
its filters, the account page's panel (open one; a supervisor decides), and the resident's
dispute of a bill from the bill page (English and Spanish)."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from ..billing_core import disputes as rules
from ..billing_core import permissions
from ..billing_core.errors import FieldErrors
from ..billing_core.models import User
from ..i18n import gettext
from ..services import disputes as service
from ..web import (
    FormState,
    PageNotFound,
    db,
    error_text,
    flash,
    now,
    pop_flash,
    redirect,
    remote_addr,
    require_customer,
    require_staff,
    today,
)

OPEN_FIELDS = ("kind", "bill", "amount", "reason")


def _sentence(message: str) -> str:
    return message[:1].upper() + message[1:] + ("" if message.endswith(".") else ".")


def _render(request: Request, template: str, context: dict, status: int = 200) -> Response:
    response = request.app.state.templates.TemplateResponse(
        request, template, {**context, "flash": pop_flash(request)}, status_code=status
    )
    response.headers["Vary"] = "HX-Request"
    return response


def _labels() -> dict:
    return {"kinds": rules.KINDS, "decisions": rules.DECISIONS, "statuses": rules.STATUSES, "blank": FormState()}


# --- Staff --------------------------------------------------------------------------------


def _panel(
    request: Request,
    user: User,
    number: str,
    form: FormState | None = None,
    decide_form: FormState | None = None,
    status: int = 200,
) -> Response:
    with db(request) as session:
        panel = service.panel(session, user, number)
        template = (
            "staff/disputes/panel.html" if request.headers.get("HX-Request") else "staff/disputes/panel_page.html"
        )
        return _render(
            request,
            template,
            {
                "panel": panel,
                "form": form or FormState({"kind": "dispute"}),
                "decide_form": decide_form or FormState(),
                "back": f"/staff/accounts/{number}/disputes",
                **_labels(),
            },
            status,
        )


def disputes_panel(request: Request) -> Response:
    with db(request) as session:
        user = require_staff(request, session)
    return _panel(request, user, request.path_params["number"])


async def dispute_open(request: Request) -> Response:
    data = await request.form()
    form = FormState({k: str(data.get(k, "")).strip()[:2000] for k in OPEN_FIELDS})
    number = request.path_params["number"]

    def act() -> Response:
        with db(request) as session:
            user = require_staff(request, session)
        try:
            with db(request) as session:
                item = service.open_by_staff(session, user, number, form.values, now(request))
                flash(request, f"{rules.KINDS[item.kind]} {item.id} opened.")
        except FieldErrors as exc:
            form.errors.update({k: _sentence(e.message) for k, e in exc.errors.items()})
            return _panel(request, user, number, form=form, status=400)
        return redirect(f"/staff/accounts/{number}/disputes")

    return await run_in_threadpool(act)


async def dispute_decide(request: Request) -> Response:
    data = await request.form()
    try:
        dispute_id = int(request.path_params["dispute"])
    except ValueError:
        raise PageNotFound() from None
    form = FormState(
        {"decision": str(data.get("decision", "")), "note": str(data.get("note", ""))[:2000], "id": str(dispute_id)}
    )
    back = str(data.get("back", ""))
    if not back.startswith("/staff/"):
        back = "/staff/disputes"

    def act() -> Response:
        with db(request) as session:
            user = require_staff(request, session)
        try:
            with db(request) as session:
                item = service.decide(session, user, dispute_id, form.get("decision"), form.get("note"), now(request))
                flash(request, f"{rules.KINDS[item.kind]} {item.id}: {item.status}.")
        except FieldErrors as exc:
            form.errors.update({k: _sentence(e.message) for k, e in exc.errors.items()})
            if back.startswith("/staff/accounts/"):
                return _panel(request, user, back.split("/")[3], decide_form=form, status=400)
            return _register(request, user, form, 400)
        return redirect(back)

    return await run_in_threadpool(act)


def _register(request: Request, user: User, decide_form: FormState | None = None, status: int = 200) -> Response:
    query = request.query_params
    with db(request) as session:
        page = service.register(
            session,
            user,
            query.get("status", "open"),
            query.get("kind", ""),
            query.get("via", ""),
            query.get("account", "")[:30],
        )
        return _render(
            request,
            "staff/disputes/register.html",
            {
                "page": page,
                "decide_form": decide_form or FormState(),
                "can_decide": permissions.can(user.role, permissions.Action.DISPUTES_DECIDE),
                "back": str(request.url.path) + ("?" + str(request.url.query) if request.url.query else ""),
                **_labels(),
            },
            status,
        )


def register(request: Request) -> Response:
    with db(request) as session:
        user = require_staff(request, session)
    return _register(request, user)


# --- The resident -------------------------------------------------------------------------


def _resident(request: Request, user: User, form: FormState | None = None, status: int = 200) -> Response:
    with db(request) as session:
        page = service.resident_bill(session, user, request.path_params["number"], request.path_params["bill"])
        return _render(
            request,
            "customer/dispute.html",
            {
                "account": page.account,
                "bill": page.bill,
                "disputes": page.disputes,
                "dispute_form": form or FormState(),
            },
            status,
        )


def resident_page(request: Request) -> Response:
    with db(request) as session:
        user = require_customer(request, session)
    return _resident(request, user)


async def resident_open(request: Request) -> Response:
    data = await request.form()
    form = FormState({k: str(data.get(k, "")).strip()[:2000] for k in ("amount", "reason")})
    number, bill = request.path_params["number"], request.path_params["bill"]

    def act() -> Response:
        with db(request) as session:
            user = require_customer(request, session)
        try:
            with db(request) as session:
                service.open_by_resident(
                    session, user, number, bill, form.values, now(request), remote_addr(request), today(request)
                )
        except FieldErrors as exc:
            form.errors.update({k: error_text(e) for k, e in exc.errors.items()})
            return _resident(request, user, form, 400)
        flash(
            request,
            gettext(
                "We received your dispute. While we look into it, we charge no late fee on the amount and do not "
                "shut off your service."
            ),
        )
        return redirect(f"/my/accounts/{number}/bills/{bill}/dispute")

    return await run_in_threadpool(act)
