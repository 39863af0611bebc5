"""A specialist records a returned check from the account page's payments panel."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

from playwright.sync_api import Page, expect
from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.adapters.database import make_engine
from portal.billing_core import payments
from portal.billing_core.models import Account, Payment

from .conftest import LiveServer
from .test_first_slice import sign_in

ON = date(2026, 11, 20)  # a Friday, two days before the portal's "today"


def a_posted_check(server: LiveServer, skip: int = 7) -> tuple[str, int]:
    engine = make_engine(server.database_url)
    try:
        with Session(engine) as s, s.begin():
            account = s.scalars(select(Account).where(Account.status == "active").order_by(Account.id)).all()[skip]
            payment = Payment(
                account_id=account.id,
                amount_cents=4_200,
                channel="mail",
                method="check",
                received_on=ON,
                status="pending",
                check_number="5150",
            )
            s.add(payment)
            s.flush()
            payments.apply(s, payment, "succeeded", ON, datetime(2026, 11, 20, 17, tzinfo=UTC))
            return account.number, payment.id
    finally:
        engine.dispose()


def test_a_specialist_records_a_returned_check(page: Page, live_server: LiveServer) -> None:
    number, payment_id = a_posted_check(live_server)
    sign_in(page, live_server, "specialist@demo.example")
    page.goto(f"{live_server.url}/staff/accounts/{number}")
    panel = page.locator("#panel-payments")
    expect(panel.get_by_role("heading", name="Payments and returns")).to_be_visible()
    panel.get_by_label(f"Return reason for payment {payment_id}").select_option("NSF")
    panel.get_by_label(f"Date of the return for payment {payment_id}").fill("2026-11-21")
    panel.get_by_role("button", name=f"Record the return of payment {payment_id}").click()
    expect(page.get_by_role("status").filter(has_text=f"Payment {payment_id} is returned (NSF)")).to_be_visible()
    expect(page.get_by_role("row", name=re.compile(f"Payment {payment_id} "))).to_contain_text("Returned")
    expect(page.get_by_role("link", name="letter (PDF)")).to_be_visible()
