"""Field staff complete a shutoff on a phone: the order is on their list by route, the form
refuses a missing lock number next to the field, then takes the time, read and lock."""

from __future__ import annotations

from datetime import UTC, date, datetime

from playwright.sync_api import Page, expect
from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.adapters.database import make_engine
from portal.billing_core import field_orders
from portal.billing_core.models import Account, WorkOrder

from .conftest import LiveServer
from .test_first_slice import sign_in

ON = date(2026, 11, 20)


def a_shutoff_order(server: LiveServer, skip: int = 3) -> tuple[int, str]:
    engine = make_engine(server.database_url)
    try:
        with Session(engine) as s, s.begin():
            account = s.scalars(select(Account).where(Account.status == "active").order_by(Account.id.desc())).all()[
                skip
            ]
            order = field_orders.open_order(
                s, account, "shutoff", ON, 18_250, ON, None, datetime(2026, 11, 20, 17, tzinfo=UTC)
            )
            return order.id, account.premise.one_line
    finally:
        engine.dispose()


def status_of(server: LiveServer, order_id: int) -> WorkOrder:
    engine = make_engine(server.database_url)
    try:
        with Session(engine, expire_on_commit=False) as s:
            order = s.get(WorkOrder, order_id)
            assert order is not None
            return order
    finally:
        engine.dispose()


def test_field_staff_complete_a_shutoff_on_a_phone(page: Page, live_server: LiveServer) -> None:
    assert page.viewport_size == {"width": 390, "height": 844}
    order_id, address = a_shutoff_order(live_server)
    sign_in(page, live_server, "field@demo.example")
    page.goto(f"{live_server.url}/staff/field")
    card = page.get_by_role("article", name=f"Shutoff order {order_id}: {address}")
    expect(card).to_be_visible()
    expect(card).to_contain_text("$182.50")
    card.get_by_label(f"Time done (order {order_id})").fill("09:40")
    card.get_by_label(f"Meter read (order {order_id})").fill("004512")
    card.get_by_role("button", name=f"Mark order {order_id} done").click()
    # The lock number is missing: said next to its field, nothing done.
    card = page.get_by_role("article", name=f"Shutoff order {order_id}: {address}")
    expect(card.get_by_text("Enter the lock number.")).to_be_visible()
    assert status_of(live_server, order_id).status == "open"
    expect(card.get_by_label(f"Meter read (order {order_id})")).to_have_value("004512")
    card.get_by_label(f"Lock number (order {order_id})").fill("L-2210")
    card.get_by_role("button", name=f"Mark order {order_id} done").click()
    expect(page.get_by_role("status").filter(has_text=f"Shutoff order {order_id} is done.")).to_be_visible()
    expect(page.get_by_role("article", name=f"Shutoff order {order_id}: {address}")).to_have_count(0)
    # No sideways scrolling on the phone.
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    done = status_of(live_server, order_id)
    assert (done.status, done.lock_or_tag, done.meter_read) == ("done", "L-2210", 4512)
