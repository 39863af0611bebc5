"""Start, stop and transfer requests at the core: every problem by field and nothing written,
the moves the status table allows, and what each step writes (the request, the audit)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from portal.billing_core import service_requests, status, users
from portal.billing_core.errors import FieldErrors, InvalidInput
from portal.billing_core.models import Account, AccountStatus, AuditEvent, ServiceRequest, User
from portal.billing_core.service_requests import Form
from portal.billing_core.status import REQUEST_TRANSITIONS, IllegalTransition, RequestStatus

from .factories import district

NOW = datetime(2026, 3, 2, 17, tzinfo=UTC)
TODAY = date(2026, 3, 2)
PASSWORD = "a long password"
CONTACT = {"contact_name": "Pat Resident", "contact_phone": "(555) 010-7788"}
FORWARD = {"forward_line1": "12 Elm St", "forward_city": "Reno", "forward_state": "NV", "forward_zip": "89501"}
NEW_HOME = {
    "service_line1": "400 Canyon Rd",
    "service_city": "Chino",
    "service_state": "CA",
    "service_zip": "91710",
}


def day(n: int) -> str:
    return (TODAY + timedelta(days=n)).isoformat()


def people(session: Session) -> tuple[Account, User, User]:
    (account,) = district(session, 1)
    customer = users.create_user(session, "pat@example.org", PASSWORD, "customer", account.number, now=NOW)
    staff = users.create_user(session, "csr@example.org", PASSWORD, "csr", now=NOW)
    return account, customer, staff


def submit(session: Session, user: User, kind: str, **values: str) -> ServiceRequest:
    return service_requests.submit(session, user, kind, Form(values), TODAY, NOW, "192.0.2.1")


def count(session: Session) -> int:
    return session.scalar(select(func.count(ServiceRequest.id))) or 0


def audits(session: Session, action: str) -> list[AuditEvent]:
    return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)))


def test_an_empty_stop_names_every_field_and_writes_nothing(session: Session) -> None:
    _account, customer, _staff = people(session)
    with pytest.raises(FieldErrors) as caught:
        submit(session, customer, "stop")
    assert set(caught.value.errors) == {
        "contact_name",
        "contact_phone",
        "account",
        "stop_on",
        "forward_line1",
        "forward_city",
        "forward_state",
        "forward_zip",
    }
    assert all(isinstance(e, InvalidInput) and e.field == f for f, e in caught.value.errors.items())
    assert count(session) == 0 and not audits(session, "service_request.submitted")


def test_a_stop_is_written_submitted_and_audited(session: Session) -> None:
    account, customer, _staff = people(session)
    made = submit(session, customer, "stop", account=account.number, stop_on=day(3), **FORWARD, **CONTACT)
    assert made.status == RequestStatus.SUBMITTED and made.account_id == account.id
    assert made.stop_on == TODAY + timedelta(days=3) and made.contact_email == "pat@example.org"
    assert (made.forward_city, made.forward_state) == ("Reno", "NV")
    (event,) = audits(session, "service_request.submitted")
    assert event.entity_id == str(made.id) and event.after["kind"] == "stop"
    # A second stop on the same account while the first is open is refused on its field.
    with pytest.raises(FieldErrors) as caught:
        submit(session, customer, "stop", account=account.number, stop_on=day(4), **FORWARD, **CONTACT)
    assert set(caught.value.errors) == {"account"} and count(session) == 1


def test_dates_must_be_from_today_to_the_limit(session: Session) -> None:
    account, customer, _staff = people(session)
    for stop_on in (day(-1), day(service_requests.MAX_DAYS_AHEAD + 1), "not a date"):
        with pytest.raises(FieldErrors) as caught:
            submit(session, customer, "stop", account=account.number, stop_on=stop_on, **FORWARD, **CONTACT)
        assert set(caught.value.errors) == {"stop_on"}


def test_a_start_checks_identity_and_asks_a_new_tenant_for_a_deposit(session: Session) -> None:
    _account, customer, _staff = people(session)
    young = (TODAY - timedelta(days=365 * 10)).isoformat()
    with pytest.raises(FieldErrors) as caught:
        submit(session, customer, "start", start_on=day(5), birth_date=young, id_last4="12", occupancy="x", **NEW_HOME)
    assert {"birth_date", "id_last4", "occupancy", "contact_name"} <= set(caught.value.errors)
    made = submit(
        session,
        customer,
        "start",
        start_on=day(5),
        birth_date="1985-04-30",
        id_last4="d123",
        occupancy="tenant",
        **NEW_HOME,
        **CONTACT,
    )
    # The linked account is old but the customer is new to us only if none shows a good record:
    # this one was opened in 2020 with nothing past due, so no deposit.
    assert made.account_id is None and made.id_last4 == "D123" and made.birth_date == date(1985, 4, 30)
    assert made.deposit_cents == 0
    assert service_requests.deposit_for(session, customer, "tenant", date(2020, 6, 1)) == 10_000
    assert service_requests.deposit_for(session, customer, "owner", date(2020, 6, 1)) == 0


def test_the_customer_cancels_only_while_it_is_submitted(session: Session) -> None:
    account, customer, staff = people(session)
    made = submit(session, customer, "stop", account=account.number, stop_on=day(3), **FORWARD, **CONTACT)
    assert service_requests.may_cancel(made)
    service_requests.cancel(session, made, customer, NOW)
    assert made.status == RequestStatus.CANCELLED and made.handled_by_id is None
    (event,) = audits(session, "service_request.cancelled")
    assert event.before == {"status": "submitted"} and event.actor_id == customer.id
    other = submit(session, customer, "stop", account=account.number, stop_on=day(3), **FORWARD, **CONTACT)
    service_requests.handle(session, other, "scheduled", staff, NOW, "", "", TODAY)
    assert not service_requests.may_cancel(other)
    with pytest.raises(InvalidInput) as caught:
        service_requests.cancel(session, other, customer, NOW)
    assert caught.value.field == "status" and other.status == RequestStatus.SCHEDULED


def test_staff_moves_follow_the_table(session: Session) -> None:
    account, customer, staff = people(session)
    made = submit(session, customer, "stop", account=account.number, stop_on=day(3), **FORWARD, **CONTACT)
    assert service_requests.staff_actions(made.status) == (
        RequestStatus.SCHEDULED,
        RequestStatus.COMPLETED,
        RequestStatus.DECLINED,
    )
    assert service_requests.staff_actions("scheduled") == (RequestStatus.COMPLETED, RequestStatus.DECLINED)
    assert service_requests.staff_actions("completed") == () and service_requests.staff_actions("nonsense") == ()
    with pytest.raises(InvalidInput, match="cannot be marked cancelled"):
        service_requests.handle(session, made, "cancelled", staff, NOW, "", "", TODAY)
    with pytest.raises(InvalidInput) as caught:
        service_requests.handle(session, made, "declined", staff, NOW, "  ", "", TODAY)
    assert caught.value.field == "message"
    # Not done before its date, and a stop not while service goes on.
    with pytest.raises(InvalidInput, match="Mark it scheduled until then"):
        service_requests.handle(session, made, "completed", staff, NOW, "", "", TODAY)
    with pytest.raises(InvalidInput, match="has not stopped"):
        service_requests.handle(session, made, "completed", staff, NOW, "", "", TODAY + timedelta(days=3))
    assert made.status == RequestStatus.SUBMITTED and not made.staff_note
    service_requests.handle(session, made, "scheduled", staff, NOW, " See you then ", "Called them", TODAY)
    assert made.status == RequestStatus.SCHEDULED and made.message == "See you then"
    assert made.handled_by_id == staff.id and made.staff_note == "2026-03-02 17:00 csr@example.org: Called them"
    (event,) = audits(session, "service_request.scheduled")
    assert event.before == {"status": "submitted"} and event.after == {"status": "scheduled", "message": "See you then"}
    service_requests.handle(session, made, "declined", staff, NOW, "Wrong address", "", TODAY)
    assert made.status == RequestStatus.DECLINED and service_requests.status_label(made) == "Declined"


def test_the_final_bill_completes_stops_that_are_due_and_schedules_later_moves(session: Session) -> None:
    account, customer, staff = people(session)
    stop = submit(session, customer, "stop", account=account.number, stop_on=day(0), **FORWARD, **CONTACT)
    stop.status = RequestStatus.SCHEDULED.value  # staff scheduled it
    account.status = AccountStatus.FINAL.value
    changed = service_requests.complete_stops_for(session, account, staff, NOW, TODAY)
    assert changed == [stop.id] and stop.status == RequestStatus.COMPLETED
    move = ServiceRequest(
        kind="transfer",
        status=RequestStatus.SUBMITTED.value,
        user_id=customer.id,
        account_id=account.id,
        stop_on=TODAY,
        start_on=TODAY + timedelta(days=10),
        contact_name="Pat",
        contact_email="pat@example.org",
        created_at=NOW,
        updated_at=NOW,
    )
    session.add(move)
    session.flush()
    assert service_requests.complete_stops_for(session, account, staff, NOW, TODAY) == [move.id]
    assert move.status == RequestStatus.SCHEDULED
    # Scheduled already and still ahead: left as it is.
    assert service_requests.complete_stops_for(session, account, staff, NOW, TODAY) == []


def test_the_table_refuses_moves_it_does_not_list() -> None:
    item = ServiceRequest(status=RequestStatus.COMPLETED.value)
    with pytest.raises(IllegalTransition):
        status.move(REQUEST_TRANSITIONS, item, RequestStatus.SUBMITTED)
    item = ServiceRequest(status=RequestStatus.SCHEDULED.value)
    # Only a request that is still only submitted can be cancelled.
    with pytest.raises(IllegalTransition):
        status.move(REQUEST_TRANSITIONS, item, RequestStatus.CANCELLED)
    status.move(REQUEST_TRANSITIONS, item, RequestStatus.COMPLETED)
    assert item.status == "completed"


def test_the_queue_is_oldest_first_and_filters(session: Session) -> None:
    account, customer, staff = people(session)
    first = submit(session, customer, "stop", account=account.number, stop_on=day(3), **FORWARD, **CONTACT)
    service_requests.cancel(session, first, customer, NOW)
    second = submit(session, customer, "stop", account=account.number, stop_on=day(3), **FORWARD, **CONTACT)
    assert service_requests.queue(session) == [second]
    assert service_requests.queue(session, service_requests.DONE) == [first]
    assert service_requests.queue(session, service_requests.OPEN, "start") == []
    assert service_requests.for_user(session, customer) == [second, first]
    assert service_requests.one_for_user(session, customer, str(second.id)) is second
    assert service_requests.one_for_user(session, staff, str(second.id)) is None
    assert service_requests.one_for_user(session, customer, "x") is None
