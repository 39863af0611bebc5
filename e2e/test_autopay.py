"""A resident turns on autopay in the browser, and on the due date the draft is taken:
pending, then paid when Stripe's webhook arrives."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from playwright.sync_api import Page, expect
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from portal import jobs
from portal.adapters.database import make_engine
from portal.adapters.gateway import StripeGateway
from portal.billing_core import autopay
from portal.billing_core.models import Account, AutopayEnrollment
from portal.settings import Settings
from tests.localstripe import PUBLISHABLE_KEY, SECRET_KEY, WEBHOOK_SECRET

from .conftest import LiveServer
from .test_self_service import fill_card, sign_up_and_link


def test_a_resident_turns_on_autopay_and_the_bill_is_drafted_on_its_due_date(
    page: Page, live_server: LiveServer
) -> None:
    number = sign_up_and_link(page, live_server, skip=2)
    page.get_by_role("link", name=re.compile("^(Set up|Manage) autopay$")).first.click()
    expect(page.get_by_role("heading", name="Autopay", exact=True)).to_be_visible()
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_text("To turn on autopay, check the box to agree.")).to_be_visible()
    page.get_by_label("Debit or credit card").check()
    page.get_by_label("I agree to this authorization").check()
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", name="Save a card for autopay")).to_be_visible()
    fill_card(page, "4242424242424242")
    page.get_by_role("button", name="Save and turn on autopay").click()
    expect(page.get_by_text("Autopay is on. We emailed you a copy")).to_be_visible()
    expect(page.get_by_text(re.compile("Visa •••• 4242"))).to_be_visible()

    # Weeks pass: the customer had enrolled before the latest bill, and its due date comes.
    engine = make_engine(live_server.database_url)
    with Session(engine) as s, s.begin():
        account_id = s.scalar(select(Account.id).where(Account.number == number))
        s.execute(
            update(AutopayEnrollment)
            .where(AutopayEnrollment.account_id == account_id)
            .values(authorized_at=datetime(2026, 1, 1, tzinfo=UTC))
        )
        bill = autopay.latest_bill(s, account_id)
        draft_on = autopay.draft_date(bill.bill_date, bill.due_date)
    settings = Settings(database_url=live_server.database_url, smtp_host="127.0.0.1", smtp_port=1)
    gateway = StripeGateway(SECRET_KEY, PUBLISHABLE_KEY, WEBHOOK_SECRET, live_server.stripe_url)
    drafted = jobs.dispatch_autopay(
        settings, draft_on, gateway, sessions=sessionmaker(engine, expire_on_commit=False), in_process=True
    )
    engine.dispose()
    assert drafted == 1
    page.goto(f"{live_server.url}/my/accounts/{number}")
    payments = page.get_by_role("region", name="Online payments")
    expect(payments.get_by_role("listitem").first).to_contain_text("pending")
    payments.get_by_role("link").first.click()
    # The receipt refreshes itself until Stripe's webhook confirms the draft.
    expect(page.get_by_text("Paid.")).to_be_visible(timeout=15_000)
