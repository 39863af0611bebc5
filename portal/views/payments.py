"""Paying online, the receipt, and the processor's webhook.

1. The resident chooses an amount and card or bank account (a plain form).
2. The next page hands the card or bank details to Stripe.js, which saves them with a
   SetupIntent: the numbers go from the browser to Stripe, never to us.
3. The browser asks us to charge; we make the PaymentIntent with an idempotency key
   tied to this payment form, so a repeated request charges once.
4. The receipt page shows the payment pending until Stripe's signed webhook says it
   succeeded; only then is it written to the ledger.
"""

from __future__ import annotations

import logging
import secrets

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from .. import jobs
from ..adapters.gateway import CARD, BadEvent, BadSignature, GatewayError, PaymentGateway
from ..billing_core import permissions
from ..billing_core.errors import InvalidInput
from ..billing_core.models import Account, User
from ..billing_core.permissions import Action
from ..billing_core.status import PaymentStatus, ProcessorStatus
from ..i18n import gettext
from ..services import payments as service
from ..services import returns as returns_service
from ..web import (
    FormState,
    PageNotFound,
    db,
    error_text,
    flash,
    now,
    pop_flash,
    redirect,
    require_customer,
    require_staff,
    today,
)

log = logging.getLogger(__name__)
ATTEMPT_PREFIX = "pay:"


def gateway(request: Request) -> PaymentGateway | None:
    return request.app.state.gateway


def my_account(request: Request, session: Session) -> tuple[User, Account]:
    user = require_customer(request, session)
    account = service.customer_account(session, user, request.path_params["number"])
    if account is None:
        raise PageNotFound()
    return user, account


def render(request: Request, template: str, context: dict, status: int = 200) -> Response:
    return request.app.state.templates.TemplateResponse(request, template, context, status_code=status)


def field_errors(form: FormState, errors: dict[str, InvalidInput]) -> None:
    """The service's problems by field, in the reader's language, next to their fields."""
    for name, exc in errors.items():
        form.errors[name] = error_text(exc)


def pay_page(request: Request) -> Response:
    with db(request) as session:
        _user, account = my_account(request, session)
        context = service.pay_page(session, account, today(request)).context()
    form = FormState({"choice": "balance", "method": CARD, "attempt": secrets.token_urlsafe(18)})
    message = pop_flash(request)
    if message:
        form.errors["choice"] = message
    return render(request, "customer/pay.html", {**context, "form": form, "available": gateway(request) is not None})


async def pay_start(request: Request) -> Response:
    data = await request.form()
    form = FormState({k: str(data.get(k, ""))[:40] for k in ("choice", "other_amount", "method", "attempt")})
    processor = gateway(request)

    def start() -> tuple[str | None, dict]:
        with db(request) as session:
            user, account = my_account(request, session)
            started = service.start_payment(
                session,
                processor,
                account,
                user,
                today(request),
                choice=form.get("choice"),
                other_amount=form.get("other_amount"),
                method=form.get("method"),
                attempt=form.get("attempt"),
            )
            field_errors(form, started.errors)
            if started.attempt is None:
                return None, started.page.context()
            request.session[ATTEMPT_PREFIX + form.get("attempt")] = started.attempt
            return account.number, started.page.context()

    number, context = await run_in_threadpool(start)
    if number is None:
        return render(request, "customer/pay.html", {**context, "form": form, "available": processor is not None}, 400)
    return redirect(f"/my/accounts/{number}/pay/{form.get('attempt')}")


def session_attempt(request: Request, account: Account, prefix: str = ATTEMPT_PREFIX) -> dict:
    """What this browser started saving a card or bank account for (kept in its signed
    session), only for this account."""
    key = prefix + request.path_params["attempt"]
    attempt = request.session[key] if key in request.session else None
    if not attempt or attempt.get("account") != account.number:
        raise PageNotFound()
    return attempt


def _attempt(request: Request, account: Account) -> dict:
    return session_attempt(request, account)


def method_page(request: Request, template: str, prefix: str = ATTEMPT_PREFIX) -> Response:
    """The page where Stripe.js takes the card or bank details for a started attempt."""
    processor = gateway(request)
    with db(request) as session:
        _user, account = my_account(request, session)
        attempt = session_attempt(request, account, prefix)
    setup = service.setup_for(processor, attempt)
    if processor is None or setup is None:
        raise PageNotFound()
    return render(
        request,
        template,
        {
            "account": account,
            "attempt": attempt,
            "attempt_id": request.path_params["attempt"],
            "setup_secret": setup.client_secret,
            "publishable_key": processor.publishable_key,
            "stripe_js": request.app.state.settings.stripe_js_url,
        },
    )


def answer_response(request: Request, answer: dict, form_path: str) -> Response:
    """pay.js asks for JSON: ``next`` to go on, or ``error`` to show. A plain form post (no
    JavaScript, so nothing was saved with Stripe) goes back to the form with the message."""
    if "application/json" not in request.headers.get("accept", ""):
        if "error" in answer:
            flash(request, answer["error"])
            return redirect(form_path)
        return redirect(answer["next"])
    return JSONResponse(answer, status_code=400 if "error" in answer else 200)


def pay_method_page(request: Request) -> Response:
    return method_page(request, "customer/pay_method.html")


