import pytest

from portal.billing_core.numbers import (
    account_number,
    luhn_digit,
    luhn_valid,
    normalise_account_number,
)


@pytest.mark.parametrize("serial, number", [(1, "00000018"), (2, "00000026"), (1234567, "12345674")])
def test_account_numbers_carry_a_luhn_digit(serial: int, number: str) -> None:
    assert account_number(serial) == number
    assert luhn_valid(number)


def test_known_luhn_value() -> None:
    # The textbook example: 7992739871 has check digit 3.
    assert luhn_digit("7992739871") == 3


@pytest.mark.parametrize("typo", ["00000019", "00000081", "10000018"])
def test_a_mistyped_number_fails_the_check(typo: str) -> None:
    assert not luhn_valid(typo)


def test_normalise_strips_spaces_and_dashes() -> None:
    assert normalise_account_number(" 0000-0018 ") == "00000018"
