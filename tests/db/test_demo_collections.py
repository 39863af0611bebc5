"""The issue's "done when": 120 simulated days of a demo district (``portal.demo``, its own
copy, both databases) through the daily run, with field staff working the orders it makes:
late fees, notices, door tags, shutoffs and a reconnection. The accounts current on the
first day pay each bill the day it falls past due; the ones already past due never pay,
except one, which pays in full two days after its water is shut off. Every day: the run
posts; field staff leave the door tags and do the shutoffs and reconnections due. Checked:
each step once per episode, on a business day, in the ladder's order; every shutoff order
passes the gate on its day; the resident's dashboard promised the very day the shutoff
came; the payers never see a fee or a notice; the ledger checks out."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from portal.adapters.database import make_engine
from portal.billing_core import (
    accounts,
    collection_facts,
    collection_run,
    field_orders,
    ladder_policy,
    ledger_check,
    payments,
    shutoff_gate,
)
from portal.billing_core.models import Account, CollectionAction, User, WorkOrder
from portal.services import customers

from ..conftest import DIALECTS, fresh_database

START = date(2026, 11, 23)
DAYS = 120


def _moment(day: date, hour: int) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def _work_orders(session: Session, field: User, day: date) -> dict[str, int]:
    """Field staff do every open door tag, shutoff and reconnection due by ``day``."""
    done: dict[str, int] = defaultdict(int)
    for order in session.scalars(
        select(WorkOrder).where(WorkOrder.status == "open", WorkOrder.due_on <= day).order_by(WorkOrder.id)
    ).all():
        read = Decimal("1234") if order.kind in ("shutoff", "reconnect") else None
        field_orders.complete(
            session,
            field,
            order,
            field_orders.Completion(_moment(day, 18), read, f"L{order.id}" if order.kind != "reconnect" else None),
            _moment(day, 18),
        )
        done[order.kind] += 1
    return done


@pytest.mark.parametrize("kind", DIALECTS)
def test_120_days_of_the_demo_district(kind: str, templates: dict[str, str], tmp_path: Path) -> None:
    from portal.demo import build_demo

    url, drop = fresh_database(kind, templates, tmp_path)
    engine = make_engine(url)
    try:
        build_demo(engine, accounts=40, seed=11, progress=False, today=START - timedelta(days=1))
        with sessionmaker(engine)() as session, session.begin():
            _simulate(session)
    finally:
        engine.dispose()
        drop()  # type: ignore[operator]


def _simulate(session: Session) -> None:
    policy = ladder_policy.DEFAULT
    boss = session.scalar(select(User).where(User.email == "supervisor@demo.example"))
    field = session.scalar(select(User).where(User.email == "field@demo.example"))
    assert boss is not None and field is not None
    every = session.scalars(select(Account).where(Account.status == "active").order_by(Account.id)).all()
    facts = collection_facts.facts_for_many(session, [a.id for a in every], START)
    late = [a for a in every if facts[a.id].past_due_cents > 0]
    payers = [a for a in every if facts[a.id].past_due_cents <= 0]
    assert late and payers
    by_id = {a.id: a for a in every}
    closed = collection_facts.closed_days(session, START) | collection_facts.closed_days(
        session, START + timedelta(days=DAYS)
    )
    promised: dict[int, date | None] = {}
    came: dict[int, tuple[date, date | None]] = {}
    payer_after_shutoff: int | None = None
    paid_on: date | None = None
    worked: dict[str, int] = defaultdict(int)

    for n in range(DAYS):
        day = START + timedelta(days=n)
        # The payers settle what fell past due; the chosen late account pays after its shutoff.
        owed = collection_facts.facts_for_many(session, [a.id for a in payers], day)
        paying = [a for a in payers if owed[a.id].past_due_cents > 0]
        if payer_after_shutoff is not None and paid_on is None:
            shut = session.scalar(
                select(WorkOrder).where(
                    WorkOrder.account_id == payer_after_shutoff, WorkOrder.kind == "shutoff", WorkOrder.status == "done"
                )
            )
            if shut is not None and shut.completed_at.date() + timedelta(days=2) == day:
                paying.append(by_id[payer_after_shutoff])
                paid_on = day
        for account in paying:
            cents = accounts.summarise(session, account, day).balance_cents
            if cents > 0:
                payments.post_received(
                    session,
                    [payments.Received(account.id, cents, "check", "mailed check")],
                    day,
                    _moment(day, 10),
                )
        session.flush()
        # What each late resident's dashboard says the shutoff day is, before today's run.
        for account in late:
            outlook = customers.outlook_for(session, accounts.summarise(session, account, day), day)
            promised[account.id] = outlook.earliest_shutoff
        before = {a.id: promised[a.id] for a in late}
        collection_run.run_day(session, day, _moment(day, 6), post=True, actor=boss, policy=policy)
        session.flush()
        for action in session.scalars(
            select(CollectionAction).where(
                CollectionAction.step == "shutoff_order",
                CollectionAction.status == "posted",
                CollectionAction.posted_on == day,
            )
        ).all():
            gate_facts = collection_facts.facts_for(session, action.account_id, day)
            assert shutoff_gate.check(gate_facts, day, policy, 48, 0) == [], action.account_id
            came[action.account_id] = (day, before.get(action.account_id))
            if payer_after_shutoff is None:
                payer_after_shutoff = action.account_id
        for kind_, count in _work_orders(session, field, day).items():
            worked[kind_] += count
        session.flush()

    posted = session.scalars(select(CollectionAction).where(CollectionAction.status == "posted")).all()
    steps: dict[tuple[int, str], dict[str, list[date]]] = defaultdict(lambda: defaultdict(list))
    for a in posted:
        assert a.posted_on is not None and shutoff_gate.is_business_day(a.posted_on, closed), (a.step, a.posted_on)
        steps[(a.account_id, a.episode)][a.step].append(a.posted_on)
    order = list(ladder_policy.STEP_KINDS)
    for (account_id, _episode), by_step in steps.items():
        for step, days in by_step.items():
            assert len(days) == 1, (account_id, step, days)  # once per episode
        dated = sorted((days[0], order.index(s) if s in order else 99) for s, days in by_step.items())
        assert [i for _, i in dated] == sorted(i for _, i in dated), (account_id, dated)  # the ladder's order
    payer_ids = {p.id for p in payers}
    assert not [a for a in posted if a.account_id in payer_ids], "a payer got a fee or a notice"
    # The resident was told the day the shutoff came (the day before, from the dashboard).
    assert came, "no shutoff in 120 days"
    for account_id, (day, told) in came.items():
        assert told == day, (account_id, day, told)
    assert worked["door_tag"] >= 1 and worked["shutoff"] >= 1 and worked["reconnect"] == 1, dict(worked)
    kinds = defaultdict(int)
    for a in posted:
        kinds[a.step] += 1
    assert kinds["late_fee"] >= 1 and kinds["past_due_notice"] >= 1 and kinds["final_notice"] >= 1, dict(kinds)
    assert ledger_check.run(session) == []
    print(f"late {len(late)}, payers {len(payers)}, actions {dict(kinds)}, field work {dict(worked)}, shutoffs {came}")
