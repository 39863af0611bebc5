"""Meter reads: consumption, validation and estimation, as pure functions.

- consumption = (current - previous) x multiplier;
- a read below the previous one is a rollover when the dials wrapped
  (10^dials - previous + current is a plausible use), otherwise an error:
  never a negative bill;
- a meter exchange bills the old meter's use up to its final read plus the
  new meter's use from its first read;
- a read is checked against the account's history (high, low, zero on an
  active account, use on an inactive one, read date outside the window);
- a missing read is estimated from average daily use (the same period last
  year, else the last three periods) times the days, and marked estimated;
- a read value is plain digits (``read_value``), finite, not negative, below the
  dials' capacity (10^dials) and what the database holds, with at most three
  decimal places (``check_read``): every way a read comes in goes through them.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation, localcontext

from .errors import InvalidInput

ZERO = Decimal(0)
WHOLE = Decimal(1)
#: meter_read.value is NUMERIC(14, 3): 11 digits before the point, 3 after.
STORED_LIMIT = Decimal(10) ** 11
PLACES = Decimal("0.001")
_PLAIN = re.compile(r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+")
_LOOKS_NEGATIVE = re.compile(r"-\s*[0-9.]")


def format_quantity(value: Decimal | int | None) -> str:
    """A quantity as people write it (``12.5``, ``1060``, never ``1.06E+3``). Whatever is
    stored renders as text and never raises: NaN, infinities, and values far outside any
    meter's range (shortly, as ``1e+1000000``) included."""
    if value is None:
        return ""
    if not isinstance(value, Decimal):
        try:
            value = Decimal(value) if isinstance(value, int) else Decimal(str(value))
        except (InvalidOperation, ValueError, TypeError):
            return str(value)
    if value.is_nan():
        return "NaN"
    if value.is_infinite():
        return "-\u221e" if value.is_signed() else "\u221e"
    if value.is_zero():
        return "0"
    if not -12 <= value.adjusted() < 15:
        return format(value, ".6g")
    with localcontext() as context:
        context.prec = 40
        return f"{value.normalize():f}"


def read_value(text: str, dials: int, field: str = "value") -> Decimal:
    """A read typed by a person: ``parse_read``, then ``check_read`` against the meter's dials."""
    return check_read(_plain(text, field), dials, field)


def parse_read(text: str, field: str = "value") -> Decimal:
    """A read as written, when the meter is not known yet: ASCII digits with one optional
    decimal point (thousands commas allowed), at most three decimal places, within what
    is stored. The dials are checked once the meter is found (``check_read``)."""
    return check_read(_plain(text, field), 12, field)


def _plain(text: str, field: str) -> Decimal:
    text = (text or "").strip().replace(",", "")
    if not text:
        raise InvalidInput("Enter the read.", field)
    if _PLAIN.fullmatch(text) is None:
        if _LOOKS_NEGATIVE.match(text):
            raise InvalidInput("a meter read cannot be negative", field)
        try:
            number = Decimal(text)
        except InvalidOperation:
            number = None
        if number is None or not number.is_finite():
            raise InvalidInput("the read value is not a number", field)
        raise InvalidInput("write the read with the digits 0-9 and a decimal point only", field)
    return Decimal(text)


def check_read(value: Decimal, dials: int, field: str = "value") -> Decimal:
    """``value`` if it can be on a ``dials``-dial meter's register, else InvalidInput."""
    if not isinstance(value, Decimal) or not value.is_finite():
        raise InvalidInput("the read value is not a number", field)
    if value < 0:
        raise InvalidInput("a meter read cannot be negative", field)
    capacity = Decimal(10) ** dials
    if capacity > STORED_LIMIT:
        if value >= STORED_LIMIT:
            raise InvalidInput(f"a meter read is at most {STORED_LIMIT - PLACES}", field)
    elif value >= capacity:
        raise InvalidInput(f"a {dials}-dial meter reads at most {capacity - 1}", field)
    if value != value.quantize(PLACES):
        raise InvalidInput("a meter read has at most 3 decimal places", field)
    return value


class ReadException(str, enum.Enum):
    """Why a read needs a person to look at it before billing."""

    HIGH = "high"
    LOW = "low"
    ZERO = "zero"
    INACTIVE_USE = "inactive_use"
    OUT_OF_WINDOW = "out_of_window"
    BELOW_PREVIOUS = "below_previous"
    ROLLOVER = "rollover"

    @property
    def plain(self) -> str:
        return {
            "high": "Use is much higher than this account's average",
            "low": "Use is much lower than this account's average",
            "zero": "No use on an active account",
            "inactive_use": "Use on an account that is not active",
            "out_of_window": "Read date is outside the cycle's read window",
            "below_previous": "Read is below the previous read and is not a plausible rollover",
            "rollover": "The meter's dials rolled over",
        }[self.value]


