"""The cashier's pages: open a drawer, take payments (errors next to fields, nothing
written), the receipt and its email, close with a count, sign-off, the money reports."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from portal.app import create_app
from portal.billing_core import ledger, ledger_check, posting, users
from portal.billing_core.models import Account, CashDrawer, Customer, LedgerEntry, Payment
from portal.demo import DEMO_PASSWORD
from tests.db.factories import district

from .conftest import CLOCK, SETTINGS, csrf_from, mail_to, sign_in

D = date(2026, 11, 1)
NOW = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture
def office(engine, smtp):  # type: ignore[no-untyped-def]
    """A small district of its own (the shared demo must not change): accounts billed, and
    the staff sign-ins of the demo's names."""
    with Session(engine) as s, s.begin():
        accts = district(s, 2)
        for a in accts:
            posting.post(s, ledger.bill_transaction(a.id, D, D + timedelta(days=21), {"water": 5000}), a.id)
        for role in ("supervisor", "csr", "cashier"):
            users.create_user(s, f"{role}@demo.example", DEMO_PASSWORD, role, display_name=f"Demo {role}", now=NOW)
    settings = dataclasses.replace(SETTINGS, smtp_host="127.0.0.1", smtp_port=smtp[0])
    with TestClient(create_app(settings, engine=engine, clock=CLOCK), base_url="https://testserver") as c:
        yield c


def _account(engine) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    with Session(engine) as s:
        a = s.scalars(select(Account).join(Customer).where(Customer.email.is_not(None)).order_by(Account.id)).first()
        assert a is not None
        return a.number, a.customer.email or ""


def _post(client, path: str, data: dict):  # type: ignore[no-untyped-def]
    token = csrf_from(client.get("/staff/drawers").text)
    return client.post(path, data={**data, "csrf_token": token}, follow_redirects=False)


