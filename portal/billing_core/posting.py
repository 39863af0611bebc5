"""Posting ledger transactions to the database: balanced, append-only, reversible once.

Every write to the ledger goes through ``post_many`` (a bill run's chunk, one payment, the
demo's history alike); the tables' triggers refuse any UPDATE or DELETE."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

from sqlalchemy import Connection, func, select
from sqlalchemy.orm import Session

from . import ledger
from .aging import Posting
from .bulk import insert_rows, reserve_ids
from .errors import AlreadyReversed, NotFound
from .models import LedgerEntry, LedgerTransaction, stamp

TRANSACTION_COLUMNS = (
    "id",
    "kind",
    "account_id",
    "effective_on",
    "due_on",
    "memo",
    "reverses_id",
    "posted_at",
    "posted_by_id",
)
ENTRY_COLUMNS = ("transaction_id", "gl_account", "account_id", "service_type", "amount_cents")


def post_many(
    db: Session | Connection,
    txns: Sequence[ledger.Transaction],
    *,
    account_ids: Sequence[int | None],
    posted_at: datetime | Sequence[datetime],
    posted_by_id: int | None = None,
    ids: Sequence[int] | None = None,
    entry_ids: Sequence[int] | None = None,
) -> list[int]:
    """The one way into the ledger: check that every transaction balances, then write them
    and their entries, one batch per table (COPY on PostgreSQL, one executemany on SQLite),
    in the caller's transaction. Nothing is written when one does not balance.

    ``account_ids`` says whose each transaction is; ``posted_at`` is one moment for all of
    them or one for each. ``ids`` (one per transaction) and ``entry_ids`` (one per entry, in
    order) are for a caller that owns its id ranges (the demo); without them the ids come
    from the tables' sequences. Returns the transactions' ids, in order."""
    if len(account_ids) != len(txns):
        raise ValueError("post_many needs one account id per transaction")
    moments = [posted_at] * len(txns) if isinstance(posted_at, datetime) else list(posted_at)
    if len(moments) != len(txns) or (ids is not None and len(ids) != len(txns)):
        raise ValueError("post_many needs one posting moment and one id (if any) per transaction")
    if entry_ids is not None and len(entry_ids) != sum(len(t.entries) for t in txns):
        raise ValueError("post_many needs one entry id per entry")
    for txn in txns:
        ledger.check_balanced(txn)
    if not txns:
        return []
    if isinstance(db, Session):
        db.flush()  # what the session holds (the accounts, a payment) is written before its entries
    connection = db.connection() if isinstance(db, Session) else db
    if (
        ids is None
        and entry_ids is None
        and len(txns) == 1
        and txns[0].entries
        and connection.dialect.name == "postgresql"
    ):
        return [_post_one(connection, txns[0], account_ids[0], moments[0], posted_by_id)]
    txn_ids = list(ids) if ids is not None else reserve_ids(db, "ledger_transaction", len(txns))
    insert_rows(
        db,
        LedgerTransaction.__table__,
        TRANSACTION_COLUMNS,
        [
            (tid, t.kind.value, aid, t.effective_date, t.due_date, t.memo, t.reverses, at, posted_by_id)
            for tid, t, aid, at in zip(txn_ids, txns, account_ids, moments, strict=True)
        ],
    )
    entries = [
        (tid, e.gl_account, e.account_id, e.service, e.amount_cents)
        for tid, t in zip(txn_ids, txns, strict=True)
        for e in t.entries
    ]
    if entry_ids is None:
        insert_rows(db, LedgerEntry.__table__, ENTRY_COLUMNS, entries)
    else:
        insert_rows(
            db,
            LedgerEntry.__table__,
            ("id", *ENTRY_COLUMNS),
            [(eid, *row) for eid, row in zip(entry_ids, entries, strict=True)],
        )
    return txn_ids


#: One transaction and its entries in one statement (PostgreSQL): the entries go in in their
#: order (``n``), so their ids follow it as COPY's would.
_ONE = (
    "WITH t AS (INSERT INTO ledger_transaction ({txn_columns}) VALUES ({txn_marks}) RETURNING id), "
    "e AS (INSERT INTO ledger_entry ({entry_columns}) "
    "SELECT t.id, v.gl, v.account, v.service, v.cents FROM t, (VALUES {entry_rows}) "
    "AS v(n, gl, account, service, cents) ORDER BY v.n) "
    "SELECT id FROM t"
)
_ENTRY_ROW = "(%s::int, %s::text, %s::bigint, %s::text, %s::bigint)"


def _post_one(
    connection: Connection, txn: ledger.Transaction, account_id: int | None, at: datetime, posted_by_id: int | None
) -> int:
    """One transaction on PostgreSQL (a payment at the counter, a fee, a reversal): its row
    and its entries in one statement (an INSERT ... RETURNING of the row feeding the entries'
    INSERT), one round trip where reserving an id and two COPYs take five; the same rows."""
    statement = _ONE.format(
        txn_columns=", ".join(TRANSACTION_COLUMNS[1:]),
        txn_marks=", ".join("%s" for _c in TRANSACTION_COLUMNS[1:]),
        entry_columns=", ".join(ENTRY_COLUMNS),
        entry_rows=", ".join(_ENTRY_ROW for _e in txn.entries),
    )
    params = (
        txn.kind.value,
        account_id,
        txn.effective_date,
        txn.due_date,
        txn.memo,
        txn.reverses,
        at,
        posted_by_id,
        *(v for n, e in enumerate(txn.entries) for v in (n, e.gl_account, e.account_id, e.service, e.amount_cents)),
    )
    return int(connection.exec_driver_sql(statement, params).scalar_one())


def post(
    session: Session,
    txn: ledger.Transaction,
    account_id: int | None,
    posted_by_id: int | None = None,
    *,
    posted_at: datetime | None = None,
) -> LedgerTransaction:
    """Post one transaction (``post_many`` of one) and return its row.

    ``posted_at`` is the moment of posting; without it, the row stamp's clock
    (``models.stamp``), as the column's default would give."""
    when = posted_at if posted_at is not None else stamp()
    (tid,) = post_many(session, [txn], account_ids=[account_id], posted_at=when, posted_by_id=posted_by_id)
    row = session.get(LedgerTransaction, tid)
    assert row is not None
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
    *,
    posted_at: datetime | None = None,
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
    return post(session, txn, original.account_id, posted_by_id, posted_at=posted_at)


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
    # service is never None: the query excludes it.
    return {service: int(total) for service, total in rows if service is not None}