async def pay_charge(request: Request) -> Response:
    """Charge the saved card or bank account (called by pay.js once Stripe.js saved it)."""
    processor = gateway(request)
    attempt_id = request.path_params["attempt"]

    def charge() -> dict:
        with db(request) as session:
            user, account = my_account(request, session)
            attempt = _attempt(request, account)
            if processor is None:
                raise PageNotFound()
            charged = service.charge_saved_method(
                session, processor, account, user, attempt, attempt_id, today(request), now(request)
            )
            if charged.error is not None:
                return {"error": error_text(charged.error)}
            answer = {"next": charged.next}
            if charged.action_secret is not None:
                answer["action_secret"] = charged.action_secret
            return answer

    try:
        answer = await run_in_threadpool(charge)
    except GatewayError as exc:
        answer = {"error": exc.message}
    except IntegrityError:
        answer = {"error": gettext("This payment was already sent. Check your account before paying again.")}
    return answer_response(request, answer, f"/my/accounts/{request.path_params['number']}/pay")


def receipt(request: Request) -> Response:
    with db(request) as session:
        _user, account = my_account(request, session)
        payment = service.payment_on_account(session, account, _int(request.path_params["payment"]))
        if payment is None:
            raise PageNotFound()
        template = "customer/_payment_status.html" if request.headers.get("HX-Request") else "customer/receipt.html"
        context = {
            "account": account,
            "payment": payment,
            "PaymentStatus": PaymentStatus,
            "ProcessorStatus": ProcessorStatus,
        }
        response = render(request, template, context)
        response.headers["Vary"] = "HX-Request"
        response.headers["Cache-Control"] = "private, no-store"
        return response


def _int(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise PageNotFound() from None


# --- The processor's webhook -------------------------------------------------------------

#: Stripe's events are a few kilobytes; anything over this is refused before it is read.
MAX_WEBHOOK_BYTES = 1024 * 1024


class BodyTooLarge(Exception):
    pass


async def capped_body(request: Request, limit: int = MAX_WEBHOOK_BYTES) -> bytes:
    """The request body, read only while it stays within ``limit`` bytes: a declared
    Content-Length over it is refused before reading, and a streamed body as soon as it
    passes it (``BodyTooLarge``)."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isascii() or not declared.isdigit() or int(declared) > limit):
        raise BodyTooLarge()
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge()
        chunks.append(chunk)
    return b"".join(chunks)


async def webhook(request: Request) -> Response:
    processor = gateway(request)
    if processor is None:
        return PlainTextResponse("payments are not configured", status_code=404)
    try:
        payload = await capped_body(request)
    except BodyTooLarge:
        return PlainTextResponse("too large", status_code=413, headers={"Connection": "close"})
    try:
        handled = await run_in_threadpool(
            service.receive_webhook,
            request.app.state.sessions,
            processor,
            payload,
            request.headers.get("stripe-signature", ""),
            today(request),
            now(request),
            returns_service.policy_for(request.app.state.settings.money_policy_file),
        )
    except BadSignature:
        return PlainTextResponse("bad signature", status_code=400)
    except BadEvent:
        return PlainTextResponse("malformed event", status_code=400)
    except GatewayError:
        # Stripe could not be asked for the payment's state: nothing was written, and a
        # non-2xx answer makes Stripe deliver the event again later.
        return PlainTextResponse("payment service unavailable, try again", status_code=503)
    if handled.email is not None:
        await run_in_threadpool(
            jobs.defer,
            request.app.state.settings,
            handled.email[0],
            request.app.state.sessions,
            payment_id=handled.email[1],
        )
    # A returned payment's notice, written with the return (services/returns.py).
    await run_in_threadpool(
        jobs.send_outbox_soon, request.app.state.settings, request.app.state.sessions, handled.outbox_id
    )
    return PlainTextResponse(handled.outcome)


# --- Staff: payments that posted beyond what was owed ------------------------------------


def refund_queue(request: Request) -> Response:
    """Payments to review for refund: each posted beyond the balance, so the account holds a credit."""
    with db(request) as session:
        user = require_staff(request, session)
        return _refund_page(request, service.refund_review(session, user), FormState({}))


def _refund_page(
    request: Request, review: service.RefundReview, form: FormState, failed: int | None = None
) -> Response:
    return render(
        request,
        "staff/refunds.html",
        {
            "items": review.items,
            "reviewed": review.reviewed,
            "numbers": review.numbers,
            "can_review": review.can_review,
            "form": form,
            "failed": failed,
            "flash": pop_flash(request),
        },
        400 if form.errors else 200,
    )


async def refund_reviewed(request: Request) -> Response:
    data = await request.form()
    form = FormState({"note": str(data.get("note", "")).strip()[:300]})

    def act() -> Response:
        with db(request) as session:
            user = require_staff(request, session)
            permissions.require(user, Action.PAYMENTS_REVIEW_OVERPAYMENT)
            payment_id = _int(request.path_params["payment"])
            try:
                recorded = service.record_refund_decision(session, user, payment_id, form.get("note"), now(request))
            except InvalidInput as exc:
                form.errors["note"] = exc.message
                return _refund_page(request, service.refund_review(session, user), form, failed=payment_id)
            if not recorded:  # two people at once, or a repeated post
                flash(request, f"Payment {payment_id} was already reviewed.")
            else:
                flash(request, f"Payment {payment_id} is reviewed.")
            return redirect("/staff/payments/refunds")

    return await run_in_threadpool(act)
