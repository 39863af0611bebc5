"""The days a California water office is closed besides weekends: the federal holidays,
California's own (Lincoln's Birthday is not observed by most local agencies; Cesar Chavez
Day and the day after Thanksgiving are), each moved to the nearest weekday when it falls
on a weekend (Saturday to Friday, Sunday to Monday). An office with another calendar
passes its own list to ``delinquency.Policy``."""

from __future__ import annotations

from datetime import date, timedelta
from functools import cache


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    """The n-th given weekday (Monday 0) of a month; n = -1 is the last."""
    if n > 0:
        first = date(year, month, 1)
        return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))
    last = date(year + (month == 12), month % 12 + 1, 1) - timedelta(days=1)
    return last - timedelta(days=(last.weekday() - weekday) % 7)


def _observed(day: date) -> date:
    if day.weekday() == 5:
        return day - timedelta(days=1)
    if day.weekday() == 6:
        return day + timedelta(days=1)
    return day


@cache
def california(year: int) -> frozenset[date]:
    thanksgiving = _nth_weekday(year, 11, 3, 4)
    fixed = [
        date(year, 1, 1),
        date(year, 3, 31),
        date(year, 6, 19),
        date(year, 7, 4),
        date(year, 11, 11),
        date(year, 12, 25),
    ]
    floating = [
        _nth_weekday(year, 1, 0, 3),  # Martin Luther King Jr. Day
        _nth_weekday(year, 2, 0, 3),  # Presidents' Day
        _nth_weekday(year, 5, 0, -1),  # Memorial Day
        _nth_weekday(year, 9, 0, 1),  # Labor Day
        _nth_weekday(year, 10, 0, 2),  # Columbus / Indigenous Peoples' Day
        thanksgiving,
        thanksgiving + timedelta(days=1),
    ]
    return frozenset([_observed(d) for d in fixed] + floating)


def around(day: date) -> frozenset[date]:
    """The holidays of the year of ``day`` and the next (a shutoff date can cross New Year)."""
    return california(day.year) | california(day.year + 1)
