"""Start, stop and transfer requests: checked whole (every problem next to its field,
nothing written), seen by the customer with their status, worked by staff from a queue."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from portal.app import create_app
from portal.billing_core import service_requests
from portal.billing_core.models import AuditEvent, ServiceRequest
from portal.demo import build_demo
from portal.i18n import translations
from tests.db.test_demo import TODAY

from .conftest import CLOCK, SETTINGS, body_of, csrf_from, linked_numbers, mail_to, sign_in

EMAIL = "resident@demo.example"
FORWARD = {"forward_line1": "12 Elm St", "forward_city": "Reno", "forward_state": "NV", "forward_zip": "89501"}
NEW_HOME = {
    "service_line1": "400 Canyon Rd",
    "service_city": "Chino",
    "service_state": "CA",
    "service_zip": "91710",
    "occupancy": "tenant",
}
CONTACT = {"contact_name": "Pat Resident", "contact_phone": "(555) 010-7788"}


@pytest.fixture
def district(engine: Engine) -> Engine:
    build_demo(engine, accounts=6, seed=5, progress=False, today=TODAY)
    return engine


@pytest.fixture
def client(district: Engine, smtp) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    config = dataclasses.replace(SETTINGS, smtp_host="127.0.0.1", smtp_port=smtp[0])
    with TestClient(create_app(config, engine=district, clock=CLOCK), base_url="https://testserver") as c:
        yield c


def ask(client: TestClient, kind: str, **fields: str):  # type: ignore[no-untyped-def]
    page = client.get(f"/my/requests/new/{kind}")
    assert page.status_code == 200
    return client.post(
        f"/my/requests/new/{kind}", data={"csrf_token": csrf_from(page.text), **fields}, follow_redirects=False
    )


def count(engine: Engine) -> int:
    with Session(engine) as s:
        return s.scalar(select(func.count(ServiceRequest.id)))


def day(offset: int) -> str:
    return (TODAY + timedelta(days=offset)).isoformat()


def test_a_stop_request_with_mistakes_says_each_next_to_its_field_and_writes_nothing(
    client: TestClient, district: Engine
) -> None:
    sign_in(client, EMAIL)
    (number, *_) = linked_numbers(district, EMAIL)
    response = ask(
        client,
        "stop",
        account=number,
        stop_on=day(-3),
        forward_line1="12 Elm St",
        forward_city="Reno",
        forward_state="Nevada",
        forward_zip="89501",
        contact_name="",
        contact_phone="12",
    )
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert set(errors) == {"stop_on", "forward_state", "contact_name", "contact_phone"}
    assert "today or a later day" in errors["stop_on"] and "two letters" in errors["forward_state"]
    assert 'aria-invalid="true"' in response.text and "Nothing was sent" in response.text
    assert count(district) == 0


def test_a_stop_request_is_seen_by_staff_worked_and_its_status_shown(
    client: TestClient, district: Engine, inbox: list
) -> None:
    sign_in(client, EMAIL)
    (number, *_) = linked_numbers(district, EMAIL)
    response = ask(client, "stop", account=number, stop_on=day(10), **FORWARD, **CONTACT)
    assert response.status_code == 303
    detail = response.headers["location"]
    page = client.get(detail)
    assert "Status: Received" in page.text and "12 Elm St, Reno, NV 89501" in page.text
    # The same account cannot be asked to stop twice while the first request is open.
    again = ask(client, "stop", account=number, stop_on=day(12), **FORWARD, **CONTACT)
    assert again.status_code == 400 and "already a request" in again.context["form"].errors["account"]

    client.cookies.clear()
    sign_in(client, "csr@demo.example")
    queue = client.get("/staff/requests")
    request_id = detail.rsplit("/", 1)[1]
    assert f'href="/staff/requests/{request_id}"' in queue.text
    assert f'href="/staff/requests/{request_id}"' in client.get(f"/staff/accounts/{number}").text
    page = client.get(f"/staff/requests/{request_id}")
    token = csrf_from(page.text)
    # Declining needs a message for the customer.
    refused = client.post(f"/staff/requests/{request_id}", data={"csrf_token": token, "action": "declined"})
    assert refused.status_code == 400 and "why" in refused.context["form"].errors["message"]
    done = client.post(
        f"/staff/requests/{request_id}",
        data={"csrf_token": token, "action": "scheduled", "message": "We read your meter on the 2nd.", "note": "ok"},
        follow_redirects=False,
    )
    assert done.status_code == 303
    update = [m for m in mail_to(inbox, EMAIL) if m["Subject"] == f"Your request No. {request_id}: an update"][-1]
    assert "Scheduled" in body_of(update) and "We read your meter on the 2nd." in body_of(update)

    client.cookies.clear()
    sign_in(client, EMAIL)
    page = client.get(detail)
    assert "Scheduled" in page.text and "We read your meter on the 2nd." in page.text
    assert "ok" not in page.text.split("What you asked for")[0].split("Message from our staff")[0][-20:]
    assert "Cancel this request" not in page.text  # staff already have it
    with Session(district) as s:
        actions = set(s.scalars(select(AuditEvent.action).where(AuditEvent.entity_type == "service_request")))
        assert {"service_request.submitted", "service_request.scheduled"} <= actions


def test_a_start_request_checks_identity_and_tells_renters_the_deposit(client: TestClient, district: Engine) -> None:
    sign_in(client, "pastdue@demo.example")
    young = ask(client, "start", start_on=day(5), birth_date=day(-365 * 10), id_last4="12", **NEW_HOME, **CONTACT)
    assert young.status_code == 400
    assert set(young.context["form"].errors) == {"birth_date", "id_last4"}
    assert count(district) == 0
    response = ask(client, "start", start_on=day(5), birth_date="1985-04-30", id_last4="d123", **NEW_HOME, **CONTACT)
    assert response.status_code == 303
    page = client.get(response.headers["location"])
    assert "deposit of $100.00" in page.text
    with Session(district) as s:
        (item,) = s.scalars(select(ServiceRequest))
        assert item.kind == "start" and item.id_last4 == "D123" and item.deposit_cents == 10_000
        assert item.account_id is None and item.contact_email == "pastdue@demo.example"


def test_owners_pay_no_deposit_and_a_transfer_needs_both_ends(client: TestClient, district: Engine) -> None:
    sign_in(client, EMAIL)
    (number, *_) = linked_numbers(district, EMAIL)
    missing = ask(client, "transfer", account=number, stop_on=day(10), **FORWARD, **CONTACT)
    assert missing.status_code == 400
    assert {"start_on", "service_line1", "occupancy"} <= set(missing.context["form"].errors)
    response = ask(
        client,
        "transfer",
        account=number,
        stop_on=day(10),
        start_on=day(10),
        **FORWARD,
        **{**NEW_HOME, "occupancy": "owner"},
        **CONTACT,
    )
    assert response.status_code == 303
    with Session(district) as s:
        (item,) = s.scalars(select(ServiceRequest))
        assert item.kind == "transfer" and item.deposit_cents == 0 and item.account_id is not None


def test_the_customer_cancels_while_it_is_only_received(client: TestClient, district: Engine) -> None:
    sign_in(client, EMAIL)
    (number, *_) = linked_numbers(district, EMAIL)
    detail = ask(client, "stop", account=number, stop_on=day(3), **FORWARD, **CONTACT).headers["location"]
    page = client.get(detail)
    after = client.post(detail + "/cancel", data={"csrf_token": csrf_from(page.text)})
    assert "Your request is cancelled." in after.text and "Cancel this request" not in after.text
    with Session(district) as s:
        assert s.scalar(select(ServiceRequest.status)) == "cancelled"


def test_nobody_sees_or_acts_on_someone_elses_requests(client: TestClient, district: Engine) -> None:
    sign_in(client, EMAIL)
    (number, *_) = linked_numbers(district, EMAIL)
    detail = ask(client, "stop", account=number, stop_on=day(3), **FORWARD, **CONTACT).headers["location"]
    client.cookies.clear()
    sign_in(client, "pastdue@demo.example")
    token = csrf_from(client.get("/my/requests").text)
    assert client.get(detail).status_code == 404
    assert client.post(detail + "/cancel", data={"csrf_token": token}).status_code == 404
    # Naming someone else's account reads as a mistake, and says nothing about it.
    other = ask(client, "stop", account=number, stop_on=day(3), **FORWARD, **CONTACT)
    assert other.status_code == 400 and other.context["form"].errors["account"] == "Choose one of your accounts."
    assert client.get("/staff/requests").status_code == 404
    client.cookies.clear()
    sign_in(client, "cashier@demo.example")
    request_id = detail.rsplit("/", 1)[1]
    page = client.get(f"/staff/requests/{request_id}")
    assert page.status_code == 200 and "Work this request" not in page.text
    refused = client.post(
        f"/staff/requests/{request_id}", data={"csrf_token": csrf_from(page.text), "action": "completed"}
    )
    assert refused.status_code == 403


def test_the_final_bill_completes_the_stop_request_and_tells_the_customer(
    client: TestClient, district: Engine, inbox: list
) -> None:
    from portal.billing_core.models import Account, MeterRead, Service

    sign_in(client, EMAIL)
    (number, *_) = linked_numbers(district, EMAIL)
    detail = ask(client, "stop", account=number, stop_on=day(0), **FORWARD, **CONTACT).headers["location"]
    request_id = detail.rsplit("/", 1)[1]
    with Session(district) as s:
        account_id = s.scalar(select(Account.id).where(Account.number == number))
        meters = set(
            s.scalars(select(Service.meter_id).where(Service.account_id == account_id, Service.meter_id.is_not(None)))
        )
        reads = {
            f"read-{m}": str(
                s.scalar(select(MeterRead.value).where(MeterRead.meter_id == m).order_by(MeterRead.read_on.desc())) + 3
            )
            for m in meters
        }
    client.cookies.clear()
    sign_in(client, "specialist@demo.example")
    page = client.get(f"/staff/accounts/{number}")
    before = len(mail_to(inbox, EMAIL))
    done = client.post(
        f"/staff/accounts/{number}/stop",
        data={"csrf_token": csrf_from(page.text), "stop_on": day(0), **reads},
        follow_redirects=False,
    )
    assert done.status_code == 303, done.text
    with Session(district) as s:
        assert s.scalar(select(ServiceRequest.status).where(ServiceRequest.id == int(request_id))) == "completed"
    (update,) = mail_to(inbox, EMAIL)[before:]
    assert "Done" in body_of(update)


def test_every_empty_address_field_is_flagged(client: TestClient, district: Engine) -> None:
    sign_in(client, EMAIL)
    (number, *_) = linked_numbers(district, EMAIL)
    stop = ask(client, "stop", account=number, stop_on=day(5), **CONTACT)
    assert stop.status_code == 400
    errors = stop.context["form"].errors
    assert {"forward_line1", "forward_city", "forward_state", "forward_zip"} <= set(errors)
    for field in ("forward_line1", "forward_city", "forward_state", "forward_zip"):
        assert f'id="{field}-error"' in stop.text
    # Half filled in: the empty parts are flagged, and a part filled in wrongly too.
    move = ask(
        client,
        "transfer",
        account=number,
        stop_on=day(5),
        start_on=day(5),
        **FORWARD,
        service_line1="400 Canyon Rd",
        service_state="California",
        occupancy="owner",
        **CONTACT,
    )
    errors = move.context["form"].errors
    assert {"service_city", "service_zip", "service_state"} <= set(errors) and "service_line1" not in errors
    assert "two letters" in errors["service_state"]
    assert count(district) == 0


def test_the_date_error_shows_the_date_fields_format(client: TestClient, district: Engine) -> None:
    sign_in(client, EMAIL)
    (number, *_) = linked_numbers(district, EMAIL)
    # Today is November 22, 2026: the example is two weeks on, as the date field shows dates.
    wrong = ask(client, "stop", account=number, stop_on="next week", **FORWARD, **CONTACT)
    assert (
        wrong.context["form"].errors["stop_on"] == "Enter the date as the date field shows it, for example 12/06/2026."
    )
    assert service_requests.date_pattern("en") == "MM/dd/yyyy" and service_requests.date_pattern("es") == "dd/MM/yyyy"
    # What the message shows is accepted (a browser without a date picker shows a text field).
    typed = ask(client, "stop", account=number, stop_on="12/02/2026", **FORWARD, **CONTACT)
    assert typed.status_code == 303
    with Session(district) as s:
        assert s.scalar(select(ServiceRequest.stop_on)) == TODAY + timedelta(days=10)
    page = client.get("/my/requests/new/start")
    client.post("/language", data={"csrf_token": csrf_from(page.text), "lang": "es", "next": "/my/requests"})
    spanish = ask(
        client, "start", start_on="2026-12-99", birth_date="30/04/1985", id_last4="d123", **NEW_HOME, **CONTACT
    )
    errors = spanish.context["form"].errors
    assert "06/12/2026" in errors["start_on"] and "birth_date" not in errors


def set_status(engine: Engine, request_id: int, status: str) -> None:
    with Session(engine) as s, s.begin():
        s.get(ServiceRequest, request_id).status = status


def test_residents_and_staff_see_the_same_status_names(client: TestClient, district: Engine) -> None:
    sign_in(client, EMAIL)
    (number, *_) = linked_numbers(district, EMAIL)
    detail = ask(client, "stop", account=number, stop_on=day(5), **FORWARD, **CONTACT).headers["location"]
    request_id = int(detail.rsplit("/", 1)[1])
    spanish = translations("es")
    seen: dict[str, tuple[str, str, str]] = {}
    for status, label in service_requests.STATUS_LABELS.items():
        set_status(district, request_id, status)
        client.cookies.clear()
        sign_in(client, EMAIL)
        english = client.get(detail).text
        page = client.get("/my/requests")
        client.post("/language", data={"csrf_token": csrf_from(page.text), "lang": "es", "next": "/my"})
        in_spanish = client.get(detail)
        client.post("/language", data={"csrf_token": csrf_from(in_spanish.text), "lang": "en", "next": "/my"})
        in_spanish = in_spanish.text
        client.cookies.clear()
        sign_in(client, "csr@demo.example")
        staff = client.get(f"/staff/requests/{request_id}").text
        queue = client.get(
            "/staff/requests", params={"show": "open" if status in ("submitted", "scheduled") else "done"}
        )
        assert f"Status: {label}</h2>" in english
        assert spanish.gettext(label) != label and f"Estado: {spanish.gettext(label)}</h2>" in in_spanish
        assert f"<dt>Status</dt><dd>{label}" in staff
        assert f"<td>{label}</td>" in queue.text
        seen[status] = (label, spanish.gettext(label), staff)
    assert [v[0] for v in seen.values()] == ["Received", "Scheduled", "Done", "Declined", "Cancelled"]


def test_a_request_for_a_later_day_is_not_done_before_it(client: TestClient, district: Engine) -> None:
    sign_in(client, EMAIL)
    (number, *_) = linked_numbers(district, EMAIL)
    detail = ask(client, "stop", account=number, stop_on=day(28), **FORWARD, **CONTACT).headers["location"]
    request_id = detail.rsplit("/", 1)[1]
    client.cookies.clear()
    sign_in(client, "csr@demo.example")
    page = client.get(f"/staff/requests/{request_id}")
    token = csrf_from(page.text)
    scheduled = client.post(
        f"/staff/requests/{request_id}",
        data={"csrf_token": token, "action": "scheduled", "message": "We read your meter on December 20."},
        follow_redirects=False,
    )
    assert scheduled.status_code == 303
    # On November 22 a stop for December 20 cannot be marked done...
    early = client.post(f"/staff/requests/{request_id}", data={"csrf_token": token, "action": "completed"})
    assert early.status_code == 400 and "on or after that day" in early.context["form"].errors["action"]
    with Session(district) as s:
        assert s.get(ServiceRequest, int(request_id)).status == "scheduled"
    # ...and on its day only by stopping the service (the final bill marks it done).
    with Session(district) as s, s.begin():
        s.get(ServiceRequest, int(request_id)).stop_on = TODAY
    active = client.post(f"/staff/requests/{request_id}", data={"csrf_token": token, "action": "completed"})
    assert active.status_code == 400 and "has not stopped" in active.context["form"].errors["action"]
    client.cookies.clear()
    sign_in(client, EMAIL)
    assert "Status: Scheduled</h2>" in client.get(detail).text
