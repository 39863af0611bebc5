"""The one approvals queue: every kind waiting, with its age, filtered; approve and reject
of each kind through its own decision function, a reason for a reject, and the approver
never the preparer (issue 16)."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import Engine, event, select
from sqlalchemy.orm import Session, sessionmaker

from portal.billing_core import adjustments, approvals, bill_runs, ledger_check, posting, users
from portal.billing_core.errors import FieldErrors, NotAllowed
from portal.billing_core.models import (
    Account,
    Adjustment,
    ArrangementRequest,
    AuditEvent,
    CollectionReferral,
    FinalBillReview,
    MeterRead,
    PaymentPlan,
    RateSchedule,
    RateScheduleVersion,
    Refund,
    ServiceRequest,
    User,
    WriteOff,
)
from portal.services import approvals as service

from .adjust_helpers import NOW, TODAY, staff
from .factories import district

KINDS = list(approvals.KINDS)


def _post_now(session: Session, account: Account, admin: User, cents: int) -> None:
    """An adjustment the admin posts at once (no limit): a debit owes, a credit is credit."""
    draft = adjustments.Draft("water", cents, "billing_error", "set up the test", None, 0)
    assert adjustments.prepare(session, account, admin, draft, TODAY, NOW).status == "posted"


def _waiting(session: Session, kind: str, account: Account, by: User, days: int, **extra: object) -> int:
    """One item of ``kind`` waiting on ``account``, prepared ``days`` ago by ``by``."""
    at = NOW - timedelta(days=days)
    if kind == "adjustment":
        row: object = Adjustment(
            account_id=account.id,
            service_type="water",
            amount_cents=extra.get("cents", 25_000),
            reason_code="billing_error",
            note="rebill",
            prepared_by_id=by.id,
            prepared_at=at,
        )
    elif kind == "refund":
        row = Refund(
            account_id=account.id,
            amount_cents=extra.get("cents", 1_234),
            reason="overpaid",
            method="check",
            requested_by_id=by.id,
            requested_at=at,
        )
    elif kind == "write_off":
        row = WriteOff(
            account_id=account.id,
            amount_cents=extra.get("cents", 2_000),
            reason="gone",
            prepared_by_id=by.id,
            prepared_at=at,
        )
    elif kind == "final_bill":
        row = FinalBillReview(
            account_id=account.id,
            stop_on=TODAY,
            reads={},
            reasons="high",
            entered_by_id=by.id,
            entered_at=at,
        )
    elif kind == "referral":
        row = CollectionReferral(
            account_id=account.id,
            kind="agency",
            amount_cents=extra.get("cents", 2_000),
            prepared_by_id=by.id,
            prepared_at=at,
        )
    elif kind == "arrangement":
        row = ArrangementRequest(
            account_id=account.id,
            user_id=by.id,
            total_cents=extra.get("cents", 6_000),
            installments=3,
            first_due_on=TODAY + timedelta(days=10),
            created_at=at,
        )
    elif kind == "service_request":
        row = ServiceRequest(
            kind="stop",
            user_id=by.id,
            account_id=account.id,
            stop_on=TODAY + timedelta(days=20),
            contact_name="Pat",
            contact_email="pat@example.net",
            created_at=at,
        )
    else:
        schedule = session.scalar(select(RateSchedule).where(RateSchedule.code == "W"))
        version = session.scalar(select(RateScheduleVersion).where(RateScheduleVersion.schedule_id == schedule.id))
        row = RateScheduleVersion(
            schedule_id=schedule.id,
            effective_on=TODAY + timedelta(days=40 + days),
            definition=version.definition,
            status="proposed",
            proposed_by_id=by.id,
            created_at=at,
        )
    session.add(row)
    session.flush()
    return row.id  # type: ignore[attr-defined]


def test_the_queue_lists_every_kind_with_its_age_one_query_a_kind_and_filters(
    sessions: sessionmaker[Session], engine: Engine
) -> None:
    with sessions.begin() as s:
        (account,) = district(s, 1)
        people = staff(s)
        for n, kind in enumerate(KINDS):
            by = people["supervisor"] if kind == "rate_version" else people["specialist"]
            _waiting(s, kind, account, by, days=n)
    statements: list[str] = []

    def seen(*args: object) -> None:
        statements.append(str(args[2]))

    event.listen(engine, "before_cursor_execute", seen)
    with sessions() as s:
        items = approvals.waiting(s)
    event.remove(engine, "before_cursor_execute", seen)
    assert len([q for q in statements if q.lstrip().upper().startswith("SELECT")]) == len(KINDS)
    assert sorted(i.kind for i in items) == sorted(KINDS)
    assert {i.kind: i.age_days(TODAY) for i in items} == {k: n for n, k in enumerate(KINDS)}
    with sessions() as s:
        admin = s.scalar(select(User).where(User.email == "admin@x.org"))
        everything = service.queue(s, admin, TODAY)
        assert [r.item.kind for r in everything.rows] == list(reversed(KINDS))  # oldest first
        assert everything.counts == dict.fromkeys(KINDS, 1)
        assert all(r.can_decide and not r.mine for r in everything.rows)
        assert [r.item.kind for r in service.queue(s, admin, TODAY, kind="refund").rows] == ["refund"]
        old = service.queue(s, admin, TODAY, min_age="5").rows
        assert {r.item.kind for r in old} == set(KINDS[5:])
        assert [r.item.kind for r in service.queue(s, admin, TODAY, preparer="supervisor@x.org").rows] == [
            "rate_version"
        ]
        # The proposer of the rate version sees it as theirs, not to decide.
        supervisor = s.scalar(select(User).where(User.email == "supervisor@x.org"))
        (mine,) = [r for r in service.queue(s, supervisor, TODAY).rows if r.item.kind == "rate_version"]
        assert mine.mine and not mine.can_decide
        # Staff who do not approve see only what they prepared, waiting.
        specialist = s.scalar(select(User).where(User.email == "specialist@x.org"))
        own = service.queue(s, specialist, TODAY)
        assert not own.sees_all and {r.item.kind for r in own.rows} == set(KINDS) - {"rate_version"}
        assert not any(r.can_decide for r in own.rows)


def test_each_kind_is_approved_through_the_queue(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as s:
        owes, final, credit, stopping = district(s, 4)
        people = staff(s)
        customer = users.create_user(s, "pat@example.net", "a long password", "customer", owes.number, now=NOW)
        admin, specialist, csr = people["admin"], people["specialist"], people["csr"]
        _post_now(s, owes, admin, 10_000)
        _post_now(s, final, admin, 5_000)
        final.status = "final"
        _post_now(s, credit, admin, -5_000)
        # A stop whose last day is still ahead: held for review until that day.
        meter_id = next(x.meter_id for x in stopping.services if x.meter_id)
        s.add(MeterRead(meter_id=meter_id, read_on=date(2026, 10, 5), value=Decimal(100), source="handheld"))
        s.flush()
        held = bill_runs.stop_service(
            s, stopping, TODAY + timedelta(days=2), {meter_id: Decimal(110)}, specialist, TODAY, now=NOW
        )
        assert held.status == "held"
        ids = {
            "adjustment": _waiting(s, "adjustment", owes, specialist, 1),
            "refund": _waiting(s, "refund", credit, csr, 1),
            "write_off": _waiting(s, "write_off", final, specialist, 1),
            "final_bill": held.id,
            "referral": _waiting(s, "referral", final, specialist, 1),
            "arrangement": _waiting(s, "arrangement", owes, customer, 1),
            "service_request": _waiting(s, "service_request", owes, customer, 1),
            "rate_version": _waiting(s, "rate_version", owes, people["supervisor"], 1),
        }
        assert set(ids) == set(KINDS)
    later = TODAY + timedelta(days=3)
    for kind in KINDS:
        done = service.decide(sessions, admin, kind, ids[kind], "approve", "", later, NOW + timedelta(days=3))
        assert done.kind == kind and str(ids[kind]) in done.message or kind == "final_bill"
    with sessions() as s:
        assert s.get(Adjustment, ids["adjustment"]).status == "posted"
        assert s.get(Refund, ids["refund"]).status == "approved"
        assert s.get(WriteOff, ids["write_off"]).status == "posted"
        assert s.get(FinalBillReview, ids["final_bill"]).status == "posted"
        assert s.get(CollectionReferral, ids["referral"]).status == "approved"
        assert s.get(ArrangementRequest, ids["arrangement"]).status == "approved"
        assert s.scalar(select(PaymentPlan.status).where(PaymentPlan.account_id == owes.id)) == "active"
        assert s.get(ServiceRequest, ids["service_request"]).status == "scheduled"
        version = s.get(RateScheduleVersion, ids["rate_version"])
        assert (version.status, version.decided_by_id) == ("approved", admin.id)
        assert posting.account_balance(s, owes.id) == 35_000
        assert approvals.waiting(s) == []
        assert ledger_check.run(s) == []


def test_a_reject_needs_a_reason_and_the_preparer_never_decides(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as s:
        (account,) = district(s, 1)
        people = staff(s)
        supervisor, admin = people["supervisor"], people["admin"]
        ids = {kind: _waiting(s, kind, account, supervisor, 2) for kind in KINDS}
    for kind, item_id in ids.items():
        with pytest.raises(NotAllowed, match="prepared this"):
            service.decide(sessions, supervisor, kind, item_id, "approve", "", TODAY, NOW)
        with pytest.raises(FieldErrors) as missing:
            service.decide(sessions, admin, kind, item_id, "reject", "  ", TODAY, NOW)
        assert list(missing.value.errors) == ["decision_note"], kind
        with sessions() as s:
            assert [i.id for i in approvals.waiting(s, [kind])] == [item_id]
        service.decide(sessions, admin, kind, item_id, "reject", "not this one", TODAY, NOW)
        with sessions() as s:
            assert approvals.waiting(s, [kind]) == [], kind
    with sessions() as s:
        audited = s.scalars(select(AuditEvent.action).where(AuditEvent.actor_id == admin.id)).all()
        assert len(audited) == len(KINDS) and all(("reject" in a or "declin" in a) for a in audited), audited


def test_a_held_final_bill_is_never_approved_by_who_stopped_service_on_its_own_page_either(
    sessions: sessionmaker[Session],
) -> None:
    with sessions.begin() as s:
        (account,) = district(s, 1)
        supervisor = staff(s)["supervisor"]
        meter_id = next(x.meter_id for x in account.services if x.meter_id)
        s.add(MeterRead(meter_id=meter_id, read_on=date(2026, 10, 5), value=Decimal(100), source="handheld"))
        s.flush()
        held = bill_runs.stop_service(
            s, account, TODAY + timedelta(days=2), {meter_id: Decimal(110)}, supervisor, TODAY, now=NOW
        )
        with pytest.raises(NotAllowed, match="prepared this"):
            bill_runs.approve_final(s, held, supervisor, TODAY + timedelta(days=3), now=NOW)
        assert held.status == "held"
