"""The opening and transfer pages on the demo district: a possible duplicate comes back as a
choice with nothing written; the transfer form refuses a wrong part next to its field."""

from __future__ import annotations

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from portal.billing_core.models import Account, AuditEvent, Customer

from .conftest import csrf_from, sign_in


def _accounts(engine: Engine) -> int:
    with Session(engine) as s:
        return int(s.scalar(select(func.count()).select_from(Account)) or 0)


def test_a_possible_duplicate_is_offered_and_nothing_is_written(client: TestClient, demo_engine: Engine) -> None:
    with Session(demo_engine) as s:
        known = s.scalars(select(Customer).where(Customer.email.is_not(None)).order_by(Customer.id)).first()
        assert known is not None
        known_id, email = known.id, known.email
    sign_in(client, "csr@demo.example")
    page = client.get("/staff/accounts/new")
    assert page.status_code == 200 and "Open an account" in page.text
    schedules = page.context["page"].choices.schedules
    before = _accounts(demo_engine)
    answer = client.post(
        "/staff/accounts/new",
        data={
            "csrf_token": csrf_from(page.text),
            "customer_kind": "person",
            "name": "Someone Else",
            "email": email,
            "phone": "(909) 555-0100",
            "language": "en",
            "service_line1": "1 Nowhere Rd",
            "service_city": "Chino",
            "service_state": "CA",
            "service_zip": "91710",
            "customer_class": "RESIDENTIAL_SINGLE",
            "cycle": str(page.context["page"].choices.cycles[0].id),
            "start_on": "2026-11-22",
            "water": "on",
            "water_schedule": str(schedules["water"][0].id),
        },
    )
    assert answer.status_code == 400
    assert "Possible duplicates" in answer.text and f'id="customer-{known_id}"' in answer.text
    assert 'name="duplicates_seen" value="1"' in answer.text
    assert _accounts(demo_engine) == before


def test_the_transfer_form_refuses_a_wrong_part_and_changes_nothing(client: TestClient, demo_engine: Engine) -> None:
    with Session(demo_engine) as s:
        number = s.scalars(select(Account.number).where(Account.status == "active").order_by(Account.id.desc())).all()[
            7
        ]
    sign_in(client, "supervisor@demo.example")
    account_page = client.get(f"/staff/accounts/{number}")
    assert f'href="/staff/accounts/{number}/transfer"' in account_page.text
    page = client.get(f"/staff/accounts/{number}/transfer")
    assert page.status_code == 200 and "Final read of meter" in page.text
    answer = client.post(
        f"/staff/accounts/{number}/transfer",
        data={"csrf_token": csrf_from(page.text), "stop_on": "2026-11-21", "service_line1": "PO Box 4"},
    )
    assert answer.status_code == 400 and "post office box" in answer.text
    assert "Nothing was saved" in answer.text
    with Session(demo_engine) as s:
        assert s.scalar(select(Account.status).where(Account.number == number)) == "active"
        assert s.scalar(select(AuditEvent.id).where(AuditEvent.action == "account.transferred")) is None
