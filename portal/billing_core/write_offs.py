"""Write-offs of uncollectible final balances, and recoveries of what is paid on them later.

A posted write-off moves each open receivable of the account to bad debt (``BAD_DEBT``), so
the account owes nothing. A payment that arrives afterwards is real money and is taken as
any other; ``record_recovery`` then moves the credit it left (up to what was written off and
not yet recovered) to ``RECOVERIES`` and notes it on the payment (``recovery_cents``), so the
account is not left holding a credit for money it owed all along.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from . import audit, ledger, posting
from .models import Payment, WriteOff
from .status import ApprovalStatus


def written_off_unrecovered(session: Session, account_id: int) -> int:
    """What was written off on the account and not yet recovered, in cents."""
    written = session.scalar(
        select(func.coalesce(func.sum(WriteOff.amount_cents), 0)).where(
            WriteOff.account_id == account_id, WriteOff.status == ApprovalStatus.POSTED.value
        )
    )
    recovered = session.scalar(
        select(func.coalesce(func.sum(Payment.recovery_cents), 0)).where(
            Payment.account_id == account_id, Payment.recovery_cents.is_not(None)
        )
    )
    return max(int(written or 0) - int(recovered or 0), 0)


def recovery_transaction(account_id: int, on: date, cents: int, payment_id: int) -> ledger.Transaction:
    return ledger.Transaction(
        ledger.Kind.RECOVERY,
        on,
        (
            ledger.Entry(ledger.UNAPPLIED_CREDIT, cents, account_id),
            ledger.Entry(ledger.RECOVERIES, -cents),
        ),
        memo=f"Payment {payment_id} recovers a written-off balance",
    )


def record_recovery(session: Session, payment: Payment, on: date, now: datetime) -> int:
    """Call after ``payment`` posted: the part of it that recovers written-off debt (the
    credit it left, up to what is unrecovered) goes to recoveries. Returns those cents (0
    when the account has nothing written off, or the payment paid new charges only)."""
    if payment.recovery_cents:
        return 0
    remaining = written_off_unrecovered(session, payment.account_id)
    if remaining <= 0:
        return 0
    credit = max(-posting.account_balance(session, payment.account_id), 0)
    cents = min(remaining, credit, payment.amount_cents)
    if cents <= 0:
        return 0
    row = posting.post(
        session,
        recovery_transaction(payment.account_id, on, cents, payment.id),
        payment.account_id,
        payment.user_id,
        posted_at=now,
    )
    payment.recovery_cents = cents
    audit.record(
        session,
        "payment.recovery",
        entity_type="payment",
        entity_id=payment.id,
        after={"recovery_cents": cents, "ledger_transaction": row.id},
    )
    return cents
