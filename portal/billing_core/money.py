"""Money: integer cents in the ledger and on bills, ``Decimal`` for prices.

``round_cents`` is the one rounding function: half-up, to whole cents, applied
once per bill line.
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from .errors import InvalidInput

CENT = Decimal("0.01")
HUNDRED = Decimal(100)
#: A number as a person types it: ASCII digits, an optional minus and decimal point. Python's
#: int() and Decimal() also read Arabic-Indic ('١٢٣'), full-width ('１２３') and every other
#: Unicode digit, exponents ('1e3'), underscores and 'Infinity'; amounts and counts must not.
_ASCII_NUMBER = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")


def ascii_number(text: str) -> bool:
    """True when ``text`` is a plain decimal number in ASCII digits (``12``, ``-12.50``, ``.5``):
    the one check every amount and count a person types goes through before int()/Decimal()."""
    return bool(_ASCII_NUMBER.fullmatch(text or ""))


def to_decimal(value: str | int | Decimal) -> Decimal:
    """Build a Decimal from text, an int or a Decimal; floats are refused."""
    if isinstance(value, bool) or isinstance(value, float):
        raise TypeError("money and quantities are never floats")
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int):
        return Decimal(value)
    if not isinstance(value, str):
        raise InvalidInput(f"{value!r} is not a number")
    try:
        result = Decimal(value.strip())
    except InvalidOperation as exc:
        raise InvalidInput(f"{value!r} is not a number") from exc
    if not result.is_finite():
        raise InvalidInput(f"{value!r} is not a number")
    return result


def round_cents(dollars: Decimal) -> int:
    """Round an amount in dollars to whole cents, half-up, and return the cents."""
    if not isinstance(dollars, Decimal):
        raise TypeError("round_cents takes a Decimal amount in dollars")
    return int((dollars * HUNDRED).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def cents_to_decimal(cents: int) -> Decimal:
    return (Decimal(cents) / HUNDRED).quantize(CENT)


def format_money(cents: int) -> str:
    """``-123456`` -> ``-$1,234.56``: how amounts read on a page or a bill."""
    sign = "-" if cents < 0 else ""
    whole, part = divmod(abs(cents), 100)
    return f"{sign}${whole:,}.{part:02d}"


def parse_money(text: str, field: str = "amount") -> int:
    """Parse what a person types (``$1,234.5``) into cents; at most two decimals."""
    cleaned = (text or "").strip().replace("$", "").replace(",", "")
    if not cleaned:
        raise InvalidInput("Enter an amount.", field)
    if not ascii_number(cleaned):
        raise InvalidInput("Enter an amount in dollars and cents, like 45.10.", field)
    try:
        value = Decimal(cleaned)
    except InvalidOperation as exc:
        raise InvalidInput("Enter an amount in dollars and cents, like 45.10.", field) from exc
    if not value.is_finite():
        raise InvalidInput("Enter an amount in dollars and cents, like 45.10.", field)
    if value != value.quantize(CENT):
        raise InvalidInput("Amounts have at most two digits after the point.", field)
    return int(value * HUNDRED)
