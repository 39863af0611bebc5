"""Autopay: the customer's enrollment (turn it on, change the card or bank account, turn it
off), and the drafts and their emails, run as jobs (``portal/jobs.py``).

Enrolling:

1. ``autopay_page`` shows where autopay stands; ``start_enrollment`` checks the form (a card
   or bank account, the box agreeing to the authorization) and makes the SetupIntent that
   Stripe.js saves the card or bank details on, for use when the customer is not there.
2. ``confirm_enrollment`` checks with the processor that it is saved and records the
   enrollment with the text agreed to (the view then emails the customer a copy).

Drafts:

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
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from typing import TypedDict

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from .. import emails
from ..adapters.clock import Clock, system_clock
from ..adapters.database import transaction
from ..adapters.gateway import BANK, GatewayError, PaymentGateway
from ..billing_core import accounts, audit, autopay, cash_only, payments, posting
from ..billing_core.accounts import AccountSummary
from ..billing_core.errors import N_, InvalidInput
from ..billing_core.models import Account, AuditEvent, Bill, Payment, User
from ..billing_core.status import PaymentStatus, ProcessorStatus
from ..settings import Settings
from . import notifications
from .payments import NOT_SAVED, UNREACHABLE, Started, check_method_and_attempt, processor_customer, saved_setup

log = logging.getLogger(__name__)
CHUNK = 50


def due(settings: Settings, factory: sessionmaker[Session], as_of: date) -> list[int]:
    with factory() as session:
        return autopay.due_bills(session, as_of, settings.tz)


def draft_bills(
    settings: Settings,
    factory: sessionmaker[Session],
    gateway: PaymentGateway | None,
    bill_ids: list[int],
    as_of: date,
    clock: Clock = system_clock,
) -> dict[str, int]:
    """Draft each bill (a chunk of one job). Returns how many ended which way."""
    counts: dict[str, int] = {}
    for bill_id in bill_ids:
        outcome = draft_one(settings, factory, gateway, bill_id, as_of, clock)
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts


class _Charge(TypedDict):
    """The arguments of ``PaymentGateway.charge`` for one autopay draft."""

    amount_cents: int
    customer: str
    payment_method: str
    kind: str
    idempotency_key: str
    metadata: dict[str, str]


def draft_one(
    settings: Settings,
    factory: sessionmaker[Session],
    gateway: PaymentGateway | None,
    bill_id: int,
    as_of: date,
    clock: Clock = system_clock,
) -> str:
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
            assert account is not None  # the bill's account, just locked
            if account.cash_only and autopay.active_enrollment(session, account.id) is not None:
                # Cash only (returned payments): no card or bank draft is taken (``cash_only``).
                refused = cash_only.refusal(account, "bank")
                if not _cash_only_skip_recorded(session, bill.id):
                    audit.record(
                        session,
                        "autopay.skipped",
                        entity_type="bill",
                        entity_id=bill.id,
                        after={"reason": "cash only", "message": refused.message if refused else ""},
                    )
                return "refused: the account is cash only"
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
                    ProcessorStatus.REQUIRES_PAYMENT_METHOD.value,
                    as_of,
                    clock(),
                    failure="No card or bank account is saved for autopay. Please set it up again online.",
                )
                no_method = True
            else:
                no_method = False
            # A draft is found by its key (``autopay.idempotency_key``): it always has one.
            assert draft.payment.idempotency_key is not None
            charge: _Charge = {
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
        notifications.send_autopay_failed(emails.Mailer(settings), factory, clock, payment_id)
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
        assert payment is not None  # the draft committed above
        if intent is not None:
            payment.processor_id = intent.id
            payment.method_label = payment.method_label or intent.method_label
            status, failure = intent.status, intent.failure_message
        else:
            status = ProcessorStatus.REQUIRES_PAYMENT_METHOD.value
        if status == ProcessorStatus.SUCCEEDED:
            # Posted by the webhook, like every online payment; until then it is pending.
            payment.processor_status = status
            return "sent"
        applied = payments.apply(session, payment, status, as_of, clock(), failure=failure)
    if applied.change == PaymentStatus.FAILED:
        notifications.send_autopay_failed(emails.Mailer(settings), factory, clock, payment_id)
        return "failed"
    return "sent"


def _cash_only_skip_recorded(session: Session, bill_id: int) -> bool:
    """A bill's draft refused for cash only is audited once, not at every hourly run."""
    return (
        session.scalar(
            select(AuditEvent.id)
            .where(
                AuditEvent.action == "autopay.skipped",
                AuditEvent.entity_type == "bill",
                AuditEvent.entity_id == str(bill_id),
            )
            .limit(1)
        )
        is not None
    )


