"""Maintaining an account through the staff pages: the links on the account page, a change
form refused with the error next to its field, then saved, and the history tab."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from portal.app import create_app
from portal.billing_core import users
from portal.billing_core.models import AuditEvent, Bill, Service
from portal.settings import Settings
from tests.db.factories import district

from .conftest import CLOCK, csrf_from, sign_in

PASSWORD = "a long password"


@pytest.fixture
def office(engine: Engine) -> tuple[Engine, str]:
    with Session(engine) as s, s.begin():
        (account,) = district(s, 1)
        s.add(
            Bill(
                number="000000001",
                account_id=account.id,
                period_start=date(2026, 10, 5),
                period_end=date(2026, 11, 5),
                bill_date=date(2026, 11, 7),
                due_date=date(2026, 11, 28),
                previous_balance_cents=0,
                current_charges_cents=0,
                total_due_cents=0,
            )
        )
        users.create_user(s, "csr@x.org", PASSWORD, "csr")
        users.create_user(s, "cash@x.org", PASSWORD, "cashier")
        number = account.number
    return engine, number


@pytest.fixture
def client(office: tuple[Engine, str]) -> TestClient:
    return TestClient(
        create_app(Settings(secret_key="t"), engine=office[0], clock=CLOCK), base_url="https://testserver"
    )


def test_a_csr_changes_a_rate_from_the_account_page_and_sees_it_in_the_history(client: TestClient, office) -> None:  # type: ignore[no-untyped-def]
    engine, number = office
    sign_in(client, "csr@x.org", PASSWORD)
    account_page = client.get(f"/staff/accounts/{number}")
    assert account_page.status_code == 200
    assert f'href="/staff/accounts/{number}/change/rate"' in account_page.text
    assert f'hx-get="/staff/accounts/{number}/history"' in account_page.text
    with Session(engine) as s:
        water = s.scalar(select(Service).where(Service.service_type == "water"))
        sewer = s.scalar(select(Service).where(Service.service_type == "sewer"))
    form = client.get(f"/staff/accounts/{number}/change/rate")
    assert form.status_code == 200 and "billed through" in form.text and 'id="effective_on"' in form.text
    token = csrf_from(form.text)
    url = f"/staff/accounts/{number}/change/rate"
    # Back-dated into the billed period, and a sewer schedule for water: both refused, nothing written.
    bad = client.post(
        url,
        data={
            "csrf_token": token,
            "service": water.id,
            "rate_schedule": sewer.rate_schedule_id,
            "effective_on": "2026-11-01",
        },
    )
    assert bad.status_code == 400
    assert 'id="effective_on-error"' in bad.text and "voiding and rebilling" in bad.text
    assert 'id="rate_schedule-error"' in bad.text and "Choose a water rate schedule." in bad.text
    with Session(engine) as s:
        assert s.scalar(select(func.count(Service.id))) == 2
        assert s.scalar(select(func.count(AuditEvent.id)).where(AuditEvent.action.like("service.%"))) == 0
    # The cart form of an account without sanitation says so; then a contacts change saves.
    assert "has no sanitation service" in client.get(f"/staff/accounts/{number}/change/carts").text
    saved = client.post(
        f"/staff/accounts/{number}/change/contacts",
        data={
            "csrf_token": token,
            "email": "x@example.com",
            "phone": "909 555 0100",
            "preferred_language": "es",
            "paperless": "no",
        },
        follow_redirects=False,
    )
    assert saved.status_code == 303 and saved.headers["location"] == f"/staff/accounts/{number}#services-heading"
    assert "Changed the contacts." in client.get(f"/staff/accounts/{number}").text
    history = client.get(f"/staff/accounts/{number}/history", headers={"HX-Request": "true"})
    assert history.status_code == 200 and "<html" not in history.text
    assert "Contacts changed" in history.text and "csr@x.org" in history.text
    assert "language: English" in history.text and "→ email: x@example.com" in history.text
    assert "<html" in client.get(f"/staff/accounts/{number}/history").text


def test_only_staff_who_may_change_an_account_see_the_forms(client: TestClient, office) -> None:  # type: ignore[no-untyped-def]
    _engine, number = office
    sign_in(client, "cash@x.org", PASSWORD)
    assert "/change/rate" not in client.get(f"/staff/accounts/{number}").text
    assert client.get(f"/staff/accounts/{number}/change/rate").status_code == 403
    assert client.get(f"/staff/accounts/{number}/change/nothing").status_code in (403, 404)
