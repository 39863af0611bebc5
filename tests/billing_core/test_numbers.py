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


def test_scan_line_carries_account_amount_and_a_check_digit() -> None:
    from portal.billing_core.numbers import scan_line, scan_line_valid

    line = scan_line("00000018", 13626)
    assert line.startswith("00000018 0000013626 ")
    assert scan_line_valid(line)
    account, amount, check = line.split()
    assert not scan_line_valid(f"{account} {'0000013628'} {check}")  # a misread amount is caught
    assert not scan_line_valid(f"00000026 {amount} {check}")
    assert scan_line("00000018", -500).split()[1] == "0000000000"  # a credit balance owes nothing
