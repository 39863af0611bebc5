"""Paying online: the pay page, starting and charging a payment, where a payment stands,
the processor's webhook, and the staff's review of payments that overpaid.

1. The resident chooses an amount and card or bank account (``start_payment``): the
   amount is checked, and a SetupIntent is made for Stripe.js to save the card or bank
   details on (the numbers go from the browser to Stripe, never to us).
2. Once saved, the saved method is charged (``charge_saved_method``) with an idempotency key
   tied to the payment form, so a repeated request charges once; the amount is checked
   again with the account locked until the charge is made.
3. The payment stays pending until Stripe's signed webhook says it succeeded
   (``receive_webhook``); only then is it written to the ledger.

Each function takes its collaborators (the session or session factory, the gateway, the
date and time) from its caller; messages for the customer are ``InvalidInput`` with the
field they belong to, translated by the view.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Generic, TypeVar

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from ..adapters.database import transaction
from ..adapters.gateway import BANK, CARD, Event, GatewayError, Intent, PaymentGateway
from ..billing_core import accounts, audit, cash_only, money_policy, payments, permissions
from ..billing_core.accounts import AccountSummary
from ..billing_core.errors import N_, InvalidInput, NotFound
from ..billing_core.models import Account, Payment, ProcessorEvent, User
from ..billing_core.money_policy import MoneyPolicy
from ..billing_core.payments import PaymentLimits
from ..billing_core.permissions import Action
from ..billing_core.status import PaymentStatus, ProcessorStatus
from . import returns

#: An attempt's key, from the form, must be at least this long (the form makes 24 characters).
ATTEMPT_MIN_LENGTH = 16

# --- The customer's accounts and the processor's customer record ---------------------------


def customer_account(session: Session, user: User, number: str) -> Account | None:
    """One account by number, only if this customer sign-in is linked to it (else None:
    an account that is not theirs does not exist for them)."""
    return accounts.account_for_user(session, user, number)


def processor_customer(gateway: PaymentGateway, account: Account, user: User) -> str:
    """The account's customer record at the processor, made the first time it is needed."""
    if not account.processor_customer_id:
        account.processor_customer_id = gateway.ensure_customer(
            email=user.email,
            name=account.customer.name,
            account_number=account.number,
            idempotency_key=f"customer-account-{account.id}",
        )
    return account.processor_customer_id


def setup_for(gateway: PaymentGateway | None, attempt: dict) -> Intent | None:
    """The SetupIntent a started attempt saves its card or bank account on, for the page
    where Stripe.js takes the details; None when there is no processor or it does not know it."""
    if gateway is None:
        return None
    try:
        return gateway.retrieve_setup(attempt["setup"])
    except GatewayError:
        return None


def saved_setup(gateway: PaymentGateway, attempt: dict, attempt_id: str) -> Intent | None:
    """The SetupIntent of this attempt once Stripe.js saved a card or bank account on it, else None."""
    setup = gateway.retrieve_setup(attempt["setup"])
    if (
        setup.status != ProcessorStatus.SUCCEEDED
        or not setup.payment_method
        or setup.metadata.get("attempt") != attempt_id
    ):
        return None
    return setup


NOT_SAVED = N_("The card or bank account was not saved. Please try again.")
FORM_EXPIRED = N_("This form had expired. Please choose again.")
CHOOSE_METHOD = N_("Choose a card or a bank account.")
UNREACHABLE = N_("We could not reach the payment service: %(why)s")


def check_method_and_attempt(errors: dict[str, InvalidInput], method: str, attempt: str, field_: str) -> None:
    """The two checks every card-or-bank form makes: a known kind, and a form key that is
    not a stale or forged one (``field_`` is where the expiry message goes)."""
    if method not in (CARD, BANK):
        errors["method"] = InvalidInput(CHOOSE_METHOD, "method")
    if len(attempt) < ATTEMPT_MIN_LENGTH:
        errors[field_] = InvalidInput(FORM_EXPIRED, field_)


# --- The pay page -----------------------------------------------------------------------


