"""Deposit rules without a database: when the policy asks one, how much, and when it has
been earned back."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal

from portal.billing_core import deposits, ledger
from portal.billing_core.money_policy import DEFAULT

NO_FACTS = deposits.Facts(history_months=0, after_shutoff=False, returns_12_months=0, held_cents=0)


def test_when_the_policy_asks_for_a_deposit() -> None:
    assert deposits.reasons_required(DEFAULT, NO_FACTS) == ["new_customer"]
    seasoned = replace(NO_FACTS, history_months=DEFAULT.deposit_history_months)
    assert deposits.reasons_required(DEFAULT, seasoned) == []
    assert deposits.reasons_required(DEFAULT, replace(seasoned, after_shutoff=True)) == ["after_shutoff"]
    assert deposits.reasons_required(DEFAULT, replace(seasoned, returns_12_months=2)) == ["returned_payments"]
    assert deposits.reasons_required(DEFAULT, replace(seasoned, returns_12_months=1)) == []
    # One already held: no other is asked.
    assert deposits.reasons_required(DEFAULT, replace(NO_FACTS, after_shutoff=True, held_cents=5_000)) == []
    off = replace(DEFAULT, deposit_for_new_customer=False, deposit_after_shutoff=False, deposit_after_returns=0)
    assert deposits.reasons_required(off, replace(NO_FACTS, after_shutoff=True, returns_12_months=9)) == []


def test_amount_is_the_multiple_of_the_monthly_average_never_below_the_minimum() -> None:
    monthly = [deposits.BilledPeriod(4_000, date(2025, m, 1), date(2025, m, 28)) for m in range(1, 13)]
    assert deposits.average_monthly_cents(monthly) == 4_000
    assert deposits.amount_cents(DEFAULT, 4_000) == 8_000
    # A bimonthly bill counts as two months.
    bimonthly = [deposits.BilledPeriod(9_000, date(2025, 1, 1), date(2025, 2, 28))]
    assert deposits.average_monthly_cents(bimonthly) == 4_500
    assert deposits.average_monthly_cents([]) is None
    assert deposits.amount_cents(DEFAULT, None) == DEFAULT.deposit_minimum_cents
    assert deposits.amount_cents(DEFAULT, 1_000) == DEFAULT.deposit_minimum_cents
    assert deposits.amount_cents(replace(DEFAULT, deposit_multiplier=Decimal("2.5")), 3_333) == 8_333


def _year(late: int | None = None, returned: list[date] | None = None, billed: date = date(2025, 1, 1)) -> bool:
    dues = [date(2025, m, 25) for m in range(1, 13)] + [date(2026, 1, 25)]
    charges = [(billed + timedelta(days=21), 10_000)] + [(d, 4_000) for d in dues]
    credits = [(billed + timedelta(days=3), 10_000)] + [
        (d + timedelta(days=20 if i == late else -5), 4_000) for i, d in enumerate(dues)
    ]
    return deposits.good_standing(DEFAULT, billed, date(2026, 1, 26), dues, charges, credits, returned or [])


def test_earned_back_after_twelve_months_on_time() -> None:
    assert _year()
    assert not _year(late=5)
    assert not _year(returned=[date(2025, 8, 1)])
    assert _year(returned=[date(2024, 12, 1)])  # before the window
    assert not _year(billed=date(2025, 3, 1))  # not held long enough yet


def test_months_before_keeps_the_month_end() -> None:
    assert deposits.months_before(date(2026, 3, 31), 1) == date(2026, 2, 28)
    assert deposits.months_before(date(2026, 1, 15), 12) == date(2025, 1, 15)


def test_transactions_keep_the_deposit_off_the_balance() -> None:
    billed = deposits.billing_transaction(7, date(2026, 1, 1), 8_000, "Deposit")
    ledger.check_balanced(billed)
    assert ledger.account_balance(billed.entries, 7) == 8_000  # owed as a deposit, under "deposit"
    assert {e.gl_account for e in billed.entries if e.account_id is None} == {ledger.DEPOSITS_HELD}
    back = deposits.release_transaction(7, date(2027, 1, 1), 8_000, "Deposit back")
    ledger.check_balanced(back)
    assert ledger.account_balance(back.entries, 7) == -8_000
    assert [e for e in back.entries if e.gl_account == ledger.DEPOSITS_HELD][0].account_id is None
