"""posting.post_many, the one writer of the ledger (bill runs, posting.post and the demo)."""

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from portal.billing_core import ledger, posting
from portal.billing_core.errors import UnbalancedTransaction
from portal.billing_core.models import LedgerEntry, LedgerTransaction

from .factories import district

D = date(2026, 3, 1)
AT = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def counts(session: Session) -> tuple[int, int]:
    return (
        session.scalar(select(func.count(LedgerTransaction.id))) or 0,
        session.scalar(select(func.count(LedgerEntry.id))) or 0,
    )


def test_many_transactions_go_in_at_once_in_order(session: Session) -> None:
    a, b = district(session, 2)
    txns = [
        ledger.bill_transaction(a.id, D, D + timedelta(days=21), {"water": 6909, "sewer": 3852}, memo="Bill A"),
        ledger.bill_transaction(b.id, D, D + timedelta(days=21), {"water": 4000}, memo="Bill B"),
        ledger.payment_transaction(a.id, D + timedelta(days=3), 5000, "online", {"water": 6909}),
    ]
    ids = posting.post_many(session, txns, account_ids=[a.id, b.id, a.id], posted_at=AT, posted_by_id=None)
    assert len(ids) == 3 and ids == sorted(ids)
    rows = {r.id: r for r in session.scalars(select(LedgerTransaction).where(LedgerTransaction.id.in_(ids)))}
    for tid, txn, account_id in zip(ids, txns, [a.id, b.id, a.id], strict=True):
        row = rows[tid]
        assert (row.kind, row.account_id, row.effective_on, row.due_on, row.memo, row.reverses_id) == (
            txn.kind.value,
            account_id,
            txn.effective_date,
            txn.due_date,
            txn.memo,
            None,
        )
        assert row.posted_at == AT
        assert posting.as_value(row) == txn
    assert posting.account_balance(session, a.id) == 6909 + 3852 - 5000
    assert posting.account_balance(session, b.id) == 4000


def test_nothing_is_written_when_one_transaction_does_not_balance(session: Session) -> None:
    (a,) = district(session, 1)
    good = ledger.bill_transaction(a.id, D, D, {"water": 100})
    bad = ledger.Transaction(good.kind, D, good.entries[:1])
    with pytest.raises(UnbalancedTransaction):
        posting.post_many(session, [good, bad], account_ids=[a.id, a.id], posted_at=AT)
    assert counts(session) == (0, 0)


def test_given_ids_and_a_moment_for_each(session: Session) -> None:
    (a,) = district(session, 1)
    txns = [ledger.bill_transaction(a.id, D, D, {"water": 100}), ledger.bill_transaction(a.id, D, D, {"sewer": 200})]
    moments = [AT, AT + timedelta(days=1)]
    ids = posting.post_many(
        session, txns, account_ids=[a.id, a.id], posted_at=moments, ids=[501, 502], entry_ids=[11, 12, 13, 14]
    )
    assert ids == [501, 502]
    entries = session.execute(
        select(LedgerEntry.id, LedgerEntry.transaction_id, LedgerEntry.amount_cents).order_by(LedgerEntry.id)
    ).all()
    assert entries == [(11, 501, 100), (12, 501, -100), (13, 502, 200), (14, 502, -200)]
    assert [session.get(LedgerTransaction, i).posted_at for i in ids] == moments


def test_counts_must_match(session: Session) -> None:
    (a,) = district(session, 1)
    txn = ledger.bill_transaction(a.id, D, D, {"water": 100})
    with pytest.raises(ValueError):
        posting.post_many(session, [txn], account_ids=[], posted_at=AT)
    with pytest.raises(ValueError):
        posting.post_many(session, [txn], account_ids=[a.id], posted_at=[AT, AT])
    with pytest.raises(ValueError):
        posting.post_many(session, [txn], account_ids=[a.id], posted_at=AT, ids=[1], entry_ids=[1])
    assert posting.post_many(session, [], account_ids=[], posted_at=AT) == []
    assert counts(session) == (0, 0)


def test_a_reversal_keeps_its_link_and_a_second_one_is_refused(session: Session) -> None:
    (a,) = district(session, 1)
    (tid,) = posting.post_many(
        session, [ledger.bill_transaction(a.id, D, D, {"water": 500})], account_ids=[a.id], posted_at=AT
    )
    original = posting.as_value(session.get(LedgerTransaction, tid))
    undo = ledger.reversal_of(original, tid, D + timedelta(days=1))
    (rid,) = posting.post_many(session, [undo], account_ids=[a.id], posted_at=AT)
    assert session.get(LedgerTransaction, rid).reverses_id == tid
    assert posting.account_balance(session, a.id) == 0
    with pytest.raises(IntegrityError), session.begin_nested():  # reverses_id is unique
        posting.post_many(session, [undo], account_ids=[a.id], posted_at=AT)


def test_what_it_wrote_cannot_be_changed(session: Session) -> None:
    (a,) = district(session, 1)
    posting.post_many(session, [ledger.bill_transaction(a.id, D, D, {"water": 500})], account_ids=[a.id], posted_at=AT)
    with pytest.raises(DBAPIError), session.begin_nested():
        session.execute(text("UPDATE ledger_entry SET amount_cents = 0"))
    with pytest.raises(DBAPIError), session.begin_nested():
        session.execute(text("DELETE FROM ledger_transaction"))


def test_post_is_post_many_of_one(session: Session) -> None:
    (a,) = district(session, 1)
    row = posting.post(session, ledger.bill_transaction(a.id, D, D, {"water": 500}), a.id, posted_at=AT)
    assert (row.posted_at, row.account_id, [e.amount_cents for e in row.entries]) == (AT, a.id, [500, -500])