@dataclass(frozen=True)
class PayPage:
    """What the pay page shows: the balance, what may be paid, and what is on its way."""

    account: Account
    summary: AccountSummary
    allowed: PaymentLimits
    pending: list[Payment]
    #: Why the account may not pay by card or bank (cash only, ``cash_only.refusal``), if so.
    cash_only: InvalidInput | None = None

    def context(self) -> dict[str, object]:
        return {
            "summary": self.summary,
            "account": self.account,
            "allowed": self.allowed,
            "pending": self.pending,
            "cash_only": self.cash_only,
        }


def pay_page(session: Session, account: Account, as_of: date) -> PayPage:
    summary = accounts.summarise(session, account, as_of)
    pending = payments.pending(session, account.id)
    allowed = payments.limits(summary, sum(p.amount_cents for p in pending))
    return PayPage(account, summary, allowed, pending, cash_only.refusal(account, "card", "choice"))


P = TypeVar("P")


@dataclass(frozen=True)
class Started(Generic[P]):
    """A form that started a payment or an autopay enrollment: the page it came from (to
    show again), and either what the browser keeps for the next step (``attempt``) or the
    problems by field (nothing was charged)."""

    page: P
    attempt: dict | None = None
    errors: dict[str, InvalidInput] = field(default_factory=dict)


def start_payment(
    session: Session,
    gateway: PaymentGateway | None,
    account: Account,
    user: User,
    as_of: date,
    *,
    choice: str,
    other_amount: str,
    method: str,
    attempt: str,
) -> Started[PayPage]:
    """Check the amount and method chosen and make the SetupIntent the card or bank
    account will be saved on. The result's ``attempt`` is what the next steps need
    (account, amount, method, setup), kept by the browser for this form."""
    page = pay_page(session, account, as_of)
    errors: dict[str, InvalidInput] = {}
    if gateway is None:
        errors["choice"] = InvalidInput(N_("Online payment is not available right now."), "choice")
        return Started(page, errors=errors)
    check_method_and_attempt(errors, method, attempt, "choice")
    refused = cash_only.refusal(account, "bank" if method == BANK else "card", "method")
    if refused is not None:
        errors["method"] = refused
        return Started(page, errors=errors)
    amount = 0
    try:
        amount = payments.choose_amount(page.summary, page.allowed, choice, other_amount)
    except InvalidInput as exc:
        errors[exc.field or "choice"] = exc
    if errors:
        return Started(page, errors=errors)
    try:
        processor_customer(gateway, account, user)
        setup = gateway.create_setup(
            customer=account.processor_customer_id or "",
            kind=method,
            idempotency_key=f"setup-{attempt}",
            metadata={"account": account.number, "attempt": attempt},
        )
    except GatewayError as exc:
        return Started(page, errors={"choice": InvalidInput(UNREACHABLE, "choice", why=exc.message)})
    return Started(page, {"account": account.number, "amount": amount, "method": method, "setup": setup.id})


@dataclass(frozen=True)
class Charged:
    """The answer to a charge: the page to go to next (and, when the bank or card asks the
    customer to confirm, the secret Stripe.js needs for it), or what went wrong."""

    next: str | None = None
    action_secret: str | None = None
    error: InvalidInput | None = None


def charge_saved_method(
    session: Session,
    gateway: PaymentGateway,
    account: Account,
    user: User,
    attempt: dict,
    attempt_id: str,
    as_of: date,
    now: datetime,
) -> Charged:
    """Charge the card or bank account Stripe.js saved for this attempt. The amount is
    checked again here, with the account locked until the charge is made: another form
    may have paid the same balance since this one was shown. A processor that cannot be
    reached raises ``GatewayError``; nothing is written then."""
    setup = saved_setup(gateway, attempt, attempt_id)
    if setup is None or setup.payment_method is None:
        return Charged(error=InvalidInput(NOT_SAVED))
    refused = cash_only.refusal(account, "bank" if attempt["method"] == BANK else "card")
    if refused is not None:  # made cash only since the form was shown: nothing is charged
        return Charged(error=refused)
    try:
        payment, new = payments.start(
            session, account, user, attempt["amount"], attempt["method"], f"pay-{attempt_id}", as_of
        )
    except InvalidInput as exc:
        return Charged(error=exc)
    if new:
        audit.record(
            session,
            "payment.started",
            actor=user,
            entity_type="payment",
            entity_id=payment.id,
            after={"amount_cents": payment.amount_cents, "method": payment.method},
        )
    intent = gateway.charge(
        amount_cents=payment.amount_cents,
        customer=account.processor_customer_id or "",
        payment_method=setup.payment_method,
        kind=attempt["method"],
        idempotency_key=payment.idempotency_key or "",
        metadata={"account": account.number, "payment": str(payment.id)},
    )
    payment.processor_id = intent.id
    payment.method_label = intent.method_label or setup.method_label
    # Only the webhook posts a payment; here a decline or a pending bank debit is noted.
    if intent.status != ProcessorStatus.SUCCEEDED:
        payments.apply(session, payment, intent.status, as_of, now, failure=intent.failure_message)
    secret = (intent.client_secret or "") if intent.status == ProcessorStatus.REQUIRES_ACTION else None
    return Charged(next=f"/my/accounts/{account.number}/payments/{payment.id}", action_secret=secret)


