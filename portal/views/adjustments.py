"""The account page's adjustments and write-off panels (``services/adjustments.py``,
``services/write_offs.py``; the approvals queue is ``views/approvals.py``). Staff pages: English."""

from __future__ import annotations

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from ..billing_core import adjustments as rules
from ..billing_core import money_policy
from ..billing_core.errors import FieldErrors
from ..billing_core.models import User
from ..billing_core.money import format_money as money
from ..services import adjustments as service
from ..services import write_offs as write_off_service
from ..web import FormState, db, flash, now, pop_flash, redirect, require_staff, today

ADJUST_FIELDS = ("service", "amount", "direction", "reason", "note", "bill")
LEAK_FIELDS = ("proof", "leak_bill", "note", "preview")


def _policy(request: Request) -> money_policy.MoneyPolicy:
    return money_policy.load(request.app.state.settings.money_policy_file)


def _render(request: Request, template: str, context: dict, status: int = 200) -> Response:
    fragment = bool(request.headers.get("HX-Request"))
    response = request.app.state.templates.TemplateResponse(
        request, template, {**context, "fragment": fragment, "flash": pop_flash(request)}, status_code=status
    )
    response.headers["Vary"] = "HX-Request"
    return response


def _sentence(message: str) -> str:
    return message[:1].upper() + message[1:] + ("" if message.endswith(".") else ".")


def _errors(form: FormState, exc: FieldErrors) -> None:
    form.errors.update({k: _sentence(e.message) for k, e in exc.errors.items()})


def _adjust_page(
    request: Request,
    session: Session,
    user: User,
    number: str,
    form: FormState | None = None,
    leak_form: FormState | None = None,
    working: dict | None = None,
) -> Response:
    page = service.panel(session, user, number, _policy(request))
    bad = bool((form and form.errors) or (leak_form and leak_form.errors))
    return _render(
        request,
        "staff/adjustments/panel.html",
        {
            **vars(page),
            "form": form or FormState({"direction": "credit", "service": "water"}),
            "leak_form": leak_form or FormState(),
            "working": working,
            "reasons": rules.REASONS,
            "describe": rules.describe,
        },
        400 if bad else 200,
    )


def adjustments_panel(request: Request) -> Response:
    with db(request) as session:
        user = require_staff(request, session)
        return _adjust_page(request, session, user, request.path_params["number"])


async def adjustment_prepare(request: Request) -> Response:
    data = await request.form()
    form = FormState({k: str(data.get(k, "")).strip()[:2000] for k in ADJUST_FIELDS})

    def act() -> Response:
        number = request.path_params["number"]
        with db(request) as session:
            user = require_staff(request, session)
            try:
                prepared = service.prepare(session, user, number, form.values, today(request), now(request))
            except FieldErrors as exc:
                _errors(form, exc)
                return _adjust_page(request, session, user, number, form=form)
            item = prepared.adjustment
            word = "posted" if item.status == "posted" else "waiting for a supervisor's approval (above your limit)"
            extra = (
                f" It is more than the {item.service_type} service owes: {money(prepared.becomes_credit_cents)}"
                " becomes a credit on the account."
                if prepared.becomes_credit_cents
                else ""
            )
            flash(request, f"Adjustment {item.id} ({rules.describe(item.amount_cents)}) is {word}.{extra}")
        return redirect(f"/staff/accounts/{number}/adjustments")

    return await run_in_threadpool(act)


async def leak_prepare(request: Request) -> Response:
    data = await request.form()
    form = FormState({k: str(data.get(k, "")).strip()[:300] for k in LEAK_FIELDS})

    def act() -> Response:
        number = request.path_params["number"]
        preview = bool(form.get("preview"))
        with db(request) as session:
            user = require_staff(request, session)
            try:
                done = service.leak_credit(
                    session, user, number, form.values, _policy(request), today(request), now(request), preview=preview
                )
            except FieldErrors as exc:
                _errors(form, exc)
                return _adjust_page(request, session, user, number, leak_form=form)
            if preview or done.adjustment is None:
                return _adjust_page(request, session, user, number, leak_form=form, working=done.working.data)
            item = done.adjustment
            word = "posted" if item.status == "posted" else "waiting for a supervisor's approval (above your limit)"
            flash(request, f"Leak adjustment {item.id} ({rules.describe(item.amount_cents)}) is {word}.")
        return redirect(f"/staff/accounts/{number}/adjustments")

    return await run_in_threadpool(act)


# --- Write-off -------------------------------------------------------------------------------


def _write_off_page(
    request: Request, session: Session, user: User, number: str, form: FormState | None = None
) -> Response:
    page = write_off_service.panel(session, user, number)
    return _render(
        request,
        "staff/adjustments/write_off.html",
        {**vars(page), "form": form or FormState()},
        400 if form and form.errors else 200,
    )


def write_off_panel(request: Request) -> Response:
    with db(request) as session:
        user = require_staff(request, session)
        return _write_off_page(request, session, user, request.path_params["number"])


async def write_off_prepare(request: Request) -> Response:
    data = await request.form()
    form = FormState({k: str(data.get(k, "")).strip()[:2000] for k in ("amount", "reason")})

    def act() -> Response:
        number = request.path_params["number"]
        with db(request) as session:
            user = require_staff(request, session)
            try:
                item = write_off_service.prepare(session, user, number, form.values, now(request))
            except FieldErrors as exc:
                _errors(form, exc)
                return _write_off_page(request, session, user, number, form)
            flash(request, f"Write-off {item.id} is prepared; it waits for a supervisor's approval.")
        return redirect(f"/staff/accounts/{number}/write-off")

    return await run_in_threadpool(act)
