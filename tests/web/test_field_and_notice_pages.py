"""The notices page (print a day's batch as one PDF in ZIP order, download it, reprint one
notice), the field staff's list, the door-tag route sheet in walk order and the account
page's Field orders panel, with their permissions and their errors next to the fields.
On a fresh district of its own (it writes), both databases, the real printer."""

from __future__ import annotations

import dataclasses
import io
import re
from datetime import date
from pathlib import Path

import pikepdf
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from portal.app import create_app
from portal.billing_core import field_orders, notices
from portal.billing_core.models import Route, WorkOrder
from portal.billing_core.users import create_user
from portal.services import notices as notice_service
from tests.db.factories import district

from .conftest import CLOCK, SETTINGS, csrf_from, sign_in

ON = date(2026, 11, 22)
PASSWORD = "a long field password"


def _district(engine: Engine) -> tuple[list[str], list[int]]:
    with Session(engine) as s, s.begin():
        accounts = district(s, 3)
        route = s.scalar(select(Route).limit(1))
        if route is None:
            from portal.billing_core.models import BillingCycle

            cycle = s.scalar(select(BillingCycle).limit(1))
            assert cycle is not None
            route = Route(cycle_id=cycle.id, code="R7", name="Oak side")
            s.add(route)
            s.flush()
        for account, zip_code, seq in zip(accounts, ("91710", "91708", "91709"), (30, 10, 20), strict=True):
            account.premise.zip = zip_code
            account.premise.route_id = route.id
            account.premise.walk_sequence = seq
            notices.issue(s, account, "final", ON, 5_000, date(2026, 12, 3), date(2026, 12, 7), None, CLOCK())
        tags = [
            field_orders.open_order(s, a, "door_tag", ON, 5_000, date(2026, 11, 24), None, CLOCK()).id for a in accounts
        ]
        for role in ("specialist", "field", "csr", "cashier"):
            create_user(s, f"{role}@field.example", PASSWORD, role, now=CLOCK())
        return [a.number for a in accounts], tags


def _client(engine: Engine, files: Path) -> TestClient:
    settings = dataclasses.replace(SETTINGS, files_dir=str(files))
    return TestClient(create_app(settings, engine=engine, clock=CLOCK), base_url="https://testserver")


def test_notice_and_field_pages(engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(notice_service, "PRINT_SLICE", 2)  # three notices: two slices, joined in order
    numbers, tags = _district(engine)
    with _client(engine, tmp_path) as client:
        assert sign_in(client, "specialist@field.example", PASSWORD).status_code == 303
        page = client.get(f"/staff/notices?on={ON.isoformat()}")
        assert page.status_code == 200 and "Final notice (written shutoff notice)" in page.text
        printed = client.post(
            "/staff/notices/batches",
            data={"csrf_token": csrf_from(page.text), "on": ON.isoformat(), "kind": "final"},
            follow_redirects=True,
        )
        assert "printed: 3 notices in ZIP order" in printed.text
        link = re.search(r'href="(/staff/notices/batches/\d+/pdf)"', printed.text)
        assert link
        pdf = client.get(link.group(1))
        assert pdf.headers["content-type"] == "application/pdf"
        with pikepdf.open(io.BytesIO(pdf.content)) as doc:
            assert len(doc.pages) >= 3
        assert not list(tmp_path.glob("notices/*.part*"))  # the slices are gone once joined
        empty = client.post(
            "/staff/notices/batches",
            data={"csrf_token": csrf_from(page.text), "on": ON.isoformat(), "kind": "door_tag"},
        )
        assert empty.status_code == 400 and "No door tag" in empty.text
        reprint = re.search(r'href="(/staff/notices/\d+/pdf)"', printed.text)
        assert reprint and client.get(reprint.group(1)).content.startswith(b"%PDF")
        office = client.get("/staff/field")  # the office reads the list, does no field work
        assert office.status_code == 200 and f"Door tag order {tags[0]}:" in office.text
        assert "Mark order" not in office.text

    with _client(engine, tmp_path) as client:
        sign_in(client, "field@field.example", PASSWORD)
        sheet = client.get("/staff/field/door-tags").text
        rows = re.findall(r"<td data-label=\"Seq.\">(\d+)</td>\s*<th scope=\"row\"", sheet)
        assert rows == ["10", "20", "30"]  # walk order
        assert "$50.00" in sheet and "Nov 24, 2026" in sheet
        listing = client.get("/staff/field")
        assert all(f"Door tag order {t}:" in listing.text for t in tags)
        bad = client.post(
            f"/staff/field/orders/{tags[0]}/done",
            data={"csrf_token": csrf_from(listing.text), "time": "", "meter_read": "", "lock_or_tag": ""},
        )
        assert bad.status_code == 400
        assert "Enter the time the work was done" in bad.text and "Enter the door tag number." in bad.text
        assert f'id="time-{tags[0]}-error"' in bad.text
        done = client.post(
            f"/staff/field/orders/{tags[0]}/done",
            data={"csrf_token": csrf_from(listing.text), "time": "08:30", "meter_read": "", "lock_or_tag": "T-5"},
            follow_redirects=True,
        )
        assert f"Door tag order {tags[0]} is done." in done.text
        nope = client.post(
            f"/staff/field/orders/{tags[1]}/not-done",
            data={"csrf_token": csrf_from(listing.text), "reason": "", "detail": ""},
        )
        assert nope.status_code == 400 and "Choose why the work was not done." in nope.text

    with _client(engine, tmp_path) as client:
        sign_in(client, "cashier@field.example", PASSWORD)
        assert client.get("/staff/field").status_code == 403
        assert client.get("/staff/notices/batches/1/pdf").status_code == 403
    with _client(engine, tmp_path) as client:
        sign_in(client, "csr@field.example", PASSWORD)
        panel = client.get(f"/staff/accounts/{numbers[2]}/field-orders", headers={"HX-Request": "true"})
        assert panel.status_code == 200 and f"Cancel order {tags[2]}" in panel.text
        token = csrf_from(panel.text)
        refused = client.post(
            f"/staff/accounts/{numbers[2]}/field-orders/{tags[2]}/cancel",
            data={"csrf_token": token, "cancel_reason": " "},
        )
        assert refused.status_code == 400 and "Say why the order is cancelled." in refused.text
        client.post(
            f"/staff/accounts/{numbers[2]}/field-orders/{tags[2]}/cancel",
            data={"csrf_token": token, "cancel_reason": "Customer paid at the counter"},
        )
        assert "Field orders" in client.get(f"/staff/accounts/{numbers[2]}").text
    with Session(engine) as s:
        states = {o.id: o.status for o in s.scalars(select(WorkOrder))}
    assert states == {tags[0]: "done", tags[1]: "open", tags[2]: "cancelled"}