def payment_on_account(session: Session, account: Account, payment_id: int) -> Payment | None:
    """One payment on the account, for the page that shows where it stands."""
    return session.scalar(select(Payment).where(Payment.id == payment_id, Payment.account_id == account.id))


# --- The processor's webhook -------------------------------------------------------------

PAYMENT_EVENTS = {
    "payment_intent.succeeded",
    "payment_intent.processing",
    "payment_intent.payment_failed",
    "payment_intent.canceled",
}
DISPUTE_CREATED = "charge.dispute.created"
#: The email jobs a change sends (``portal/jobs.py``).
RECEIPT_EMAIL = "email.receipt"
AUTOPAY_FAILED_EMAIL = "email.autopay_failed"


@dataclass(frozen=True)
class Handled:
    """What the webhook did with an event (recorded with it, and the answer's text), and
    the email job to send for it with its payment id, if any."""

    outcome: str
    email: tuple[str, int] | None = None
    #: An email already in the outbox (written with the change), to send now.
    outbox_id: int | None = None


def receive_webhook(
    factory: sessionmaker[Session],
    gateway: PaymentGateway,
    payload: bytes,
    signature: str,
    as_of: date,
    now: datetime,
    policy: MoneyPolicy = money_policy.DEFAULT,
) -> Handled:
    """Check a webhook's signature and shape (``BadSignature``, ``BadEvent``: nothing is
    written), then act on the event once (``handle_event``)."""
    event = gateway.parse_event(payload, signature)
    return handle_event(factory, gateway, event, as_of, now, policy)


def handle_event(
    factory: sessionmaker[Session],
    gateway: PaymentGateway,
    event: Event,
    as_of: date,
    now: datetime,
    policy: MoneyPolicy = money_policy.DEFAULT,
) -> Handled:
    """Act on one event from the processor, once, in one transaction: an event already
    recorded changes nothing; the same event delivered twice at the same moment is
    recorded by one delivery only (the other answers "duplicate"). The payment it is about
    is locked while it changes. A processor that cannot be asked for the payment's state
    raises ``GatewayError``: nothing is written, and the processor delivers it again later."""
    try:
        with transaction(factory) as session:
            return _handle(session, gateway, event, as_of, now, policy)
    except IntegrityError:
        # The same event delivered twice at the same moment: the other delivery has it.
        return Handled("duplicate")


