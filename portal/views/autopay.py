"""Autopay on the customer's side: enroll, change the card or bank account, cancel.

1. ``/my/accounts/N/autopay`` shows where autopay stands and, to turn it on, the
   authorization text with a box to agree and a choice of card or bank account.
2. The next page hands the card or bank details to Stripe.js, which saves them for use
   when the customer is not there (a SetupIntent with ``usage=off_session``).
3. The browser tells us it is saved; we check with the processor, record the enrollment
   with the text agreed to, and email the customer a copy.
"""

from __future__ import annotations

import secrets

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from .. import i18n, jobs
from ..adapters.gateway import BANK, CARD, GatewayError
from ..billing_core import autopay
from ..billing_core.models import Account
from ..i18n import gettext
from ..web import FormState, PageNotFound, db, flash, now, pop_flash, redirect, remote_addr, today
from .payments import (
    answer_response,
    gateway,
    method_page,
    my_account,
    processor_customer,
    render,
    saved_setup,
    session_attempt,
)

ATTEMPT_PREFIX = "autopay:"


def authorization_text(request: Request, account: Account) -> str:
    """The words the customer agrees to, in their language; kept with the enrollment."""
    settings = request.app.state.settings
    return gettext(
        "I authorize %(agency)s to take the amount due on each bill for account %(number)s from the card or "
        "bank account I save next, on the bill's due date. Each bill is my notice: it shows the amount and the "
        "date, and it is sent at least %(days)s days before the money is taken. If I pay part of a bill "
        "myself first, only the rest is taken. This authorization lasts until I cancel it, which I can do at "
        "any time on this website or by calling %(phone)s; cancelling before a draft date stops that draft. "
        "If a draft does not go through, the bill stays unpaid and I will be told by email.",
        agency=settings.agency_name,
        number=account.number,
        days=autopay.NOTICE_DAYS,
        phone=settings.agency_phone,
    )


def _context(request: Request, session, account: Account) -> dict:  # type: ignore[no-untyped-def]
    from ..billing_core import accounts

    summary = accounts.summarise(session, account, today(request))
    return {
        "account": account,
        "summary": summary,
        "outlook": autopay.outlook(
            session, account, summary.balance_cents, today(request), request.app.state.settings.tz
        ),
        "terms": authorization_text(request, account),
        "available": gateway(request) is not None,
    }


def autopay_page(request: Request) -> Response:
    with db(request) as session:
        _user, account = my_account(request, session)
        context = _context(request, session, account)
    form = FormState({"method": CARD, "attempt": secrets.token_urlsafe(18)})
    return render(request, "customer/autopay.html", {**context, "form": form, "flash": pop_flash(request)})


async def autopay_start(request: Request) -> Response:
    data = await request.form()
    form = FormState({k: str(data.get(k, ""))[:40] for k in ("method", "agree", "attempt")})
    processor = gateway(request)

    def start() -> tuple[str | None, dict]:
        with db(request) as session:
            user, account = my_account(request, session)
            context = _context(request, session, account)
            if processor is None:
                form.errors["method"] = gettext("Autopay is not available right now.")
                return None, context
            if form.get("method") not in (CARD, BANK):
                form.errors["method"] = gettext("Choose a card or a bank account.")
            if form.get("agree") != "yes":
                form.errors["agree"] = gettext("To turn on autopay, check the box to agree.")
            if len(form.get("attempt")) < 16:
                form.errors["method"] = gettext("This form had expired. Please choose again.")
            if form.errors:
                return None, context
            try:
                setup = processor.create_setup(
                    customer=processor_customer(processor, account, user),
                    kind=form.get("method"),
                    idempotency_key=f"autopay-setup-{form.get('attempt')}",
                    metadata={"account": account.number, "attempt": form.get("attempt"), "purpose": "autopay"},
                )
            except GatewayError as exc:
                form.errors["method"] = gettext("We could not reach the payment service: %(why)s", why=exc.message)
                return None, context
            request.session[ATTEMPT_PREFIX + form.get("attempt")] = {
                "account": account.number,
                "method": form.get("method"),
                "setup": setup.id,
                "terms": context["terms"],
                "language": i18n.language(),
            }
            return account.number, context

    number, context = await run_in_threadpool(start)
    if number is None:
        return render(request, "customer/autopay.html", {**context, "form": form, "flash": None}, 400)
    return redirect(f"/my/accounts/{number}/autopay/{form.get('attempt')}")


def _attempt(request: Request, account: Account) -> dict:
    return session_attempt(request, account, ATTEMPT_PREFIX)


def autopay_method_page(request: Request) -> Response:
    return method_page(request, "customer/autopay_method.html", ATTEMPT_PREFIX)


async def autopay_confirm(request: Request) -> Response:
    """Stripe.js saved the card or bank account: record the enrollment (called by pay.js)."""
    processor = gateway(request)
    attempt_id = request.path_params["attempt"]

    def confirm() -> dict:
        with db(request) as session:
            user, account = my_account(request, session)
            attempt = _attempt(request, account)
            if processor is None:
                raise PageNotFound()
            setup = saved_setup(processor, attempt, attempt_id)
            if setup is None:
                return {"error": gettext("The card or bank account was not saved. Please try again.")}
            enrollment = autopay.enroll(
                session,
                account,
                user,
                method_kind=attempt["method"],
                payment_method_id=setup.payment_method,
                method_label=setup.method_label,
                setup_id=setup.id,
                authorization_text=attempt["terms"],
                language=attempt["language"],
                now=now(request),
                remote_addr=remote_addr(request),
            )
            return {"next": f"/my/accounts/{account.number}/autopay", "enrollment": enrollment.id}

    try:
        answer = await run_in_threadpool(confirm)
    except GatewayError as exc:
        answer = {"error": exc.message}
    if "enrollment" in answer:
        request.session.pop(ATTEMPT_PREFIX + attempt_id, None)
        queued = await run_in_threadpool(
            jobs.defer,
            request.app.state.settings,
            "email.autopay_enrolled",
            request.app.state.sessions,
            enrollment_id=answer.pop("enrollment"),
        )
        if queued:
            flash(request, gettext("Autopay is on. We emailed you a copy of what you agreed to."))
        else:
            flash(request, gettext("Autopay is on. We could not email you a copy just now; this page shows it."))
    return answer_response(request, answer, f"/my/accounts/{request.path_params['number']}/autopay")


async def autopay_cancel(request: Request) -> Response:
    def cancel() -> str:
        with db(request) as session:
            user, account = my_account(request, session)
            ended = autopay.cancel(session, account, user, now(request), remote_addr(request))
            if ended is None:
                return gettext("Autopay was already off.")
            return gettext("Autopay is off. Please pay each bill by its due date.")

    flash(request, await run_in_threadpool(cancel))
    return redirect(f"/my/accounts/{request.path_params['number']}/autopay")
