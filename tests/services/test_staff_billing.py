"""The staff billing services (services/billing.py, meters.py, accounts.py), without the web:
who may, what a refusal raises, and that a refusal writes nothing."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from portal.adapters.clock import system_clock
from portal.billing_core import users
from portal.billing_core.errors import FieldErrors, InvalidInput, NotAllowed, NotFound
from portal.billing_core.models import Account, FinalBillReview, Meter, MeterRead, User
from portal.services import accounts, billing, meters
from tests.db.factories import district

TODAY = date(2026, 11, 22)
NOW = datetime(2026, 11, 22, 17, tzinfo=UTC)


@pytest.fixture
def staff(session: Session) -> dict[str, User]:
    """Two accounts, seven monthly reads a meter (the last of the first meter held as high use)."""
    with session.begin():
        district(session, 2)
        for meter in session.scalars(select(Meter).order_by(Meter.id)):
            value = Decimal(1000)
            for month in range(5, 12):
                session.add(MeterRead(meter_id=meter.id, read_on=date(2026, month, 5), value=value, source="amr"))
                value += 10
        session.flush()
        high = session.scalar(select(MeterRead).where(MeterRead.read_on == date(2026, 11, 5)).order_by(MeterRead.id))
        assert high is not None
        high.status, high.exception, high.value = "exception", "high", high.value + 100
        return {
            role: users.create_user(session, f"{role}@x.org", "a long password", role)
            for role in ("cashier", "specialist", "supervisor")
        }


def test_read_review_refusals_change_nothing(session: Session, staff: dict[str, User]) -> None:
    with session.begin():
        queue = billing.read_queue(session)
        (read,) = queue.reads
        assert queue.previous[read.id].read_on == date(2026, 10, 5)
        assert queue.accounts[read.id] is not None
    with session.begin():
        with pytest.raises(NotAllowed, match="Only billing specialists and supervisors review reads."):
            billing.review_read(session, staff["cashier"], read.id, "approve", "", "", None, now=system_clock())
        with pytest.raises(NotFound):
            billing.review_read(
                session, staff["specialist"], read.id + 1000, "approve", "", "", None, now=system_clock()
            )
        with pytest.raises(FieldErrors) as caught:
            billing.review_read(session, staff["specialist"], read.id, "correct", "1065", "", None, now=system_clock())
        assert list(caught.value.errors) == ["reason"]
        with pytest.raises(InvalidInput, match="Choose approve"):
            billing.review_read(session, staff["specialist"], read.id, "shrug", "", "", None, now=system_clock())
    with session.begin():
        assert session.get(MeterRead, read.id).status == "exception"
        billing.review_read(
            session, staff["specialist"], read.id, "correct", "1065", "misread dial", None, now=system_clock()
        )
    with session.begin():
        assert billing.read_queue(session).reads == []


def test_meter_page_and_changes(session: Session, staff: dict[str, User]) -> None:
    with session.begin():
        page = meters.meter_page(session, "T000002")
        assert len(page.accounts) == 1 and len(page.reads) == 7 and page.reads[0].read_on == date(2026, 11, 5)
        assert [q for _day, q in page.uses] == [Decimal(10)] * 6
        assert page.moves == []  # an installed meter is removed only by an exchange
        with pytest.raises(NotFound):
            meters.meter_page(session, "NOPE")
    specialist = staff["specialist"]
    with session.begin():
        with pytest.raises(NotAllowed, match="change meters"):
            meters.change_meter(session, staff["cashier"], "T000002", {"action": "read"}, today=TODAY)
        future = {"action": "read", "read_on": "2026-12-01", "read_value": "1070"}
        with pytest.raises(FieldErrors) as caught:
            meters.change_meter(session, specialist, "T000002", future, today=TODAY)
        assert list(caught.value.errors) == ["read_on"]
        with pytest.raises(InvalidInput) as moved:
            meters.change_meter(session, specialist, "T000002", {"action": "move", "to": "retired"}, today=TODAY)
        assert not isinstance(moved.value, FieldErrors)
    with session.begin():
        done = meters.change_meter(
            session,
            specialist,
            "T000002",
            {"action": "read", "read_on": "2026-11-20", "read_value": "1065"},
            today=TODAY,
        )
        assert done == "Read recorded."


def test_bill_run_actions_say_why_nothing_was_done(session: Session, staff: dict[str, User]) -> None:
    with session.begin():
        with pytest.raises(NotAllowed, match="start bill runs"):
            billing.create_run(session, staff["cashier"], "C1", date(2026, 10, 5), date(2026, 11, 5))
        run_id = billing.create_run(session, staff["specialist"], "C1", date(2026, 10, 5), date(2026, 11, 5))
    with session.begin():
        assert [r.id for r in billing.run_list(session).runs] == [run_id]
        page = billing.run_page(session, run_id)
        assert (page.busy, page.print_file_ready, page.delivery.print_file) == (False, False, None)
        with pytest.raises(NotAllowed, match="Only a billing supervisor approves and posts bill runs."):
            billing.start_run_action(session, staff["specialist"], run_id, "approve", now=system_clock())
        with pytest.raises(NotAllowed, match="Only billing specialists and supervisors calculate bill runs."):
            billing.start_run_action(session, staff["cashier"], run_id, "calculate", now=system_clock())
        with pytest.raises(InvalidInput, match="Approve the run before posting it."):
            billing.start_run_action(session, staff["supervisor"], run_id, "post", now=system_clock())
        with pytest.raises(InvalidInput, match="only a calculated run is approved"):
            billing.start_run_action(session, staff["supervisor"], run_id, "approve", now=system_clock())
        with pytest.raises(InvalidInput, match="not delivered yet"):
            billing.start_run_action(session, staff["specialist"], run_id, "resend_emails", now=system_clock())
        started = billing.start_run_action(session, staff["specialist"], run_id, "calculate", now=system_clock())
        assert (started.action, started.actor_id, started.print_file_id) == ("calculate", staff["specialist"].id, None)
        assert billing.delivery_state(session, run_id).started is False
        with pytest.raises(NotFound):
            billing.print_file_path(session, run_id, "print-file.pdf")
        with pytest.raises(NotFound):
            billing.run_page(session, run_id + 1)


def test_stop_service_refusals_change_nothing(session: Session, staff: dict[str, User]) -> None:
    with session.begin():
        number = session.scalar(select(Account.number).order_by(Account.id))
        page = accounts.account_page(session, number, as_of=TODAY)
        assert page.stoppable and page.held is None and page.held_error is None
        (meter,) = page.active_meters
        assert [r.read_on for r in page.last_reads[meter.id]] == [
            date(2026, 11, 5),
            date(2026, 10, 5),
            date(2026, 9, 5),
        ]
        assert accounts.search(session, "") == [] and accounts.search(session, number)[0].number == number
    specialist = staff["specialist"]
    stop = {"stop_on": "2026-11-20", f"read-{meter.id}": "1070"}
    when = {"now": NOW, "today": TODAY, "remote_addr": None}
    with session.begin():
        with pytest.raises(NotAllowed, match="stop service and make final bills"):
            accounts.stop_service(session, staff["cashier"], number, stop, **when)
        with pytest.raises(FieldErrors) as caught:
            accounts.stop_service(session, specialist, number, {**stop, "stop_on": "soon"}, **when)
        assert list(caught.value.errors) == ["stop_on"]
        with pytest.raises(FieldErrors) as caught:
            accounts.stop_service(session, specialist, number, {"stop_on": "2026-11-20"}, **when)
        assert list(caught.value.errors) == [f"read-{meter.id}"]
        with pytest.raises(NotAllowed, match="correct final reads"):
            accounts.review_final_bill(session, staff["cashier"], number, "correct", {}, **when)
        with pytest.raises(NotFound):
            accounts.review_final_bill(session, staff["supervisor"], number, "approve", {}, **when)
        with pytest.raises(NotFound):
            accounts.bill_page(session, number, "NOPE")
        with pytest.raises(NotAllowed, match="voids and rebills"):
            accounts.void_and_rebill(
                session, specialist, number, "NOPE", {}, now=system_clock(), today=TODAY, remote_addr=None
            )
    with session.begin():
        assert session.scalar(select(func.count(FinalBillReview.id))) == 0
        assert session.scalar(select(Account.status).where(Account.number == number)) == "active"
