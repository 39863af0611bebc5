"""The work-order pages: the new-order form checked whole (errors next to the fields), the
office's list where an overdue order says so in words, the field list's done form for a
turn-on (a photo that is not an image refused next to its field, then the read entered and
the account active), and the read review's re-read button sending a re-read order out.
On a small district of its own, both databases."""

from __future__ import annotations

import dataclasses
import re
from datetime import date
from decimal import Decimal
from pathlib import Path

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from portal.app import create_app
from portal.billing_core import field_orders
from portal.billing_core.models import Account, MeterRead, User, WorkOrder
from portal.billing_core.users import create_user
from tests.db.factories import district

from .conftest import CLOCK, SETTINGS, csrf_from, sign_in

PASSWORD = "a long field password"


def _setup(engine: Engine) -> tuple[str, int, int, int]:
    with Session(engine) as s, s.begin():
        (account,) = district(s, 1)
        account.status = "pending"
        meter_id = account.services[0].meter_id
        assert meter_id is not None
        s.add(MeterRead(meter_id=meter_id, read_on=date(2026, 10, 5), value=Decimal(100), source="handheld"))
        held = MeterRead(
            meter_id=meter_id, read_on=date(2026, 11, 5), value=Decimal(9000), source="handheld",
            status="exception", exception="high",
        )  # fmt: skip
        s.add(held)
        for role in ("csr", "field", "specialist"):
            create_user(s, f"{role}@wo.example", PASSWORD, role, now=CLOCK())
        late = field_orders.open_order(s, account, "leak", date(2026, 11, 20), None, None, None, CLOCK())
        s.flush()
        field_id = s.scalar(select(User.id).where(User.email == "field@wo.example"))
        assert field_id is not None
        return account.number, late.id, held.id, field_id


def _client(engine: Engine, files: Path) -> TestClient:
    settings = dataclasses.replace(SETTINGS, files_dir=str(files))
    return TestClient(
        create_app(settings, engine=engine, clock=CLOCK), base_url="https://testserver", follow_redirects=False
    )


def _article(html: str, heading_id: str) -> str:
    found = re.search(rf'<article[^>]*aria-labelledby="{heading_id}">(.*?)</article>', html, re.S)
    assert found, heading_id
    return found.group(1)


def test_work_order_pages(engine: Engine, tmp_path: Path) -> None:
    number, late_id, held_id, field_id = _setup(engine)
    with _client(engine, tmp_path) as client:
        assert sign_in(client, "csr@wo.example", PASSWORD).status_code == 303
        form = client.get(f"/staff/work-orders/new?account={number}")
        assert form.status_code == 200 and "T000001" in form.text
        token = csrf_from(form.text)
        bad = client.post(
            "/staff/work-orders/new",
            data={"csrf_token": token, "kind": "", "account": number, "due_on": "2026-11-01"},
        )
        assert bad.status_code == 400
        assert 'id="kind-error">Choose what the work is.' in bad.text
        assert 'id="due_on-error">The due date cannot be before today.' in bad.text
        made = client.post(
            "/staff/work-orders/new",
            data={
                "csrf_token": token, "kind": "turn_on", "account": number, "due_on": "2026-11-22",
                "assigned_to": str(field_id), "notes": "Gate code 1234",
            },
        )  # fmt: skip
        assert made.status_code == 303
        listing = client.get("/staff/work-orders").text
        assert "1 overdue" in listing
        assert "Overdue" in _article(listing, f"wo-{late_id}")
        with Session(engine) as s:
            order = s.scalar(select(WorkOrder).where(WorkOrder.kind == "turn_on"))
            assert order is not None and order.assigned_to_id == field_id
            turn_on = order.id
        assert "Overdue" not in _article(listing, f"wo-{turn_on}")

    with _client(engine, tmp_path) as client:
        sign_in(client, "field@wo.example", PASSWORD)
        page = client.get("/staff/field").text
        card = _article(page, f"order-{turn_on}")
        assert f"Meter serial (order {turn_on})" in card and "Gate code 1234" in card
        values = {"csrf_token": csrf_from(page), "time": "09:30", "meter_read": "140", "serial": "T000001"}
        refused = client.post(
            f"/staff/field/orders/{turn_on}/done", data=values, files={"photo": ("a.txt", b"hello", "text/plain")}
        )
        assert refused.status_code == 400
        assert f'id="photo-{turn_on}-error">The photo must be an image' in refused.text
        done = client.post(
            f"/staff/field/orders/{turn_on}/done", data=values, files={"photo": ("m.png", b"\x89PNG tiny", "image/png")}
        )
        assert done.status_code == 303
        with Session(engine) as s:
            order = s.get(WorkOrder, turn_on)
            account = s.scalar(select(Account).where(Account.number == number))
            assert order is not None and account is not None and order.read_id is not None
            assert (order.status, account.status) == ("done", "active")
            assert order.photo_path and (tmp_path / order.photo_path).read_bytes() == b"\x89PNG tiny"

    with _client(engine, tmp_path) as client:
        sign_in(client, "specialist@wo.example", PASSWORD)
        shown = client.get(f"/staff/work-orders/{turn_on}/photo")
        assert (shown.status_code, shown.headers["content-type"], shown.content) == (200, "image/png", b"\x89PNG tiny")
        reads = client.get("/staff/reads").text
        assert f'action="/staff/reads/{held_id}/reread-order"' in reads
        sent = client.post(f"/staff/reads/{held_id}/reread-order", data={"csrf_token": csrf_from(reads)})
        assert sent.status_code == 303 and "done=reread" in sent.headers["location"]
        with Session(engine) as s:
            reread = s.scalar(select(WorkOrder).where(WorkOrder.kind == "re_read"))
            assert reread is not None and (reread.read_id, reread.origin) == (held_id, "read_exception")
