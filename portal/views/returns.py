"""Staff: an account's payments panel (every payment of every channel, who took it, its
status), recording a returned payment, the returned-payment letter, lifting cash only."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from .. import documents, jobs
from ..billing_core import returns as rules
from ..billing_core.errors import FieldErrors
from ..billing_core.status import PaymentStatus
from ..services import returns as service
from ..web import FormState, PageNotFound, db, flash, now, pop_flash, redirect, remote_addr, require_staff, today


def _policy(request: Request):  # type: ignore[no-untyped-def]
    return service.policy_for(request.app.state.settings.money_policy_file)


def _int(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise PageNotFound() from None


def _panel(
    request: Request,
    number: str,
    *,
    return_form: FormState | None = None,
    failed: int | None = None,
    lift_form: FormState | None = None,
) -> Response:
    with db(request) as session:
        user = require_staff(request, session)
        panel = service.payments_panel(session, user, number, policy=_policy(request), as_of=today(request))
        fragment = bool(request.headers.get("HX-Request"))
        errors = bool(return_form and return_form.errors) or bool(lift_form and lift_form.errors)
        response = request.app.state.templates.TemplateResponse(
            request,
            "staff/_payments_panel.html" if fragment else "staff/payments_panel.html",
            {
                **vars(panel),
                "labels": rules.LABELS,
                "PaymentStatus": PaymentStatus,
                "today": today(request),
                "return_form": return_form or FormState(),
                "failed": failed,
                "lift_form": lift_form or FormState(),
                "flash": pop_flash(request),
            },
            status_code=400 if errors else 200,
        )
        response.headers["Vary"] = "HX-Request"
        return response


def payments_panel(request: Request) -> Response:
    return _panel(request, request.path_params["number"])


async def record_return(request: Request) -> Response:
    data = await request.form()
    form = FormState({k: str(data.get(k, "")).strip()[:40] for k in service.FIELDS})
    payment_id = _int(request.path_params["payment"])

    def act() -> tuple[str | None, int | None, str]:
        with db(request) as session:
            user = require_staff(request, session)
            number = service.account_number_of(session, payment_id)
            try:
                recorded = service.record_return(
                    session,
                    user,
                    payment_id,
                    form.values,
                    policy=_policy(request),
                    now=now(request),
                    remote_addr=remote_addr(request),
                )
            except FieldErrors as exc:
                form.errors.update({field: e.message for field, e in exc.errors.items()})
                return None, None, number
            done = recorded.returned
            message = (
                f"Payment {payment_id} is returned ({done.code}): reversed"
                + (f", fee {done.fee_cents / 100:,.2f} charged" if done.fee_cents else "")
                + (". The account is now cash only" if done.made_cash_only else "")
                + ("." if recorded.outbox_id else ". The customer has no email address: mail the letter.")
            )
            return message, recorded.outbox_id, number

    message, outbox_id, number = await run_in_threadpool(act)
    if message is None:
        return await run_in_threadpool(lambda: _panel(request, number, return_form=form, failed=payment_id))
    await run_in_threadpool(jobs.send_outbox_soon, request.app.state.settings, request.app.state.sessions, outbox_id)
    flash(request, message)
    return redirect(f"/staff/accounts/{number}/payments")


async def lift_cash_only(request: Request) -> Response:
    data = await request.form()
    form = FormState({"reason": str(data.get("reason", "")).strip()[:400]})
    number = request.path_params["number"]

    def act() -> bool:
        with db(request) as session:
            user = require_staff(request, session)
            try:
                service.lift_cash_only(
                    session, user, number, form.get("reason"), now=now(request), remote_addr=remote_addr(request)
                )
            except FieldErrors as exc:
                form.errors.update({field: e.message for field, e in exc.errors.items()})
                if "account" in form.errors:
                    form.errors.setdefault("reason", form.errors["account"])
                return False
            return True

    if not await run_in_threadpool(act):
        return await run_in_threadpool(lambda: _panel(request, number, lift_form=form))
    flash(request, f"Cash only is lifted on account {number}.")
    return redirect(f"/staff/accounts/{number}/payments")


async def return_letter(request: Request) -> Response:
    """The returned-payment letter as a PDF, in the customer's language, for the mail."""
    from .customer import pdf_response

    payment_id = _int(request.path_params["payment"])

    def build() -> str:
        with db(request) as session:
            user = require_staff(request, session)
            notice = service.staff_notice(session, user, payment_id, _policy(request))
            return documents.return_letter_html(
                request.app.state.templates.env, request.app.state.settings, notice, today(request)
            )

    html = await run_in_threadpool(build)
    return await pdf_response(request, html, f"returned-payment-{payment_id}.pdf")
