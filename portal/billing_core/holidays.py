"""The weekdays a California water office is closed, from the maintained ``holidays``
package (https://pypi.org/project/holidays/) instead of a hand-written calendar: the
federal holidays (``holidays.US()``) together with California's (``holidays.US(subdiv="CA")``),
with the package's observed rules (a holiday on a Saturday is kept on the Friday before,
on a Sunday on the Monday after). The agency's own closures (``AgencyClosure`` rows) are
added by ``collection_facts.closed_days``.

Which days count (the package's lists, 2026 for example): New Year's Day, Martin Luther King
Jr. Day, Presidents' Day, Cesar Chavez Day (March 31), Memorial Day, Juneteenth,
Independence Day, Labor Day, Columbus Day (a federal holiday: banks are closed, so the
returns' banking days skip it too), Veterans Day, Thanksgiving and the day after
Thanksgiving (a California state holiday: a closure), Christmas Day, and the days the
package adds for California from their first year (Diwali from 2026; Susan B. Anthony Day,
February 15, when it falls on a weekday). Lincoln's Birthday (February 12) is not a closure:
California's state offices have stayed open on it since 2009 and the package does not
list it. Counting a day too many only moves a shutoff (or a return deadline) one business
day later, never earlier, so every day either list names is a closure.
"""

from __future__ import annotations

from datetime import date
from functools import cache

import holidays as _holidays


@cache
def california(year: int) -> frozenset[date]:
    """The weekdays of ``year`` on which the office is closed for a holiday (observed days
    included: New Year's Day 2028, a Saturday, closes Friday 2027-12-31, in 2027's list)."""
    federal = _holidays.US(years=year, observed=True)
    state = _holidays.US(subdiv="CA", years=year, observed=True)
    return frozenset(d for d in (*federal, *state) if d.year == year and d.weekday() < 5)


def names(year: int) -> dict[date, str]:
    """Each closure of ``california(year)`` with its name (for the staff closures page)."""
    federal = _holidays.US(years=year, observed=True)
    state = _holidays.US(subdiv="CA", years=year, observed=True)
    out: dict[date, str] = {}
    for d in sorted(california(year)):
        out[d] = state.get(d) or federal.get(d) or ""
    return out


def around(day: date) -> frozenset[date]:
    """The holidays of the year of ``day`` and the next (a shutoff date can cross New Year)."""
    return california(day.year) | california(day.year + 1)
