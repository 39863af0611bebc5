from decimal import Decimal

import pytest

from portal.billing_core.errors import InvalidInput
from portal.billing_core.rating import Usage, rate
from portal.demo import TRASH_RES, chino_water_definition

WATER = chino_water_definition("RESIDENTIAL_SINGLE")


@pytest.mark.parametrize(
    "size, ccf, amounts",
    [
        ('5/8"', "0", [2461, 0]),
        ('5/8"', "16", [2461, 4448]),
        ('1"', "12", [3815, 3336]),
        ('1 1/2"', "7", [7202, 1946]),
    ],
)
def test_chino_water_bill(size: str, ccf: str, amounts: list[int]) -> None:
    lines = rate("water", WATER, Usage(Decimal(ccf), size), rate_version_id=9)
    assert [line.amount_cents for line in lines] == amounts
    assert lines[0].description == f"Water service charge ({size} meter)"
    assert lines[1].description == f"Water usage: {ccf} CCF × $2.78"
    assert all(line.rate_version_id == 9 for line in lines)


TIERED = {
    "unit": "CCF",
    "components": [
        {
            "type": "tiered",
            "tiers": [
                {"up_to": "10", "price": "2.50"},
                {"up_to": "25", "price": "3.10"},
                {"up_to": None, "price": "4.29"},
            ],
        }
    ],
}


@pytest.mark.parametrize(
    "ccf, lines",
    [
        ("0", []),
        ("4", [("Tier 1: 4 CCF × $2.50", 1000)]),
        ("10", [("Tier 1: 10 CCF × $2.50", 2500)]),
        ("22", [("Tier 1: 10 CCF × $2.50", 2500), ("Tier 2: 12 CCF × $3.10", 3720)]),
        ("37", [("Tier 1: 10 CCF × $2.50", 2500), ("Tier 2: 15 CCF × $3.10", 4650), ("Tier 3: 12 CCF × $4.29", 5148)]),
    ],
)
def test_tiers(ccf: str, lines: list[tuple[str, int]]) -> None:
    got = rate("water", TIERED, Usage(Decimal(ccf)))
    assert [(line.description, line.amount_cents) for line in got] == lines


def test_cart_size_option() -> None:
    (line,) = rate("sanitation", TRASH_RES, Usage(options={"cart_size": "96"}))
    assert line.amount_cents == 3680
    assert "96-gallon" in line.description


def test_unknown_meter_size_is_a_clear_error() -> None:
    with pytest.raises(InvalidInput, match='meter size 12"'):
        rate("water", WATER, Usage(Decimal(1), '12"'))
