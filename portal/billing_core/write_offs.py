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

from . import audit, ledger, permissions, posting
from .errors import FieldErrors, InvalidInput
from .models import Account, AccountStatus, Payment, User, WriteOff
from .money import format_money, parse_money
from .permissions import Action
from .status import APPROVAL_TRANSITIONS, ApprovalStatus, move


def written_off_unrecovered(session: Session, account_id: int) -> int:
    """What was written off on the account and not yet recovered, in cents."""
    with session.no_autoflush:  # most accounts never had a write-off: one indexed look, nothing flushed
        any_posted = session.scalar(
            select(WriteOff.id)
            .where(WriteOff.account_id == account_id, WriteOff.status == ApprovalStatus.POSTED.value)
            .limit(1)
        )
    if any_posted is None:
        return 0
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


# --- Preparing, approving and rejecting write-offs ---------------------------------------------

#: Accounts whose balance may be written off.
WRITABLE_STATUSES = (AccountStatus.FINAL.value, AccountStatus.CLOSED.value)


def writable_cents(session: Session, account_id: int) -> dict[str, int]:
    """What may be written off, by service: each open receivable (in service order), up to
    the account's balance (a credit on the account is netted first). An unpaid deposit is
    not a debt for service: it is cancelled by the deposit work, never written off."""
    balance = posting.account_balance(session, account_id)
    out: dict[str, int] = {}
    left = max(balance, 0)
    opened = posting.open_by_service(session, account_id)
    for service in sorted(opened, key=ledger._service_rank):
        if service == ledger.DEPOSIT or opened[service] <= 0 or left <= 0:
            continue
        take = min(opened[service], left)
        out[service] = take
        left -= take
    return out


def write_off_transaction(account_id: int, on: date, by_service: dict[str, int], memo: str) -> ledger.Transaction:
    """Dr bad debt / Cr each service's receivable of the account."""
    entries = [ledger.Entry(ledger.BAD_DEBT, sum(by_service.values()))]
    entries += [
        ledger.Entry(ledger.receivable(s), -c, account_id, s)
        for s, c in sorted(by_service.items(), key=lambda i: ledger._service_rank(i[0]))
        if c
    ]
    return ledger.Transaction(ledger.Kind.WRITE_OFF, on, tuple(entries), memo=memo)


def allocate(by_service: dict[str, int], cents: int) -> dict[str, int]:
    """``cents`` taken from the writable receivables in service order."""
    out: dict[str, int] = {}
    left = cents
    for service in sorted(by_service, key=ledger._service_rank):
        take = min(by_service[service], left)
        if take > 0:
            out[service] = take
            left -= take
    return out


def check_write_off(session: Session, account: Account, amount: str, reason: str) -> int:
    """The form checked whole (``FieldErrors``): returns the cents to write off."""
    errors: dict[str, InvalidInput] = {}
    if account.status not in WRITABLE_STATUSES:
        errors["account"] = InvalidInput(
            "Only a final or closed account's balance is written off; this account is %(status)s.",
            "account",
            status=account.status,
        )
    owed = sum(writable_cents(session, account.id).values())
    cents = 0
    try:
        cents = parse_money(amount, "amount")
        if cents <= 0:
            raise InvalidInput("Enter an amount above zero.", "amount")
        if cents > owed:
            raise InvalidInput(
                "The account owes %(owed)s; a write-off cannot be more.", "amount", owed=format_money(owed)
            )
    except InvalidInput as exc:
        errors["amount"] = exc
    if not (reason or "").strip():
        errors["reason"] = InvalidInput("Say why the balance is uncollectible (the collection efforts made).", "reason")
    if errors:
        raise FieldErrors(errors)
    return cents


def prepare(session: Session, account: Account, actor: User, amount: str, reason: str, now: datetime) -> WriteOff:
    """A specialist prepares it; it always waits for someone else's approval."""
    permissions.require(actor, Action.WRITE_OFFS_PREPARE)
    cents = check_write_off(session, account, amount, reason)
    item = WriteOff(
        account_id=account.id,
        amount_cents=cents,
        reason=reason.strip()[:2000],
        status=ApprovalStatus.PENDING.value,
        prepared_by_id=actor.id,
        prepared_at=now,
    )
    session.add(item)
    session.flush()
    audit.record(
        session, "write_off.prepared", actor=actor, entity_type="write_off", entity_id=item.id, after=snapshot(item)
    )
    return item


def approve(session: Session, item: WriteOff, actor: User, today: date, now: datetime) -> WriteOff:
    """Post it: each open receivable, in service order, moves to bad debt."""
    permissions.require_approver(actor, Action.WRITE_OFFS_APPROVE, item.prepared_by_id, item.amount_cents)
    if item.status != ApprovalStatus.PENDING.value:
        raise InvalidInput("This write-off is %(status)s already.", "decision", status=item.status)
    account = session.get(Account, item.account_id, with_for_update=True)
    assert account is not None
    writable = writable_cents(session, account.id)
    owed = sum(writable.values())
    if item.amount_cents > owed:
        raise InvalidInput(
            "The account now owes %(owed)s, less than this write-off: reject it and prepare a new one.",
            "decision",
            owed=format_money(owed),
        )
    before = snapshot(item)
    txn = write_off_transaction(
        account.id, today, allocate(writable, item.amount_cents), f"Write-off {item.id}: uncollectible balance"
    )
    row = posting.post(session, txn, account.id, actor.id, posted_at=now)
    move(APPROVAL_TRANSITIONS, item, ApprovalStatus.POSTED)
    item.ledger_transaction_id, item.decided_by_id, item.decided_at = row.id, actor.id, now
    audit.record(
        session,
        "write_off.approved",
        actor=actor,
        entity_type="write_off",
        entity_id=item.id,
        before=before,
        after=snapshot(item),
    )
    return item


def reject(session: Session, item: WriteOff, actor: User, note: str, now: datetime) -> WriteOff:
    permissions.require_approver(actor, Action.WRITE_OFFS_APPROVE, item.prepared_by_id)
    note = (note or "").strip()[:2000]
    if not note:
        raise FieldErrors.one("decision_note", "Say why the write-off is rejected.")
    if item.status != ApprovalStatus.PENDING.value:
        raise InvalidInput("This write-off is %(status)s already.", "decision", status=item.status)
    before = snapshot(item)
    move(APPROVAL_TRANSITIONS, item, ApprovalStatus.REJECTED)
    item.decided_by_id, item.decided_at, item.decision_note = actor.id, now, note
    audit.record(
        session,
        "write_off.rejected",
        actor=actor,
        entity_type="write_off",
        entity_id=item.id,
        before=before,
        after=snapshot(item),
    )
    return item


def snapshot(item: WriteOff) -> dict[str, object]:
    return {
        "account_id": item.account_id,
        "amount_cents": item.amount_cents,
        "reason": item.reason,
        "status": item.status,
        "prepared_by_id": item.prepared_by_id,
        "decided_by_id": item.decided_by_id,
        "decision_note": item.decision_note,
        "ledger_transaction_id": item.ledger_transaction_id,
    }


def for_account(session: Session, account_id: int) -> list[WriteOff]:
    return list(session.scalars(select(WriteOff).where(WriteOff.account_id == account_id).order_by(WriteOff.id.desc())))


def pending(session: Session) -> list[WriteOff]:
    return list(
        session.scalars(
            select(WriteOff)
            .where(WriteOff.status == ApprovalStatus.PENDING.value)
            .order_by(WriteOff.prepared_at, WriteOff.id)
        )
    )
