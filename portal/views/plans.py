"""The staff's payment plans and extensions (``services/plans.py``): the account page's
panel (a fragment for htmx, a page otherwise) with the plan, its installments and the
forms to make, change and cancel one; the list of plans by status. Staff pages: English."""

from __future__ import annotations

from datetime import timedelta

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from ..billing_core import plans as rules
from ..billing_core.errors import FieldErrors
from ..billing_core.models import User
from ..billing_core.money import format_money as money
from ..services import plans as service
from ..web import FormState, PageNotFound, db, flash, now, pop_flash, redirect, require_staff, today

ALL_FIELDS = ("kind", "amount", "down_payment", "installments", "first_due", "promise_on", "note")


def _sentence(message: str) -> str:
    return message[:1].upper() + message[1:] + ("" if message.endswith(".") else ".")


def _errors(form: FormState, exc: FieldErrors) -> None:
    form.errors.update({k: _sentence(e.message) for k, e in exc.errors.items()})


def _render(request: Request, template: str, context: dict, status: int = 200) -> Response:
    response = request.app.state.templates.TemplateResponse(
        request, template, {**context, "flash": pop_flash(request)}, status_code=status
    )
    response.headers["Vary"] = "HX-Request"
    return response


def _panel(
    request: Request,
    user: User,
    number: str,
    forms: dict[str, FormState] | None = None,
    status: int = 200,
) -> Response:
    with db(request) as session:
        panel = service.panel(session, user, number, today(request))
        on = today(request)
        current = panel.current
        forms = forms or {}
        defaults = {
            "plan": FormState(
                {
                    "amount": f"{max(panel.summary.balance_cents, 0) / 100:.2f}",
                    "installments": "6",
                    "first_due": (on + timedelta(days=14)).isoformat(),
                }
            ),
            "extension": FormState({"amount": f"{max(panel.summary.balance_cents, 0) / 100:.2f}"}),
        }
        change = FormState()
        if current is not None:
            rows = [r for r in current.installments if r.seq > 0]
            change = FormState(
                {
                    "amount": f"{current.total_cents / 100:.2f}",
                    "down_payment": f"{current.down_payment_cents / 100:.2f}" if current.down_payment_cents else "",
                    "installments": str(len(rows)),
                    "first_due": rows[0].due_on.isoformat() if rows else "",
                    "promise_on": rows[0].due_on.isoformat() if rows else "",
                }
            )
        template = "staff/plans/panel.html" if request.headers.get("HX-Request") else "staff/plans/panel_page.html"
        return _render(
            request,
            template,
            {
                "panel": panel,
                "plan_form": forms.get("plan", defaults["plan"]),
                "extension_form": forms.get("extension", defaults["extension"]),
                "change_form": forms.get("change", change),
                "cancel_form": forms.get("cancel", FormState()),
                "kind_labels": rules.KIND_LABELS,
            },
            status,
        )


def plans_panel(request: Request) -> Response:
    with db(request) as session:
        user = require_staff(request, session)
    return _panel(request, user, request.path_params["number"])


async def plan_create(request: Request) -> Response:
    data = await request.form()
    form = FormState({k: str(data.get(k, "")).strip()[:1000] for k in ALL_FIELDS})
    number = request.path_params["number"]
    kind = form.get("kind")

    def act() -> Response:
        with db(request) as session:
            user = require_staff(request, session)
        try:
            with db(request) as session:
                plan = service.create(session, user, number, kind, form.values, today(request), now(request))
                word = "Payment plan" if plan.kind == "plan" else "Extension"
                flash(request, f"{word} {plan.id} made: {money(plan.total_cents)}.")
        except FieldErrors as exc:
            _errors(form, exc)
            return _panel(request, user, number, {"extension" if kind == "extension" else "plan": form}, 400)
        return redirect(f"/staff/accounts/{number}/plans")

    return await run_in_threadpool(act)


def _plan_id(request: Request) -> int:
    try:
        return int(request.path_params["plan"])
    except ValueError:
        raise PageNotFound() from None


async def plan_change(request: Request) -> Response:
    data = await request.form()
    form = FormState({k: str(data.get(k, "")).strip()[:1000] for k in ALL_FIELDS})
    number = request.path_params["number"]
    plan_id = _plan_id(request)

    def act() -> Response:
        with db(request) as session:
            user = require_staff(request, session)
        try:
            with db(request) as session:
                service.change(session, user, number, plan_id, form.values, today(request), now(request))
                flash(request, f"Plan {plan_id} changed.")
        except FieldErrors as exc:
            _errors(form, exc)
            return _panel(request, user, number, {"change": form}, 400)
        return redirect(f"/staff/accounts/{number}/plans")

    return await run_in_threadpool(act)


async def plan_cancel(request: Request) -> Response:
    data = await request.form()
    form = FormState({"reason": str(data.get("reason", "")).strip()[:600]})
    number = request.path_params["number"]
    plan_id = _plan_id(request)

    def act() -> Response:
        with db(request) as session:
            user = require_staff(request, session)
        try:
            with db(request) as session:
                service.cancel(session, user, number, plan_id, form.get("reason"), today(request))
                flash(request, f"Plan {plan_id} cancelled: the ladder resumes at the next daily run.")
        except FieldErrors as exc:
            _errors(form, exc)
            return _panel(request, user, number, {"cancel": form}, 400)
        return redirect(f"/staff/accounts/{number}/plans")

    return await run_in_threadpool(act)


def plan_list(request: Request) -> Response:
    query = request.query_params
    with db(request) as session:
        user = require_staff(request, session)
        listing = service.listing(
            session, user, query.get("status", "active"), query.get("kind", ""), query.get("account", "")[:30]
        )
        return _render(
            request,
            "staff/plans/list.html",
            {"listing": listing, "statuses": rules.STATUSES, "kind_labels": rules.KIND_LABELS},
        )
