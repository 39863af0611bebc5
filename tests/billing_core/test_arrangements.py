from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portal.billing_core import arrangements
from portal.billing_core.errors import FieldErrors


@given(
    total=st.integers(min_value=1, max_value=10_000_000),
    months=st.integers(min_value=1, max_value=60),
    day=st.integers(min_value=1, max_value=31),
)
def test_installments_add_up_to_the_cent_and_differ_by_one_cent_at_most(total: int, months: int, day: int) -> None:
    down = total // 7
    plan = arrangements.schedule(total, down, months, date(2027, 1, day))
    amounts = [cents for _, cents in plan]
    assert sum(amounts) == total - down and max(amounts) - min(amounts) <= 1
    assert amounts == sorted(amounts, reverse=True)  # the odd cents come first
    assert [d.month for d, _ in plan[:3]] == [(i % 12) + 1 for i in range(min(3, months))]


def test_month_ends_fall_on_the_last_day_of_short_months() -> None:
    plan = arrangements.schedule(30_000, 0, 3, date(2027, 1, 31))
    assert [d for d, _ in plan] == [date(2027, 1, 31), date(2027, 2, 28), date(2027, 3, 31)]


TODAY = date(2026, 11, 22)


@pytest.mark.parametrize(
    "installments, down, first, field",
    [
        ("1", "", "2026-12-01", "installments"),
        ("13", "", "2026-12-01", "installments"),
        ("x", "", "2026-12-01", "installments"),
        ("12", "", "2026-12-01", "installments"),  # $50 over 12 months is under $10 a month
        ("3", "abc", "2026-12-01", "down_payment"),
        ("3", "60.00", "2026-12-01", "down_payment"),
        ("3", "", "2026-11-22", "first_due"),
        ("3", "", "2027-01-30", "first_due"),
        ("3", "", "soon", "first_due"),
        ("\u0663", "", "2026-12-01", "installments"),  # Arabic-Indic 3: counts are ASCII digits only
        ("\uff13", "", "2026-12-01", "installments"),  # full-width 3
        (" 3_0 ", "", "2026-12-01", "installments"),
    ],
)
def test_a_plan_outside_the_policy_is_refused_on_its_field(
    installments: str, down: str, first: str, field: str
) -> None:
    with pytest.raises(FieldErrors) as caught:
        arrangements.check(5_000, installments, down, first, "", TODAY)
    assert field in caught.value.errors


def test_a_plan_within_the_policy_is_accepted() -> None:
    proposal = arrangements.check(12_345, "3", "10.00", "2026-12-05", " lost my job ", TODAY)
    assert (proposal.down_cents, proposal.installments, proposal.reason) == (1_000, 3, "lost my job")
    assert [c for _, c in proposal.plan] == [3782, 3782, 3781]
