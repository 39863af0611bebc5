from decimal import Decimal

import pytest

from portal.billing_core.errors import InvalidInput
from portal.billing_core.money import format_money, parse_money, round_cents, to_decimal


@pytest.mark.parametrize(
    "dollars, cents",
    [
        ("0", 0),
        ("0.004", 0),
        ("0.005", 1),  # half-up, not banker's
        ("0.015", 2),
        ("0.025", 3),
        ("44.48", 4448),
        ("12.345", 1235),
        ("-0.005", -1),  # half away from zero
        ("-12.344", -1234),
        ("1234567.891", 123456789),
    ],
)
def test_round_cents_is_half_up(dollars: str, cents: int) -> None:
    assert round_cents(Decimal(dollars)) == cents


def test_round_cents_refuses_floats() -> None:
    with pytest.raises(TypeError):
        round_cents(0.1)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [0.1, True])
def test_to_decimal_refuses_floats_and_bools(bad: object) -> None:
    with pytest.raises(TypeError):
        to_decimal(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["abc", "", "NaN", "Infinity"])
def test_to_decimal_refuses_non_numbers(text: str) -> None:
    with pytest.raises(InvalidInput):
        to_decimal(text)


@pytest.mark.parametrize(
    "cents, shown",
    [(0, "$0.00"), (5, "$0.05"), (4448, "$44.48"), (123456789, "$1,234,567.89"), (-1250, "-$12.50")],
)
def test_format_money(cents: int, shown: str) -> None:
    assert format_money(cents) == shown


@pytest.mark.parametrize(
    "typed, cents",
    [("45.10", 4510), ("$1,234.5", 123450), (" 7 ", 700), ("0.01", 1)],
)
def test_parse_money(typed: str, cents: int) -> None:
    assert parse_money(typed) == cents


@pytest.mark.parametrize("typed", ["", "abc", "1.234", "NaN"])
def test_parse_money_rejects_with_a_message_for_the_field(typed: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_money(typed, field="amount")
    assert info.value.field == "amount"
    assert info.value.message


@pytest.mark.parametrize("typed", ["١٢٣", "１２３", "१२३", "12.٥٠", "1E+1000000", "1e3", "Infinity", "-NaN", "1_000"])
def test_parse_money_takes_ascii_digits_only(typed: str) -> None:
    """int() and Decimal() read Arabic-Indic, full-width and Devanagari digits, exponents
    and underscores; an amount a person types is plain ASCII digits or it is refused."""
    with pytest.raises(InvalidInput) as info:
        parse_money(typed, field="amount")
    assert info.value.field == "amount"


@pytest.mark.parametrize("typed", ["١٢٣", "１２３", "12.٥٠", "١", "1e3"])
def test_account_linking_and_payment_amounts_take_ascii_digits_only(typed: str) -> None:
    from portal.billing_core.payments import parse_cents
    from portal.billing_core.users import parse_amount

    assert parse_amount(typed) is None
    assert parse_cents(typed) is None


def test_the_shared_check_names_every_non_ascii_digit() -> None:
    from portal.billing_core.money import ascii_number

    assert ascii_number("123") and ascii_number("-12.50") and ascii_number("0.5")
    assert not ascii_number("١٢٣") and not ascii_number("１２３") and not ascii_number("1e3")
    assert not ascii_number("") and not ascii_number("-") and not ascii_number("1.2.3")
    assert parse_money("-12.50") == -1250
