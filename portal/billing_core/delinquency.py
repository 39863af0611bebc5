"""What happens when a bill is not paid: the dates the law and the office's policy set.

The default policy is California's Water Shutoff Protection Act (Health and Safety Code
116900 ff.): no shutoff for nonpayment until a bill is at least 60 days delinquent, and
only after a written notice at least 7 business days before; none while an appeal or a
payment plan is kept; none on weekends or holidays. These are floors: the earliest date
service *could* be shut off, never a promise that it will be.

The dates come from the ladder (``ladder.schedule``), the same function the daily run acts
on, so the dashboard can never promise a date the run does not keep.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, timedelta

from . import holidays, ladder_policy
from .ladder import DatedStep, schedule
from .ladder_policy import Ladder, LadderPolicy


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


#: The protections the dashboard names, in the order it names them.
PROTECTIONS = ("medical_certification", "pending_dispute", "kept_plan")


@dataclass(frozen=True)
class Outlook:
    """What the resident is told on their dashboard: the ladder's own dates."""

    #: "paid_up", "due" (a balance not yet late) or "past_due".
    state: str
    due_date: date | None
    past_due_since: date | None
    #: The earliest day service could be shut off for nonpayment, if nothing changes (the
    #: ladder's shutoff order date); None when the ladder or the account has no shutoff.
    earliest_shutoff: date | None
    #: Whether the written notice must still come first (it always does before a shutoff).
    notice_first: bool
    max_plan_months: int
    #: The ladder's steps by kind (``ladder.DatedStep``: the day, done or to come).
    steps: Mapping[str, DatedStep] = field(default_factory=dict)
    #: The late fee: what was charged (done) or what would be, on today's past-due amount.
    late_fee_cents: int = 0
    #: What protects the account from a shutoff now (``PROTECTIONS``).
    protections: tuple[str, ...] = ()

    def step(self, kind: str) -> DatedStep | None:
        return self.steps.get(kind)


def _ladder_policy(policy: Policy) -> LadderPolicy:
    return replace(
        ladder_policy.DEFAULT,
        days_delinquent_before_shutoff=policy.days_delinquent_before_shutoff,
        notice_business_days=policy.notice_business_days,
        max_plan_months=policy.max_plan_months,
    )


def outlook(
    balance_cents: int,
    past_due_cents: int,
    oldest_past_due: date | None,
    due_date: date | None,
    as_of: date,
    policy: Policy = DEFAULT,
    *,
    ladder: Ladder | None = None,
    rules: LadderPolicy | None = None,
    done: Mapping[str, date] | None = None,
    late_fee_charged_cents: int | None = None,
    disputed_cents: int = 0,
    customer_class: str = "*",
    can_shut_off: bool = True,
    protections: Iterable[str] = (),
) -> Outlook:
    """Where an account stands and what happens next, as of a date, from the ladder
    (``ladder.schedule``, the same dates the daily run acts on): ``rules`` the policy
    version in force (default: ``ladder_policy.DEFAULT`` with ``policy``'s floors),
    ``ladder`` the account's, ``done`` the steps already taken in this delinquency (kind
    to day), ``policy.closed_days`` the closures."""
    rules = rules or _ladder_policy(policy)
    ladder = ladder or rules.ladder_for("water", customer_class)
    months = rules.max_plan_months
    shown = tuple(p for p in PROTECTIONS if p in set(protections))
    if balance_cents <= 0:
        return Outlook("paid_up", None, None, None, False, months)
    closed = policy.closed_days(as_of)
    fee = ladder.late_fee
    exempt = fee is None or customer_class in fee.exempt_classes
    if past_due_cents <= 0 or oldest_past_due is None:
        if due_date is None:
            return Outlook("due", due_date, None, None, False, months)
        steps = {s.kind: s for s in schedule(ladder, rules, due_date, {}, closed, today=as_of)}
        cents = 0 if exempt or fee is None else fee.amount(balance_cents - disputed_cents)
        steps = {k: v for k, v in steps.items() if k == "late_fee" and cents}
        return Outlook("due", due_date, None, None, False, months, steps, cents, shown)
    done = dict(done or {})
    steps = {s.kind: s for s in schedule(ladder, rules, oldest_past_due, done, closed, today=as_of)}
    if "late_fee" in done:
        cents = late_fee_charged_cents or 0
    else:
        cents = 0 if exempt or fee is None else fee.amount(past_due_cents - disputed_cents)
    if not cents and "late_fee" in steps:
        del steps["late_fee"]
    shutoff = steps.get("shutoff_order")
    earliest = shutoff.on if shutoff is not None and can_shut_off else None
    if not can_shut_off:
        steps = {k: v for k, v in steps.items() if k not in ("door_tag", "shutoff_order")}
    return Outlook("past_due", due_date, oldest_past_due, earliest, True, months, steps, cents, shown)
