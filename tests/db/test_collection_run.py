"""The daily delinquency run (``billing_core/collection_run.py``), on SQLite and PostgreSQL:
the ladder's steps each once, preview before post, two workers at once, holds, disputes,
payments stopping the ladder, final accounts."""

from __future__ import annotations

import threading
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from portal.billing_core import collection_run, ladder_policy, ledger, ledger_check
from portal.billing_core.errors import FieldErrors, NotAllowed
from portal.billing_core.models import (
    CollectionAction,
    CollectionHold,
    CollectionReferral,
    CollectionRun,
    Dispute,
    LedgerEntry,
    LedgerTransaction,
    Notice,
    WorkOrder,
    WriteOff,
)
from portal.services import collections as service

from .collection_helpers import actions, bill, complete_door_tags, moment, notices, pay, user
from .factories import district

POLICY = ladder_policy.DEFAULT
BILLED = date(2026, 3, 2)  # due 2026-03-23 (a Monday)


def _run(session: Session, on: date, post: bool = True, actor=None) -> collection_run.ChunkResult:  # type: ignore[no-untyped-def]
    return collection_run.run_day(session, on, moment(on, 6), post=post, actor=actor, policy=POLICY)


def _days(start: date, end: date):  # type: ignore[no-untyped-def]
    day = start
    while day <= end:
        yield day
        day += timedelta(days=1)


def _steps(session: Session, account) -> dict[str, CollectionAction]:  # type: ignore[no-untyped-def]
    return {a.step: a for a in actions(session, account)}


def test_the_ladder_walks_once_each_step_on_business_days(session: Session) -> None:
    (account,) = district(session, 1)
    boss = user(session)
    b = bill(session, account, BILLED, 12_000)
    for day in _days(b.due_date, b.due_date + timedelta(days=75)):
        _run(session, day, actor=boss)
        complete_door_tags(session, day)
    steps = _steps(session, account)
    assert set(steps) == set(ladder_policy.STEP_KINDS)
    assert all(a.status == "posted" and a.episode == f"bill:{b.id}" for a in steps.values())
    days = [steps[k].posted_on for k in ladder_policy.STEP_KINDS]
    assert days == sorted(days) and all(d is not None and d.weekday() < 5 for d in days)
    assert (steps["late_fee"].posted_on - b.due_date).days >= 5
    assert (steps["shutoff_order"].posted_on - b.due_date).days >= 60
    # The fee: 1.5 % of $120.00, under the $10 cap, posted once to the late-fee revenue.
    fee = session.get(LedgerTransaction, steps["late_fee"].ledger_transaction_id)
    assert fee is not None and fee.kind == "fee"
    assert {(e.gl_account, e.amount_cents) for e in fee.entries} == {
        (ledger.receivable(ledger.FEES), 180),
        (collection_run.LATE_FEE_REVENUE, -180),
    }
    assert (
        session.scalar(select(func.count()).select_from(LedgerTransaction).where(LedgerTransaction.kind == "fee")) == 1
    )
    kinds = [n.kind for n in notices(session, account)]
    assert kinds == ["past_due", "final", "door_tag"]
    orders = list(session.scalars(select(WorkOrder).order_by(WorkOrder.id)))
    assert [o.kind for o in orders] == ["door_tag", "shutoff"]
    assert steps["shutoff_order"].work_order_id == orders[1].id
    final = next(n for n in notices(session, account) if n.kind == "final")
    assert final.shutoff_on is not None and final.shutoff_on <= steps["shutoff_order"].posted_on
    assert ledger_check.run(session) == []


def test_preview_posts_nothing_and_post_posts_once(session: Session) -> None:
    accounts = district(session, 3)
    boss = user(session)
    for a in accounts:
        bill(session, a, BILLED, 9_000)
    on = date(2026, 3, 30)  # 7 days late: the late fee is due
    result = _run(session, on, post=False)
    assert result.planned["late_fee"] == 3
    assert [a.status for a in actions(session)] == ["planned"] * 3
    assert (
        session.scalar(select(func.count()).select_from(LedgerTransaction).where(LedgerTransaction.kind == "fee")) == 0
    )
    run = session.scalar(select(CollectionRun).where(CollectionRun.run_on == on))
    assert run is not None and (run.status, run.actions_planned) == ("previewed", 3)
    posted = _run(session, on, actor=boss)
    assert posted.posted["late_fee"] == 3 and posted.fees_cents == 3 * 135
    again = _run(session, on, actor=boss)
    assert sum(again.posted.values()) == 0
    assert (
        session.scalar(select(func.count()).select_from(LedgerTransaction).where(LedgerTransaction.kind == "fee")) == 3
    )
    assert run.status == "posted" and run.actions_posted == 3