@dataclass(frozen=True)
class Rules:
    """Thresholds, configurable per agency; defaults from common practice."""

    high_ratio: Decimal = Decimal("2.0")  # over 200% of the average
    low_ratio: Decimal = Decimal("0.25")  # under 25% of the average
    history_periods: int = 12
    min_history: int = 3  # fewer periods than this: no high/low check
    #: A wrap-around is believed when it stands for at most this share of the dials' range.
    rollover_share: Decimal = Decimal("0.10")
    window_days: int = 7  # the read may fall this many days either side of the scheduled read day


@dataclass(frozen=True)
class Consumption:
    quantity: Decimal
    rollover: bool = False


def consumption(
    previous: Decimal, current: Decimal, dials: int, multiplier: Decimal = WHOLE, rules: Rules = Rules()
) -> Consumption:
    """Use between two reads of one meter. Raises when the read cannot be right."""
    if not (current.is_finite() and previous.is_finite()):
        raise InvalidInput("the read value is not a number", "value")
    if current < 0 or previous < 0:
        raise InvalidInput("a meter read cannot be negative", "value")
    capacity = Decimal(10) ** dials
    if current >= capacity or previous >= capacity:
        raise InvalidInput(f"a {dials}-dial meter reads at most {capacity - 1}", "value")
    if current >= previous:
        return Consumption((current - previous) * multiplier)
    wrapped = capacity - previous + current
    if wrapped <= capacity * rules.rollover_share:
        return Consumption(wrapped * multiplier, rollover=True)
    raise BelowPrevious(previous, current)


class BelowPrevious(InvalidInput):
    def __init__(self, previous: Decimal, current: Decimal) -> None:
        super().__init__(
            f"read {current} is below the previous read {previous} and is not a plausible rollover", "value"
        )
        self.previous, self.current = previous, current


def exchange_consumption(
    old_previous: Decimal,
    old_final: Decimal,
    old_dials: int,
    new_first: Decimal,
    new_current: Decimal,
    new_dials: int,
    old_multiplier: Decimal = WHOLE,
    new_multiplier: Decimal = WHOLE,
    rules: Rules = Rules(),
) -> Consumption:
    """Use across a meter exchange: the old meter to its final read, then the new one."""
    old = consumption(old_previous, old_final, old_dials, old_multiplier, rules)
    new = consumption(new_first, new_current, new_dials, new_multiplier, rules)
    return Consumption(old.quantity + new.quantity, old.rollover or new.rollover)


def validate(
    quantity: Decimal,
    history: Sequence[Decimal],
    *,
    active: bool = True,
    read_on: date | None = None,
    scheduled_on: date | None = None,
    rollover: bool = False,
    rules: Rules = Rules(),
) -> list[ReadException]:
    """The reasons a read must be reviewed; empty when it can be billed as is.

    ``history`` is the account's use in its recent periods, newest last."""
    found: list[ReadException] = []
    if rollover:
        found.append(ReadException.ROLLOVER)
    if not active:
        if quantity > 0:
            found.append(ReadException.INACTIVE_USE)
        return found
    if read_on is not None and scheduled_on is not None and abs((read_on - scheduled_on).days) > rules.window_days:
        found.append(ReadException.OUT_OF_WINDOW)
    recent = list(history)[-rules.history_periods :]
    if quantity == 0:
        if any(q > 0 for q in recent) or not recent:
            found.append(ReadException.ZERO)
        return found
    if len(recent) >= rules.min_history:
        average = sum(recent, ZERO) / len(recent)
        if average > 0 and quantity > average * rules.high_ratio:
            found.append(ReadException.HIGH)
        elif average > 0 and quantity < average * rules.low_ratio:
            found.append(ReadException.LOW)
    return found


@dataclass(frozen=True)
class Period:
    start: date
    end: date
    quantity: Decimal

    @property
    def days(self) -> int:
        return (self.end - self.start).days


@dataclass(frozen=True)
class Estimate:
    quantity: Decimal
    method: str


def estimate(start: date, end: date, history: Sequence[Period]) -> Estimate:
    """Estimate a missing period's use from average daily use, rounded to whole units.

    Prefers the same period last year; else the last three periods."""
    days = Decimal((end - start).days)
    if days <= 0:
        raise InvalidInput("the period to estimate has no days", "period")
    last_year = [p for p in history if abs((p.end - _year_before(end)).days) <= 15 and p.days > 0]
    if last_year:
        basis = last_year[-1]
        daily = basis.quantity / basis.days
        method = f"same period last year ({basis.start:%m/%d/%Y} to {basis.end:%m/%d/%Y})"
    else:
        recent = [p for p in history if p.days > 0 and p.end <= start][-3:]
        if not recent:
            raise InvalidInput("no history to estimate from; order a read", "history")
        daily = sum((p.quantity for p in recent), ZERO) / sum(p.days for p in recent)
        method = f"average of the last {len(recent)} period{'s' if len(recent) > 1 else ''}"
    return Estimate((daily * days).quantize(WHOLE, rounding=ROUND_HALF_UP), method)


def _year_before(d: date) -> date:
    try:
        return d.replace(year=d.year - 1)
    except ValueError:  # 29 February
        return d.replace(year=d.year - 1, day=28)
