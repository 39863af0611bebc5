"""Account numbers carry a Luhn check digit, so a mistyped number is caught."""

from __future__ import annotations


def luhn_digit(digits: str) -> int:
    """The check digit that makes ``digits + str(result)`` pass the Luhn test."""
    if not digits.isdigit():
        raise ValueError("digits only")
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return (10 - total % 10) % 10


def luhn_valid(number: str) -> bool:
    return len(number) >= 2 and number.isdigit() and luhn_digit(number[:-1]) == int(number[-1])


def account_number(serial: int, width: int = 7) -> str:
    """``account_number(1)`` -> ``'00000018'``: the serial, zero-padded, plus a check digit."""
    body = f"{serial:0{width}d}"
    return body + str(luhn_digit(body))


def normalise_account_number(text: str) -> str:
    """What a person types (spaces, dashes) reduced to the digits we store."""
    return "".join(ch for ch in (text or "") if ch.isdigit())


def scan_line(account: str, amount_cents: int) -> str:
    """The remittance stub's OCR line: account number, amount due in cents (10 digits), and a
    Luhn check digit over both, so a lockbox machine catches a misread of either."""
    digits = normalise_account_number(account)
    amount = f"{max(amount_cents, 0):010d}"
    return f"{digits} {amount} {luhn_digit(digits + amount)}"


def scan_line_valid(line: str) -> bool:
    parts = line.split()
    return (
        len(parts) == 3
        and luhn_valid(parts[0])
        and parts[2].isdigit()
        and luhn_digit(parts[0] + parts[1]) == int(parts[2])
    )
