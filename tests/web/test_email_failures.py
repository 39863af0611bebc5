"""When the mail server is unreachable: delivering a run's bills still answers (303), the
run shows its emails retrying, and when the server is back each is sent exactly once.
Request and plan emails the same; a page says an email was sent only when it was queued."""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Iterator
from datetime import date, timedelta

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker
from starlette.testclient import TestClient

from portal import jobs
from portal.adapters.clock import system_clock
from portal.app import create_app
from portal.billing_core import bill_runs
from portal.billing_core.models import (
    Account,
    ArrangementRequest,
    BillRun,
    Customer,
    EmailOutbox,
    MeterRead,
    User,
)
from portal.settings import Settings
from tests.smtp import smtp_server

from .conftest import CLOCK, SETTINGS, csrf_from, linked_numbers, mail_to, sign_in
from .test_billing_pages import PASSWORD, office  # noqa: F401  (fixture: two accounts, staff sign-ins)
from .test_requests import CONTACT, FORWARD, ask, day, district  # noqa: F401  (fixture: a district of its own)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def outbox_rows(engine: Engine, **where: object) -> list[EmailOutbox]:
    with Session(engine) as s:
        stmt = select(EmailOutbox).order_by(EmailOutbox.id)
        for column, value in where.items():
            stmt = stmt.where(getattr(EmailOutbox, column) == value)
        return list(s.scalars(stmt))


def retry_later(engine: Engine, port: int) -> None:
    """The periodic pass, a few minutes later, with the mail server back."""
    settings = dataclasses.replace(SETTINGS, smtp_host="127.0.0.1", smtp_port=port, jobs_in_process=True)
    jobs.retry_due(settings, sessionmaker(engine, expire_on_commit=False), now=system_clock() + timedelta(minutes=3))


# --- A bill run's emails ---------------------------------------------------------------------


@pytest.fixture
def posted(office: Engine) -> Engine:  # noqa: F811
    with Session(office) as s, s.begin():
        for n, account in enumerate(s.scalars(select(Account).order_by(Account.id))):
            account.paperless = True
            s.get(Customer, account.customer_id).email = f"paperless{n}@example.net"
        for read in s.scalars(select(MeterRead).where(MeterRead.status == "exception")):
            read.status, read.exception = "approved", None  # no bill held: both accounts are billed
        supervisor = s.scalar(select(User).where(User.email == "supervisor@x.org"))
        run = bill_runs.create_run(s, "C1", date(2026, 10, 5), date(2026, 11, 5), actor=supervisor)
        bill_runs.calculate(s, run, now=system_clock())
        bill_runs.approve(s, run, supervisor, now=system_clock())
        bill_runs.post(s, run, supervisor, now=system_clock())
    return office


def test_delivering_with_smtp_down_answers_and_shows_the_emails_retrying(posted: Engine) -> None:
    settings = Settings(secret_key="t", jobs_in_process=True, smtp_host="127.0.0.1", smtp_port=closed_port())
    client = TestClient(create_app(settings, engine=posted, clock=CLOCK), base_url="https://testserver")
    sign_in(client, "specialist@x.org", PASSWORD)
    with Session(posted) as s:
        run_id = s.scalar(select(BillRun.id))
    url = f"/staff/bill-runs/{run_id}"
    response = client.post(url, data={"csrf_token": csrf_from(client.get(url).text), "action": "deliver"})
    assert response.status_code == 200 and response.url.path == url  # the 303 was followed to the run
    assert "paperless customers emailed" not in response.text
    rows = outbox_rows(posted, kind="email.bill_ready")
    assert len(rows) == 2 and {r.status for r in rows} == {"retrying"}
    page = client.get(url)
    emails = page.context["delivery"].emails
    assert (emails["retrying"], emails["sent"]) == (2, 0)
    assert "Retrying" in page.text and "refused the connection" in page.text and "Next attempt" in page.text
    with smtp_server() as (port, inbox):
        retry_later(posted, port)
        retry_later(posted, port)
        assert sorted(m["To"] for m in inbox) == ["paperless0@example.net", "paperless1@example.net"]
    page = client.get(url)
    assert page.context["delivery"].emails["sent"] == 2 and "2 of 2" in page.text


def test_failed_emails_are_shown_and_sent_again_on_request(posted: Engine) -> None:
    settings = Settings(secret_key="t", jobs_in_process=True, smtp_host="127.0.0.1", smtp_port=closed_port())
    client = TestClient(create_app(settings, engine=posted, clock=CLOCK), base_url="https://testserver")
    sign_in(client, "specialist@x.org", PASSWORD)
    with Session(posted) as s:
        run_id = s.scalar(select(BillRun.id))
    url = f"/staff/bill-runs/{run_id}"
    client.post(url, data={"csrf_token": csrf_from(client.get(url).text), "action": "deliver"})
    with Session(posted) as s, s.begin():
        s.execute(EmailOutbox.__table__.update().values(status="failed", next_attempt_at=None))
    page = client.get(url)
    assert "Failed" in page.text and "Send the failed emails again" in page.text
    with smtp_server() as (port, inbox):
        client.app.state.settings = dataclasses.replace(settings, smtp_port=port)
        again = client.post(url, data={"csrf_token": csrf_from(page.text), "action": "resend_emails"})
        assert again.status_code == 200 and "2 failed emails queued again" in again.text
        assert len(inbox) == 2
    assert {r.status for r in outbox_rows(posted)} == {"sent"}


