"""Field staff on a phone receive a meter into stock and install it at a new premise with its
first read: a wrong read is refused next to its field, then the meter is installed, its first
read is on its page, and the account's water service is on it. The pages pass axe-core's
WCAG 2.1 AA rules and fit the phone."""

from __future__ import annotations

from datetime import date

from playwright.sync_api import Page, expect
from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.adapters.database import make_engine
from portal.billing_core.models import Account, Meter, Premise, Service
from portal.billing_core.numbers import account_number

from .conftest import LiveServer
from .test_accessibility import check
from .test_first_slice import sign_in


def a_new_premise(server: LiveServer) -> str:
    """A pending account at a new premise, its water service without a meter yet."""
    engine = make_engine(server.database_url)
    try:
        with Session(engine) as s, s.begin():
            model = s.scalars(select(Account).where(Account.status == "active").order_by(Account.id)).first()
            assert model is not None
            water = next(v for v in model.services if v.service_type == "water")
            premise = Premise(address_line1="4100 Meter Test Ln", city="Chino", state="CA", zip="91710")
            s.add(premise)
            s.flush()
            account = Account(
                number=account_number(880_001),
                customer_id=model.customer_id,
                premise_id=premise.id,
                customer_class=model.customer_class,
                cycle_id=model.cycle_id,
                status="pending",
                opened_on=date(2026, 11, 22),
            )
            s.add(account)
            s.flush()
            s.add(
                Service(
                    account_id=account.id,
                    service_type="water",
                    rate_schedule_id=water.rate_schedule_id,
                    options={},
                    started_on=date(2026, 11, 22),
                )
            )
            return account.number
    finally:
        engine.dispose()


def test_field_staff_receive_and_install_a_meter_on_a_phone(page: Page, live_server: LiveServer) -> None:
    number = a_new_premise(live_server)
    sign_in(page, live_server, "field@demo.example")
    page.goto(f"{live_server.url}/staff/meters")
    check(page, "the stock list")
    page.get_by_role("link", name="Receive meters into stock").click()
    check(page, "the receive page")
    one = page.locator("form", has=page.get_by_role("button", name="Receive this meter"))
    one.get_by_label("Serial number").fill("e2e-0001")
    one.get_by_label("Size").select_option('5/8"')
    one.get_by_label("Make (optional)").fill("Badger")
    page.get_by_role("button", name="Receive this meter").click()
    expect(page.get_by_role("heading", name="Meter E2E-0001")).to_contain_text("In stock")
    expect(page.get_by_role("status")).to_have_text("Meter E2E-0001 received into stock.")
    check(page, "a meter in stock")
    page.get_by_label("Account number at the premise, or its street address").fill(number)
    page.get_by_label("First read of E2E-0001 (CCF)").fill("12345678")
    page.get_by_role("button", name="Install meter E2E-0001").click()
    expect(page.locator("#install_read-error")).to_have_text("a 6-dial meter reads at most 999999")
    expect(page.get_by_label("Account number at the premise, or its street address")).to_have_value(number)
    page.get_by_label("First read of E2E-0001 (CCF)").fill("17")
    page.get_by_role("button", name="Install meter E2E-0001").click()
    expect(page.get_by_role("status")).to_contain_text("Meter E2E-0001 installed at 4100 Meter Test Ln")
    expect(page.get_by_role("heading", name="Meter E2E-0001")).to_contain_text("Installed")
    reads = page.locator("section", has=page.get_by_role("heading", name="Reads"))
    expect(reads.get_by_role("row").filter(has_text="First read at install")).to_contain_text("17")
    expect(page.get_by_role("link", name=number)).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    engine = make_engine(live_server.database_url)
    try:
        with Session(engine) as s:
            meter = s.scalar(select(Meter).where(Meter.serial == "E2E-0001"))
            assert meter is not None and meter.status == "installed"
            served = s.scalar(
                select(Account.number)
                .join(Service, Service.account_id == Account.id)
                .where(Service.meter_id == meter.id)
            )
            assert served == number
    finally:
        engine.dispose()
