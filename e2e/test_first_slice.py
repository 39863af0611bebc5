"""The first slice in a real browser: a resident opens a bill; staff find an account by meter serial."""

import re

from playwright.sync_api import Page, expect
from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.adapters.database import make_engine
from portal.billing_core.models import Account, Meter, Service
from portal.demo import DEMO_PASSWORD

from .conftest import LiveServer


def sign_in(page: Page, server: LiveServer, email: str) -> None:
    page.goto(server.url + "/")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def test_a_customer_signs_in_and_opens_a_bill(page: Page, live_server: LiveServer) -> None:
    sign_in(page, live_server, "resident@demo.example")
    expect(page.get_by_role("heading", name="My accounts")).to_be_visible()
    expect(page.get_by_text("Amount due").first).to_be_visible()
    page.get_by_role("link", name=re.compile(r"View account \d+ and bills")).click()
    expect(page.get_by_role("heading", name="Bills")).to_be_visible()
    page.get_by_role("link", name=re.compile(r"^Bill of ")).first.click()
    expect(page.get_by_role("heading", name=re.compile(r"^Bill of "))).to_be_visible()
    water = page.get_by_role("table", name="Water")
    expect(water.get_by_role("cell", name=re.compile(r"Water usage: \d+ CCF × \$2\.78"))).to_be_visible()
    expect(page.get_by_role("row", name=re.compile("Total amount due"))).to_be_visible()


def test_a_wrong_password_gets_a_message_by_the_form(page: Page, live_server: LiveServer) -> None:
    page.goto(live_server.url + "/sign-in")
    page.get_by_label("Email address").fill("resident@demo.example")
    page.get_by_label("Password").fill("wrong password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("do not match our records")
    expect(page.get_by_label("Email address")).to_have_value("resident@demo.example")


def test_staff_find_an_account_by_meter_serial(page: Page, live_server: LiveServer) -> None:
    engine = make_engine(live_server.database_url)
    with Session(engine) as s:
        number, serial = s.execute(
            select(Account.number, Meter.serial)
            .join(Service, Service.account_id == Account.id)
            .join(Meter, Meter.id == Service.meter_id)
            .order_by(Account.id.desc())
            .limit(1)
        ).one()
    sign_in(page, live_server, "csr@demo.example")
    expect(page.get_by_role("heading", name="Find an account")).to_be_visible()
    page.get_by_label("Account number, name, service address or meter serial").fill(serial)
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name=number).click()
    expect(page.get_by_role("heading", name=re.compile(f"Account {number}"))).to_be_visible()
    expect(page.get_by_role("heading", name=f"Meter {serial}")).to_be_visible()
    expect(page.get_by_role("heading", name="Ledger")).to_be_visible()
