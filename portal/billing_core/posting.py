"""Posting ledger transactions to the database: balanced, append-only, reversible once."""

from __future__ import annotations

from datetime import date

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from . import ledger
from .aging import Posting
from .errors import AlreadyReversed, NotFound
from .models import LedgerEntry, LedgerTransaction


def post(
    session: Session,
    txn: ledger.Transaction,
    account_id: int | None,
    posted_by_id: int | None = None,
) -> LedgerTransaction:
    """Check the transaction balances, then write it and its entries."""
    row = stage(session, txn, account_id, posted_by_id)
    session.flush()
    return row


def stage(
    session: Session,
    txn: ledger.Transaction,
    account_id: int | None,
    posted_by_id: int | None = None,
) -> LedgerTransaction:
    """Check the transaction balances and add it to the session; the caller flushes
    (posting many at once writes them in one batch)."""
    ledger.check_balanced(txn)
    row = LedgerTransaction(
        kind=txn.kind.value,
        account_id=account_id,
        effective_on=txn.effective_date,
        due_on=txn.due_date,
        memo=txn.memo,
        reverses_id=txn.reverses,
        posted_by_id=posted_by_id,
        entries=[
            LedgerEntry(
                gl_account=e.gl_account,
                account_id=e.account_id,
                service_type=e.service,
                amount_cents=e.amount_cents,
            )
            for e in txn.entries
        ],
    )
    session.add(row)
    return row


def as_value(row: LedgerTransaction) -> ledger.Transaction:
    return ledger.Transaction(
        kind=ledger.Kind(row.kind),
        effective_date=row.effective_on,
        entries=tuple(ledger.Entry(e.gl_account, e.amount_cents, e.account_id, e.service_type) for e in row.entries),
        due_date=row.due_on,
        memo=row.memo,
        reverses=row.reverses_id,
    )


def reverse(
    session: Session,
    transaction_id: int,
    effective_date: date,
    memo: str = "",
    posted_by_id: int | None = None,
) -> LedgerTransaction:
    """Post the reversal of a transaction, linked to it. A transaction is reversed once."""
    original = session.get(LedgerTransaction, transaction_id)
    if original is None:
        raise NotFound(f"no ledger transaction {transaction_id}")
    if original.kind == ledger.Kind.REVERSAL.value:
        raise AlreadyReversed("a reversal cannot itself be reversed; post a new transaction instead")
    already = session.scalar(select(LedgerTransaction.id).where(LedgerTransaction.reverses_id == transaction_id))
    if already is not None:
        raise AlreadyReversed(f"transaction {transaction_id} was already reversed by {already}")
    txn = ledger.reversal_of(as_value(original), transaction_id, effective_date, memo)
    return post(session, txn, original.account_id, posted_by_id)


def account_postings(session: Session, account_id: int) -> list[Posting]:
    """Each transaction's net effect on one account, oldest first."""
    rows = session.execute(
        select(
            LedgerTransaction.effective_on,
            LedgerTransaction.due_on,
            func.sum(LedgerEntry.amount_cents),
        )
        .join(LedgerEntry, LedgerEntry.transaction_id == LedgerTransaction.id)
        .where(LedgerEntry.account_id == account_id)
        .group_by(LedgerTransaction.id, LedgerTransaction.effective_on, LedgerTransaction.due_on)
        .order_by(LedgerTransaction.effective_on, LedgerTransaction.id)
    ).all()
    return [Posting(eff, int(amount), due) for eff, due, amount in rows if amount]


def account_balance(session: Session, account_id: int) -> int:
    total = session.scalar(
        select(func.coalesce(func.sum(LedgerEntry.amount_cents), 0)).where(LedgerEntry.account_id == account_id)
    )
    return int(total or 0)


def open_by_service(session: Session, account_id: int) -> dict[str, int]:
    rows = session.execute(
        select(LedgerEntry.service_type, func.sum(LedgerEntry.amount_cents))
        .where(LedgerEntry.account_id == account_id, LedgerEntry.service_type.is_not(None))
        .group_by(LedgerEntry.service_type)
    ).all()
    return {service: int(total) for service, total in rows}
