"""What is paid on each bill: paid, partly paid or open, from the ledger.

The rule is aging's (``aging.open_charges``): every credit on the account (payments,
credits, adjustments down) pays the oldest charges first, by due date. One thing is
added: a reversal cancels the transaction it reverses before anything is applied, so a
voided bill is neither paid nor open and its reversal does not pay another bill.

What is left open on each bill's ledger transaction is that bill's open amount; the
past-due part of the account is the open amount of the charges whose due date has gone by.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from . import aging, statements, status
from .models import AutopayEnrollment, Bill, LedgerEntry, LedgerTransaction

PAID = "paid"
PARTLY_PAID = "partly_paid"
OPEN = "open"
VOIDED = "voided"
#: A bill whose own charges were nothing, or a credit: there was nothing to pay on it.
NOTHING_DUE = "nothing_due"


@dataclass(frozen=True)
class Charge:
    """One transaction's net effect on the account (positive: a charge, negative: a credit)."""

    transaction_id: int
    effective_on: date
    amount_cents: int
    due_on: date | None = None
    reverses_id: int | None = None

    @property
    def falls_due(self) -> date:
        return self.due_on or self.effective_on


def open_by_transaction(charges: Iterable[Charge]) -> dict[int, int]:
    """What is still open on each charge, by transaction id (0 when paid in full).

    Reversal pairs cancel first; then the remaining credits pay the charges in order of
    due date (then date posted, then id), as ``aging.open_charges`` does."""
    items = list(charges)
    reversed_ids = {c.reverses_id for c in items if c.reverses_id is not None}
    by_id = {c.transaction_id: c for c in items}
    cancelled: set[int] = set()
    for c in items:
        original = by_id.get(c.reverses_id) if c.reverses_id is not None else None
        if original is not None and original.amount_cents == -c.amount_cents:
            cancelled.update((c.transaction_id, original.transaction_id))
    credit = sum(-c.amount_cents for c in items if c.amount_cents < 0 and c.transaction_id not in cancelled)
    owed = sorted(
        (c for c in items if c.amount_cents > 0 and c.transaction_id not in cancelled),
        key=lambda c: (c.falls_due, c.effective_on, c.transaction_id),
    )
    result = {tid: 0 for tid in cancelled | reversed_ids if tid in by_id}
    for c in owed:
        applied = min(c.amount_cents, credit)
        credit -= applied
        result[c.transaction_id] = c.amount_cents - applied
    return result


@dataclass(frozen=True)
class BillStatus:
    bill: Bill
    state: str
    #: What this bill charged (its own ledger transaction) and what of it is still open.
    charged_cents: int
    open_cents: int
    past_due: bool

    @property
    def paid_cents(self) -> int:
        return self.charged_cents - self.open_cents


def transaction_amounts(session: Session, account_id: int) -> list[tuple[int, date, date | None, int | None, int]]:
    """Each ledger transaction's net amount on one account, oldest first (effective date,
    then id), those that net to zero included: ``(id, effective_on, due_on, reverses_id,
    amount_cents)``. One grouped read serves a page's aging, bill states, past-due list and
    running balance."""
    stmt = statements.once(
        ("bill_status.transaction_amounts",),
        lambda: (
            select(
                LedgerTransaction.id,
                LedgerTransaction.effective_on,
                LedgerTransaction.due_on,
                LedgerTransaction.reverses_id,
                func.sum(LedgerEntry.amount_cents),
            )
            .join(LedgerEntry, LedgerEntry.transaction_id == LedgerTransaction.id)
            .where(LedgerEntry.account_id == bindparam("account_id"))
            .group_by(
                LedgerTransaction.id,
                LedgerTransaction.effective_on,
                LedgerTransaction.due_on,
                LedgerTransaction.reverses_id,
            )
            .order_by(LedgerTransaction.effective_on, LedgerTransaction.id)
        ),
    )
    return [
        (tid, eff, due, rev, int(amount))
        for tid, eff, due, rev, amount in session.execute(stmt, {"account_id": account_id})
    ]


def account_charges(session: Session, account_id: int) -> list[Charge]:
    return [
        Charge(tid, eff, amount, due, rev)
        for tid, eff, due, rev, amount in transaction_amounts(session, account_id)
        if amount
    ]


def postings_of(charges: Sequence[Charge]) -> list[aging.Posting]:
    """The same ledger read as ``posting.account_postings`` gives, from the charges (one
    query serves the bills' states, the past-due list and the aging), oldest first."""
    ordered = sorted(charges, key=lambda c: (c.effective_on, c.transaction_id))
    return [aging.Posting(c.effective_on, c.amount_cents, c.due_on) for c in ordered]


def statuses(charges: Sequence[Charge], bills: Iterable[Bill], as_of: date) -> dict[int, BillStatus]:
    """Each bill's status by bill id, from the account's charges."""
    open_cents = open_by_transaction(charges)
    amounts = {c.transaction_id: c.amount_cents for c in charges}
    result: dict[int, BillStatus] = {}
    for bill in bills:
        charged = amounts.get(bill.ledger_transaction_id, 0) if bill.ledger_transaction_id else 0
        left = open_cents.get(bill.ledger_transaction_id, 0) if bill.ledger_transaction_id else 0
        if bill.status == status.BillStatus.VOIDED:
            state, left = VOIDED, 0
        elif charged <= 0:
            state, left = NOTHING_DUE, 0
        elif left == 0:
            state = PAID
        elif left < charged:
            state = PARTLY_PAID
        else:
            state = OPEN
        result[bill.id] = BillStatus(bill, state, max(charged, 0), left, left > 0 and bill.due_date < as_of)
    return result


def for_bills(session: Session, account_id: int, bills: Iterable[Bill], as_of: date) -> dict[int, BillStatus]:
    return statuses(account_charges(session, account_id), bills, as_of)


@dataclass(frozen=True)
class PastDue:
    """The past-due amount and what it is made of: bills, oldest first, and any other
    charges (fees, adjustments) not on a bill."""

    total_cents: int
    bills: list[BillStatus]
    other_cents: int


def past_due(session: Session, account_id: int, as_of: date, charges: Sequence[Charge] | None = None) -> PastDue:
    """``charges``: what ``account_charges`` already read for this account in this transaction."""
    if charges is None:
        charges = account_charges(session, account_id)
    open_cents = open_by_transaction(charges)
    overdue = {c.transaction_id for c in charges if c.amount_cents > 0 and c.falls_due < as_of}
    overdue = {tid for tid in overdue if open_cents.get(tid, 0) > 0}
    if not overdue:
        return PastDue(0, [], 0)
    bills = list(
        session.scalars(
            select(Bill)
            .where(Bill.account_id == account_id, Bill.ledger_transaction_id.in_(list(overdue)))
            .order_by(Bill.due_date, Bill.id)
        )
    )
    listed = [s for s in statuses(charges, bills, as_of).values() if s.open_cents > 0]
    listed.sort(key=lambda s: (s.bill.due_date, s.bill.id))
    total = sum(open_cents[tid] for tid in overdue)
    return PastDue(total, listed, total - sum(s.open_cents for s in listed))


def before_autopay(enrollment: AutopayEnrollment | None, bill: Bill | None, balance_cents: int, tz) -> bool:  # type: ignore[no-untyped-def]
    """Autopay is on, but the latest bill went out before it was turned on: autopay does not
    take that bill (``autopay.covers``), so it is still the resident's to pay."""
    from .autopay import covers

    return enrollment is not None and bill is not None and balance_cents > 0 and not covers(enrollment, bill, tz)
