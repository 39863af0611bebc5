"""OWRS numbers are Decimal from the moment a file is read, and stored as they were."""

import json
from datetime import date
from decimal import Decimal

import pytest

from portal.billing_core import owrs, rating
from portal.billing_core.errors import InvalidInput
from portal.billing_core.rate_schedules import _jsonable


def part(text: str):  # type: ignore[no-untyped-def]
    return owrs.load_text(f"rate_structure:\n  A:\n    x: {text}\n    bill: usage_ccf\n").classes["A"]["x"]


@pytest.mark.parametrize(
    "written, value",
    [
        ("2.78", Decimal("2.78")),
        ("2.960", Decimal("2.960")),
        ("12", Decimal(12)),
        ("-3", Decimal(-3)),
        ("1_000", Decimal(1000)),
        ("0x1F", Decimal(31)),
        ("1_000.5", Decimal("1000.5")),
        ("1:30.5", Decimal("90.5")),
        ("0.1234567890123456789", Decimal("0.1234567890123456789")),  # exact, not a float's 17 digits
    ],
)
def test_every_number_is_a_decimal_made_from_its_text(written: str, value: Decimal) -> None:
    found = part(written)
    assert type(found) is Decimal and found == value


@pytest.mark.parametrize("written, value", [("yes", True), ("false", False), ("'2.5'", "2.5"), ("+.5", "+.5")])
def test_booleans_and_text_stay_what_they_were(written: str, value: object) -> None:
    assert part(written) == value and type(part(written)) is type(value)


def test_a_list_holds_decimals() -> None:
    assert part("[0, 15, 41.5]") == [Decimal(0), Decimal(15), Decimal("41.5")]


@pytest.mark.parametrize(
    "written, reason",
    [
        (".nan", "NaN (not a number) is not a rate"),
        (".inf", "an infinite number is not a rate"),
        ("-.Inf", "an infinite number is not a rate"),
        ("1.0e+400", "an infinite number is not a rate"),
        ("1.0e+300", "the number 1e+300 is over the limit of 1,000,000,000"),
    ],
)
def test_nan_and_infinities_are_still_refused(written: str, reason: str) -> None:
    assert owrs.number_problem(part(written)) == reason


@pytest.mark.parametrize("written", ["2.78", "2.960", "12", "5.", "1.5e+3", "1852.00", "-0.5"])
def test_stored_json_is_what_it_was_before_numbers_were_decimal(written: str) -> None:
    import yaml

    before = yaml.safe_load(f"x: {written}")["x"]  # what the loader made before: int or float
    stored = json.dumps(_jsonable({"x": part(written)}))
    assert stored == json.dumps({"x": before})
    assert owrs.decimals(json.loads(stored))["x"] == part(written)


def test_decimals_reads_a_stored_definition_back_exactly() -> None:
    stored = json.loads('{"a": 2.78, "b": [1, 0.1], "c": true, "d": "flat*usage_ccf", "e": {"1": 3}}')
    assert owrs.decimals(stored) == {
        "a": Decimal("2.78"),
        "b": [Decimal(1), Decimal("0.1")],
        "c": True,
        "d": "flat*usage_ccf",
        "e": {"1": Decimal(3)},
    }
    assert type(owrs.decimals(stored)["a"]) is Decimal


def test_a_float_in_a_class_is_a_programming_error() -> None:
    file = owrs.OwrsFile("f", {}, {"A": {"x": 2.5, "bill": "x"}})
    with pytest.raises(TypeError, match="never float"):
        owrs.quote(file, "A", {"usage_ccf": "1"})


@pytest.mark.parametrize("amount, shown", [("-0.004", "0.00"), ("1.005", "1.01"), ("-1.005", "-1.01")])
def test_dollars_round_half_up_like_every_bill_line(amount: str, shown: str) -> None:
    assert owrs.dollars(Decimal(amount)) == shown


SEASONAL = {"components": [{"type": "seasonal_uniform", "prices": {"summer": "3", "winter": "2"}}]}


def test_a_seasonal_rate_without_a_period_says_so_instead_of_reading_the_clock() -> None:
    with pytest.raises(InvalidInput, match="needs the billing period's dates"):
        rating.rate("water", SEASONAL, rating.Usage(Decimal(1)))
    (line,) = rating.rate("water", SEASONAL, rating.Usage(Decimal(1)), period_end=date(2024, 8, 1))
    assert "(summer)" in line.description
    rater = rating.Rater("water", SEASONAL)
    (line,) = rater.rate(rating.Usage(Decimal(1)), period_end=date(2024, 1, 1))
    assert "(winter)" in line.description
