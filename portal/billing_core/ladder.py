"""When each step of the ladder falls for one unpaid bill: the dates the daily run acts on
and the resident dashboard shows, from one function so the two can never disagree.

Every step falls on a business day (a step whose day is a weekend or holiday moves to the
next business day). The shutoff order falls on the first business day that is at least
the policy's days delinquent after the due date (60 by the Act), at least its day in the
ladder, and at least the notice period (7 business days by the Act) after the written
shutoff notice (the final notice) went out, or would go out if it has not yet; the door
tag falls the policy's 48 or 24 hours before that day, never before the final notice.
Hours are counted from the end of the tag's day to the start of the order's day
(``shutoff_gate.door_tag_days``: a 48-hour tag three days before, a 24-hour tag two), since
the office knows the day a tag was left, not the hour.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta

from .ladder_policy import STATUTE_DAYS_DELINQUENT, STATUTE_NOTICE_BUSINESS_DAYS, Ladder, LadderPolicy
from .shutoff_gate import business_days_between, door_tag_days, is_business_day


@dataclass(frozen=True)
class DatedStep:
    kind: str
    on: date
    #: Already done (the date is when it was), or still to come.
    done: bool = False


def next_business_day(day: date, closed: Iterable[date] = ()) -> date:
    closed = set(closed)
    while not is_business_day(day, closed):
        day += timedelta(days=1)
    return day


def earliest_shutoff(
    ladder: Ladder, policy: LadderPolicy, due_on: date, notice_on: date, closed: Iterable[date] = ()
) -> date:
    """The first day a shutoff could be ordered for a bill due ``due_on`` whose written
    notice went (or goes) out on ``notice_on``."""
    closed = frozenset(closed)
    step = ladder.step("shutoff_order")
    days = max(policy.days_delinquent_before_shutoff, STATUTE_DAYS_DELINQUENT, step.day if step else 0)
    notice_days = max(policy.notice_business_days, STATUTE_NOTICE_BUSINESS_DAYS)
    day = next_business_day(due_on + timedelta(days=days), closed)
    while business_days_between(notice_on, day, closed) < notice_days:
        day = next_business_day(day + timedelta(days=1), closed)
    return day


def schedule(
    ladder: Ladder,
    policy: LadderPolicy,
    due_on: date,
    done: Mapping[str, date],
    closed: Iterable[date] = (),
    today: date | None = None,
) -> list[DatedStep]:
    """Each step of ``ladder`` for a bill due ``due_on``, in order: the ones in ``done``
    (step kind to the day it happened) on their day, the rest on the day they fall (never
    before ``today`` when given: a step missed stays due until it is taken)."""
    closed = frozenset(closed)
    out: list[DatedStep] = []

    def when(day: date) -> date:
        day = next_business_day(day, closed)
        if today is not None and day < today:
            day = next_business_day(today, closed)
        return day

    notice_on: date | None = None
    for step in ladder.steps:
        if step.kind in ("door_tag", "shutoff_order"):
            continue
        if step.kind == "late_fee" and ladder.late_fee is None:
            continue
        on = done.get(step.kind) or when(due_on + timedelta(days=step.day))
        out.append(DatedStep(step.kind, on, step.kind in done))
        if step.kind == "final_notice":
            notice_on = on
    if ladder.step("shutoff_order") is None or notice_on is None:
        return out
    shutoff_on = done.get("shutoff_order") or earliest_shutoff(ladder, policy, due_on, notice_on, closed)
    if today is not None and "shutoff_order" not in done and shutoff_on < today:
        shutoff_on = next_business_day(today, closed)
    tag = ladder.step("door_tag")
    if tag is not None:
        gap = door_tag_days(tag.hours_before or 48)
        tag_on = done.get("door_tag")
        if tag_on is None:
            tag_on = shutoff_on - timedelta(days=gap)
            while not is_business_day(tag_on, closed) and tag_on > notice_on:
                tag_on -= timedelta(days=1)
            tag_on = max(tag_on, notice_on + timedelta(days=1))
            tag_on = next_business_day(tag_on, closed)
            if today is not None and tag_on < today:
                tag_on = next_business_day(today, closed)
        if (shutoff_on - tag_on).days < gap and "shutoff_order" not in done:
            # The tag (left, or to be left) pushes the shutoff out so the customer gets the full hours.
            shutoff_on = next_business_day(tag_on + timedelta(days=gap), closed)
        out.append(DatedStep("door_tag", tag_on, "door_tag" in done))
    out.append(DatedStep("shutoff_order", shutoff_on, "shutoff_order" in done))
    return out


def final_schedule(
    ladder: Ladder, final_due_on: date, done: Mapping[str, date], closed: Iterable[date] = ()
) -> list[DatedStep]:
    """The final-account steps for a final bill due ``final_due_on``."""
    closed = frozenset(closed)
    return [
        DatedStep(
            s.kind, done.get(s.kind) or next_business_day(final_due_on + timedelta(days=s.day), closed), s.kind in done
        )
        for s in ladder.final_steps
    ]
