from datetime import date, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from portal.billing_core import ledger, posting
from portal.billing_core.aging import age
from portal.billing_core.errors import AlreadyReversed, UnbalancedTransaction
from portal.billing_core.models import LedgerEntry, LedgerTransaction

from .factories import district

D = date(2026, 3, 1)


def test_post_and_balance(session: Session) -> None:
    (acct,) = district(session, 1)
    posting.post(
        session, ledger.bill_transaction(acct.id, D, D + timedelta(days=21), {"water": 6909, "sewer": 3852}), acct.id
    )
    posting.post(
        session,
        ledger.payment_transaction(
            acct.id, D + timedelta(days=5), 8000, "online", posting.open_by_service(session, acct.id)
        ),
        acct.id,
    )
    assert posting.account_balance(session, acct.id) == 2761
    assert posting.open_by_service(session, acct.id) == {"water": 0, "sewer": 2761}
    aged = age(posting.account_postings(session, acct.id), D + timedelta(days=30))
    assert (aged.past_due_cents, aged.days_past_due) == (2761, 9)


def test_an_unbalanced_transaction_writes_nothing(session: Session) -> None:
    (acct,) = district(session, 1)
    txn = ledger.bill_transaction(acct.id, D, D, {"water": 100})
    with pytest.raises(UnbalancedTransaction):
        posting.post(session, ledger.Transaction(txn.kind, D, txn.entries[:1]), acct.id)
    assert session.scalar(select(func.count(LedgerTransaction.id))) == 0
    assert session.scalar(select(func.count(LedgerEntry.id))) == 0


def test_a_transaction_is_reversed_once(session: Session) -> None:
    (acct,) = district(session, 1)
    bill = posting.post(session, ledger.bill_transaction(acct.id, D, D, {"water": 500}), acct.id)
    rev = posting.reverse(session, bill.id, D + timedelta(days=1), "billing error")
    assert rev.reverses_id == bill.id
    assert posting.account_balance(session, acct.id) == 0
    with pytest.raises(AlreadyReversed):
        posting.reverse(session, bill.id, D + timedelta(days=2))
    with pytest.raises(AlreadyReversed):
        posting.reverse(session, rev.id, D + timedelta(days=2))


ops = st.lists(
    st.one_of(
        st.tuples(st.just("bill"), st.integers(0, 1), st.integers(1, 20000)),
        st.tuples(st.just("pay"), st.integers(0, 1), st.integers(1, 30000)),
        st.tuples(st.just("adjust"), st.integers(0, 1), st.integers(-5000, 5000).filter(bool)),
        st.tuples(st.just("reverse"), st.integers(0, 50)),
    ),
    max_size=15,
)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(history=ops)
def test_posted_histories_stay_balanced(sessions: sessionmaker[Session], history: list[tuple]) -> None:
    # Each example rolls back at the end, so the next one starts from an empty database.
    with sessions() as session:
        accounts = district(session, 2)
        ids: list[int] = []
        day = D
        for o in history:
            day += timedelta(days=1)
            acct = accounts[o[1]].id if o[0] != "reverse" else None
            if o[0] == "bill":
                row = posting.post(
                    session, ledger.bill_transaction(acct, day, day + timedelta(days=21), {"water": o[2]}), acct
                )
            elif o[0] == "pay":
                row = posting.post(
                    session,
                    ledger.payment_transaction(acct, day, o[2], "counter", posting.open_by_service(session, acct)),
                    acct,
                )
            elif o[0] == "adjust":
                row = posting.post(session, ledger.adjustment_transaction(acct, day, "water", o[2], "leak"), acct)
            else:
                if not ids:
                    continue
                try:
                    row = posting.reverse(session, ids[o[1] % len(ids)], day)
                except AlreadyReversed:
                    continue
            ids.append(row.id)
        totals = session.execute(
            select(LedgerEntry.transaction_id, func.sum(LedgerEntry.amount_cents)).group_by(LedgerEntry.transaction_id)
        ).all()
        assert all(total == 0 for _, total in totals)
        for account in accounts:
            entries_sum = session.scalar(
                select(func.coalesce(func.sum(LedgerEntry.amount_cents), 0)).where(LedgerEntry.account_id == account.id)
            )
            assert posting.account_balance(session, account.id) == entries_sum
            assert age(posting.account_postings(session, account.id), day).balance_cents == entries_sum
        session.rollback()
