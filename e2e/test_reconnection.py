"""The resident of a shut-off account pays in full by card; the reconnection order, due the
same day with its fee, appears on the field staff's list."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

from playwright.sync_api import Page, expect
from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.adapters.database import make_engine
from portal.billing_core import field_orders, posting
from portal.billing_core.models import Account, User, UserAccountLink
from portal.billing_core.users import create_user
from portal.demo import DEMO_PASSWORD

from .conftest import LiveServer
from .test_first_slice import sign_in
from .test_self_service import pay_by_card

ON = date(2026, 11, 20)
AT = datetime(2026, 11, 20, 17, tzinfo=UTC)


def a_shut_off_resident(server: LiveServer) -> tuple[str, str, str]:
    """An owing account nobody has linked, its water shut off, and a sign-in for it."""
    engine = make_engine(server.database_url)
    try:
        with Session(engine) as s, s.begin():
            candidates = s.scalars(
                select(Account)
                .where(Account.id.not_in(select(UserAccountLink.account_id)), Account.status == "active")
                .order_by(Account.number)
            ).all()
            account = [a for a in candidates if posting.account_balance(s, a.id) > 0][2]
            crew = s.scalar(select(User).where(User.email == "field@demo.example"))
            assert crew is not None
            order = field_orders.open_order(s, account, "shutoff", ON, 10_000, ON, None, AT)
            field_orders.complete(s, crew, order, field_orders.parse_completion(order, ON, "10:00", "88", "L-9"), AT)
            email = f"shutoff-{account.number}@example.net"
            create_user(s, email, DEMO_PASSWORD, "customer", account.number, now=AT)
            return account.number, account.premise.one_line, email
    finally:
        engine.dispose()


def test_paying_in_full_queues_the_reconnection(page: Page, live_server: LiveServer) -> None:
    number, address, email = a_shut_off_resident(live_server)
    sign_in(page, live_server, email)
    page.get_by_role("link", name=re.compile(rf"View account {number}")).click()
    pay_by_card(page, "4242424242424242")
    expect(page.get_by_text("Paid.")).to_be_visible(timeout=15_000)
    page.context.clear_cookies()
    sign_in(page, live_server, "field@demo.example")
    page.goto(f"{live_server.url}/staff/field")
    card = page.get_by_role("article", name=re.compile(rf"Reconnection order \d+: {re.escape(address)}"))
    expect(card).to_be_visible()
    expect(card).to_contain_text(number)
    expect(card).to_contain_text("Nov 22, 2026")  # due the day it was paid
    expect(card.get_by_label(re.compile(r"Meter read \(order \d+\)"))).to_be_visible()
