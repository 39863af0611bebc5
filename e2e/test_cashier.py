"""A cashier's day in a real browser: open a drawer, take cash and a check, close a dollar
short with a reason; a supervisor signs off; the deposit report shows it."""

import re

from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.adapters.database import make_engine
from portal.billing_core.models import Account

from .conftest import LiveServer
from .test_first_slice import sign_in


def test_a_cashier_balances_a_drawer_a_dollar_short(page: Page, browser: Browser, live_server: LiveServer) -> None:
    engine = make_engine(live_server.database_url)
    with Session(engine) as s:
        number = s.scalars(select(Account.number).order_by(Account.id.desc())).first()
    sign_in(page, live_server, "cashier@demo.example")
    page.goto(live_server.url + "/staff/drawers")
    page.get_by_label("Drawer name").fill("Counter 7")
    page.get_by_label("Counted float").fill("150.00")
    page.get_by_role("button", name="Open drawer").click()
    expect(page.get_by_role("status")).to_contain_text("Counter 7 is open")

    page.get_by_label("Account number or scan line 1").fill(number or "")
    page.get_by_label("Amount 1").fill("20.00")
    page.get_by_label("Cash", exact=True).check()
    page.get_by_label("Cash handed over").fill("25.00")
    page.get_by_role("button", name="Take payment").click()
    expect(page.get_by_role("heading", name=re.compile(r"^Receipt R"))).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text("Change due: $5.00")

    page.goto(live_server.url + "/staff/drawers")
    page.get_by_label("Account number or scan line 1").fill(number or "")
    page.get_by_label("Amount 1").fill("10.00")
    page.get_by_label("Check", exact=True).check()
    page.get_by_label("Check or money order number").fill("5001")
    page.get_by_label("Bank", exact=True).fill("First Bank")
    page.get_by_role("button", name="Take payment").click()
    expect(page.get_by_role("heading", name=re.compile(r"^Receipt R"))).to_be_visible()

    # Expected cash 150 + 20 = 170; counted 169.
    page.goto(live_server.url + "/staff/drawers")
    page.get_by_label("$100 bills").fill("1")
    page.get_by_label("$20 bills").fill("3")
    page.get_by_label("$5 bills").fill("1")
    page.get_by_label("$1 bills").fill("4")
    page.get_by_label("Check 1 number").fill("5001")
    page.get_by_label("Check 1 amount").fill("10.00")
    page.get_by_role("button", name="Close drawer").click()
    expect(page.get_by_text("The count is over or short: say why.")).to_be_visible()
    page.get_by_label("Reason for any over or short").fill("gave a dollar too much change")
    page.get_by_role("button", name="Close drawer").click()
    expect(page.get_by_role("status")).to_contain_text("Drawer closed (short)")

    boss = browser.new_page()
    try:
        sign_in(boss, live_server, "supervisor@demo.example")
        boss.goto(live_server.url + "/staff/drawers")
        boss.get_by_label("Sign-off note for Counter 7").fill("recounted: a dollar short")
        boss.get_by_role("button", name="Sign off Counter 7").click()
        expect(boss.get_by_role("status")).to_contain_text("Counter 7 is signed off")
        boss.goto(live_server.url + "/staff/reports/money")
        row = boss.get_by_role("table", name="By drawer").get_by_role("row", name=re.compile("Counter 7"))
        expect(row).to_contain_text("gave a dollar too much change")
        expect(row).to_contain_text("signed off")
        expect(row).to_contain_text("5001")
        expect(row).to_contain_text("cash -$1.00")
    finally:
        boss.close()
