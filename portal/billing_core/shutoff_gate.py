"""The one gate every shutoff order passes: the daily run, a supervisor's button and the
command line all call ``check`` (the staff button and the CLI through
``services.collections_policy.issue_shutoff_order``), and an order is written only
when it returns no refusal. Each refusal names the rule of California's Water Shutoff
Protection Act (Health and Safety Code 116900 ff.) or of the office's policy it applies.

``check`` is pure: it reads a ``Facts`` (what the office knows about the account on a
day) so a property test can drive it over random histories. ``facts_for`` reads those
facts from the database.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta

from .ladder_policy import STATUTE_DAYS_DELINQUENT, STATUTE_NOTICE_BUSINESS_DAYS, LadderPolicy

#: Every rule the gate applies, with what staff and the customer are told.
RULES: dict[str, str] = {
    "days_delinquent": "The bill has not been delinquent for at least 60 days.",
    "written_notice": "The written shutoff notice did not go out at least 7 business days before.",
    "door_tag": "The door tag the policy asks for was not left at least 48 (or 24) hours before.",
    "pending_dispute": "A bill dispute, an appeal or an investigation is pending.",
    "kept_plan": "A payment plan or an extension is being kept.",
    "business_day": "It is a weekend, a holiday or a day the office is closed.",
    "medical_certification": (
        "A primary care provider's certification is on file with a claim of financial inability and "
        "willingness to enter a payment plan: a plan must be offered instead."
    ),
    "nothing_past_due": "Nothing is past due (or less than the policy's minimum for a shutoff).",
    "on_hold": "A supervisor holds the account out of collections.",
    "not_in_service": "The account has no service that can be shut off.",
}


@dataclass(frozen=True)
class Facts:
    """What the office knows about an account on the day of a proposed shutoff."""

    #: The due date of the oldest bill still unpaid (None: nothing past due).
    oldest_unpaid_due: date | None
    past_due_cents: int
    #: When each written shutoff notice (the Act's notice, ``final_notice``) went out.
    shutoff_notices: tuple[date, ...] = ()
    #: When door tags were left (work orders done, or their notices), as dates.
    door_tags: tuple[date, ...] = ()
    pending_disputes: int = 0
    #: What the open disputes are about, in all (the dashboard shows it).
    disputed_cents: int = 0
    kept_plan: bool = False
    medical_certification: bool = False
    financial_inability: bool = False
    willing_to_plan: bool = False
    on_hold: bool = False
    has_shutoff_service: bool = True
    #: Days the office is closed besides weekends (state and federal holidays, closures).
    closed_days: frozenset[date] = field(default_factory=frozenset)


@dataclass(frozen=True)
class Refusal:
    rule: str

    @property
    def message(self) -> str:
        return RULES[self.rule]


def is_business_day(day: date, closed: Iterable[date] = ()) -> bool:
    return day.weekday() < 5 and day not in (closed if isinstance(closed, set | frozenset) else set(closed))


def business_days_between(start: date, end: date, closed: Iterable[date] = ()) -> int:
    """Business days after ``start`` up to and including ``end``."""
    closed = set(closed)
    count, day = 0, start
    while day < end:
        day += timedelta(days=1)
        if is_business_day(day, closed):
            count += 1
    return count


def door_tag_days(hours: int) -> int:
    """Whole days between a door tag's day and the shutoff's day so that at least ``hours``
    pass whatever the hour each happens (the facts know days, not times): the tag's day and
    the order's day do not count, so 24 hours needs 2 days (tag Monday, order Wednesday) and
    48 hours needs 3 (tag Monday, order Thursday)."""
    return -(-hours // 24) + 1


def notices_in_episode(facts: Facts, on: date) -> list[date]:
    """The written shutoff notices that count for this delinquency: sent on or after the
    oldest unpaid bill's due date (an older episode's notice does not), and not after ``on``."""
    due = facts.oldest_unpaid_due
    return sorted(d for d in facts.shutoff_notices if d <= on and (due is None or d >= due))


def check(
    facts: Facts, on: date, policy: LadderPolicy, door_tag_hours: int | None = None, minimum_cents: int = 0
) -> list[Refusal]:
    """Every rule a shutoff on ``on`` would break (empty: the order may be written).
    ``door_tag_hours``: the policy's door tag for this ladder (None or 0 when it asks for none);
    ``minimum_cents``: the ladder's smallest past-due amount worth a shutoff.

    The Act's floors hold whatever the policy says: a policy built in code below them (the
    stored ones cannot be, ``ladder_policy.check``) is read as the floor."""
    days_delinquent = max(policy.days_delinquent_before_shutoff, STATUTE_DAYS_DELINQUENT)
    notice_days = max(policy.notice_business_days, STATUTE_NOTICE_BUSINESS_DAYS)
    closed = frozenset(facts.closed_days)
    refusals: list[str] = []
    if facts.on_hold:
        refusals.append("on_hold")
    if not facts.has_shutoff_service:
        refusals.append("not_in_service")
    if facts.oldest_unpaid_due is None or facts.past_due_cents <= 0 or facts.past_due_cents < minimum_cents:
        refusals.append("nothing_past_due")
    elif (on - facts.oldest_unpaid_due).days < days_delinquent:
        refusals.append("days_delinquent")
    notices = notices_in_episode(facts, on)
    if not any(business_days_between(d, on, closed) >= notice_days for d in notices):
        refusals.append("written_notice")
    if door_tag_hours:
        gap = door_tag_days(door_tag_hours)
        since = notices[0] if notices else facts.oldest_unpaid_due
        if not any((on - d).days >= gap and (since is None or d >= since) for d in facts.door_tags):
            refusals.append("door_tag")
    if facts.pending_disputes > 0:
        refusals.append("pending_dispute")
    if facts.kept_plan:
        refusals.append("kept_plan")
    if not is_business_day(on, closed):
        refusals.append("business_day")
    if facts.medical_certification and facts.financial_inability and facts.willing_to_plan:
        refusals.append("medical_certification")
    return [Refusal(rule) for rule in refusals]


def explain(refusals: Iterable[Refusal]) -> str:
    """The refusals in plain words, one sentence each (for a message or an action list)."""
    return " ".join(r.message for r in refusals)
