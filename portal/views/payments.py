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
from datetime import date

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from .. import jobs
from ..adapters.gateway import BANK, CARD, BadEvent, BadSignature, GatewayError, PaymentGateway
from ..billing_core import accounts, audit, payments
from ..billing_core.errors import InvalidInput
from ..billing_core.models import Account, Payment, ProcessorEvent, User
from ..i18n import gettext
from ..web import (
    Forbidden,
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
    account = accounts.account_for_user(session, user, request.path_params["number"])
    if account is None:
        raise PageNotFound()
    return user, account


def _context(session: Session, account: Account, as_of: date) -> dict:
    summary = accounts.summarise(session, account, as_of)
    pending = payments.pending(session, account.id)
    allowed = payments.limits(summary, sum(p.amount_cents for p in pending))
    return {"summary": summary, "account": account, "allowed": allowed, "pending": pending}


def pay_page(request: Request) -> Response:
    with db(request) as session:
        _user, account = my_account(request, session)
        context = _context(session, account, today(request))
    form = FormState({"choice": "balance", "method": CARD, "attempt": secrets.token_urlsafe(18)})
    message = pop_flash(request)
    if message:
        form.errors["choice"] = message
    return render(request, "customer/pay.html", {**context, "form": form, "available": gateway(request) is not None})


def render(request: Request, template: str, context: dict, status: int = 200) -> Response:
    return request.app.state.templates.TemplateResponse(request, template, context, status_code=status)


async def pay_start(request: Request) -> Response:
    data = await request.form()
    form = FormState({k: str(data.get(k, ""))[:40] for k in ("choice", "other_amount", "method", "attempt")})
    processor = gateway(request)

    def start() -> tuple[str | None, dict]:
        with db(request) as session:
            user, account = my_account(request, session)
            context = _context(session, account, today(request))
            if processor is None:
                form.errors["choice"] = gettext("Online payment is not available right now.")
                return None, context
            if form.get("method") not in (CARD, BANK):
                form.errors["method"] = gettext("Choose a card or a bank account.")
            if len(form.get("attempt")) < 16:
                form.errors["choice"] = gettext("This form had expired. Please choose again.")
            try:
                amount = payments.choose_amount(
                    context["summary"], context["allowed"], form.get("choice"), form.get("other_amount")
                )
            except InvalidInput as exc:
                form.errors[exc.field or "choice"] = error_text(exc)
            if form.errors:
                return None, context
            try:
                processor_customer(processor, account, user)
                setup = processor.create_setup(
                    customer=account.processor_customer_id,
                    kind=form.get("method"),
                    idempotency_key=f"setup-{form.get('attempt')}",
                    metadata={"account": account.number, "attempt": form.get("attempt")},
                )
            except GatewayError as exc:
                form.errors["choice"] = gettext("We could not reach the payment service: %(why)s", why=exc.message)
                return None, context
            request.session[ATTEMPT_PREFIX + form.get("attempt")] = {
                "account": account.number,
                "amount": amount,
                "method": form.get("method"),
                "setup": setup.id,
            }
            return account.number, context

    number, context = await run_in_threadpool(start)
    if number is None:
        return render(request, "customer/pay.html", {**context, "form": form, "available": processor is not None}, 400)
    return redirect(f"/my/accounts/{number}/pay/{form.get('attempt')}")


def processor_customer(processor: PaymentGateway, account: Account, user: User) -> str:
    """The account's customer record at the processor, made the first time it is needed."""
    if not account.processor_customer_id:
        account.processor_customer_id = processor.ensure_customer(
            email=user.email,
            name=account.customer.name,
            account_number=account.number,
            idempotency_key=f"customer-account-{account.id}",
        )
    return account.processor_customer_id


def session_attempt(request: Request, account: Account, prefix: str = ATTEMPT_PREFIX) -> dict:
    """What this browser started saving a card or bank account for (kept in its signed
    session), only for this account."""
    attempt = request.session.get(prefix + request.path_params["attempt"])
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
    if processor is None:
        raise PageNotFound()
    try:
        setup = processor.retrieve_setup(attempt["setup"])
    except GatewayError:
        raise PageNotFound() from None
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


def saved_setup(processor: PaymentGateway, attempt: dict, attempt_id: str):  # type: ignore[no-untyped-def]
    """The SetupIntent of this attempt once Stripe.js saved a card or bank account on it, else None."""
    setup = processor.retrieve_setup(attempt["setup"])
    if setup.status != "succeeded" or not setup.payment_method or setup.metadata.get("attempt") != attempt_id:
        return None
    return setup


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
            setup = saved_setup(processor, attempt, attempt_id)
            if setup is None:
                return {"error": gettext("The card or bank account was not saved. Please try again.")}
            try:
                # The amount is checked again here, with the account locked until the charge
                # is made: another form may have paid the same balance since this one was shown.
                payment, new = payments.start(
                    session, account, user, attempt["amount"], attempt["method"], f"pay-{attempt_id}", today(request)
                )
            except InvalidInput as exc:
                return {"error": error_text(exc)}
            if new:
                audit.record(
                    session,
                    "payment.started",
                    actor=user,
                    entity_type="payment",
                    entity_id=payment.id,
                    after={"amount_cents": payment.amount_cents, "method": payment.method},
                )
            intent = processor.charge(
                amount_cents=payment.amount_cents,
                customer=account.processor_customer_id or "",
                payment_method=setup.payment_method,
                kind=attempt["method"],
                idempotency_key=payment.idempotency_key,
                metadata={"account": account.number, "payment": str(payment.id)},
            )
            payment.processor_id = intent.id
            payment.method_label = intent.method_label or setup.method_label
            # Only the webhook posts a payment; here a decline or a pending bank debit is noted.
            if intent.status != payments.SUCCEEDED:
                payments.apply(
                    session, payment, intent.status, today(request), now(request), failure=intent.failure_message
                )
            answer = {"next": f"/my/accounts/{account.number}/payments/{payment.id}"}
            if intent.status == "requires_action":
                answer["action_secret"] = intent.client_secret or ""
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
        payment = session.scalar(
            select(Payment).where(Payment.id == _int(request.path_params["payment"]), Payment.account_id == account.id)
        )
        if payment is None:
            raise PageNotFound()
        template = "customer/_payment_status.html" if request.headers.get("HX-Request") else "customer/receipt.html"
        response = render(request, template, {"account": account, "payment": payment})
        response.headers["Vary"] = "HX-Request"
        response.headers["Cache-Control"] = "private, no-store"
        return response


def _int(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise PageNotFound() from None


# --- The processor's webhook -------------------------------------------------------------

PAYMENT_EVENTS = {
    "payment_intent.succeeded",
    "payment_intent.processing",
    "payment_intent.payment_failed",
    "payment_intent.canceled",
}


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
        event = processor.parse_event(payload, request.headers.get("stripe-signature", ""))
    except BadSignature:
        return PlainTextResponse("bad signature", status_code=400)
    except BadEvent:
        return PlainTextResponse("malformed event", status_code=400)
    try:
        outcome, email = await run_in_threadpool(_handle_event, request, processor, event)
    except IntegrityError:
        # The same event delivered twice at the same moment: the other delivery has it.
        return PlainTextResponse("duplicate")
    except GatewayError:
        # Stripe could not be asked for the payment's state: nothing was written, and a
        # non-2xx answer makes Stripe deliver the event again later.
        return PlainTextResponse("payment service unavailable, try again", status_code=503)
    if email is not None:
        await run_in_threadpool(
            jobs.defer, request.app.state.settings, email[0], request.app.state.sessions, payment_id=email[1]
        )
    return PlainTextResponse(outcome)


def _email_for(payment: Payment, change: str) -> tuple[str, int] | None:
    """The email a change sends: a receipt when posted; for autopay, a notice when the
    draft failed or the bank returned it (the bill is open again)."""
    if change == "posted":
        return "email.receipt", payment.id
    if change in ("failed", "returned") and payment.channel == "autopay":
        return "email.autopay_failed", payment.id
    return None


def _handle_event(request: Request, processor: PaymentGateway, event) -> tuple[str, tuple[str, int] | None]:  # type: ignore[no-untyped-def]
    with db(request) as session:
        if session.scalar(select(ProcessorEvent.id).where(ProcessorEvent.event_id == event.id)) is not None:
            return "already handled", None
        record = ProcessorEvent(event_id=event.id, type=event.type, object_id=event.object_id, received_at=now(request))
        session.add(record)
        session.flush()  # a second delivery running at the same moment stops here (unique event id)
        outcome, email = "ignored", None
        if event.type in PAYMENT_EVENTS:
            payment = session.scalar(select(Payment).where(Payment.processor_id == event.object_id).with_for_update())
            if payment is None:
                outcome = "ignored: unknown payment"
            else:
                # The event says something changed; the processor's current state says what.
                # Events arrive out of order, so their own content is not trusted for it.
                intent = processor.retrieve_payment(event.object_id)
                applied = payments.apply(
                    session,
                    payment,
                    intent.status,
                    today(request),
                    now(request),
                    method_label=intent.method_label,
                    failure=intent.failure_message,
                )
                outcome = f"payment {payment.id}: {applied.change or 'no change'}"
                if applied.change == "posted" and payment.overpaid_cents:
                    outcome += ", overpaid"  # a credit on the account, listed for refund review
                email = _email_for(payment, applied.change)
        elif event.type == "charge.dispute.created" and event.payment_intent:
            payment = session.scalar(
                select(Payment).where(Payment.processor_id == event.payment_intent).with_for_update()
            )
            if payment is None:
                outcome = "ignored: unknown payment"
            else:
                applied = payments.return_payment(session, payment, today(request), event.reason or "disputed")
                outcome = f"payment {payment.id}: {applied.change or 'no change'}"
                email = _email_for(payment, applied.change)
        record.outcome = outcome[:200]
        return outcome, email


# --- Staff: payments that posted beyond what was owed ------------------------------------

#: Who records what was done about an overpayment: the cashiers who refund, and their supervisors.
REFUND_REVIEWERS = frozenset({"cashier", "supervisor", "admin"})


def refund_queue(request: Request) -> Response:
    """Payments to review for refund: each posted beyond the balance, so the account holds a credit."""
    with db(request) as session:
        user = require_staff(request, session)
        return _refund_page(request, session, user, FormState({}))


def _refund_page(
    request: Request, session: Session, user: User, form: FormState, failed: int | None = None
) -> Response:
    items = payments.to_review(session)
    reviewed = payments.to_review(session, reviewed=True, limit=50)
    ids = {p.account_id for p in items + reviewed}
    numbers = dict(session.execute(select(Account.id, Account.number).where(Account.id.in_(ids))).all()) if ids else {}
    return render(
        request,
        "staff/refunds.html",
        {
            "items": items,
            "reviewed": reviewed,
            "numbers": numbers,
            "can_review": user.role in REFUND_REVIEWERS,
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
            if user.role not in REFUND_REVIEWERS:
                raise Forbidden("Only cashiers and billing supervisors record refund decisions.")
            payment = session.get(Payment, _int(request.path_params["payment"]), with_for_update=True)
            if payment is None or payment.overpaid_cents is None:
                raise PageNotFound()
            if payment.refund_reviewed_at is not None:  # two people at once, or a repeated post
                flash(request, f"Payment {payment.id} was already reviewed.")
                return redirect("/staff/payments/refunds")
            try:
                if not form.get("note"):
                    raise InvalidInput("Say what was done: refunded (how and when) or kept as credit.", "note")
                payments.mark_reviewed(session, payment, user, now(request), form.get("note"))
            except InvalidInput as exc:
                form.errors["note"] = exc.message
                return _refund_page(request, session, user, form, failed=payment.id)
            flash(request, f"Payment {payment.id} is reviewed.")
            return redirect("/staff/payments/refunds")

    return await run_in_threadpool(act)
