"""The shutoff gate against California's Water Shutoff Protection Act: a table test for
every rule, and property tests over random account histories.

The properties check each rule from the raw history (bills, payments, notices, door tags,
disputes, plans, protections, the calendar), written here without the gate's code: (a) the
gate refuses exactly the rules the history breaks, so no order it allows breaks one; (b) for
every rule there are histories where that rule alone refuses.

``PORTAL_GATE_EXAMPLES`` sets how many random histories property (a) tries (300 by default,
a few seconds; run it with 20000 by hand); (b) tries a tenth of that per rule.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portal.billing_core import holidays
from portal.billing_core.ladder_policy import DEFAULT, LadderPolicy
from portal.billing_core.shutoff_gate import RULES, Facts, check, door_tag_days, explain

EXAMPLES = int(os.environ.get("PORTAL_GATE_EXAMPLES", "300"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PER_RULE = settings(max_examples=max(10, EXAMPLES // 10), deadline=None, suppress_health_check=[HealthCheck.too_slow])

PROTECTION_KINDS = ("medical_certification", "financial_inability", "willing_to_plan")


# --- A raw account history, and the rules read straight from it -------------------------------


@dataclass(frozen=True)
class History:
    on: date
    #: (due date, amount) of each bill, oldest first.
    bills: tuple[tuple[date, int], ...]
    #: Payments, applied to the oldest bill first.
    paid_cents: int = 0
    notices: tuple[date, ...] = ()
    tags: tuple[date, ...] = ()
    #: (opened on, decided on or None) of each dispute, appeal or investigation.
    disputes: tuple[tuple[date, date | None], ...] = ()
    #: (starts on, ended on or None) of each plan or extension.
    plans: tuple[tuple[date, date | None], ...] = ()
    #: kind -> (starts on, ends on or None) of each protection on file.
    protections: tuple[tuple[str, date, date | None], ...] = ()
    closures: frozenset[date] = field(default_factory=frozenset)
    on_hold: bool = False
    in_service: bool = True
    days_delinquent: int = 60
    notice_days: int = 7
    tag_hours: int | None = 48
    minimum_cents: int = 0


def _closed(h: History) -> frozenset[date]:
    return h.closures


def _unpaid(h: History) -> list[tuple[date, int]]:
    """The past-due bills (due before ``on``) still owing, oldest first, with what each owes."""
    left = h.paid_cents
    out = []
    for due, amount in sorted(h.bills):
        applied = min(left, amount)
        left -= applied
        if due < h.on and amount - applied > 0:
            out.append((due, amount - applied))
    return out


def _open_on(start: date, end: date | None, on: date) -> bool:
    return start <= on and (end is None or end > on)


def broken_rules(h: History) -> set[str]:
    """Each rule of the Act (and the office's) a shutoff order on ``h.on`` would break."""
    broken = set()
    unpaid = _unpaid(h)
    past_due = sum(owed for _, owed in unpaid)
    oldest = unpaid[0][0] if unpaid else None
    if h.on_hold:
        broken.add("on_hold")
    if not h.in_service:
        broken.add("not_in_service")
    if past_due <= 0 or past_due < h.minimum_cents:
        broken.add("nothing_past_due")
    elif oldest + timedelta(days=max(h.days_delinquent, 60)) > h.on:  # type: ignore[operator]
        broken.add("days_delinquent")
    # Written notice at least 7 business days before: count the business days it gives by
    # listing every day after the notice up to the shutoff's.
    closed = _closed(h)
    episode_notices = sorted(n for n in h.notices if n <= h.on and (oldest is None or n >= oldest))

    def business_days_given(n: date) -> int:
        days = [n + timedelta(days=i) for i in range(1, (h.on - n).days + 1)]
        return len([d for d in days if d.isoweekday() <= 5 and d not in closed])

    if not [n for n in episode_notices if business_days_given(n) >= max(h.notice_days, 7)]:
        broken.add("written_notice")
    if h.tag_hours:
        since = episode_notices[0] if episode_notices else oldest
        # The tag was left at some time on its day, the order is written at some time on its
        # day: the hours are certain only from the tag day's end to the order day's start.
        ok = [
            t
            for t in h.tags
            if (since is None or t >= since)
            and datetime.combine(t + timedelta(days=1), datetime.min.time()) + timedelta(hours=h.tag_hours)
            <= datetime.combine(h.on, datetime.min.time())
        ]
        if not ok:
            broken.add("door_tag")
    if any(_open_on(opened, decided, h.on) for opened, decided in h.disputes):
        broken.add("pending_dispute")
    if any(_open_on(start, end, h.on) for start, end in h.plans):
        broken.add("kept_plan")
    if h.on.isoweekday() > 5 or h.on in closed:
        broken.add("business_day")
    on_file = {kind for kind, start, end in h.protections if start <= h.on and (end is None or end >= h.on)}
    if set(PROTECTION_KINDS) <= on_file:
        broken.add("medical_certification")
    return broken


def facts_of(h: History) -> Facts:
    """What the office's tables would hold (as ``collection_facts`` reads them)."""
    unpaid = _unpaid(h)
    kinds = {kind for kind, start, end in h.protections if start <= h.on and (end is None or end >= h.on)}
    return Facts(
        oldest_unpaid_due=unpaid[0][0] if unpaid else None,
        past_due_cents=sum(o for _, o in unpaid),
        shutoff_notices=tuple(sorted(n for n in h.notices if n <= h.on)),
        door_tags=tuple(sorted(t for t in h.tags if t <= h.on)),
        pending_disputes=sum(1 for o, d in h.disputes if _open_on(o, d, h.on)),
        kept_plan=any(_open_on(s, e, h.on) for s, e in h.plans),
        medical_certification="medical_certification" in kinds,
        financial_inability="financial_inability" in kinds,
        willing_to_plan="willing_to_plan" in kinds,
        on_hold=h.on_hold,
        has_shutoff_service=h.in_service,
        closed_days=_closed(h),
    )


def gate(h: History) -> list[str]:
    policy = replace(DEFAULT, days_delinquent_before_shutoff=h.days_delinquent, notice_business_days=h.notice_days)
    return [r.rule for r in check(facts_of(h), h.on, policy, h.tag_hours, h.minimum_cents)]


# --- Histories ----------------------------------------------------------------------------

START = date(2026, 1, 1)


def _business_day_back(day: date, n: int, closed: frozenset[date]) -> date:
    """``n`` business days before ``day``."""
    while n > 0:
        day -= timedelta(days=1)
        if day.weekday() < 5 and day not in closed:
            n -= 1
    return day


@st.composite
def allowed_histories(draw: st.DrawFn) -> History:
    """A history built to satisfy every rule (a shutoff the Act allows)."""
    on = START + timedelta(days=draw(st.integers(200, 700)))
    real = holidays.around(on) | holidays.california(on.year - 1)
    extra = draw(st.frozensets(st.integers(-120, 0).map(lambda i: on + timedelta(days=i)), max_size=6))
    closures = frozenset(d for d in real | extra if d != on and d.weekday() < 5)
    while on.weekday() > 4 or on in closures:
        on += timedelta(days=1)
    days_delinquent = draw(st.sampled_from([60, 60, 75, 90]))
    notice_days = draw(st.sampled_from([7, 7, 10]))
    tag_hours = draw(st.sampled_from([None, 24, 48, 48, 72]))
    # The notice gives at least one business day more than asked (so closing ``on`` still
    # leaves enough: see the business_day rule below).
    notice = _business_day_back(on, notice_days + 1 + draw(st.integers(0, 8)), closures)
    oldest_due = on - timedelta(days=days_delinquent + draw(st.integers(0, 60)))
    more = draw(st.lists(st.integers(1, 120), max_size=3))
    bills = ((oldest_due, draw(st.integers(6_000, 40_000))),) + tuple(
        (oldest_due + timedelta(days=30 * (i + 1)), amount) for i, amount in enumerate(more)
    )
    paid = draw(st.integers(0, bills[0][1] - 5_001))
    tags: tuple[date, ...] = ()
    if tag_hours:
        latest = on - timedelta(days=door_tag_days(tag_hours))
        tags = (latest - timedelta(days=draw(st.integers(0, max(0, (latest - notice).days)))),)
    old_dispute = (oldest_due - timedelta(days=200), oldest_due - timedelta(days=100))
    ended_plan = (oldest_due - timedelta(days=90), on - timedelta(days=draw(st.integers(0, 30))))
    partial = draw(st.lists(st.sampled_from(PROTECTION_KINDS), max_size=2, unique=True))
    return History(
        on=on,
        bills=bills,
        paid_cents=paid,
        # An older episode's notice and tag (before the oldest unpaid due date) count for nothing.
        notices=(oldest_due - timedelta(days=30), notice),
        tags=(oldest_due - timedelta(days=20), *tags),
        disputes=(old_dispute,) if draw(st.booleans()) else (),
        plans=(ended_plan,) if draw(st.booleans()) else (),
        protections=tuple((k, oldest_due, None) for k in partial),
        closures=closures,
        days_delinquent=days_delinquent,
        notice_days=notice_days,
        tag_hours=tag_hours,
        minimum_cents=draw(st.sampled_from([0, 5_000])),
    )


def break_rule(h: History, rule: str, draw: st.DrawFn) -> History:
    """``h`` changed so that ``rule``, and only it, is broken."""
    notice = h.notices[-1] if h.notices else h.on - timedelta(days=20)
    if rule == "days_delinquent":
        # One unpaid bill, younger than the floor (but due before the notice).
        most = max(h.days_delinquent, 60) - 1
        young = h.on - timedelta(days=draw(st.integers(min(max((h.on - notice).days, 0), most), most)))
        return replace(h, bills=((young, h.bills[0][1]),), notices=(notice,), tags=h.tags[1:])
    if rule == "written_notice":
        how = draw(
            st.sampled_from(["none", "older episode", "too late"] if not h.tag_hours else ["none", "older episode"])
        )
        if how == "none":
            return replace(h, notices=())
        if how == "too late":
            late = _business_day_back(h.on, draw(st.integers(0, max(h.notice_days, 7) - 1)), h.closures)
            return replace(h, notices=(h.notices[0], late))
        return replace(h, notices=h.notices[:1])
    if rule == "door_tag":
        short = h.tag_hours or 48
        tags = () if draw(st.booleans()) else (h.on - timedelta(days=draw(st.integers(0, door_tag_days(short) - 1))),)
        return replace(h, tag_hours=short, tags=h.tags[:1] + tags)
    if rule == "pending_dispute":
        opened = h.on - timedelta(days=draw(st.integers(0, 90)))
        decided = draw(st.one_of(st.none(), st.integers(1, 30).map(lambda i: h.on + timedelta(days=i))))
        return replace(h, disputes=(*h.disputes, (opened, decided)))
    if rule == "kept_plan":
        start = h.on - timedelta(days=draw(st.integers(0, 60)))
        return replace(h, plans=(*h.plans, (start, None)))
    if rule == "business_day":
        return replace(h, closures=h.closures | {h.on})
    if rule == "medical_certification":
        return replace(h, protections=tuple((k, h.on - timedelta(days=5), None) for k in PROTECTION_KINDS))
    if rule == "nothing_past_due":
        if h.minimum_cents and draw(st.booleans()):
            bill = h.bills[0]
            return replace(h, bills=(bill,), paid_cents=bill[1] - draw(st.integers(1, h.minimum_cents - 1)))
        return replace(h, paid_cents=sum(a for _, a in h.bills))
    if rule == "on_hold":
        return replace(h, on_hold=True)
    if rule == "not_in_service":
        return replace(h, in_service=False)
    raise AssertionError(rule)


day_offsets = st.integers(0, 400).map(lambda i: START + timedelta(days=i))


@st.composite
def random_histories(draw: st.DrawFn) -> History:
    """Anything at all: dates drawn freely, so most orders are refused for several rules."""
    bills = tuple(sorted(draw(st.lists(st.tuples(day_offsets, st.integers(1, 30_000)), max_size=4))))
    return History(
        on=draw(day_offsets),
        bills=bills,
        paid_cents=draw(st.integers(0, sum(a for _, a in bills) + 100)),
        notices=tuple(draw(st.lists(day_offsets, max_size=3))),
        tags=tuple(draw(st.lists(day_offsets, max_size=3))),
        disputes=tuple(draw(st.lists(st.tuples(day_offsets, st.one_of(st.none(), day_offsets)), max_size=2))),
        plans=tuple(draw(st.lists(st.tuples(day_offsets, st.one_of(st.none(), day_offsets)), max_size=2))),
        protections=tuple(
            draw(st.lists(st.tuples(st.sampled_from(PROTECTION_KINDS), day_offsets, st.none() | day_offsets)))
        ),
        closures=draw(st.frozensets(day_offsets, max_size=20)) | holidays.california(2026),
        on_hold=draw(st.booleans()),
        in_service=draw(st.booleans()),
        days_delinquent=draw(st.sampled_from([60, 90, 30])),  # 30: a policy below the floor, read as 60
        notice_days=draw(st.sampled_from([7, 10, 3])),
        tag_hours=draw(st.sampled_from([None, 24, 48])),
        minimum_cents=draw(st.sampled_from([0, 5_000])),
    )


@st.composite
def mixed_histories(draw: st.DrawFn) -> History:
    """Half allowed histories with some rules broken, half free ones."""
    if draw(st.booleans()):
        return draw(random_histories())
    h = draw(allowed_histories())
    for rule in draw(st.lists(st.sampled_from(sorted(RULES)), max_size=3, unique=True)):
        if _unpaid(h):
            h = break_rule(h, rule, draw)
    return h


# --- Properties ---------------------------------------------------------------------------


@SETTINGS
@given(mixed_histories())
def test_the_gate_refuses_exactly_the_rules_a_history_breaks(h: History) -> None:
    """(a): an order the gate allows breaks no rule, and each refusal names a broken rule."""
    refused = gate(h)
    assert len(refused) == len(set(refused))
    assert set(refused) == broken_rules(h)


@settings(max_examples=max(30, EXAMPLES // 3), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(allowed_histories())
def test_a_history_that_keeps_every_rule_is_allowed(h: History) -> None:
    assert broken_rules(h) == set() and gate(h) == []


@pytest.mark.parametrize("rule", sorted(RULES))
@PER_RULE
@given(data=st.data())
def test_every_rule_can_block_on_its_own(rule: str, data: st.DataObject) -> None:
    """(b): for each rule, histories where it alone stands between the account and a shutoff."""
    h = data.draw(allowed_histories())
    broken = break_rule(h, rule, data.draw)
    assert broken_rules(broken) == {rule}
    assert gate(broken) == [rule]


# --- The table -----------------------------------------------------------------------------

# Monday 2027-01-25; the oldest unpaid bill was due 2026-11-20 (66 days before).
ON = date(2027, 1, 25)
DUE = date(2026, 11, 20)
CA = holidays.around(DUE) | holidays.around(ON)
OK = Facts(
    oldest_unpaid_due=DUE,
    past_due_cents=12_000,
    shutoff_notices=(date(2027, 1, 4),),
    door_tags=(date(2027, 1, 21),),
    closed_days=CA,
)


def refused(facts: Facts, on: date = ON, policy: LadderPolicy = DEFAULT, hours: int | None = 48, minimum: int = 0):
    return [r.rule for r in check(facts, on, policy, hours, minimum)]


def test_the_well_kept_case_is_allowed() -> None:
    assert refused(OK) == []


@pytest.mark.parametrize(
    "change, on, hours, minimum, rules",
    [
        # 60 days delinquent: 2026-11-26 + 60 = 2027-01-25.
        ({"oldest_unpaid_due": date(2026, 11, 26)}, ON, 48, 0, []),
        ({"oldest_unpaid_due": date(2026, 11, 27)}, ON, 48, 0, ["days_delinquent"]),
        # Written notice: 7 business days before; MLK Day (2027-01-18) does not count.
        ({"shutoff_notices": (date(2027, 1, 13),)}, ON, 24, 0, []),
        ({"shutoff_notices": (date(2027, 1, 14),)}, ON, 24, 0, ["written_notice"]),
        ({"shutoff_notices": ()}, ON, 48, 0, ["written_notice"]),
        # A notice of an older delinquency (before the oldest unpaid due date) does not count.
        ({"shutoff_notices": (date(2026, 10, 1),), "door_tags": (date(2027, 1, 21),)}, ON, 48, 0, ["written_notice"]),
        # Door tag 48 hours: left Thursday for Monday is fine, Friday for Monday is not (from
        # Friday's end to Monday's start is 48 hours: that is enough), Saturday is not.
        ({"door_tags": (date(2027, 1, 22),)}, ON, 48, 0, []),
        ({"door_tags": (date(2027, 1, 23),)}, ON, 48, 0, ["door_tag"]),
        ({"door_tags": (date(2027, 1, 23),)}, ON, 24, 0, []),
        ({"door_tags": (date(2027, 1, 24),)}, ON, 24, 0, ["door_tag"]),
        ({"door_tags": ()}, ON, 48, 0, ["door_tag"]),
        ({"door_tags": ()}, ON, None, 0, []),
        # A tag left before the written notice is not a warning of this shutoff.
        ({"door_tags": (date(2027, 1, 1),)}, ON, 48, 0, ["door_tag"]),
        ({"pending_disputes": 1}, ON, 48, 0, ["pending_dispute"]),
        ({"kept_plan": True}, ON, 48, 0, ["kept_plan"]),
        # Weekend, holiday (2027-02-15 is Presidents' Day), agency closure.
        ({}, date(2027, 1, 30), 48, 0, ["business_day"]),
        ({}, date(2027, 2, 15), 48, 0, ["business_day"]),
        ({"closed_days": CA | {ON}}, ON, 48, 0, ["business_day"]),
        # The medical certification blocks only with financial inability and willingness to plan.
        (
            {"medical_certification": True, "financial_inability": True, "willing_to_plan": True},
            ON,
            48,
            0,
            ["medical_certification"],
        ),
        ({"medical_certification": True, "financial_inability": True}, ON, 48, 0, []),
        ({"medical_certification": True, "willing_to_plan": True}, ON, 48, 0, []),
        ({"oldest_unpaid_due": None, "past_due_cents": 0}, ON, 48, 0, ["nothing_past_due"]),
        ({"past_due_cents": 4_999}, ON, 48, 5_000, ["nothing_past_due"]),
        ({"on_hold": True}, ON, 48, 0, ["on_hold"]),
        ({"has_shutoff_service": False}, ON, 48, 0, ["not_in_service"]),
        # Several at once, each named.
        ({"pending_disputes": 2, "kept_plan": True, "shutoff_notices": ()}, ON, 48, 0, None),
    ],
)
def test_each_rule(change: dict, on: date, hours: int | None, minimum: int, rules: list[str] | None) -> None:
    got = refused(replace(OK, **change), on, hours=hours, minimum=minimum)
    if rules is None:
        assert got == ["written_notice", "pending_dispute", "kept_plan"]
    else:
        assert got == rules


def test_the_thanksgiving_closures_count() -> None:
    """Notice on Monday 2026-11-23: Thanksgiving and the day after are closures, so the 7th
    business day is Friday 2026-12-04, not Wednesday 2026-12-02."""
    facts = replace(OK, oldest_unpaid_due=date(2026, 9, 1), shutoff_notices=(date(2026, 11, 23),), door_tags=())
    assert refused(facts, date(2026, 12, 3), hours=None) == ["written_notice"]
    assert refused(facts, date(2026, 12, 4), hours=None) == []


def test_a_policy_below_the_acts_floors_is_read_as_the_floor() -> None:
    loose = replace(DEFAULT, days_delinquent_before_shutoff=30, notice_business_days=2)
    facts = replace(OK, oldest_unpaid_due=date(2026, 12, 20), shutoff_notices=(date(2027, 1, 20),), door_tags=())
    assert refused(facts, policy=loose, hours=None) == ["days_delinquent", "written_notice"]


def test_a_stricter_policy_is_followed() -> None:
    strict = replace(DEFAULT, days_delinquent_before_shutoff=90, notice_business_days=15)
    assert refused(OK, policy=strict) == ["days_delinquent", "written_notice"]


def test_every_refusal_is_explained_in_plain_words() -> None:
    facts = replace(OK, pending_disputes=1, kept_plan=True)
    text = explain(check(facts, ON, DEFAULT, 48))
    assert text == RULES["pending_dispute"] + " " + RULES["kept_plan"]
    assert all(message.endswith(".") for message in RULES.values())


def test_door_tag_days() -> None:
    assert [door_tag_days(h) for h in (24, 48, 72, 36)] == [2, 3, 4, 3]