def test_a_payment_stops_the_ladder(session: Session) -> None:
    a, b = district(session, 2)
    first, second = bill(session, a, BILLED, 9_000), bill(session, b, BILLED, 9_000)
    boss = user(session)
    _run(session, date(2026, 3, 30), actor=boss)
    pay(session, a, 9_000 + 135, date(2026, 4, 1))
    _run(session, date(2026, 3, 31), post=False)  # a preview the day before is settled too
    for day in _days(date(2026, 4, 1), date(2026, 4, 10)):
        _run(session, day, actor=boss)
    assert set(_steps(session, a)) == {"late_fee"}
    assert set(_steps(session, b)) == {"late_fee", "past_due_notice"}
    assert first.id and second.id


def test_two_workers_at_once_post_each_step_once(sessions: sessionmaker[Session]) -> None:
    with sessions() as session, session.begin():
        accounts = district(session, 30)
        for a in accounts:
            bill(session, a, BILLED, 20_000)
        boss_id = user(session).id
    on = date(2026, 4, 2)  # late fee (day 5) and past-due notice (day 10) both due
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def worker() -> None:
        try:
            barrier.wait()
            with sessions() as session, session.begin():
                from portal.billing_core.models import User

                collection_run.run_day(
                    session, on, moment(on, 6), post=True, actor=session.get(User, boss_id), policy=POLICY, chunk=7
                )
        except BaseException as exc:  # pragma: no cover - shown below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    with sessions() as session:
        fees = session.scalar(
            select(func.count()).select_from(LedgerTransaction).where(LedgerTransaction.kind == "fee")
        )
        assert fees == 30
        assert session.scalar(select(func.count()).select_from(Notice)) == 30
        by_status = dict(
            session.execute(select(CollectionAction.status, func.count()).group_by(CollectionAction.status)).all()
        )
        assert by_status == {"posted": 60}


def test_a_hold_keeps_the_account_out_until_released(sessions: sessionmaker[Session]) -> None:
    with sessions() as session, session.begin():
        (account,) = district(session, 1)
        bill(session, account, BILLED, 9_000)
        boss = user(session)
        clerk = user(session, "specialist")
        session.expunge_all()
    on = date(2026, 3, 30)
    with pytest.raises(NotAllowed):
        service.hold(sessions, clerk, account.number, "Customer in hospital", "", moment(on), on)
    with pytest.raises(FieldErrors) as refused:
        service.hold(sessions, boss, account.number, "  ", "2026-01-01", moment(on), on)
    assert set(refused.value.errors) == {"reason", "until"}
    service.hold(sessions, boss, account.number, "Customer in hospital", "", moment(on), on)
    result = service.run(sessions, boss, on, moment(on), post=True)
    assert result.left_out["held"] == 1 and sum(result.posted.values()) == 0
    service.release(sessions, boss, account.number, moment(on + timedelta(days=1)))
    later = on + timedelta(days=2)  # 31 March is Cesar Chavez Day, a California holiday
    result = service.run(sessions, boss, later, moment(later), post=True)
    assert result.posted["late_fee"] == 1
    with sessions() as session:
        hold = session.scalar(select(CollectionHold))
        assert hold is not None and hold.released_by_id == boss.id


def test_a_specialist_previews_and_only_a_supervisor_posts(sessions: sessionmaker[Session]) -> None:
    with sessions() as session, session.begin():
        (account,) = district(session, 1)
        bill(session, account, BILLED, 9_000)
        clerk = user(session, "specialist")
        session.expunge_all()
    on = date(2026, 3, 30)
    assert service.run(sessions, clerk, on, moment(on), post=False).planned["late_fee"] == 1
    with pytest.raises(NotAllowed):
        service.run(sessions, clerk, on, moment(on), post=True)
    with sessions() as session:
        listing = service.action_list(session, clerk, on)
        assert [r.action.step for r in listing.rows] == ["late_fee"] and listing.can_preview and not listing.can_post


def test_a_dispute_stays_out_of_the_fee_and_blocks_the_shutoff(session: Session) -> None:
    (account,) = district(session, 1)
    boss = user(session)
    b = bill(session, account, BILLED, 50_000)
    session.add(Dispute(account_id=account.id, bill_id=b.id, amount_cents=30_000, reason="Leak", status="open"))
    session.flush()
    for day in [
        b.due_date + timedelta(days=7),
        *_days(b.due_date + timedelta(days=44), b.due_date + timedelta(days=70)),
    ]:
        _run(session, day, actor=boss)
        complete_door_tags(session, day)
    steps = _steps(session, account)
    assert steps["late_fee"].amount_cents == 300  # 1.5 % of the $200.00 not in dispute
    shutoff = steps["shutoff_order"]
    assert (shutoff.status, shutoff.rule) == ("refused", "pending_dispute")
    assert session.scalar(select(func.count()).select_from(WorkOrder).where(WorkOrder.kind == "shutoff")) == 0


