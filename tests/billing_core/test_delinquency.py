from datetime import date

import pytest

from portal.billing_core.delinquency import Policy, add_business_days, next_business_day, outlook

# 2026-11-23 is a Monday.
MON = date(2026, 11, 23)


@pytest.mark.parametrize(
    "start, days, expected",
    [
        (MON, 1, date(2026, 11, 24)),
        (MON, 5, date(2026, 11, 30)),  # over the weekend
        (date(2026, 11, 27), 1, date(2026, 11, 30)),  # Friday -> Monday
        (MON, 7, date(2026, 12, 2)),
    ],
)
def test_business_days_skip_weekends(start: date, days: int, expected: date) -> None:
    assert add_business_days(start, days) == expected


def test_holidays_are_not_business_days() -> None:
    thanksgiving = date(2026, 11, 26)
    assert add_business_days(MON, 3, {thanksgiving}) == date(2026, 11, 27)
    assert next_business_day(thanksgiving, {thanksgiving}) == date(2026, 11, 27)
    assert next_business_day(date(2026, 11, 28)) == date(2026, 11, 30)


@pytest.mark.parametrize(
    "balance, past_due, oldest, state, shutoff",
    [
        (0, 0, None, "paid_up", None),
        (-500, 0, None, "paid_up", None),
        (8000, 0, None, "due", None),
        # Late 10 days: the 60-day floor decides (2026-11-13 + 60 days = 2027-01-12, a Tuesday).
        (8000, 8000, date(2026, 11, 13), "past_due", date(2027, 1, 12)),
        # Late 90 days: the notice decides, 7 business days from today, not counting
        # Thanksgiving and the day after, when the office is closed.
        (8000, 8000, date(2026, 8, 25), "past_due", date(2026, 12, 4)),
        # The floor falls on a Saturday: the next Monday.
        (8000, 8000, date(2026, 11, 10), "past_due", date(2027, 1, 11)),
    ],
)
def test_outlook(balance: int, past_due: int, oldest: date | None, state: str, shutoff: date | None) -> None:
    result = outlook(balance, past_due, oldest, date(2026, 12, 10), MON)
    assert result.state == state
    assert result.earliest_shutoff == shutoff
    if shutoff:
        assert shutoff.weekday() < 5 and result.notice_first


def test_the_policy_is_data() -> None:
    strict = Policy(days_delinquent_before_shutoff=90, notice_business_days=10, max_plan_months=6)
    result = outlook(100, 100, date(2026, 11, 13), None, MON, strict)
    assert result.earliest_shutoff == date(2027, 2, 11) and result.max_plan_months == 6


def test_the_default_calendar_is_californias_with_observed_days() -> None:
    from portal.billing_core import holidays

    days = holidays.california(2026)
    assert date(2026, 7, 3) in days and date(2026, 7, 4) not in days  # Saturday: observed Friday
    assert {date(2026, 11, 26), date(2026, 11, 27), date(2026, 3, 31), date(2026, 1, 19)} <= days
    assert date(2027, 12, 31) in holidays.california(2027)  # New Year 2028 is a Saturday
    assert date(2027, 12, 31) in holidays.around(date(2027, 12, 20))
    assert date(2026, 10, 12) in days  # Columbus Day: federal, banks closed
    assert date(2026, 2, 12) not in days and date(2027, 2, 12) not in days  # Lincoln's Birthday: open
    assert date(2027, 10, 29) in holidays.california(2027)  # Diwali, a California holiday from 2026
    assert len(days) == 13


def test_no_shutoff_on_a_holiday() -> None:
    # The 60-day floor lands on Monday 2027-01-18, Martin Luther King Jr. Day: the next day.
    result = outlook(100, 100, date(2026, 11, 19), None, MON)
    assert result.earliest_shutoff == date(2027, 1, 19)
    assert outlook(100, 100, date(2026, 11, 19), None, MON, Policy(holidays=frozenset())).earliest_shutoff == date(
        2027, 1, 18
    )
