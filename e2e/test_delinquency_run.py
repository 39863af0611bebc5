"""A supervisor previews the delinquency run in Chromium (the action list: which accounts,
which step, why; nothing posted), then posts it, and the fees, notices and orders are
written once; the account page's Collections panel shows the account's actions."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from portal.adapters.database import make_engine
from portal.billing_core.models import Account, CollectionAction, LedgerTransaction, Notice

from .conftest import LiveServer
from .test_first_slice import sign_in

#: The demo's today (2026-11-22) is a Sunday: nothing falls due; the supervisor runs
#: Friday's run, the day the daily job would have run last.
FRIDAY = "2026-11-20"


def _counts(engine) -> tuple[int, int, int]:  # type: ignore[no-untyped-def]
    with Session(engine) as s:
        fees = s.scalar(select(func.count()).select_from(LedgerTransaction).where(LedgerTransaction.kind == "fee"))
        notices = s.scalar(select(func.count()).select_from(Notice))
        posted = s.scalar(select(func.count()).select_from(CollectionAction).where(CollectionAction.status == "posted"))
        return fees or 0, notices or 0, posted or 0


def test_a_supervisor_previews_and_posts_the_run(page: Page, live_server: LiveServer) -> None:
    engine = make_engine(live_server.database_url)
    fees_before, notices_before, posted_before = _counts(engine)

    sign_in(page, live_server, "supervisor@demo.example")
    page.get_by_role("link", name="Collections").first.click()
    expect(page.get_by_role("heading", name="Collections: the daily run")).to_be_visible()
    expect(page.get_by_text("is not a business day")).to_be_visible()

    page.get_by_label("Day to run").fill("2026-12-01")
    page.get_by_role("button", name="Preview the run").click()
    expect(page.get_by_text("A day still to come cannot be run.")).to_be_visible()

    page.get_by_label("Day to run").fill(FRIDAY)
    page.get_by_role("button", name="Preview the run").click()
    expect(page.get_by_role("status")).to_contain_text("accounts evaluated")
    actions = page.get_by_role("table", name=re.compile(r"\d+ actions"))
    expect(actions).to_be_visible()
    first = actions.get_by_role("row").nth(1)
    expect(first).to_contain_text("Planned")
    assert _counts(engine) == (fees_before, notices_before, posted_before)  # a preview posts nothing

    page.get_by_label("Step").select_option("late_fee")
    page.get_by_role("button", name="Show").click()
    fee_rows = page.get_by_role("table", name=re.compile(r"actions \(Late fee\)")).get_by_role("row")
    expect(fee_rows.nth(1)).to_contain_text("Late fee")
    number = fee_rows.nth(1).get_by_role("rowheader").inner_text().strip()

    page.get_by_label("Day to run").fill(FRIDAY)
    page.get_by_role("button", name="Post the run").click()
    expect(page.get_by_role("status")).to_contain_text("posted")
    fees, notices, posted = _counts(engine)
    assert fees > fees_before and notices > notices_before and posted > posted_before
    with Session(engine) as s:
        account_id = s.scalar(select(Account.id).where(Account.number == number))
        once = s.scalar(
            select(func.count())
            .select_from(CollectionAction)
            .where(CollectionAction.account_id == account_id, CollectionAction.step == "late_fee")
        )
        assert once == 1

    # Posting again posts nothing more: each step happens once.
    page.get_by_label("Day to run").fill(FRIDAY)
    page.get_by_role("button", name="Post the run").click()
    expect(page.get_by_role("status")).to_contain_text("nothing posted: every step due is done")
    assert _counts(engine) == (fees, notices, posted)

    page.goto(f"{live_server.url}/staff/accounts/{number}")
    panel = page.locator("#panel-collections")
    expect(panel.get_by_role("heading", name="Collections")).to_be_visible()
    expect(panel.get_by_role("table", name="Collection actions")).to_contain_text("Late fee")
    panel.get_by_label("Why hold this account out of the run").fill("Customer in hospital, call back")
    panel.get_by_role("button", name="Hold out of collections").click()
    expect(page.get_by_role("status")).to_contain_text("is held out of the delinquency run")
    page.get_by_role("button", name="Release the hold").click()
    expect(page.get_by_role("status")).to_contain_text("is back in the delinquency run")
    engine.dispose()
