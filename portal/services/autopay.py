"""Autopay drafts and their emails, run as jobs (``portal/jobs.py``).

Each draft is written before it is sent and sent with the bill's idempotency key:

1. one transaction writes the pending autopay payment (``billing_core.autopay.prepare``);
2. the processor is asked to charge the saved method, off-session;
3. a second transaction records the answer. Only the processor's signed webhook posts
   the payment to the ledger, as for every online payment.

A job that dies between 1 and 3 is run again: step 1 finds the payment it wrote, and the
processor answers the repeated key with the same charge. A draft that is declined is
marked failed at once, the bill stays open and the customer gets an email; one that a
bank returns days later reaches the same email through the webhook.
"""

from __future__ import annotations

import logging
from datetime import date

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from .. import emails
from ..adapters.gateway import GatewayError, PaymentGateway
from ..billing_core import autopay, payments, posting
from ..billing_core.models import Account, AutopayEnrollment, Bill, Payment, User, utcnow
from ..db import transaction
from ..settings import Settings

log = logging.getLogger(__name__)
CHUNK = 50


def due(settings: Settings, factory, as_of: date) -> list[int]:  # type: ignore[no-untyped-def]
    with factory() as session:
        return autopay.due_bills(session, as_of, settings.tz)


def draft_bills(
    settings: Settings, factory, gateway: PaymentGateway | None, bill_ids: list[int], as_of: date
) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """Draft each bill (a chunk of one job). Returns how many ended which way."""
    counts: dict[str, int] = {}
    for bill_id in bill_ids:
        outcome = draft_one(settings, factory, gateway, bill_id, as_of)
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts


def draft_one(settings: Settings, factory, gateway: PaymentGateway | None, bill_id: int, as_of: date) -> str:  # type: ignore[no-untyped-def]
    if gateway is None:
        raise RuntimeError("autopay needs the payment processor (STRIPE_SECRET_KEY is not set)")
    try:
        with transaction(factory) as session:
            bill = session.get(Bill, bill_id)
            if bill is None:
                return "no such bill"
            # Locked as an online payment locks it (``payments.lock_account``): a payment
            # the resident is making right now is counted as pending, never charged twice.
            payments.lock_account(session, bill.account_id)
            account = session.get(Account, bill.account_id)
            balance = posting.account_balance(session, account.id)
            pending = payments.pending_cents(session, account.id)
            draft = autopay.prepare(session, bill_id, as_of, balance, pending, settings.tz)
            if draft.payment is None or draft.enrollment is None:
                return draft.skipped or "skipped"
            payment_id = draft.payment.id
            if not draft.enrollment.payment_method_id:
                # Signed up on paper before the portal: nothing is saved with the processor.
                payments.apply(
                    session,
                    draft.payment,
                    "requires_payment_method",
                    as_of,
                    utcnow(),
                    failure="No card or bank account is saved for autopay. Please set it up again online.",
                )
                no_method = True
            else:
                no_method = False
            charge = {
                "amount_cents": draft.payment.amount_cents,
                "customer": account.processor_customer_id or "",
                "payment_method": draft.enrollment.payment_method_id or "",
                "kind": draft.enrollment.method_kind,
                "idempotency_key": draft.payment.idempotency_key,
                "metadata": {"account": account.number, "payment": str(payment_id), "bill": bill.number or ""},
            }
    except IntegrityError:
        return "already drafted"  # another worker wrote it at the same moment
    if no_method:
        notify_failure(settings, factory, payment_id)
        return "failed"
    try:
        intent = gateway.charge(off_session=True, **charge)
        failure = None
    except GatewayError as exc:
        if exc.code is None:
            raise  # the processor did not answer: the job is retried, with the same key
        intent, failure = None, exc.message
    with transaction(factory) as session:
        payment = session.get(Payment, payment_id, with_for_update=True)
        if intent is not None:
            payment.processor_id = intent.id
            payment.method_label = payment.method_label or intent.method_label
            status, failure = intent.status, intent.failure_message
        else:
            status = "requires_payment_method"
        if status == payments.SUCCEEDED:
            # Posted by the webhook, like every online payment; until then it is pending.
            payment.processor_status = status
            return "sent"
        applied = payments.apply(session, payment, status, as_of, utcnow(), failure=failure)
    if applied.change == "failed":
        notify_failure(settings, factory, payment_id)
        return "failed"
    return "sent"


def notify_failure(settings: Settings, factory, payment_id: int) -> bool:  # type: ignore[no-untyped-def]
    """Tell the customer, once, that autopay could not take a bill and it is still open."""
    with transaction(factory) as session:
        payment = session.get(Payment, payment_id)
        if (
            payment is None
            or payment.channel != "autopay"
            or payment.status not in ("failed", "returned")
            or payment.failure_notice_sent_at is not None
        ):
            return False
        account = session.get(Account, payment.account_id)
        user = session.get(User, payment.user_id) if payment.user_id else None
        to = user.email if user else account.customer.email
        if not to:
            return False
        language = user.language if user else account.customer.preferred_language
        bill = autopay.latest_bill(session, account.id)
        message = emails.build(
            settings,
            to,
            language,
            "autopay_failed",
            payment=payment,
            account=account,
            due_date=bill.due_date if bill else None,
            url=emails.link(settings, f"/my/accounts/{account.number}/pay"),
        )
    emails.send(settings, message)
    with transaction(factory) as session:
        session.execute(
            update(Payment)
            .where(Payment.id == payment_id, Payment.failure_notice_sent_at.is_(None))
            .values(failure_notice_sent_at=utcnow())
        )
    return True


def send_enrolled(settings: Settings, factory, enrollment_id: int) -> bool:  # type: ignore[no-untyped-def]
    """Email the customer a copy of the authorization they agreed to."""
    with factory() as session:
        enrollment = session.get(AutopayEnrollment, enrollment_id)
        if enrollment is None or enrollment.user_id is None:
            return False
        user = session.get(User, enrollment.user_id)
        account = session.get(Account, enrollment.account_id)
        message = emails.build(
            settings,
            user.email,
            enrollment.authorization_language,
            "autopay_enrolled",
            enrollment=enrollment,
            account=account,
            url=emails.link(settings, f"/my/accounts/{account.number}/autopay"),
        )
    emails.send(settings, message)
    return True
