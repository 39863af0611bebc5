"""Table-driven tests of the rate engine's parts, proration and rate changes."""

from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portal.billing_core import owrs
from portal.billing_core.errors import InvalidInput
from portal.billing_core.rating import Usage, rate, rate_period, split_period

D = Decimal


def cents(lines) -> list[int]:  # type: ignore[no-untyped-def]
    return [line.amount_cents for line in lines]


def one(kind: str, **comp) -> dict:  # type: ignore[no-untyped-def]
    return {"unit": "CCF", "components": [{"type": kind, **comp}]}


CASES = [
    # name, definition, usage, expected cents per line, a description that must appear
    ("flat", one("fixed", description="Sewer", amount="38.52"), Usage(), [3852], "Sewer"),
    (
        "by meter size",
        one("fixed_by_meter_size", description="Service", values={'1"': "38.15"}),
        Usage(meter_size='1"'),
        [3815],
        'Service (1" meter)',
    ),
    (
        "fire line by size",
        one("fixed_by_meter_size", by="line_size", description="Fire line", values={'6"': "86.35"}),
        Usage(options={"line_size": '6"'}),
        [8635],
        'Fire line (6" line size)',
    ),
    (
        "cart and pickups",
        one(
            "fixed_by_option",
            options=["cart_size", "pickups"],
            description="Trash",
            label="{cart_size} gal, {pickups}x weekly",
            values={"96|2": "52.40"},
        ),
        Usage(options={"cart_size": "96", "pickups": "2"}),
        [5240],
        "96 gal, 2x weekly",
    ),
    (
        "dwelling units",
        one("per_dwelling_unit", description="Sewer", amount="31.10"),
        Usage(dwelling_units=12),
        [37320],
        "12 units × $31.10",
    ),
    ("uniform", one("uniform", description="Water usage", price="2.78"), Usage(D(16)), [4448], "16 CCF × $2.78"),
    (
        "decreasing blocks",
        one("tiered", tiers=[{"up_to": "100", "price": "3.00"}, {"up_to": None, "price": "2.00"}]),
        Usage(D(150)),
        [30000, 10000],
        "Tier 2: 50 CCF × $2.00",
    ),
    (
        "sewer share of water",
        one("sewer_share", description="Sewer volume", price="4.00", percent="90"),
        Usage(D(0), water_quantity=D(20)),
        [7200],
        "90% of 20 CCF water",
    ),
    (
        "winter average under cap",
        one("winter_average", description="Sewer", price="3.00", cap="12"),
        Usage(winter_average=D(8)),
        [2400],
        "winter average 8 CCF",
    ),
    (
        "winter average capped",
        one("winter_average", description="Sewer", price="3.00", cap="12"),
        Usage(winter_average=D(15)),
        [3600],
        "(capped)",
    ),
]


@pytest.mark.parametrize("name, definition, usage, expected, text", CASES, ids=[c[0] for c in CASES])
def test_components(name, definition, usage, expected, text) -> None:  # type: ignore[no-untyped-def]
    lines = rate("water", definition, usage, rate_version_id=3)
    assert cents(lines) == expected
    assert any(text in line.description for line in lines), [line.description for line in lines]
    assert all(line.rate_version_id == 3 for line in lines)


SEASONAL = one("seasonal_uniform", description="Water usage", prices={"summer": "3.10", "winter": "2.50"})


@pytest.mark.parametrize("end, price", [(date(2026, 7, 15), 310), (date(2026, 1, 15), 250), (date(2026, 5, 1), 250)])
def test_season_is_the_one_the_last_day_falls_in(end: date, price: int) -> None:
    (line,) = rate("water", SEASONAL, Usage(D(1)), period_end=end)
    assert line.amount_cents == price


MIN_TAX = {
    "unit": "CCF",
    "components": [
        {"type": "uniform", "description": "Water usage", "price": "2.00"},
        {"type": "minimum", "description": "Minimum charge", "amount": "15.00"},
        {"type": "discount", "description": "Low-income discount", "percent": "20", "program": "low_income"},
        {"type": "tax", "description": "Utility users tax", "percent": "5"},
    ],
}


@pytest.mark.parametrize(
    "ccf, programs, expected",
    [
        ("3", set(), [600, 900, 75]),  # $6 raised to the $15 minimum, 5% tax
        ("10", set(), [2000, 100]),
        ("10", {"low_income"}, [2000, -400, 80]),  # 20% off, then tax on $16
    ],
)
def test_minimum_discount_and_tax_apply_in_order(ccf: str, programs: set, expected: list[int]) -> None:
    assert cents(rate("water", MIN_TAX, Usage(D(ccf), programs=frozenset(programs)))) == expected


BUDGET = one(
    "budget",
    description="Water usage",
    gpcd="60",
    landscape_factor="0.7",
    tiers=[
        {"up_to_percent": "100", "price": "2.00"},
        {"up_to_percent": "150", "price": "3.00"},
        {"up_to_percent": None, "price": "5.00"},
    ],
)


def test_budget_tiers() -> None:
    # indoor 60*4*31/748 = 9.95 -> 10; outdoor 0.7*3*1500*0.62/748 = 2.61 -> 3; budget 13, 150% = 19.5 -> 20
    usage = Usage(D(25), household_size=D(4), irrigated_area=D(1500), et_amount=D(3))
    lines = rate("water", BUDGET, usage, days=31)
    assert cents(lines) == [2600, 2100, 2500]
    assert "budget 13 CCF" in lines[0].description