# --- The customer's side: enroll, change the card or bank account, cancel -----------------


@dataclass(frozen=True)
class AutopayPage:
    """What the autopay page shows: the balance, and where autopay stands (the enrollment,
    the next draft, a draft that did not go through)."""

    account: Account
    summary: AccountSummary
    outlook: autopay.Outlook
    #: Why autopay cannot take this account's bills (cash only, ``cash_only.refusal``), if so.
    cash_only: InvalidInput | None = None

    def context(self) -> dict[str, object]:
        return {"account": self.account, "summary": self.summary, "outlook": self.outlook, "cash_only": self.cash_only}


def autopay_page(session: Session, account: Account, as_of: date, tz: tzinfo) -> AutopayPage:
    summary = accounts.summarise(session, account, as_of)
    return AutopayPage(
        account,
        summary,
        autopay.outlook(session, account, summary.balance_cents, as_of, tz, summary.last_bill),
        cash_only.refusal(account, "card"),
    )


def start_enrollment(
    session: Session,
    gateway: PaymentGateway | None,
    account: Account,
    user: User,
    as_of: date,
    tz: tzinfo,
    *,
    method: str,
    agree: str,
    attempt: str,
    terms: str,
    language: str,
) -> Started[AutopayPage]:
    """Check the form (a card or bank account, and the box agreeing to ``terms``, the
    authorization as shown in ``language``) and make the SetupIntent the method will be
    saved on for use when the customer is not there. The result's ``attempt`` is what
    ``confirm_enrollment`` needs, kept by the browser for this form."""
    page = autopay_page(session, account, as_of, tz)
    errors: dict[str, InvalidInput] = {}
    if gateway is None:
        errors["method"] = InvalidInput(N_("Autopay is not available right now."), "method")
        return Started(page, errors=errors)
    check_method_and_attempt(errors, method, attempt, "method")
    refused = cash_only.refusal(account, "bank" if method == BANK else "card", "method")
    if refused is not None:
        return Started(page, errors={"method": refused})
    if agree != "yes":
        errors["agree"] = InvalidInput(N_("To turn on autopay, check the box to agree."), "agree")
    if errors:
        return Started(page, errors=errors)
    try:
        setup = gateway.create_setup(
            customer=processor_customer(gateway, account, user),
            kind=method,
            idempotency_key=f"autopay-setup-{attempt}",
            metadata={"account": account.number, "attempt": attempt, "purpose": "autopay"},
        )
    except GatewayError as exc:
        return Started(page, errors={"method": InvalidInput(UNREACHABLE, "method", why=exc.message)})
    return Started(
        page,
        {"account": account.number, "method": method, "setup": setup.id, "terms": terms, "language": language},
    )


@dataclass(frozen=True)
class Enrolled:
    """The enrollment recorded, or why not."""

    enrollment_id: int | None = None
    error: InvalidInput | None = None


def confirm_enrollment(
    session: Session,
    gateway: PaymentGateway,
    account: Account,
    user: User,
    attempt: dict,
    attempt_id: str,
    now: datetime,
    remote_addr: str | None,
) -> Enrolled:
    """Stripe.js saved the card or bank account: check with the processor and record the
    enrollment with the authorization agreed to. ``GatewayError`` when the processor
    cannot be reached (nothing is recorded)."""
    setup = saved_setup(gateway, attempt, attempt_id)
    if setup is None or setup.payment_method is None:
        return Enrolled(error=InvalidInput(NOT_SAVED))
    refused = cash_only.refusal(account, "bank" if attempt["method"] == BANK else "card")
    if refused is not None:  # made cash only since the form was shown
        return Enrolled(error=refused)
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
        now=now,
        remote_addr=remote_addr,
    )
    return Enrolled(enrollment.id)


def cancel(session: Session, account: Account, user: User, now: datetime, remote_addr: str | None) -> bool:
    """Turn autopay off; False when it was already off."""
    return autopay.cancel(session, account, user, now, remote_addr) is not None
