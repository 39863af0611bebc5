from dataclasses import replace
from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portal.billing_core import ledger
from portal.billing_core.aging import Posting, age
from portal.billing_core.errors import UnbalancedTransaction

D = date(2026, 3, 1)


def test_bill_debits_receivable_and_credits_revenue_per_service() -> None:
    txn = ledger.bill_transaction(7, D, D + timedelta(days=21), {"sewer": 3852, "water": 6909, "sanitation": 2865})
    ledger.check_balanced(txn)
    assert [(e.gl_account, e.amount_cents, e.account_id) for e in txn.entries] == [
        ("AR:WATER", 6909, 7),
        ("REVENUE:WATER", -6909, None),
        ("AR:SEWER", 3852, 7),
        ("REVENUE:SEWER", -3852, None),
        ("AR:SANITATION", 2865, 7),
        ("REVENUE:SANITATION", -2865, None),
    ]
    assert ledger.account_balance(txn.entries, 7) == 13626


@pytest.mark.parametrize(
    "amount, expected",
    [
        # Pays water first, then sewer, then sanitation; the rest becomes credit.
        (5000, [("AR:WATER", -5000)]),
        (8000, [("AR:WATER", -6909), ("AR:SEWER", -1091)]),
        (13626, [("AR:WATER", -6909), ("AR:SEWER", -3852), ("AR:SANITATION", -2865)]),
        (15000, [("AR:WATER", -6909), ("AR:SEWER", -3852), ("AR:SANITATION", -2865), ("AR:CREDIT", -1374)]),
    ],
)
def test_payment_application_order(amount: int, expected: list[tuple[str, int]]) -> None:
    open_ = {"sanitation": 2865, "water": 6909, "sewer": 3852}
    txn = ledger.payment_transaction(7, D, amount, "online", open_)
    ledger.check_balanced(txn)
    assert txn.entries[0] == ledger.Entry("CASH:ONLINE", amount)
    assert [(e.gl_account, e.amount_cents) for e in txn.entries[1:]] == expected


@pytest.mark.parametrize("amount", [0, -100])
def test_payment_must_be_positive(amount: int) -> None:
    with pytest.raises(UnbalancedTransaction):
        ledger.payment_transaction(7, D, amount, "online", {})


def test_unbalanced_transactions_are_refused() -> None:
    txn = ledger.bill_transaction(7, D, D, {"water": 100})
    bad = replace(txn, entries=txn.entries[:1])
    with pytest.raises(UnbalancedTransaction, match="differ by 100"):
        ledger.check_balanced(bad)
    with pytest.raises(UnbalancedTransaction):
        ledger.check_balanced(replace(txn, entries=()))


def test_reversal_negates_every_entry_and_links_the_original() -> None:
    txn = ledger.bill_transaction(7, D, D, {"water": 100, "sewer": 50})
    rev = ledger.reversal_of(txn, 42, D + timedelta(days=3), "billing error")
    ledger.check_balanced(rev)
    assert rev.kind is ledger.Kind.REVERSAL and rev.reverses == 42
    assert [e.amount_cents for e in rev.entries] == [-e.amount_cents for e in txn.entries]
    assert ledger.account_balance(txn.entries + rev.entries, 7) == 0


# --- property: whatever happens, every transaction balances and balances add up ---

SERVICES = ["water", "sewer", "sanitation"]
op = st.one_of(
    st.tuples(
        st.just("bill"),
        st.integers(1, 3),
        st.dictionaries(st.sampled_from(SERVICES), st.integers(0, 50000), min_size=1),
    ),
    st.tuples(st.just("payment"), st.integers(1, 3), st.integers(1, 80000)),
    st.tuples(
        st.just("adjustment"), st.integers(1, 3), st.sampled_from(SERVICES), st.integers(-20000, 20000).filter(bool)
    ),
    st.tuples(st.just("reversal"), st.integers(0, 10_000)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(op, max_size=40))
def test_random_histories_stay_balanced(ops: list[tuple]) -> None:
    posted: list[ledger.Transaction] = []
    reversed_ids: set[int] = set()
    day = D
    for o in ops:
        day += timedelta(days=1)
        if o[0] == "bill" and sum(o[2].values()):
            txn = ledger.bill_transaction(o[1], day, day + timedelta(days=21), o[2])
        elif o[0] == "payment":
            open_ = ledger.balances_by_service([e for t in posted for e in t.entries], o[1])
            txn = ledger.payment_transaction(o[1], day, o[2], "counter", open_)
        elif o[0] == "adjustment":
            txn = ledger.adjustment_transaction(o[1], day, o[2], o[3], "courtesy")
        elif o[0] == "reversal" and posted:
            target = o[1] % len(posted)
            if target in reversed_ids or posted[target].kind is ledger.Kind.REVERSAL:
                continue
            reversed_ids.add(target)
            txn = ledger.reversal_of(posted[target], target, day)
        else:
            continue
        ledger.check_balanced(txn)
        posted.append(txn)

    entries = [e for t in posted for e in t.entries]
    assert sum(e.amount_cents for e in entries) == 0
    for account in (1, 2, 3):
        mine = [t for t in posted if any(e.account_id == account for e in t.entries)]
        postings = [
            Posting(t.effective_date, sum(e.amount_cents for e in t.entries if e.account_id == account), t.due_date)
            for t in mine
        ]
        balance = ledger.account_balance(entries, account)
        assert balance == sum(e.amount_cents for e in entries if e.account_id == account)
        aged = age(postings, day)
        assert aged.balance_cents == balance
        assert sum(aged.buckets.values()) - aged.credit_cents == balance
