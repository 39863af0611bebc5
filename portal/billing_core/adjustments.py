"""Adjustments with maker-checker: a debit (positive) or credit (negative) to one service of
an account, with a reason code, optionally against one of the account's bills.

Within the preparer's limit (``permissions.LIMITS[ADJUSTMENTS_PREPARE]``) it posts at once;
above it, it waits (pending) for someone else whose ``ADJUSTMENTS_APPROVE`` limit covers it.
A rejected one says why. Posting is one ledger transaction (``ledger.adjustment_transaction``
through ``posting.post``); the adjustment keeps its id. Dates and times are passed in.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from . import audit, ledger, permissions, posting
from .errors import FieldErrors, InvalidInput
from .models import Account, Adjustment, Bill, LedgerEntry, User
from .money import format_money, parse_money
from .permissions import Action
from .status import APPROVAL_TRANSITIONS, ApprovalStatus, BillStatus, move

#: Reason codes and how they read.
REASONS = {
    "leak": "Leak",
    "meter_error": "Meter error",
    "billing_error": "Billing error",
    "courtesy": "Courtesy",
    "fee_waiver": "Fee waiver",
    "other": "Other (see note)",
}
DIRECTIONS = ("credit", "debit")


@dataclass(frozen=True)
class Draft:
    """A checked adjustment form: what will be written."""

    service: str
    amount_cents: int
    reason: str
    note: str | None
    bill_id: int | None
    #: How much the service owes now (a credit larger than that becomes credit).
    owed_cents: int

    @property
    def becomes_credit_cents(self) -> int:
        """The part of a credit beyond what the service owes (0 for a debit)."""
        if self.amount_cents >= 0:
            return 0
        return max(-self.amount_cents - max(self.owed_cents, 0), 0)


def services_of(account: Account) -> list[str]:
    """The services an adjustment may name: the account's (any time), and fees."""
    kinds = {s.service_type for s in account.services}
    return sorted(kinds | {ledger.FEES}, key=lambda s: ledger._service_rank(s))


def check(
    session: Session,
    account: Account,
    *,
    service: str,
    amount: str,
    direction: str,
    reason: str,
    note: str,
    bill: str,
) -> Draft:
    """Check the whole form; every problem by field (``FieldErrors``), nothing written.

    ``amount`` is typed as a positive amount with ``direction`` credit or debit; a signed
    amount (``-12.50``) is a credit when ``direction`` is empty."""
    errors: dict[str, InvalidInput] = {}
    service = (service or "").strip().lower()
    if service not in services_of(account):
        errors["service"] = InvalidInput(
            "Choose one of the account's services: %(names)s.", "service", names=", ".join(services_of(account))
        )
    cents = 0
    text = (amount or "").strip()
    negative = text.startswith("-")
    try:
        cents = parse_money(text.lstrip("-"), "amount")
        if cents == 0:
            raise InvalidInput("Enter an amount other than zero.", "amount")
    except InvalidInput as exc:
        errors["amount"] = exc
    direction = (direction or "").strip().lower()
    if direction and direction not in DIRECTIONS:
        errors["direction"] = InvalidInput("Choose credit or debit.", "direction")
    elif direction and negative:
        errors["amount"] = InvalidInput("Enter the amount without a sign and choose credit or debit.", "amount")
    signed = -cents if (direction == "credit" or (not direction and negative)) else cents
    reason = (reason or "").strip()
    if reason not in REASONS:
        errors["reason"] = InvalidInput("Choose a reason.", "reason")
    note_text = (note or "").strip()[:2000] or None
    if reason == "other" and not note_text:
        errors["note"] = InvalidInput("Say what the adjustment is for (the reason is other).", "note")
    bill_id = None
    if (bill or "").strip():
        found = session.scalar(
            select(Bill).where(
                Bill.number == bill.strip(), Bill.account_id == account.id, Bill.status == BillStatus.POSTED.value
            )
        )
        if found is None:
            errors["bill"] = InvalidInput("No posted bill %(bill)s on this account.", "bill", bill=bill.strip())
        else:
            bill_id = found.id
    if errors:
        raise FieldErrors(errors)
    owed = posting.open_by_service(session, account.id).get(service, 0)
    return Draft(service, signed, reason, note_text, bill_id, owed)