def test_a_final_account_is_referred_liened_and_proposed_for_write_off(session: Session) -> None:
    (account,) = district(session, 1)
    boss = user(session)
    account.premise.parcel_number = "1010-201-05"
    b = bill(session, account, BILLED, 20_000)
    account.status = "final"
    session.flush()
    for day in [b.due_date + timedelta(days=n) for n in (30, 61, 95, 185, 190)]:
        _run(session, day, actor=boss)
    steps = _steps(session, account)
    assert set(steps) == {"collection_referral", "tax_roll_lien", "write_off"}
    assert all(s.status == "posted" and s.episode == f"final:{b.id}" for s in steps.values())
    referrals = {r.kind: r for r in session.scalars(select(CollectionReferral))}
    assert referrals["agency"].amount_cents == 14_000  # the water; the sewer goes to the tax roll
    assert (referrals["tax_roll"].service_type, referrals["tax_roll"].amount_cents) == ("sewer", 6_000)
    assert referrals["tax_roll"].parcel_number == "1010-201-05"
    (write_off,) = session.scalars(select(WriteOff)).all()
    assert (write_off.status, write_off.amount_cents, write_off.prepared_by_id) == ("pending", 14_000, boss.id)
    assert (
        session.scalar(select(func.count()).select_from(LedgerEntry).where(LedgerEntry.gl_account == ledger.BAD_DEBT))
        == 0
    )


def test_a_refused_shutoff_is_evaluated_again_the_next_day(session: Session) -> None:
    (account,) = district(session, 1)
    boss = user(session)
    b = bill(session, account, BILLED, 12_000)
    shutoff = None
    for day in [
        b.due_date + timedelta(days=7),
        *_days(b.due_date + timedelta(days=44), b.due_date + timedelta(days=80)),
    ]:
        _run(session, day, actor=boss)
        shutoff = _steps(session, account).get("shutoff_order")
        if shutoff is not None and shutoff.status == "refused":
            break
    # No one left the door tag yet: the gate says so, and nothing went to the field.
    assert shutoff is not None and (shutoff.status, shutoff.rule) == ("refused", "door_tag")
    assert session.scalar(select(func.count()).select_from(WorkOrder).where(WorkOrder.kind == "shutoff")) == 0
    complete_door_tags(session, day)
    for later in _days(day + timedelta(days=1), day + timedelta(days=6)):
        _run(session, later, actor=boss)
    shutoff = _steps(session, account)["shutoff_order"]
    assert shutoff.status == "posted" and shutoff.rule is None
    assert session.scalar(select(func.count()).select_from(WorkOrder).where(WorkOrder.kind == "shutoff")) == 1


def test_the_run_in_chunk_jobs_posts_once_however_often_a_job_runs(sessions: sessionmaker[Session]) -> None:
    from portal.adapters.queue import InProcessQueue

    with sessions() as session, session.begin():
        accounts = district(session, 5)
        for a in accounts:
            bill(session, a, BILLED, 9_000)
        boss_id = user(session).id
    on = date(2026, 3, 30)
    clock = lambda: moment(on, 6)  # noqa: E731
    jobs: list[dict] = []

    def job(**kwargs):  # type: ignore[no-untyped-def]
        jobs.append(kwargs)
        return service.run_chunk_job(sessions, clock, **kwargs)

    queue = InProcessQueue().register("collections.run_chunk", job)
    assert service.dispatch(sessions, queue, on, clock(), post=True, actor_id=boss_id, chunk=2) == 3
    for kwargs in jobs[:2]:  # a job run again (a retry, a second worker): nothing more
        assert service.run_chunk_job(sessions, clock, **kwargs) == 0
    assert service.dispatch(sessions, queue, on, clock(), post=True, actor_id=boss_id, chunk=2) == 3
    with sessions() as session:
        fees = select(func.count()).select_from(LedgerTransaction).where(LedgerTransaction.kind == "fee")
        assert session.scalar(fees) == 5
        run = session.scalar(select(CollectionRun).where(CollectionRun.run_on == on))
        assert run is not None and (run.status, run.accounts_evaluated, run.actions_posted) == ("posted", 5, 5)
    sunday = date(2026, 3, 29)
    assert service.dispatch(sessions, queue, sunday, moment(sunday), post=True, actor_id=boss_id) == 0
