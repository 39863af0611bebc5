"""Field staff complete a turn-on on a phone: the order given to them is on their list by
route, a serial that is not the meter on file is refused next to its field, then the read
and the right serial complete it; the read appears on the staff account page and the
account, pending until then, is active."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from playwright.sync_api import Page, expect
from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.adapters.database import make_engine
from portal.billing_core import field_orders
from portal.billing_core.models import Account, Meter, MeterRead, User
from portal.billing_core.reads import format_quantity

from .conftest import LiveServer
from .test_first_slice import sign_in

ON = date(2026, 11, 22)


def a_turn_on_order(server: LiveServer, skip: int = 7) -> tuple[int, str, str, str, str]:
    """A pending account with a turn-on order given to the demo's field person: the order,
    the account, its address, its meter's serial and a read a little past the last one."""
    engine = make_engine(server.database_url)
    try:
        with Session(engine) as s, s.begin():
            account = s.scalars(select(Account).where(Account.status == "active").order_by(Account.id.desc())).all()[
                skip
            ]
            account.status = "pending"
            meter = field_orders.account_meter(s, account)
            assert meter is not None
            last = s.scalar(
                select(MeterRead.value).where(MeterRead.meter_id == meter.id).order_by(MeterRead.read_on.desc())
            )
            crew = s.scalar(select(User).where(User.email == "field@demo.example"))
            assert crew is not None
            order = field_orders.open_order(
                s, account, "turn_on", ON, None, None, None, datetime(2026, 11, 22, 16, tzinfo=UTC),
                assigned_to_id=crew.id, origin="account",
            )  # fmt: skip
            value = format_quantity((last or Decimal(0)) + 7)
            return order.id, account.number, account.premise.one_line, meter.serial, value
    finally:
        engine.dispose()


def state_of(server: LiveServer, number: str, serial: str) -> tuple[str, list[Decimal]]:
    engine = make_engine(server.database_url)
    try:
        with Session(engine) as s:
            account = s.scalar(select(Account).where(Account.number == number))
            meter = s.scalar(select(Meter).where(Meter.serial == serial))
            assert account is not None and meter is not None
            values = s.scalars(select(MeterRead.value).where(MeterRead.meter_id == meter.id, MeterRead.read_on == ON))
            return account.status, list(values)
    finally:
        engine.dispose()


def test_field_staff_complete_a_turn_on_on_a_phone(page: Page, live_server: LiveServer) -> None:
    assert page.viewport_size == {"width": 390, "height": 844}
    order_id, number, address, serial, value = a_turn_on_order(live_server)
    sign_in(page, live_server, "field@demo.example")
    page.goto(f"{live_server.url}/staff/field")
    card = page.get_by_role("article", name=f"Turn on order {order_id}: {address}")
    expect(card).to_be_visible()
    expect(card).to_contain_text("Assigned to")
    card.get_by_label(f"Time done (order {order_id})").fill("09:40")
    card.get_by_label(f"Meter read (order {order_id})").fill(value)
    card.get_by_label(f"Meter serial (order {order_id})").fill("NOT-THIS-ONE")
    card.get_by_role("button", name=f"Mark order {order_id} done").click()
    # Not the meter on file: said next to the serial, nothing done.
    card = page.get_by_role("article", name=f"Turn on order {order_id}: {address}")
    expect(card.get_by_text("is not the meter on file for this order")).to_be_visible()
    assert state_of(live_server, number, serial) == ("pending", [])
    expect(card.get_by_label(f"Meter read (order {order_id})")).to_have_value(value)
    card.get_by_label(f"Meter serial (order {order_id})").fill(serial.lower())
    card.get_by_role("button", name=f"Mark order {order_id} done").click()
    expect(page.get_by_role("status").filter(has_text=f"Turn on order {order_id} is done.")).to_be_visible()
    expect(page.get_by_role("article", name=f"Turn on order {order_id}: {address}")).to_have_count(0)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert state_of(live_server, number, serial) == ("active", [Decimal(value)])
    # The office sees the read on the account page.
    page.context.clear_cookies()
    sign_in(page, live_server, "specialist@demo.example")
    page.goto(f"{live_server.url}/staff/accounts/{number}")
    row = page.get_by_role("row").filter(has_text="Nov 22, 2026").filter(has_text=value)
    expect(row.first).to_be_visible()