def prepare(
    session: Session,
    account: Account,
    actor: User,
    draft: Draft,
    today: date,
    now: datetime,
    *,
    working: dict[str, Any] | None = None,
    repair_proof: str | None = None,
) -> Adjustment:
    """Write the adjustment: posted at once when within the preparer's limit, else pending."""
    permissions.require(actor, Action.ADJUSTMENTS_PREPARE)
    item = Adjustment(
        account_id=account.id,
        service_type=draft.service,
        amount_cents=draft.amount_cents,
        reason_code=draft.reason,
        note=draft.note,
        bill_id=draft.bill_id,
        status=ApprovalStatus.PENDING.value,
        prepared_by_id=actor.id,
        prepared_at=now,
        working=working,
        repair_proof=repair_proof,
    )
    session.add(item)
    session.flush()
    audit.record(
        session,
        "adjustment.prepared",
        actor=actor,
        entity_type="adjustment",
        entity_id=item.id,
        after=snapshot(item),
    )
    if permissions.within_limit(actor.role, Action.ADJUSTMENTS_PREPARE, draft.amount_cents):
        _post(session, item, account, actor, today, now)
    return item


def approve(session: Session, item: Adjustment, actor: User, today: date, now: datetime) -> Adjustment:
    """Post a pending adjustment: someone else, whose approval limit covers it."""
    permissions.require_approver(actor, Action.ADJUSTMENTS_APPROVE, item.prepared_by_id, item.amount_cents)
    if item.status != ApprovalStatus.PENDING.value:
        raise InvalidInput("This adjustment is %(status)s already.", "decision", status=item.status)
    account = session.get(Account, item.account_id)
    assert account is not None
    return _post(session, item, account, actor, today, now, decided=True)


def reject(session: Session, item: Adjustment, actor: User, note: str, now: datetime) -> Adjustment:
    permissions.require_approver(actor, Action.ADJUSTMENTS_APPROVE, item.prepared_by_id)
    note = (note or "").strip()[:2000]
    if not note:
        raise FieldErrors.one("decision_note", "Say why the adjustment is rejected.")
    if item.status != ApprovalStatus.PENDING.value:
        raise InvalidInput("This adjustment is %(status)s already.", "decision", status=item.status)
    before = snapshot(item)
    move(APPROVAL_TRANSITIONS, item, ApprovalStatus.REJECTED)
    item.decided_by_id, item.decided_at, item.decision_note = actor.id, now, note
    audit.record(
        session,
        "adjustment.rejected",
        actor=actor,
        entity_type="adjustment",
        entity_id=item.id,
        before=before,
        after=snapshot(item),
    )
    return item


def _post(
    session: Session,
    item: Adjustment,
    account: Account,
    actor: User,
    today: date,
    now: datetime,
    decided: bool = False,
) -> Adjustment:
    before = snapshot(item)
    memo = f"Adjustment {item.id}: {REASONS[item.reason_code].lower()}"
    if item.note:
        memo += f", {item.note}"
    txn = ledger.adjustment_transaction(account.id, today, item.service_type, item.amount_cents, memo[:300])
    row = posting.post(session, txn, account.id, actor.id, posted_at=now)
    move(APPROVAL_TRANSITIONS, item, ApprovalStatus.POSTED)
    item.ledger_transaction_id = row.id
    if decided:
        item.decided_by_id, item.decided_at = actor.id, now
    audit.record(
        session,
        "adjustment.approved" if decided else "adjustment.posted",
        actor=actor,
        entity_type="adjustment",
        entity_id=item.id,
        before=before,
        after=snapshot(item),
    )
    return item


