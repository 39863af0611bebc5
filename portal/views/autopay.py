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
from ..adapters.gateway import CARD, GatewayError
from ..billing_core import autopay
from ..billing_core.models import Account
from ..i18n import gettext
from ..services import autopay as service
from ..web import FormState, PageNotFound, db, error_text, flash, now, pop_flash, redirect, remote_addr, today
from .payments import (
    answer_response,
    field_errors,
    gateway,
    method_page,
    my_account,
    render,
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


def _context(request: Request, page: service.AutopayPage, terms: str | None = None) -> dict:
    return {
        **page.context(),
        "terms": terms if terms is not None else authorization_text(request, page.account),
        "available": gateway(request) is not None,
    }


def autopay_page(request: Request) -> Response:
    with db(request) as session:
        _user, account = my_account(request, session)
        page = service.autopay_page(session, account, today(request), request.app.state.settings.tz)
        context = _context(request, page)
    form = FormState({"method": CARD, "attempt": secrets.token_urlsafe(18)})
    return render(request, "customer/autopay.html", {**context, "form": form, "flash": pop_flash(request)})


async def autopay_start(request: Request) -> Response:
    data = await request.form()
    form = FormState({k: str(data.get(k, ""))[:40] for k in ("method", "agree", "attempt")})
    processor = gateway(request)

    def start() -> tuple[str | None, dict]:
        with db(request) as session:
            user, account = my_account(request, session)
            terms = authorization_text(request, account)
            started = service.start_enrollment(
                session,
                processor,
                account,
                user,
                today(request),
                request.app.state.settings.tz,
                method=form.get("method"),
                agree=form.get("agree"),
                attempt=form.get("attempt"),
                terms=terms,
                language=i18n.language(),
            )
            context = _context(request, started.page, terms)
            field_errors(form, started.errors)
            if started.attempt is None:
                return None, context
            request.session[ATTEMPT_PREFIX + form.get("attempt")] = started.attempt
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
            enrolled = service.confirm_enrollment(
                session, processor, account, user, attempt, attempt_id, now(request), remote_addr(request)
            )
            if enrolled.error is not None:
                return {"error": error_text(enrolled.error)}
            return {"next": f"/my/accounts/{account.number}/autopay", "enrollment": enrolled.enrollment_id}

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
            if not service.cancel(session, account, user, now(request), remote_addr(request)):
                return gettext("Autopay was already off.")
            return gettext("Autopay is off. Please pay each bill by its due date.")

    flash(request, await run_in_threadpool(cancel))
    return redirect(f"/my/accounts/{request.path_params['number']}/autopay")