def _handle(
    session: Session, gateway: PaymentGateway, event: Event, as_of: date, now: datetime, policy: MoneyPolicy
) -> Handled:
    if session.scalar(select(ProcessorEvent.id).where(ProcessorEvent.event_id == event.id)) is not None:
        return Handled("already handled")
    record = ProcessorEvent(event_id=event.id, type=event.type, object_id=event.object_id, received_at=now)
    session.add(record)
    session.flush()  # a second delivery running at the same moment stops here (unique event id)
    handled = Handled("ignored")
    if event.type in PAYMENT_EVENTS:
        payment = _locked_payment(session, event.object_id) or _payment_being_charged(session, gateway, event.object_id)
        if payment is None:
            handled = Handled("ignored: unknown payment")
        else:
            # The event says something changed; the processor's current state says what.
            # Events arrive out of order, so their own content is not trusted for it.
            intent = gateway.retrieve_payment(event.object_id)
            applied = payments.apply(
                session,
                payment,
                intent.status,
                as_of,
                now,
                method_label=intent.method_label,
                failure=intent.failure_message,
            )
            outcome = f"payment {payment.id}: {applied.change or 'no change'}"
            if applied.change == PaymentStatus.POSTED and payment.overpaid_cents:
                outcome += ", overpaid"  # a credit on the account, listed for refund review
            handled = Handled(outcome, email_for(payment, applied.change))
    elif event.type == DISPUTE_CREATED and event.payment_intent:
        payment = _locked_payment(session, event.payment_intent)
        if payment is None:
            handled = Handled("ignored: unknown payment")
        else:
            # The same rule as a return staff record: reversed, the fee, cash only, the notice.
            recorded = returns.processor_return(session, payment, event.reason, as_of, now, policy)
            change = PaymentStatus.RETURNED.value if recorded else ""
            handled = Handled(
                f"payment {payment.id}: {change or 'no change'}", outbox_id=recorded.outbox_id if recorded else None
            )
    record.outcome = handled.outcome[:200]
    return handled


def _locked_payment(session: Session, processor_id: str) -> Payment | None:
    return session.scalar(select(Payment).where(Payment.processor_id == processor_id).with_for_update())


def _payment_being_charged(session: Session, gateway: PaymentGateway, processor_id: str) -> Payment | None:
    """A PaymentIntent we do not know yet may be one a charge is still making: the processor
    can send its event before the portal has the answer to the create call, so the charge's
    transaction has not committed the payment's processor id. That transaction holds the
    account (``payments.start``) until it commits: wait for the account the intent names,
    then look again. None when the intent is not one of ours."""
    number = gateway.retrieve_payment(processor_id).metadata.get("account")
    account_id = session.scalar(select(Account.id).where(Account.number == number)) if number else None
    if account_id is None:
        return None
    payments.lock_account(session, account_id)
    return _locked_payment(session, processor_id)


def email_for(payment: Payment, change: str) -> tuple[str, int] | None:
    """The email a change sends: a receipt when posted; for autopay, a notice when the
    draft failed or the bank returned it (the bill is open again)."""
    if change == PaymentStatus.POSTED:
        return RECEIPT_EMAIL, payment.id
    if change in (PaymentStatus.FAILED, PaymentStatus.RETURNED) and payment.channel == "autopay":
        return AUTOPAY_FAILED_EMAIL, payment.id
    return None


# --- Staff: payments that posted beyond what was owed ------------------------------------


@dataclass(frozen=True)
class RefundReview:
    """Payments to review for a refund (each posted beyond the balance, so the account
    holds a credit), the ones reviewed lately, their accounts' numbers, and whether this
    person may record a decision."""

    items: list[Payment]
    reviewed: list[Payment]
    numbers: dict[int, str]
    can_review: bool


def refund_review(session: Session, user: User) -> RefundReview:
    items = payments.to_review(session)
    reviewed = payments.to_review(session, reviewed=True, limit=50)
    ids = {p.account_id for p in items + reviewed}
    numbers: dict[int, str] = {}
    if ids:
        rows = session.execute(select(Account.id, Account.number).where(Account.id.in_(ids)))
        numbers = {account_id: number for account_id, number in rows}
    return RefundReview(items, reviewed, numbers, permissions.can(user.role, Action.PAYMENTS_REVIEW_OVERPAYMENT))


def record_refund_decision(session: Session, user: User, payment_id: int, note: str, now: datetime) -> bool:
    """Record what was done about an overpayment (refunded outside the portal, or kept as
    credit). Returns False when it was already recorded (two people at once, or a repeated
    post). ``NotAllowed`` for a role that does not record them, ``NotFound`` for a payment
    that did not overpay, ``InvalidInput`` (field ``note``) without a note."""
    permissions.require(user, Action.PAYMENTS_REVIEW_OVERPAYMENT)
    payment = session.get(Payment, payment_id, with_for_update=True)
    if payment is None or payment.overpaid_cents is None:
        raise NotFound(f"payment {payment_id}")
    if payment.refund_reviewed_at is not None:
        return False
    if not note:
        raise InvalidInput("Say what was done: refunded (how and when) or kept as credit.", "note")
    payments.mark_reviewed(session, payment, user, now, note)
    return True