# --- Request and plan emails -------------------------------------------------------------------


@pytest.fixture
def down_client(district: Engine) -> Iterator[TestClient]:  # noqa: F811
    config = dataclasses.replace(SETTINGS, smtp_host="127.0.0.1", smtp_port=closed_port())
    with TestClient(create_app(config, engine=district, clock=CLOCK), base_url="https://testserver") as c:
        yield c


def test_a_request_update_with_smtp_down_is_shown_retrying_then_sent_once(
    down_client: TestClient,
    district: Engine,  # noqa: F811
) -> None:
    client = down_client
    sign_in(client, "resident@demo.example")
    (number, *_) = linked_numbers(district, "resident@demo.example")
    asked = ask(client, "stop", account=number, stop_on=day(10), **FORWARD, **CONTACT)
    assert asked.status_code == 303
    request_id = int(asked.headers["location"].rsplit("/", 1)[1])
    client.cookies.clear()
    sign_in(client, "csr@demo.example")
    page = client.get(f"/staff/requests/{request_id}")
    done = client.post(
        f"/staff/requests/{request_id}",
        data={"csrf_token": csrf_from(page.text), "action": "scheduled", "message": "On the 2nd."},
    )
    assert done.status_code == 200 and done.url.path == f"/staff/requests/{request_id}"
    assert "The customer is emailed" not in done.text
    (row,) = outbox_rows(district, ref_type="service_request", ref_id=request_id)
    assert (row.status, row.attempts) == ("retrying", 1)
    assert "Retrying" in done.text and "refused the connection" in done.text
    with smtp_server() as (port, inbox):
        retry_later(district, port)
        retry_later(district, port)
        updates = [m for m in mail_to(inbox, "resident@demo.example") if f"No. {request_id}" in m["Subject"]]
        assert len(updates) == 1
    assert "Sent" in client.get(f"/staff/requests/{request_id}").text


def test_a_plan_decision_with_smtp_down_is_shown_retrying_then_sent_once(
    down_client: TestClient,
    district: Engine,  # noqa: F811
) -> None:
    from .test_arrangements import propose

    client = down_client
    sign_in(client, "pastdue@demo.example")
    (number,) = linked_numbers(district, "pastdue@demo.example")
    assert propose(client, number, installments="4").status_code == 303
    with Session(district) as s:
        item_id = s.scalar(select(ArrangementRequest.id))
    client.cookies.clear()
    sign_in(client, "specialist@demo.example")
    page = client.get(f"/staff/arrangements/{item_id}")
    decided = client.post(
        f"/staff/arrangements/{item_id}", data={"csrf_token": csrf_from(page.text), "decision": "approve"}
    )
    assert decided.status_code == 200 and "The customer is emailed" not in decided.text
    (row,) = outbox_rows(district, ref_type="arrangement_request", ref_id=item_id)
    assert row.status == "retrying" and "Retrying" in decided.text
    with smtp_server() as (port, inbox):
        retry_later(district, port)
        retry_later(district, port)
        assert [m["Subject"] for m in mail_to(inbox, "pastdue@demo.example")] == ["Your payment plan is approved"]


# --- "We sent you a message" only when it was queued -----------------------------------------


def _sign_up(client: TestClient, email: str):  # type: ignore[no-untyped-def]
    token = csrf_from(client.get("/sign-up").text)
    return client.post(
        "/sign-up",
        data={
            "csrf_token": token,
            "name": "Robin",
            "email": email,
            "password": "river stone garden",
            "password_again": "river stone garden",
        },
    )


def test_sign_up_with_smtp_down_is_queued_and_says_so(down_client: TestClient, district: Engine) -> None:  # noqa: F811
    page = _sign_up(down_client, "queued@example.net")
    assert page.status_code == 200 and "We sent a message to" in page.text
    (row,) = outbox_rows(district, kind="email.account")
    assert row.status == "retrying"


def test_sign_up_whose_email_could_not_be_queued_does_not_say_it_was_sent(
    down_client: TestClient,
    district: Engine,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("the outbox is not writable")

    monkeypatch.setattr(jobs, "enqueue", broken)
    page = _sign_up(down_client, "lost@example.net")
    assert "We sent a message" not in page.text
    assert "could not send" in page.text


def test_signing_in_unconfirmed_says_a_new_link_was_sent_only_when_it_was_queued(
    down_client: TestClient,
    district: Engine,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _sign_up(down_client, "unconfirmed@example.net")
    queued = sign_in(down_client, "unconfirmed@example.net", "river stone garden")
    assert queued.status_code == 400 and "We just sent a new link" in queued.text

    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("the outbox is not writable")

    monkeypatch.setattr(jobs, "enqueue", broken)
    lost = sign_in(down_client, "unconfirmed@example.net", "river stone garden")
    assert lost.status_code == 400 and "We just sent" not in lost.text and "could not send a new link" in lost.text
