"""A specialist prepares a $250 leak credit, above their $100 limit; a supervisor approves
it in the approvals queue, and the account's ledger shows it."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect
from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.adapters.database import make_engine
from portal.billing_core import posting
from portal.billing_core.models import Account

from .conftest import LiveServer
from .test_first_slice import sign_in


def test_a_leak_credit_above_the_limit_is_approved_in_the_queue(page: Page, live_server: LiveServer) -> None:
    engine = make_engine(live_server.database_url)
    with Session(engine) as s:
        account = s.scalars(select(Account).order_by(Account.number)).all()[-1]
        number, account_id = account.number, account.id
        before = posting.account_balance(s, account_id)

    sign_in(page, live_server, "specialist@demo.example")
    page.goto(f"{live_server.url}/staff/accounts/{number}")
    panel = page.locator("#panel-adjustments")
    expect(panel.get_by_role("heading", name="Adjustments")).to_be_visible()  # loaded by htmx
    panel.get_by_label("Service").select_option("water")
    panel.get_by_label("Credit (lowers what is owed)").check()
    panel.get_by_label("Amount").fill("250.00")
    panel.get_by_label("Reason").select_option("leak")
    panel.get_by_label("Note").fill("Leak under the slab, repaired")
    panel.get_by_role("button", name="Prepare the adjustment").click()
    expect(page.get_by_role("status")).to_contain_text("waiting for a supervisor's approval")
    with Session(engine) as s:
        assert posting.account_balance(s, account_id) == before  # nothing posted yet
    page.goto(f"{live_server.url}/staff/approvals")
    expect(page.get_by_text("You prepared it: someone else decides.")).to_be_visible()
    page.get_by_role("button", name="Sign out").click()

    sign_in(page, live_server, "supervisor@demo.example")
    page.get_by_role("link", name="Approvals").first.click()
    expect(page.get_by_role("heading", name="Approvals")).to_be_visible()
    row = page.get_by_role("row").filter(has_text="Leak under the slab")
    expect(row).to_contain_text("specialist@demo.example")
    expect(row).to_contain_text("$250.00")
    row.get_by_role("button", name=re.compile(r"Approve adjustment \d+")).click()
    expect(page.get_by_role("status")).to_contain_text("is posted")

    page.goto(f"{live_server.url}/staff/accounts/{number}")
    ledger = page.locator("section", has=page.get_by_role("heading", name="Ledger"))
    expect(ledger.get_by_role("row").filter(has_text="Leak under the slab").first).to_contain_text("-$250.00")
    with Session(engine) as s:
        assert posting.account_balance(s, account_id) == before - 25000
    engine.dispose()
