"""A supervisor presses "Issue shutoff order" on an account with a pending bill dispute:
the shutoff gate refuses, and the page names the rule (and no order is written)."""

from __future__ import annotations

from playwright.sync_api import Page, expect
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from portal.adapters.database import make_engine
from portal.billing_core.models import Account, Dispute, WorkOrder
from portal.billing_core.shutoff_gate import RULES

from .conftest import LiveServer
from .test_first_slice import sign_in


def test_a_shutoff_with_a_pending_dispute_is_refused(page: Page, live_server: LiveServer) -> None:
    engine = make_engine(live_server.database_url)
    with Session(engine) as s:
        account = s.scalars(select(Account).order_by(Account.number)).all()[1]
        number, account_id = account.number, account.id
        s.add(Dispute(account_id=account.id, amount_cents=2_500, reason="The read looks too high"))
        s.commit()

    sign_in(page, live_server, "supervisor@demo.example")
    page.goto(f"{live_server.url}/staff/accounts/{number}")
    panel = page.locator("#panel-protections")
    expect(panel.get_by_role("heading", name="Shutoff protections")).to_be_visible()  # loaded by htmx
    expect(panel.get_by_text(RULES["pending_dispute"])).to_be_visible()  # what the gate would say today
    panel.get_by_role("button", name="Issue shutoff order").click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("Shutoff order refused.")
    expect(alert).to_contain_text(RULES["pending_dispute"])
    expect(alert).to_contain_text("pending_dispute")
    with Session(engine) as s:
        # Nothing written for this account (other journeys share the demo district).
        orders = select(func.count()).select_from(WorkOrder)
        assert s.scalar(orders.where(WorkOrder.kind == "shutoff", WorkOrder.account_id == account_id)) == 0
    engine.dispose()
