"""The ladder's dates (``ladder.schedule``) agree with the shutoff gate: a shutoff on the
date the schedule gives, with the notice and the door tag left on theirs, passes every
rule of the gate, whatever the due date, the closures and the policy; and every step falls
on a business day."""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import date, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from portal.billing_core import holidays, ladder_policy
from portal.billing_core.ladder import schedule
from portal.billing_core.ladder_policy import DEFAULT, Step
from portal.billing_core.shutoff_gate import Facts, check, is_business_day

EXAMPLES = int(os.environ.get("PORTAL_GATE_EXAMPLES", "300"))


@settings(max_examples=max(50, EXAMPLES // 2), deadline=None)
@given(
    due=st.integers(0, 900).map(lambda i: date(2026, 1, 1) + timedelta(days=i)),
    extra=st.frozensets(st.integers(0, 1000).map(lambda i: date(2026, 1, 1) + timedelta(days=i)), max_size=15),
    hours=st.sampled_from([24, 48, 72]),
    final_day=st.integers(20, 58),
    days=st.sampled_from([60, 75]),
    notice_days=st.sampled_from([7, 10]),
    late=st.integers(0, 40),
)
def test_the_schedules_shutoff_date_passes_the_gate(
    due: date, extra: frozenset[date], hours: int, final_day: int, days: int, notice_days: int, late: int
) -> None:
    closed = holidays.around(due) | holidays.around(due + timedelta(days=365)) | extra
    base = DEFAULT.ladders[0]
    steps = tuple(
        Step("final_notice", final_day)
        if s.kind == "final_notice"
        else replace(s, hours_before=hours)
        if s.kind == "door_tag"
        else s
        for s in base.steps
    )
    policy = replace(
        DEFAULT,
        ladders=(replace(base, steps=steps),),
        days_delinquent_before_shutoff=days,
        notice_business_days=notice_days,
    )
    ladder = policy.ladders[0]
    # The run may be late (a step missed stays due until taken): ``today`` after the due date.
    today = due + timedelta(days=late)
    dated = {s.kind: s.on for s in schedule(ladder, policy, due, {}, closed, today=today)}
    assert all(is_business_day(d, closed) for d in dated.values())
    assert list(dated.values()) == sorted(dated.values())
    facts = Facts(
        oldest_unpaid_due=due,
        past_due_cents=10_000,
        shutoff_notices=(dated["final_notice"],),
        door_tags=(dated["door_tag"],),
        closed_days=frozenset(closed),
    )
    assert check(facts, dated["shutoff_order"], policy, hours, ladder.minimum_shutoff_cents) == []
    # The steps done on other days than planned: the shutoff moves so the gate still holds.
    done = {"final_notice": dated["final_notice"] + timedelta(days=3)}
    done["final_notice"] = next(
        d for d in (done["final_notice"] + timedelta(days=i) for i in range(10)) if is_business_day(d, closed)
    )
    again = {s.kind: s.on for s in schedule(ladder, policy, due, done, closed, today=today)}
    facts = replace(facts, shutoff_notices=(again["final_notice"],), door_tags=(again["door_tag"],))
    assert check(facts, again["shutoff_order"], policy, hours, ladder.minimum_shutoff_cents) == []


def test_default_dates_for_a_bill_due_before_thanksgiving() -> None:
    """Due Friday 2026-11-20: late fee Wednesday 11-25, past-due notice Monday 11-30, the
    written notice Monday 2027-01-04 (day 45), the 48-hour door tag Friday 01-15 and the
    shutoff order Tuesday 01-19 (day 60; MLK Day is the 18th)."""
    closed = holidays.around(date(2026, 11, 20))
    dated = [(s.kind, s.on) for s in schedule(DEFAULT.ladders[0], DEFAULT, date(2026, 11, 20), {}, closed)]
    assert dated == [
        ("late_fee", date(2026, 11, 25)),
        ("past_due_notice", date(2026, 11, 30)),
        ("final_notice", date(2027, 1, 4)),
        ("door_tag", date(2027, 1, 15)),
        ("shutoff_order", date(2027, 1, 19)),
    ]


def test_a_door_tag_left_late_pushes_the_shutoff() -> None:
    closed = holidays.around(date(2026, 11, 20))
    done = {"final_notice": date(2027, 1, 4), "door_tag": date(2027, 1, 18)}
    dated = {s.kind: s.on for s in schedule(DEFAULT.ladders[0], DEFAULT, date(2026, 11, 20), done, closed)}
    assert dated["shutoff_order"] == date(2027, 1, 21)  # 48 hours after the 18th's end: from the 21st


def test_describe_says_the_defaults_in_plain_words() -> None:
    words = ladder_policy.describe(DEFAULT)
    assert words[0] == (
        "A late fee of 1.5% of the past-due amount, at most $10.00, 5 days after the due date, "
        "when at least $10.00 is past due. Never on an amount in dispute."
    )
    assert "A door tag at the premises at least 48 hours before the shutoff." in words
    assert any(w.startswith("Reconnection costs $50.00 in business hours and $150.00 after hours") for w in words)
