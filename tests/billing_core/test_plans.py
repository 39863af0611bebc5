"""The arithmetic and checks of staff payment plans and extensions (``billing_core/plans.py``),
without a database: exact installments for any amount, and every field's refusal."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portal.billing_core import plans
from portal.billing_core.errors import FieldErrors
from portal.billing_core.ladder_policy import DEFAULT

TODAY = date(2026, 1, 31)


@given(
    total=st.integers(min_value=2_000, max_value=10_000_000),
    down_share=st.floats(min_value=0, max_value=0.5),
    months=st.integers(min_value=2, max_value=DEFAULT.max_plan_months),
    offset=st.integers(min_value=0, max_value=30),
)
def test_any_plan_adds_up_to_the_cent_with_the_odd_cents_first(
    total: int, down_share: float, months: int, offset: int
) -> None:
    down = int(total * down_share)
    if (total - down) // months < 1_000:
        return
    first = TODAY + timedelta(days=offset)
    values = {
        "amount": f"{total / 100:.2f}",
        "down_payment": f"{down / 100:.2f}" if down else "",
        "installments": str(months),
        "first_due": first.isoformat(),
    }
    terms = plans.check("plan", values, total, TODAY, DEFAULT)
    amounts = [c for _d, c in terms.schedule]
    assert terms.down_cents + sum(amounts) == terms.total_cents == total
    assert amounts == sorted(amounts, reverse=True) and amounts[0] - amounts[-1] <= 1
    dues = [d for d, _c in terms.schedule]
    assert dues[0] == first and dues == sorted(dues) and len(set(dues)) == months
    assert terms.grace_days == DEFAULT.plan_grace_days


def test_an_extension_is_one_promise_within_the_policy() -> None:
    latest = TODAY + timedelta(days=DEFAULT.extension_max_days)
    terms = plans.check("extension", {"amount": "40.00", "promise_on": latest.isoformat()}, 5_000, TODAY, DEFAULT)
    assert (terms.kind, terms.total_cents, terms.schedule, terms.grace_days) == (
        "extension",
        4_000,
        ((latest, 4_000),),
        0,
    )
    with pytest.raises(FieldErrors) as refused:
        plans.check(
            "extension",
            {"amount": "50.01", "promise_on": (latest + timedelta(days=1)).isoformat()},
            5_000,
            TODAY,
            DEFAULT,
        )
    assert set(refused.value.errors) == {"amount", "promise_on"}