WATER_V1 = {
    "unit": "CCF",
    "components": [
        {"type": "fixed", "description": "Service charge", "amount": "30.00"},
        {"type": "tiered", "tiers": [{"up_to": "10", "price": "2.00"}, {"up_to": None, "price": "3.00"}]},
    ],
}
WATER_V2 = {
    "unit": "CCF",
    "components": [
        {"type": "fixed", "description": "Service charge", "amount": "33.00"},
        {"type": "tiered", "tiers": [{"up_to": "10", "price": "2.20"}, {"up_to": None, "price": "3.30"}]},
    ],
}
VERSIONS = [(date(2025, 1, 1), 1, WATER_V1), (date(2026, 3, 16), 2, WATER_V2)]


def test_a_period_without_a_rate_change_is_one_version() -> None:
    lines = rate_period("water", VERSIONS, Usage(D(14)), date(2026, 1, 1), date(2026, 1, 31))
    assert cents(lines) == [3000, 2000, 1200]
    assert {line.rate_version_id for line in lines} == {1}


def test_a_rate_change_inside_a_period_splits_it_by_days() -> None:
    # March 1 to March 31: 15 days old rates, 15 days new; 20 CCF shared 10 and 10.
    lines = rate_period("water", VERSIONS, Usage(D(20)), date(2026, 3, 1), date(2026, 3, 31))
    by_version = {v: [line for line in lines if line.rate_version_id == v] for v in (1, 2)}
    # Old: service 30 * 15/30 = 15.00; 10 CCF, tier widths halved to 5: 5*2 + 5*3.
    assert cents(by_version[1]) == [1500, 1000, 1500]
    assert cents(by_version[2]) == [1650, 1100, 1650]
    assert "03/01 to 03/15, 15 days" in by_version[1][0].description
    assert "03/16 to 03/30, 15 days" in by_version[2][0].description


def test_a_partial_period_prorates_fixed_charges_and_tier_widths() -> None:
    # Move-out after 10 days of a 30-day cycle: a third of the service charge and of each tier.
    lines = rate_period("water", VERSIONS, Usage(D(6)), date(2026, 1, 1), date(2026, 1, 11), full_period_days=30)
    # $30 / 3; tier 1 is 10/3 CCF wide: 3.333 CCF at $2 = $6.67, the other 2.667 CCF at $3 = $8.00.
    assert cents(lines) == [1000, 667, 800]
    assert "prorated 33.3%" in lines[0].description


def test_split_period_refuses_periods_without_rates() -> None:
    with pytest.raises(InvalidInput, match="no rate version is in force"):
        split_period(VERSIONS, date(2024, 1, 1), date(2024, 2, 1))
    with pytest.raises(InvalidInput, match="must end after it starts"):
        split_period(VERSIONS, date(2026, 2, 1), date(2026, 2, 1))


# --- properties -------------------------------------------------------------------

prices = st.lists(st.decimals("0.01", "20", places=2), min_size=1, max_size=5)


@settings(max_examples=200, deadline=None)
@given(
    prices=prices,
    widths=st.lists(st.integers(1, 50), min_size=4, max_size=4),
    a=st.decimals("0", "500", places=2),
    b=st.decimals("0", "500", places=2),
)
def test_increasing_block_bills_never_fall_as_usage_rises(prices, widths, a, b) -> None:  # type: ignore[no-untyped-def]
    prices = sorted(prices)
    bounds, total = [], 0
    for w in widths[: len(prices) - 1]:
        total += w
        bounds.append(str(total))
    tiers = [{"up_to": u, "price": str(p)} for u, p in zip(bounds + [None], prices, strict=False)]
    definition = {"components": [{"type": "fixed", "amount": "12.00"}, {"type": "tiered", "tiers": tiers}]}
    low, high = sorted([a, b])
    assert sum(cents(rate("water", definition, Usage(low)))) <= sum(cents(rate("water", definition, Usage(high))))


FIXED_PARTS = {
    "unit": "CCF",
    "components": [
        {"type": "fixed_by_meter_size", "description": "Service", "values": {'1"': "38.15"}},
        {"type": "fixed", "description": "Capital charge", "amount": "4.25"},
        {"type": "uniform", "description": "Usage", "price": "2.78"},
        {"type": "tiered", "tiers": [{"up_to": "10", "price": "1"}, {"up_to": None, "price": "2"}]},
    ],
}


@given(size=st.just('1"'))
def test_zero_usage_yields_exactly_the_fixed_charges(size: str) -> None:
    lines = rate("water", FIXED_PARTS, Usage(D(0), meter_size=size))
    assert sum(cents(lines)) == 3815 + 425


def test_owrs_version_lines_explain_themselves() -> None:
    doc = owrs.load_text("""
rate_structure:
  RESIDENTIAL_SINGLE:
    service_charge: {depends_on: meter_size, values: {'3/4"': 14.65}}
    tier_starts: [0, 15, 41]
    tier_prices: [2.87, 4.29, 6.44]
    commodity_charge: Tiered
    drought_fee: 0.5*usage_ccf
    bill: service_charge+commodity_charge+drought_fee
""")
    definition = {
        "format": "owrs",
        "class": "RESIDENTIAL_SINGLE",
        "metadata": {},
        "rate_structure": doc.classes["RESIDENTIAL_SINGLE"],
    }
    lines = rate("water", definition, Usage(D(20), meter_size='3/4"'), rate_version_id=9)
    assert [(line.description, line.amount_cents) for line in lines] == [
        ('Service charge (3/4" meter)', 1465),
        ("Tier 1: 14 CCF × $2.87", 4018),
        ("Tier 2: 6 CCF × $4.29", 2574),
        ("Drought fee: 20 CCF × $0.5", 1000),
    ]
