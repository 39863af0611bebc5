"""A CSR turns a resident's start request into a new account: the form comes filled in from
the request, an unreadable address is refused next to its field, then the account opens with
the policy's deposit and a turn-on order, and the request is done."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from email.header import decode_header, make_header

from playwright.sync_api import Page, expect
from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.adapters.database import make_engine
from portal.billing_core.models import Account, Deposit, ServiceRequest, User, WorkOrder

from .conftest import LiveServer
from .test_first_slice import sign_in

NOW = datetime(2026, 11, 21, 16, tzinfo=UTC)


def a_start_request(server: LiveServer) -> int:
    engine = make_engine(server.database_url)
    try:
        with Session(engine) as s, s.begin():
            user = User(email="newcomer@example.net", role="customer", language="es", created_at=NOW)
            s.add(user)
            s.flush()
            item = ServiceRequest(
                kind="start", status="submitted", user_id=user.id, start_on=date(2026, 11, 22),
                contact_name="Lucía Paredes", contact_phone="(909) 555-0199", contact_email="newcomer@example.net",
                service_line1="Ramona Avenue", service_city="Chino", service_state="CA", service_zip="91710",
                occupancy="tenant", birth_date=date(1991, 2, 14), id_last4="7Q2Z", created_at=NOW, updated_at=NOW,
            )  # fmt: skip
            s.add(item)
            s.flush()
            return item.id
    finally:
        engine.dispose()


def what_was_opened(
    server: LiveServer, request_id: int
) -> tuple[ServiceRequest, Account, str, list[Deposit], WorkOrder]:
    engine = make_engine(server.database_url)
    try:
        with Session(engine, expire_on_commit=False) as s:
            item = s.get(ServiceRequest, request_id)
            assert item is not None and item.account_id is not None
            account = s.get(Account, item.account_id)
            assert account is not None
            deposits = list(s.scalars(select(Deposit).where(Deposit.account_id == account.id)))
            order = s.scalar(select(WorkOrder).where(WorkOrder.service_request_id == request_id))
            assert order is not None
            return item, account, account.premise.address_line1, deposits, order
    finally:
        engine.dispose()


def test_a_csr_opens_an_account_from_a_start_request(page: Page, live_server: LiveServer) -> None:
    request_id = a_start_request(live_server)
    sign_in(page, live_server, "csr@demo.example")
    page.goto(f"{live_server.url}/staff/requests/{request_id}")
    page.get_by_role("link", name="Open an account from this request").click()
    expect(page.get_by_role("heading", name="Open an account")).to_be_visible()
    # Filled in from the request.
    expect(page.get_by_label("Name", exact=True)).to_have_value("Lucía Paredes")
    expect(page.get_by_label("Language for letters and emails")).to_have_value("es")
    expect(page.get_by_label("Date of birth (optional)")).to_have_value("1991-02-14")
    page.get_by_label("Customer class").select_option("RESIDENTIAL_SINGLE")
    page.get_by_label("Water rate").select_option(label="Water, single-family residential")
    page.get_by_label("Sewer rate").select_option(label="Sewer, residential flat")
    page.get_by_role("button", name="Open the account").click()
    # The request's street has no number: said next to the field, nothing written.
    expect(page.get_by_text("Nothing was saved: correct the fields marked below.")).to_be_visible()
    street = page.get_by_label("Street address", exact=True)
    expect(street).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_text(re.compile("needs a street number"))).to_be_visible()
    street.fill("4100 Ramona Avenue")
    page.get_by_role("button", name="Open the account").click()
    expect(page.get_by_role("heading", name=re.compile(r"Account \d+: set-up"))).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text("A deposit of $")
    expect(page.get_by_text(re.compile(r"Turn on order \d+: open, due"))).to_be_visible()
    expect(page.get_by_role("link", name="Welcome letter (PDF)")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    item, account, street_line, deposits, order = what_was_opened(live_server, request_id)
    assert item.status == "completed" and street_line == "4100 Ramona Ave"
    assert [d.status for d in deposits] == ["billed"] and deposits[0].amount_cents > 0
    assert (order.kind, order.status, order.origin) == ("turn_on", "open", "request")
    # The resident is welcomed in Spanish and told the request is done.
    subjects = {
        " ".join(str(make_header(decode_header(m["Subject"]))).split())
        for m in live_server.inbox
        if m["To"] == "newcomer@example.net"
    }
    assert f"Bienvenido: su cuenta {account.number} está abierta" in subjects, subjects
    assert any(str(item.id) in subject for subject in subjects), subjects
    # The letter prints through the printer adapter.
    pdf = page.request.get(f"{live_server.url}/staff/accounts/{account.number}/welcome.pdf")
    assert pdf.ok and pdf.body()[:4] == b"%PDF"
