"""What happens when a bill is not paid: the dates the law and the office's policy set.

The default policy is California's Water Shutoff Protection Act (Health and Safety Code
116900 ff.): no shutoff for nonpayment until a bill is at least 60 days delinquent, and
only after a written notice at least 7 business days before; none while an appeal or a
payment plan is kept; none on weekends or holidays. These are floors: the earliest date
service *could* be shut off, never a promise that it will be.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta

from . import holidays


@dataclass(frozen=True)
class Policy:
    #: Days a bill must be delinquent before service may be shut off for nonpayment.
    days_delinquent_before_shutoff: int = 60
    #: Business days between the written shutoff notice and the earliest shutoff.
    notice_business_days: int = 7
    #: Longest payment plan the office offers, in months.
    max_plan_months: int = 12
    #: Days the office is closed besides weekends (no shutoffs then); None: California's
    #: state and federal holidays (``billing_core/holidays.py``).
    holidays: frozenset[date] | None = None

    def closed_days(self, as_of: date) -> frozenset[date]:
        return self.holidays if self.holidays is not None else holidays.around(as_of)


DEFAULT = Policy()


def is_business_day(day: date, holidays: Iterable[date] = ()) -> bool:
    return day.weekday() < 5 and day not in set(holidays)


def add_business_days(start: date, days: int, holidays: Iterable[date] = ()) -> date:
    closed = set(holidays)
    day = start
    while days > 0:
        day += timedelta(days=1)
        if is_business_day(day, closed):
            days -= 1
    return day


def next_business_day(day: date, holidays: Iterable[date] = ()) -> date:
    closed = set(holidays)
    while not is_business_day(day, closed):
        day += timedelta(days=1)
    return day


@dataclass(frozen=True)
class Outlook:
    """What the resident is told on their dashboard."""

    #: "paid_up", "due" (a balance not yet late) or "past_due".
    state: str
    due_date: date | None
    past_due_since: date | None
    #: The earliest day service could be shut off for nonpayment, if nothing changes.
    earliest_shutoff: date | None
    #: Whether the written notice must still come first (it always does before a shutoff).
    notice_first: bool
    max_plan_months: int


def outlook(
    balance_cents: int,
    past_due_cents: int,
    oldest_past_due: date | None,
    due_date: date | None,
    as_of: date,
    policy: Policy = DEFAULT,
) -> Outlook:
    """Where an account stands and what could happen next, as of a date."""
    if balance_cents <= 0:
        return Outlook("paid_up", None, None, None, False, policy.max_plan_months)
    if past_due_cents <= 0 or oldest_past_due is None:
        return Outlook("due", due_date, None, None, False, policy.max_plan_months)
    # 60 days delinquent, and 7 business days after a notice that has not gone out yet
    # (a notice sent today is the soonest), on a business day.
    by_age = oldest_past_due + timedelta(days=policy.days_delinquent_before_shutoff)
    closed = policy.closed_days(as_of)
    by_notice = add_business_days(as_of, policy.notice_business_days, closed)
    earliest = next_business_day(max(by_age, by_notice), closed)
    return Outlook("past_due", due_date, oldest_past_due, earliest, True, policy.max_plan_months)
