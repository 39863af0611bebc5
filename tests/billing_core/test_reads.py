from datetime import date
from decimal import Decimal

import pytest

from portal.billing_core.reads import (
    BelowPrevious,
    Period,
    ReadException,
    Rules,
    consumption,
    estimate,
    exchange_consumption,
    validate,
)

D = Decimal


@pytest.mark.parametrize(
    "previous, current, dials, multiplier, quantity, rollover",
    [
        ("1000", "1012", 6, "1", "12", False),
        ("1000", "1000", 6, "1", "0", False),
        ("1000", "1012", 6, "10", "120", False),  # a multiplier-10 meter
        ("999990", "7", 6, "1", "17", True),  # dials wrapped at 1,000,000
        ("9995", "3", 4, "1", "8", True),
        ("9999.5", "0.5", 4, "1", "1.0", True),
    ],
)
def test_consumption(previous, current, dials, multiplier, quantity, rollover) -> None:  # type: ignore[no-untyped-def]
    got = consumption(D(previous), D(current), dials, D(multiplier))
    assert got.quantity == D(quantity) and got.rollover is rollover


@pytest.mark.parametrize("previous, current", [("5000", "4990"), ("500000", "100")])
def test_a_read_below_the_previous_that_is_no_rollover_is_refused(previous: str, current: str) -> None:
    with pytest.raises(BelowPrevious, match="not a plausible rollover"):
        consumption(D(previous), D(current), 6)


@pytest.mark.parametrize("current, dials", [("-1", 6), ("1000000", 6), ("10000", 4)])
def test_impossible_reads(current: str, dials: int) -> None:
    with pytest.raises(Exception, match="negative|reads at most"):
        consumption(D(0), D(current), dials)


def test_exchange_adds_the_old_meters_use_and_the_new_ones() -> None:
    got = exchange_consumption(D("4500"), D("4520"), 6, D("0"), D("9"), 4)
    assert got.quantity == D(29) and not got.rollover


HISTORY = [D(10), D(12), D(11), D(9), D(10), D(12)]  # average 10.67


@pytest.mark.parametrize(
    "quantity, history, kwargs, expected",
    [
        ("11", HISTORY, {}, []),
        ("22", HISTORY, {}, [ReadException.HIGH]),  # over 200% of 10.67
        ("21", HISTORY, {}, []),
        ("2", HISTORY, {}, [ReadException.LOW]),  # under 25%
        ("3", HISTORY, {}, []),
        ("0", HISTORY, {}, [ReadException.ZERO]),
        ("0", [D(0), D(0), D(0)], {}, []),  # a vacant house that always reads zero
        ("0", [], {}, [ReadException.ZERO]),
        ("50", [D(10), D(10)], {}, []),  # too little history to call it high
        ("5", HISTORY, {"active": False}, [ReadException.INACTIVE_USE]),
        ("0", HISTORY, {"active": False}, []),
        (
            "11",
            HISTORY,
            {"read_on": date(2026, 3, 20), "scheduled_on": date(2026, 3, 5)},
            [ReadException.OUT_OF_WINDOW],
        ),
        ("11", HISTORY, {"read_on": date(2026, 3, 12), "scheduled_on": date(2026, 3, 5)}, []),
        ("11", HISTORY, {"rollover": True}, [ReadException.ROLLOVER]),
        ("30", HISTORY, {"rules": Rules(high_ratio=D(3))}, []),  # thresholds are configurable
    ],
)
def test_validation(quantity, history, kwargs, expected) -> None:  # type: ignore[no-untyped-def]
    assert validate(D(quantity), history, **kwargs) == expected


def p(start: str, end: str, q: int) -> Period:
    return Period(date.fromisoformat(start), date.fromisoformat(end), D(q))


def test_estimate_prefers_the_same_period_last_year() -> None:
    history = [p("2025-03-05", "2025-04-05", 31), p("2026-01-05", "2026-02-05", 10), p("2026-02-05", "2026-03-05", 14)]
    got = estimate(date(2026, 3, 5), date(2026, 4, 5), history)
    assert got.quantity == D(31) and "same period last year" in got.method


def test_estimate_falls_back_to_the_last_three_periods() -> None:
    history = [
        p("2025-11-05", "2025-12-05", 30),
        p("2025-12-05", "2026-01-05", 31),
        p("2026-01-05", "2026-02-05", 62),
        p("2026-02-05", "2026-03-05", 28),
    ]
    # last three: 31 + 62 + 28 = 121 units over 31 + 31 + 28 = 90 days; x 31 days = 41.7 -> 42
    got = estimate(date(2026, 3, 5), date(2026, 4, 5), history)
    assert got.quantity == D(42) and got.method == "average of the last 3 periods"


def test_estimate_needs_history() -> None:
    with pytest.raises(Exception, match="no history"):
        estimate(date(2026, 3, 5), date(2026, 4, 5), [])


def test_every_exception_reads_in_plain_words() -> None:
    assert all(e.plain and e.plain[0].isupper() for e in ReadException)


@pytest.mark.parametrize(
    "text, message",
    [
        ("Infinity", "not a number"),
        ("-Infinity", "not a number"),
        ("NaN", "not a number"),
        ("sNaN", "not a number"),
        ("ten", "not a number"),
        ("", "Enter the read"),
        ("-1", "cannot be negative"),
        ("-0.5", "cannot be negative"),
        ("1E+1000000", "digits 0-9"),
        ("1e3", "digits 0-9"),
        ("\uff11\uff12", "digits 0-9"),  # full-width digits, which Decimal() accepts
        ("1000000", "reads at most 999999"),  # a 6-dial meter
        ("1" + "0" * 5000, "reads at most 999999"),
        ("12.3456", "at most 3 decimal places"),
    ],
)
def test_a_read_value_that_cannot_be_on_the_dials_is_refused(text: str, message: str) -> None:
    from portal.billing_core.errors import InvalidInput
    from portal.billing_core.reads import read_value

    with pytest.raises(InvalidInput, match=message) as caught:
        read_value(text, 6)
    assert caught.value.field == "value"


@pytest.mark.parametrize(
    "text, dials, expected",
    [("0", 6, "0"), ("999999", 6, "999999"), ("1,234.5", 6, "1234.5"), (" 12.300 ", 4, "12.3"), (".5", 4, "0.5")],
)
def test_plain_read_values(text: str, dials: int, expected: str) -> None:
    from portal.billing_core.reads import read_value

    assert read_value(text, dials) == D(expected)


def test_a_twelve_dial_meter_is_capped_at_what_the_database_holds() -> None:
    from portal.billing_core.errors import InvalidInput
    from portal.billing_core.reads import check_read

    assert check_read(D("99999999999.999"), 12) == D("99999999999.999")
    with pytest.raises(InvalidInput, match="at most 99999999999.999"):
        check_read(D("100000000000"), 12)


@pytest.mark.parametrize("bad", ["NaN", "Infinity", "-Infinity", "sNaN", "1E+1000000"])
def test_consumption_refuses_values_that_are_not_reads(bad: str) -> None:
    from portal.billing_core.errors import InvalidInput

    with pytest.raises(InvalidInput):
        consumption(D(0), D(bad), 6)
    with pytest.raises(InvalidInput):
        consumption(D(bad), D(5), 6)
