"""The leak helper's date arithmetic and pricing rules (the whole working is tested on both
databases in tests/db/test_adjustments.py)."""

from datetime import date
from decimal import Decimal

from portal.billing_core import leak


def test_months_before_crosses_years_and_short_months() -> None:
    assert leak._months_before(date(2026, 3, 31), 12) == date(2025, 3, 28)
    assert leak._months_before(date(2026, 1, 5), 1) == date(2025, 12, 5)
    assert leak._months_before(date(2026, 11, 5), 0) == date(2026, 11, 5)


def test_the_lowest_tier_of_a_native_version_is_its_first() -> None:
    class FakeSession:
        def get(self, _model, version_id):  # type: ignore[no-untyped-def]
            tiers = [{"up_to": "10", "price": "2.00"}, {"up_to": None, "price": "4.00"}]
            definitions = {
                1: {"components": [{"type": "fixed", "amount": "5"}, {"type": "tiered", "tiers": tiers}]},
                2: {"components": [{"type": "uniform", "price": "3.10"}]},
                3: {"format": "owrs", "class": "X"},
            }
            return type("V", (), {"definition": definitions[version_id]})()

    cache: dict = {}
    assert leak._lowest_price(FakeSession(), 1, cache) == Decimal("2.00")  # type: ignore[arg-type]
    assert leak._lowest_price(FakeSession(), 2, cache) == Decimal("3.10")  # type: ignore[arg-type]
    assert leak._lowest_price(FakeSession(), 3, cache) is None  # type: ignore[arg-type]
    assert leak._lowest_price(FakeSession(), None, cache) is None  # type: ignore[arg-type]
