"""Verifying the whole ledger (``portal ledger check``): each check is one set-based query
that returns the problems it finds, in words a billing supervisor can act on.

- every transaction has entries and they sum to zero;
- every reversal names the transaction it undoes, undoes each of its entries exactly, and no
  transaction is reversed twice (the unique index on ``reverses_id`` also refuses that);
- every entry that moves an account's balance belongs to that account's transaction and to a
  receivable or the account's credit; liabilities (deposits held, refunds payable) never move
  a balance;
- every posted payment's transaction takes in exactly the payment's amount, and every returned
  one is reversed;
- every posted bill's transaction charges exactly the bill's current charges;
- the other areas' own checks (``CHECKS``): drawers, deposits, refunds, write-offs.

An account's balance is the sum of its entries by definition (nothing stores it), so the
checks above are what keep each balance equal to what its bills, payments and adjustments
say. ``run`` returns every problem; an empty list means ``ledger ok``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, aliased

from . import batch_check, deposits, drawers, ledger, refunds, returns
from .models import Bill, LedgerEntry, LedgerTransaction, Payment
from .status import BillStatus, PaymentStatus

Check = Callable[[Session], Iterable[str]]

#: Show at most this many problems of one kind (the count says how many there are).
SHOW = 20


def _capped(problems: list[str], total: int, what: str) -> list[str]:
    if total > len(problems):
        problems.append(f"... and {total - len(problems)} more {what}")
    return problems


def unbalanced(session: Session) -> list[str]:
    """Transactions whose entries do not sum to zero, or that have none: one pass over the
    ledger (the count of all of them comes with the first few, by a window)."""
    total = func.coalesce(func.sum(LedgerEntry.amount_cents), 0)
    entries = func.count(LedgerEntry.id)
    found = (
        select(
            LedgerTransaction.id,
            total.label("total"),
            entries.label("entries"),
            func.count().over().label("problems"),
        )
        .outerjoin(LedgerEntry, LedgerEntry.transaction_id == LedgerTransaction.id)
        .group_by(LedgerTransaction.id)
        .having(or_(total != 0, entries == 0))
        .order_by(LedgerTransaction.id)
        .limit(SHOW)
    )
    out: list[str] = []
    problems = 0
    for tid, cents, n, count in session.execute(found):
        problems = count
        out.append(
            f"transaction {tid} has no entries"
            if n == 0
            else f"transaction {tid} does not balance: its entries sum to {int(cents)} cents"
        )
    return _capped(out, problems, "unbalanced or empty transactions")


def reversals(session: Session) -> list[str]:
    out: list[str] = []
    unlinked = session.scalars(
        select(LedgerTransaction.id)
        .where(LedgerTransaction.kind == ledger.Kind.REVERSAL.value, LedgerTransaction.reverses_id.is_(None))
        .limit(SHOW)
    ).all()
    out += [f"reversal {tid} does not say which transaction it reverses" for tid in unlinked]
    linked_wrong = session.scalars(
        select(LedgerTransaction.id)
        .where(LedgerTransaction.kind != ledger.Kind.REVERSAL.value, LedgerTransaction.reverses_id.is_not(None))
        .limit(SHOW)
    ).all()
    out += [f"transaction {tid} names a transaction it reverses but is not a reversal" for tid in linked_wrong]
    original = aliased(LedgerTransaction)
    of_reversal = session.scalars(
        select(LedgerTransaction.id)
        .join(original, original.id == LedgerTransaction.reverses_id)
        .where(original.kind == ledger.Kind.REVERSAL.value)
        .limit(SHOW)
    ).all()
    out += [f"reversal {tid} reverses another reversal" for tid in of_reversal]
    # A reversal and its original together leave nothing on any line (account, service, GL).
    pair = func.coalesce(LedgerTransaction.reverses_id, LedgerTransaction.id)
    reversed_ids = select(LedgerTransaction.reverses_id).where(LedgerTransaction.reverses_id.is_not(None))
    residue = (
        select(pair.label("original"))
        .join(LedgerEntry, LedgerEntry.transaction_id == LedgerTransaction.id)
        .where(or_(LedgerTransaction.reverses_id.is_not(None), LedgerTransaction.id.in_(reversed_ids)))
        .group_by(pair, LedgerEntry.gl_account, LedgerEntry.account_id, LedgerEntry.service_type)
        .having(func.sum(LedgerEntry.amount_cents) != 0)
        .subquery()
    )
    inexact = session.scalars(select(residue.c.original).distinct().order_by(residue.c.original).limit(SHOW)).all()
    out += [f"transaction {tid} and its reversal do not cancel out entry for entry" for tid in inexact]
    return out


def balance_entries(session: Session) -> list[str]:
    """Entries that move a balance belong to the account's own transaction and to a
    receivable or its credit; liabilities and revenue never carry an account."""
    out: list[str] = []
    foreign = session.execute(
        select(LedgerEntry.transaction_id, LedgerEntry.account_id)
        .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
        .where(
            LedgerEntry.account_id.is_not(None),
            or_(LedgerTransaction.account_id.is_(None), LedgerTransaction.account_id != LedgerEntry.account_id),
        )
        .limit(SHOW)
    ).all()
    out += [
        f"transaction {tid} moves the balance of account id {aid}, which is not its account" for tid, aid in foreign
    ]
    wrong_gl = session.execute(
        select(LedgerEntry.transaction_id, LedgerEntry.gl_account)
        .where(LedgerEntry.account_id.is_not(None), ~LedgerEntry.gl_account.like(f"{ledger.AR}:%"))
        .limit(SHOW)
    ).all()
    out += [
        f"transaction {tid} puts {gl} on an account's balance (only receivables and credit belong there)"
        for tid, gl in wrong_gl
    ]
    missing = session.execute(
        select(LedgerEntry.transaction_id, LedgerEntry.gl_account)
        .where(LedgerEntry.account_id.is_(None), LedgerEntry.gl_account.like(f"{ledger.AR}:%"))
        .limit(SHOW)
    ).all()
    out += [f"transaction {tid} has a {gl} entry that names no account" for tid, gl in missing]
    return out


def payments(session: Session) -> list[str]:
    out: list[str] = []
    unposted = session.scalars(
        select(Payment.id)
        .where(
            Payment.status.in_((PaymentStatus.POSTED.value, PaymentStatus.RETURNED.value)),
            Payment.ledger_transaction_id.is_(None),
        )
        .limit(SHOW)
    ).all()
    out += [f"payment {pid} is posted but has no ledger transaction" for pid in unposted]
    cash_in = (
        select(func.coalesce(func.sum(LedgerEntry.amount_cents), 0))
        .where(
            LedgerEntry.transaction_id == Payment.ledger_transaction_id,
            LedgerEntry.gl_account.like(f"{ledger.CASH}:%"),
        )
        .scalar_subquery()
    )
    wrong = session.execute(
        select(Payment.id, Payment.amount_cents, cash_in)
        .where(Payment.ledger_transaction_id.is_not(None), cash_in != Payment.amount_cents)
        .limit(SHOW)
    ).all()
    out += [f"payment {pid} of {amount} cents took in {int(got)} cents of cash" for pid, amount, got in wrong]
    reversal = aliased(LedgerTransaction)
    not_reversed = session.scalars(
        select(Payment.id)
        .outerjoin(reversal, reversal.reverses_id == Payment.ledger_transaction_id)
        .where(
            Payment.status == PaymentStatus.RETURNED.value,
            Payment.ledger_transaction_id.is_not(None),
            reversal.id.is_(None),
        )
        .limit(SHOW)
    ).all()
    out += [f"payment {pid} was returned but its transaction was never reversed" for pid in not_reversed]
    shared = session.execute(
        select(Payment.ledger_transaction_id, func.count())
        .where(Payment.ledger_transaction_id.is_not(None))
        .group_by(Payment.ledger_transaction_id)
        .having(func.count() > 1)
        .limit(SHOW)
    ).all()
    out += [f"transaction {tid} is the posting of {n} payments (one each)" for tid, n in shared]
    return out


def bills(session: Session) -> list[str]:
    charged = (
        select(func.coalesce(func.sum(LedgerEntry.amount_cents), 0))
        .where(LedgerEntry.transaction_id == Bill.ledger_transaction_id, LedgerEntry.account_id.is_not(None))
        .scalar_subquery()
    )
    wrong = session.execute(
        select(Bill.id, Bill.number, Bill.current_charges_cents, charged)
        .where(
            Bill.status.in_((BillStatus.POSTED.value, BillStatus.VOIDED.value)),
            Bill.ledger_transaction_id.is_not(None),
            charged != Bill.current_charges_cents,
        )
        .limit(SHOW)
    ).all()
    out = [
        f"bill {number or bid} shows {amount} cents of charges but its transaction charged {int(got)}"
        for bid, number, amount, got in wrong
    ]
    unposted = session.scalars(
        select(Bill.number)
        .where(Bill.status == BillStatus.POSTED.value, Bill.ledger_transaction_id.is_(None))
        .limit(SHOW)
    ).all()
    out += [f"bill {n} is posted but has no ledger transaction" for n in unposted]
    return out


#: Every check, in order. Areas with their own tables (drawers, deposits, refunds,
#: write-offs) add theirs here.
CHECKS: list[Check] = [unbalanced, reversals, balance_entries, payments, bills, batch_check.problems]
CHECKS += [deposits.ledger_problems, refunds.ledger_problems]
CHECKS.append(returns.check)  # returned payments: their reversal and fee (billing_core/returns.py)


def _adjustments_and_write_offs(session: Session) -> Iterable[str]:
    from .adjustments import ledger_problems

    return ledger_problems(session)


CHECKS.append(_adjustments_and_write_offs)  # adjustments and write-offs (issue 14)
CHECKS.append(drawers.check)  # counter payments: drawers and receipts


def _balance_transfers(session: Session) -> Iterable[str]:
    from .account_opening import transfer_problems

    return transfer_problems(session)


CHECKS.append(_balance_transfers)  # issue 16: a transfer's balance moves through a clearing account


def run(session: Session, checks: Iterable[Check] | None = None) -> list[str]:
    """Every problem the checks find; empty when the ledger is sound."""
    problems: list[str] = []
    for check in CHECKS if checks is None else checks:
        problems.extend(check(session))
    return problems
