"""Rate versions with approval (issue 16): an uploaded version is proposed; bills and the
calculator ignore it until someone other than its proposer approves it."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.billing_core import bill_runs, rate_schedules, users
from portal.billing_core.errors import InvalidInput, NotAllowed
from portal.billing_core.models import AuditEvent, Bill, BillLine, RateSchedule, RateScheduleVersion
from portal.services import rates
from tests.billing_core.test_owrs import SPEC_TIERED

from .test_bill_runs import office

NOW = datetime(2026, 11, 6, 9, tzinfo=UTC)
NEW = {
    "unit": "CCF",
    "components": [
        {"type": "fixed", "description": "Water service charge", "amount": "31.00"},
        {"type": "uniform", "description": "Water usage", "price": "3.10"},
    ],
}


def _water_cents(session: Session, run_id: int, account_id: int) -> tuple[int, set[int]]:
    bill = session.scalar(select(Bill).where(Bill.bill_run_id == run_id, Bill.account_id == account_id))
    lines = session.scalars(select(BillLine).where(BillLine.bill_id == bill.id, BillLine.service_type == "water")).all()
    return sum(line.amount_cents for line in lines), {line.rate_version_id for line in lines}


def test_a_proposed_version_bills_nothing_until_someone_else_approves_it(session: Session) -> None:
    (account,), supervisor, specialist = office(session, 1)
    admin = users.create_user(session, "admin@x.org", "a long password", "admin")
    water = session.scalar(select(RateSchedule).where(RateSchedule.code == "W"))
    old = session.scalar(select(RateScheduleVersion).where(RateScheduleVersion.schedule_id == water.id))
    new = RateScheduleVersion(
        schedule_id=water.id,
        effective_on=date(2026, 10, 1),
        definition=NEW,
        status="proposed",
        proposed_by_id=supervisor.id,
    )
    session.add(new)
    session.flush()
    assert rate_schedules.version_in_force(water, date(2026, 11, 1)) == old
    run = bill_runs.create_run(session, "C1", date(2026, 10, 5), date(2026, 11, 5), actor=specialist)
    bill_runs.calculate(session, run, now=NOW)
    cents, used = _water_cents(session, run.id, account.id)
    assert used == {old.id} and cents == 2461 + 3058  # the old rate: $24.61 + 11 x $2.78
    # The proposer never approves; a reject needs a reason; someone else approves.
    with pytest.raises(NotAllowed):
        rates.decide_version(session, supervisor, new.id, "approve", "", NOW)
    with pytest.raises(NotAllowed):
        rates.decide_version(session, specialist, new.id, "approve", "", NOW)
    with pytest.raises(InvalidInput, match="Say why"):
        rates.decide_version(session, admin, new.id, "reject", " ", NOW)
    rates.decide_version(session, admin, new.id, "approve", "", NOW)
    assert (new.status, new.decided_by_id) == ("approved", admin.id)
    with pytest.raises(InvalidInput, match="already approved"):
        rates.decide_version(session, admin, new.id, "reject", "too late", NOW)
    session.expire_all()
    assert rate_schedules.version_in_force(session.get(RateSchedule, water.id), date(2026, 11, 1)).id == new.id
    bill_runs.calculate(session, run, now=NOW)  # the drafts again, now under the approved version
    cents, used = _water_cents(session, run.id, account.id)
    assert used == {new.id} and cents == 3100 + 11 * 310
    event = session.scalar(select(AuditEvent).where(AuditEvent.action == "rates.version_approved"))
    assert event.actor_id == admin.id and event.after["effective_on"] == "2026-10-01"


def test_an_uploaded_version_is_proposed_and_a_rejected_one_is_proposed_again(session: Session) -> None:
    supervisor = users.create_user(session, "sup@x.org", "a long password", "supervisor")
    admin = users.create_user(session, "admin@x.org", "a long password", "admin")
    outcome = rates.import_upload(session, supervisor, "example.owrs", SPEC_TIERED.encode(), None)
    assert outcome.created_versions == 1
    (version,) = rate_schedules.proposed(session)
    assert (version.status, version.proposed_by_id) == ("proposed", supervisor.id)
    schedule = session.get(RateSchedule, version.schedule_id)
    assert rate_schedules.version_in_force(schedule, date(2026, 11, 1)) is None
    rates.decide_version(session, admin, version.id, "reject", "wrong tiers", NOW)
    assert (version.status, version.decision_note) == ("rejected", "wrong tiers")
    again = rates.import_upload(session, supervisor, "example.owrs", SPEC_TIERED.encode(), None)
    assert again.created_versions == 1 and rate_schedules.proposed(session) == [version]
    assert version.decided_by_id is None