def snapshot(item: Adjustment) -> dict[str, Any]:
    return {
        "account_id": item.account_id,
        "service": item.service_type,
        "amount_cents": item.amount_cents,
        "reason": item.reason_code,
        "note": item.note,
        "bill_id": item.bill_id,
        "status": item.status,
        "prepared_by_id": item.prepared_by_id,
        "decided_by_id": item.decided_by_id,
        "decision_note": item.decision_note,
        "ledger_transaction_id": item.ledger_transaction_id,
    }


def for_account(session: Session, account_id: int) -> list[Adjustment]:
    return list(
        session.scalars(select(Adjustment).where(Adjustment.account_id == account_id).order_by(Adjustment.id.desc()))
    )


def pending(session: Session) -> list[Adjustment]:
    return list(
        session.scalars(
            select(Adjustment)
            .where(Adjustment.status == ApprovalStatus.PENDING.value)
            .order_by(Adjustment.prepared_at, Adjustment.id)
        )
    )


def describe(cents: int) -> str:
    """``-1250`` -> "credit $12.50"; ``1250`` -> "debit $12.50"."""
    return ("credit " if cents < 0 else "debit ") + format_money(abs(cents))


# --- ledger check ----------------------------------------------------------------------------


def ledger_problems(session: Session) -> Iterable[str]:
    """Every posted adjustment and write-off has its transaction, moving the account's
    balance by the recorded amount (a write-off by minus its amount); none pending or
    rejected has one."""
    from .models import WriteOff

    out: list[str] = []
    moved = (
        select(func.coalesce(func.sum(LedgerEntry.amount_cents), 0))
        .where(LedgerEntry.transaction_id == Adjustment.ledger_transaction_id, LedgerEntry.account_id.is_not(None))
        .scalar_subquery()
    )
    for aid, status, amount, tid, got in session.execute(
        select(Adjustment.id, Adjustment.status, Adjustment.amount_cents, Adjustment.ledger_transaction_id, moved)
        .where(
            (
                (Adjustment.status == ApprovalStatus.POSTED.value)
                & (Adjustment.ledger_transaction_id.is_(None) | (moved != Adjustment.amount_cents))
            )
            | ((Adjustment.status != ApprovalStatus.POSTED.value) & Adjustment.ledger_transaction_id.is_not(None))
        )
        .limit(20)
    ):
        if status != ApprovalStatus.POSTED.value:
            out.append(f"adjustment {aid} is {status} but has ledger transaction {tid}")
        elif tid is None:
            out.append(f"adjustment {aid} is posted but has no ledger transaction")
        else:
            out.append(f"adjustment {aid} of {amount} cents moved the balance by {int(got)} cents")
    moved_w = (
        select(func.coalesce(func.sum(LedgerEntry.amount_cents), 0))
        .where(LedgerEntry.transaction_id == WriteOff.ledger_transaction_id, LedgerEntry.account_id.is_not(None))
        .scalar_subquery()
    )
    for wid, status, amount, tid, got in session.execute(
        select(WriteOff.id, WriteOff.status, WriteOff.amount_cents, WriteOff.ledger_transaction_id, moved_w)
        .where(
            (
                (WriteOff.status == ApprovalStatus.POSTED.value)
                & (WriteOff.ledger_transaction_id.is_(None) | (moved_w != -WriteOff.amount_cents))
            )
            | ((WriteOff.status != ApprovalStatus.POSTED.value) & WriteOff.ledger_transaction_id.is_not(None))
        )
        .limit(20)
    ):
        if status != ApprovalStatus.POSTED.value:
            out.append(f"write-off {wid} is {status} but has ledger transaction {tid}")
        elif tid is None:
            out.append(f"write-off {wid} is posted but has no ledger transaction")
        else:
            out.append(f"write-off {wid} of {amount} cents moved the balance by {int(got)} cents")
    return out