def test_a_cashier_day(office, engine, inbox) -> None:  # type: ignore[no-untyped-def]
    assert sign_in(office, "cashier@demo.example").status_code == 303
    page = office.get("/staff/drawers")
    assert page.status_code == 200 and "Open a drawer" in page.text
    bad = _post(office, "/staff/drawers/open", {"name": "Counter 9", "float": "12.345"})
    assert bad.status_code == 400 and 'id="float-error"' in bad.text
    assert _post(office, "/staff/drawers/open", {"name": "Counter 9", "float": "150.00"}).status_code == 303
    number, email = _account(engine)
    with Session(engine) as s:
        before = s.scalar(select(func.count()).select_from(Payment))
    bad = _post(office, "/staff/drawers/payments", {"account-1": number, "amount-1": "0", "tender": "cash"})
    assert bad.status_code == 400 and 'id="amount-1-error"' in bad.text
    bad = _post(office, "/staff/drawers/payments", {"account-1": "123 456 7", "amount-1": "5", "tender": "cash"})
    assert bad.status_code == 400 and "scan line" in bad.text
    bad = _post(
        office, "/staff/drawers/payments", {"account-1": number, "amount-1": "20", "tender": "cash", "tendered": "10"}
    )
    assert bad.status_code == 400 and 'id="tendered-error"' in bad.text
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(Payment)) == before
    done = _post(
        office,
        "/staff/drawers/payments",
        {"account-1": number, "amount-1": "20.00", "tender": "cash", "tendered": "25"},
    )
    assert done.status_code == 303
    receipt = office.get(done.headers["location"])
    assert receipt.status_code == 200 and "Change given" in receipt.text and "Demo cashier" in receipt.text
    assert mail_to(inbox, email), "the receipt is emailed"
    checked = _post(
        office,
        "/staff/drawers/payments",
        {"account-1": number, "amount-1": "10.00", "tender": "check", "check_number": "5001", "check_bank": "B"},
    )
    assert checked.status_code == 303
    # Expected cash 150 + 20 = 170; count 169 -> a dollar short, so a reason is needed.
    with Session(engine) as s:
        drawer = s.scalars(select(CashDrawer).where(CashDrawer.status == "open", CashDrawer.name == "Counter 9")).one()
    count = {"bill-10000": "1", "bill-2000": "3", "bill-500": "1", "bill-100": "4", "check-number-1": "5001"}
    count["check-amount-1"] = "10.00"
    bad = _post(office, f"/staff/drawers/{drawer.id}/close", count)
    assert bad.status_code == 400 and 'id="reason-error"' in bad.text
    assert _post(office, f"/staff/drawers/{drawer.id}/close", {**count, "reason": "change error"}).status_code == 303
    # The cashier cannot sign off; a supervisor can.
    assert _post(office, f"/staff/drawers/{drawer.id}/sign-off", {"note": ""}).status_code == 403
    office.cookies.clear()
    assert sign_in(office, "supervisor@demo.example").status_code == 303
    assert "Counter 9" in office.get("/staff/drawers").text
    assert _post(office, f"/staff/drawers/{drawer.id}/sign-off", {"note": "ok"}).status_code == 303
    report = office.get("/staff/reports/money?on=2026-11-22")
    assert report.status_code == 200 and "Counter 9" in report.text and "change error" in report.text
    csv = office.get("/staff/reports/money/deposit.csv?on=2026-11-22")
    assert csv.status_code == 200 and "Counter 9" in csv.text and ",-1.00," in csv.text
    assert office.get("/staff/reports/money/pdf?on=2026-11-22").headers["content-type"] == "application/pdf"
    remit = office.get("/staff/reports/money/remittance.csv?on=2026-11-22")
    assert "channel,counter,30.00" in remit.text
    with Session(engine) as s:
        assert [p for p in ledger_check.run(s) if "drawer" in p or "receipt" in p] == []
        txn = s.get(CashDrawer, drawer.id).ledger_transaction_id  # type: ignore[union-attr]
        assert s.scalar(select(func.sum(LedgerEntry.amount_cents)).where(LedgerEntry.transaction_id == txn)) == 0


def test_a_csr_cannot_take_payments(office) -> None:  # type: ignore[no-untyped-def]
    assert sign_in(office, "csr@demo.example").status_code == 303
    assert "Only cashiers" in office.get("/staff/drawers").text
    assert _post(office, "/staff/drawers/open", {"name": "X", "float": "1"}).status_code == 403


def test_the_lookup_finds_by_name_with_and_without_htmx(office, engine) -> None:  # type: ignore[no-untyped-def]
    number, _email = _account(engine)
    assert sign_in(office, "cashier@demo.example").status_code == 303
    page = office.get(f"/staff/drawers/lookup?q={number}")
    assert page.status_code == 200 and number in page.text and "<h1>" in page.text
    part = office.get(f"/staff/drawers/lookup?q={number}", headers={"HX-Request": "true"})
    assert number in part.text and "<h1>" not in part.text


def test_the_receipt_is_in_the_customers_language(office, engine, inbox) -> None:  # type: ignore[no-untyped-def]
    number, email = _account(engine)
    with Session(engine) as s, s.begin():
        account = s.scalars(select(Account).where(Account.number == number)).one()
        account.customer.preferred_language = "es"
    assert sign_in(office, "cashier@demo.example").status_code == 303
    assert _post(office, "/staff/drawers/open", {"name": "Counter 3", "float": "0"}).status_code == 303
    done = _post(office, "/staff/drawers/payments", {"account-1": number, "amount-1": "7.00", "tender": "cash"})
    assert done.status_code == 303
    page = office.get(done.headers["location"])
    assert "Recibo R" in page.text and "Efectivo" in page.text
    assert office.get(done.headers["location"] + "/pdf").headers["content-type"] == "application/pdf"
    (message,) = mail_to(inbox, email)[-1:]
    assert "gracias" in message["Subject"]
