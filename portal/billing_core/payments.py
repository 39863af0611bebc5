"""Payments taken online: how much may be paid, and what each processor state means for
the ledger.

A payment is written to the ledger only when the processor confirms it (``succeeded``).
Until then it is ``pending`` and the portal says so. The processor's states arrive in any
order and more than once; ``apply`` moves a payment forward only, so a late or repeated
report changes nothing:

    pending --succeeded--> posted --returned (dispute, ACH return)--> returned
       \\--failed / canceled--> failed

A return after posting is a reversal linked to the payment's ledger transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from . import audit, ledger, posting
from .accounts import AccountSummary
from .errors import N_, InvalidInput
from .models import Account, Payment, User

#: The processor's smallest charge in US dollars.
MINIMUM_CENTS = 50
CHOICES = ("balance", "past_due", "other")


@dataclass(frozen=True)
class PaymentLimits:
    """What an online payment on this account may be: at least ``minimum_cents``, at most
    the balance less what is already on its way (no overpayment online: refunds to cards
    cost the office and the resident time)."""

    minimum_cents: int
    maximum_cents: int
    pending_cents: int

    @property
    def can_pay(self) -> bool:
        return self.maximum_cents >= self.minimum_cents


def limits(summary: AccountSummary, pending_cents: int) -> PaymentLimits:
    maximum = max(summary.balance_cents - pending_cents, 0)
    return PaymentLimits(min(MINIMUM_CENTS, maximum) if maximum else MINIMUM_CENTS, maximum, pending_cents)


def parse_cents(text: str) -> int | None:
    from .users import parse_amount

    return parse_amount(text)


def choose_amount(summary: AccountSummary, allowed: PaymentLimits, choice: str, other: str) -> int:
    """The amount the resident chose: the whole balance, the past-due part, or another amount."""
    if not allowed.can_pay:
        raise InvalidInput(N_("There is nothing to pay on this account right now."), "choice")
    if choice == "balance":
        cents = allowed.maximum_cents
    elif choice == "past_due":
        cents = min(max(summary.past_due_cents - allowed.pending_cents, 0), allowed.maximum_cents)
        if cents <= 0:
            raise InvalidInput(N_("Nothing is past due. Choose another amount."), "choice")
    elif choice == "other":
        parsed = parse_cents(other)
        if parsed is None:
            raise InvalidInput(N_("Enter the amount in dollars and cents, like 25.00."), "other_amount")
        cents = parsed
    else:
        raise InvalidInput(N_("Choose how much to pay."), "choice")
    if cents < allowed.minimum_cents:
        raise InvalidInput(
            N_("The smallest online payment is %(amount)s."),
            "other_amount",
            amount=_dollars(allowed.minimum_cents),
        )
    if cents > allowed.maximum_cents:
        raise InvalidInput(
            N_("You can pay at most %(amount)s online, the balance of this account."),
            "other_amount",
            amount=_dollars(allowed.maximum_cents),
        )
    return cents


def _dollars(cents: int) -> str:
    from .money import format_money

    return format_money(cents)


def pending_cents(session: Session, account_id: int) -> int:
    return sum(p.amount_cents for p in pending(session, account_id))


def pending(session: Session, account_id: int) -> list[Payment]:
    return list(
        session.scalars(
            select(Payment).where(Payment.account_id == account_id, Payment.status == "pending").order_by(Payment.id)
        )
    )


def recent(session: Session, account_id: int, limit: int = 10) -> list[Payment]:
    return list(
        session.scalars(
            select(Payment)
            .where(Payment.account_id == account_id, Payment.channel.in_(("online", "autopay")))
            .order_by(Payment.created_at.desc(), Payment.id.desc())
            .limit(limit)
        )
    )


def start(
    session: Session,
    account: Account,
    user: User | None,
    amount_cents: int,
    method: str,
    idempotency_key: str,
    received_on: date,
    channel: str = "online",
) -> tuple[Payment, bool]:
    """The pending payment for ``idempotency_key``: made now, or the one an earlier try of
    the same request made (then the flag is False and nothing new is written)."""
    existing = session.scalar(select(Payment).where(Payment.idempotency_key == idempotency_key))
    if existing is not None:
        if existing.account_id != account.id:
            raise InvalidInput(N_("This payment form was already used. Start again."), "choice")
        return existing, False
    payment = Payment(
        account_id=account.id,
        amount_cents=amount_cents,
        channel=channel,
        method="bank" if method == "us_bank_account" else "card",
        received_on=received_on,
        status="pending",
        idempotency_key=idempotency_key,
        processor_status="created",
        user_id=user.id if user else None,
    )
    session.add(payment)
    session.flush()
    return payment, True


SUCCEEDED = "succeeded"
FAILED_STATES = ("requires_payment_method", "canceled")


@dataclass(frozen=True)
class Applied:
    payment: Payment
    #: What changed: "posted", "failed", "returned", "processing", or "" (nothing).
    change: str


def apply(
    session: Session,
    payment: Payment,
    status: str,
    as_of: date,
    now: datetime,
    *,
    method_label: str | None = None,
    failure: str | None = None,
) -> Applied:
    """Bring a payment up to the processor's state. Forward only: a posted payment is never
    failed by a late "processing" or "failed" report, a failed one never posted twice."""
    if method_label and not payment.method_label:
        payment.method_label = method_label[:80]
    if payment.status in ("returned", "failed"):
        return Applied(payment, "")
    if status == SUCCEEDED:
        if payment.status == "posted":
            return Applied(payment, "")
        _post(session, payment, as_of, now)
        return Applied(payment, "posted")
    if status in FAILED_STATES:
        # Payments are confirmed when made, so "needs a payment method" means it was declined,
        # failed authentication or was returned by the bank before it cleared.
        if payment.status == "posted":
            return Applied(payment, "")
        payment.status = "failed"
        payment.processor_status = status
        payment.failure_message = (failure or "The payment did not go through.")[:300]
        audit.record(
            session,
            "payment.failed",
            entity_type="payment",
            entity_id=payment.id,
            after={"status": "failed", "reason": payment.failure_message},
        )
        return Applied(payment, "failed")
    if payment.status == "pending" and status != payment.processor_status:
        payment.processor_status = status
        return Applied(payment, status if status == "processing" else "")
    return Applied(payment, "")


def _post(session: Session, payment: Payment, as_of: date, now: datetime) -> None:
    txn = ledger.payment_transaction(
        payment.account_id,
        as_of,
        payment.amount_cents,
        payment.channel,
        posting.open_by_service(session, payment.account_id),
        memo=f"{payment.channel.capitalize()} payment {payment.processor_id or payment.id}",
    )
    row = posting.post(session, txn, payment.account_id, payment.user_id)
    payment.ledger_transaction_id = row.id
    payment.status = "posted"
    payment.processor_status = SUCCEEDED
    payment.received_on = as_of
    payment.settled_at = now
    audit.record(
        session,
        "payment.posted",
        entity_type="payment",
        entity_id=payment.id,
        after={"status": "posted", "amount_cents": payment.amount_cents, "ledger_transaction": row.id},
    )


def return_payment(session: Session, payment: Payment, as_of: date, reason: str) -> Applied:
    """A posted payment taken back by the bank or card holder: its ledger transaction is
    reversed (linked to it) and the amount is owed again. Once only."""
    if payment.status != "posted" or payment.ledger_transaction_id is None:
        return Applied(payment, "")
    posting.reverse(session, payment.ledger_transaction_id, as_of, memo=f"Payment {payment.id} returned: {reason}")
    payment.status = "returned"
    payment.failure_message = reason[:300]
    audit.record(
        session,
        "payment.returned",
        entity_type="payment",
        entity_id=payment.id,
        before={"status": "posted"},
        after={"status": "returned", "reason": reason},
    )
    return Applied(payment, "returned")
