"""Work orders on both databases: completion closes the loop (a turn-on enters the read and
makes the pending account active, a turn-off holds the final bill for review, a re-read from
the read review replaces the held read, an exchange and an install move the meters, a test is
recorded), the serial entered is checked against the meter on file, a photo must be a small
image, overdue orders are listed as such, and orders are opened by hand and assigned."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.billing_core import field_orders
from portal.billing_core.bill_runs import final_bills
from portal.billing_core.errors import FieldErrors, NotAllowed
from portal.billing_core.models import (
    Account,
    AuditEvent,
    FinalBillReview,
    Meter,
    MeterRead,
    MeterTest,
    User,
    WorkOrder,
)
from portal.services import field_orders as service

from .factories import district

ON = date(2026, 3, 24)
NOW = datetime(2026, 3, 24, 18, 0, tzinfo=UTC)  # 11:00 in Chino
TZ = field_orders.AGENCY_TZ


def person(session: Session, role: str, name: str = "") -> User:
    user = User(email=f"{name or role}@example.net", role=role, display_name=name or None)
    session.add(user)
    session.flush()
    return user


def one_account(session: Session, n: int = 1) -> list[Account]:
    accounts = district(session, n)
    for account in accounts:
        meter = account.services[0].meter
        assert meter is not None
        session.add(MeterRead(meter_id=meter.id, read_on=date(2026, 2, 5), value=Decimal(100), source="handheld"))
    session.flush()
    return accounts


def done(session: Session, crew: User, order: WorkOrder, **values: str) -> WorkOrder:
    values.setdefault("time", "10:30")
    finished, _ = service.mark_done(session, crew, order.id, values, ON, NOW, TZ)
    return finished


def test_a_turn_on_enters_the_read_and_activates_the_account_and_a_wrong_serial_is_refused(session: Session) -> None:
    (account,) = one_account(session)
    account.status = "pending"
    crew = person(session, "field")
    order = field_orders.open_order(session, account, "turn_on", ON, None, None, None, NOW, assigned_to_id=crew.id)
    meter = account.services[0].meter
    assert meter is not None and order.meter_id == meter.id
    with pytest.raises(FieldErrors) as bad:
        done(session, crew, order, meter_read="130", serial="X999")
    assert set(bad.value.errors) == {"serial"}
    assert (order.status, account.status) == ("open", "pending")
    with pytest.raises(FieldErrors) as bad:  # the serial is required, the read too
        done(session, crew, order)
    assert set(bad.value.errors) == {"serial", "meter_read"}
    done(session, crew, order, meter_read="130", serial=" t000001 ")
    read = session.get(MeterRead, order.read_id)
    assert read is not None and (read.meter_id, read.read_on, read.value, read.source) == (
        meter.id,
        ON,
        Decimal(130),
        "field",
    )
    assert (order.status, order.serial_entered, account.status) == ("done", "T000001", "active")
    actions = set(session.scalars(select(AuditEvent.action)))
    assert {"account.activated", "meter.read", "work_order.done"} <= actions


def test_a_turn_off_holds_the_final_bill_for_review(session: Session) -> None:
    (account,) = one_account(session)
    crew = person(session, "field")
    order = field_orders.open_order(session, account, "turn_off", ON, None, None, None, NOW)
    done(session, crew, order, meter_read="140", serial="T000001", notes="Valve closed")
    review = session.scalar(select(FinalBillReview).where(FinalBillReview.account_id == account.id))
    assert review is not None and review.status == "held" and review.stop_on == ON
    meter = account.services[0].meter
    assert meter is not None and review.reads == {str(meter.id): "140"}
    assert "field_read" in review.reasons.split(",")
    # Nothing about the account changes until the office approves it.
    assert account.status == "active" and all(s.ended_on is None for s in account.services)
    assert session.scalar(select(MeterRead).where(MeterRead.read_on == ON)) is None
    # A second final read is refused while the first waits.
    again = field_orders.open_order(session, account, "read_out", ON, None, None, None, NOW)
    with pytest.raises(FieldErrors) as bad:
        done(session, crew, again, meter_read="141", serial="T000001")
    assert set(bad.value.errors) == {"meter_read"} and again.status == "open"
    # The office approves it: the final bill posts from the field's read, the account is final.
    bill = final_bills.approve_final(session, review, person(session, "supervisor"), ON, now=NOW)
    assert (review.status, review.bill_id, account.status) == ("posted", bill.id, "final")
    final = session.scalar(select(MeterRead).where(MeterRead.meter_id == meter.id, MeterRead.read_on > ON))
    assert final is not None and final.value == Decimal(140)


def test_a_re_read_from_the_read_review_replaces_the_held_read(session: Session) -> None:
    (account,) = one_account(session)
    meter = account.services[0].meter
    assert meter is not None
    held = MeterRead(
        meter_id=meter.id, read_on=ON - timedelta(days=5), value=Decimal(9100), source="handheld",
        status="exception", exception="high",
    )  # fmt: skip
    session.add(held)
    session.flush()
    specialist, crew = person(session, "specialist"), person(session, "field")
    with pytest.raises(NotAllowed):
        service.reread_order(session, crew, held.id, "", today=ON - timedelta(days=5), now=NOW)
    order = service.reread_order(session, specialist, held.id, "looks like a misread", today=ON, now=NOW)
    assert (order.kind, order.origin, order.read_id, order.meter_id) == ("re_read", "read_exception", held.id, meter.id)
    assert held.status == "exception" and "Re-read ordered" in (held.note or "")
    assert service.reread_order(session, specialist, held.id, "", today=ON, now=NOW).id == order.id  # once
    done(session, crew, order, meter_read="125", serial="T000001")
    assert (held.value, held.read_on, held.status, held.exception) == (Decimal(125), ON, "approved", None)
    assert order.read_id == held.id and "re-read" in (held.note or "").lower()
    assert session.scalar(select(AuditEvent).where(AuditEvent.action == "read.reread_done")) is not None


def test_an_exchange_and_an_install_move_the_meters(session: Session) -> None:
    first, second = one_account(session, 2)
    crew = person(session, "field")
    stock = [Meter(serial=s, size='5/8"', status="in_stock") for s in ("N1", "N2")]
    session.add_all(stock)
    session.flush()
    old = first.services[0].meter
    assert old is not None
    swap = field_orders.open_order(session, first, "meter_exchange", ON, None, None, None, NOW)
    with pytest.raises(FieldErrors) as bad:  # the meter put in must be in stock
        done(session, crew, swap, meter_read="150", serial="T000002")
    assert set(bad.value.errors) == {"serial"} and old.status == "installed"
    done(session, crew, swap, meter_read="150", new_read="3", serial="N1")
    assert (old.status, stock[0].status, stock[0].premise_id) == ("removed", "installed", first.premise_id)
    assert first.services[0].meter_id == stock[0].id
    out = session.get(MeterRead, swap.read_id)
    assert out is not None and (out.meter_id, out.value) == (old.id, Decimal(150))
    # An install sets a stocked meter where the account's water service has none.
    water = second.services[0]
    assert water.meter is not None
    water.meter.status, water.meter_id = "removed", None
    session.flush()
    setting = field_orders.open_order(session, second, "meter_set", ON, None, None, None, NOW)
    done(session, crew, setting, meter_read="0", serial="n2")
    assert (stock[1].status, stock[1].premise_id, water.meter_id) == ("installed", second.premise_id, stock[1].id)
    first_read = session.get(MeterRead, setting.read_id)
    assert first_read is not None and (first_read.meter_id, first_read.value) == (stock[1].id, Decimal(0))


def test_a_meter_test_a_leak_and_not_done(session: Session, tmp_path: Path) -> None:
    (account,) = one_account(session)
    crew = person(session, "field")
    files = tmp_path / "files"
    test = field_orders.open_order(session, account, "meter_test", ON, None, None, None, NOW)
    with pytest.raises(FieldErrors) as bad:
        done(session, crew, test, serial="T000001", low_flow="250")
    assert set(bad.value.errors) == {"result", "low_flow"}
    done(session, crew, test, serial="T000001", result="fail", low_flow="91.5", mid_flow="97")
    row = session.scalar(select(MeterTest).where(MeterTest.work_order_id == test.id))
    assert row is not None and (row.result, row.low_flow_pct, row.mid_flow_pct, row.high_flow_pct) == (
        "fail",
        Decimal("91.5"),
        Decimal(97),
        None,
    )
    leak = field_orders.open_order(session, account, "leak", ON, None, None, None, NOW)
    with pytest.raises(FieldErrors) as bad:  # what was found is required; the photo must be a small image
        service.mark_done(
            session, crew, leak.id, {"time": "10:00"}, ON, NOW, TZ, service.Photo("text/plain", b"hi"), str(files)
        )
    assert set(bad.value.errors) == {"notes", "photo"}
    big = service.Photo("image/jpeg", b"\xff" * (field_orders.PHOTO_MAX_BYTES + 1))
    with pytest.raises(FieldErrors) as bad:
        service.mark_done(session, crew, leak.id, {"time": "10:00", "notes": "x"}, ON, NOW, TZ, big, str(files))
    assert set(bad.value.errors) == {"photo"} and leak.status == "open" and not files.exists()
    values = {"time": "10:00", "notes": "Running toilet"}
    photo = service.Photo("image/png", b"\x89PNG small")
    service.mark_done(session, crew, leak.id, values, ON, NOW, TZ, photo, str(files))
    assert leak.status == "done" and leak.notes == "Running toilet" and leak.photo_path
    assert (files / leak.photo_path).read_bytes() == photo.data
    # Not done needs a reason.
    other = field_orders.open_order(session, account, "read_in", ON, None, None, None, NOW)
    with pytest.raises(FieldErrors) as bad:
        service.mark_not_done(session, crew, other.id, {"reason": ""}, NOW)
    assert set(bad.value.errors) == {"reason"} and other.status == "open"


def test_orders_by_hand_assigned_overdue_and_counted_by_person(session: Session) -> None:
    (account,) = one_account(session)
    clerk, ana, ben = person(session, "csr"), person(session, "field", "Ana"), person(session, "field", "Ben")
    form = {"kind": "read_in", "account": account.number, "due_on": (ON - timedelta(days=1)).isoformat()}
    with pytest.raises(FieldErrors) as bad:
        service.create_order(session, clerk, {**form, "kind": "shutoff", "assigned_to": str(clerk.id)}, ON, NOW)
    assert set(bad.value.errors) == {"kind", "due_on", "assigned_to"}
    with pytest.raises(NotAllowed):
        service.create_order(session, ana, {**form, "due_on": ON.isoformat()}, ON, NOW)
    late = service.create_order(session, clerk, {**form, "due_on": ON.isoformat(), "assigned_to": str(ana.id)}, ON, NOW)
    assert (late.kind, late.origin, late.assigned_to_id, late.meter_id) == (
        "read_in",
        "hand",
        ana.id,
        account.services[0].meter_id,
    )
    later = service.create_order(
        session, clerk, {**form, "kind": "leak", "due_on": (ON + timedelta(days=5)).isoformat(), "notes": "Wet yard"},
        ON, NOW,
    )  # fmt: skip
    tomorrow = ON + timedelta(days=1)
    listing = service.work_order_list(session, clerk, service.parse_filters({"due": "overdue"}), tomorrow)
    assert [(r.order.id, r.overdue, r.assignee) for r in listing.rows] == [(late.id, True, "Ana")]
    # Ana sees her order on the field list; Ben does not (nor the leak, not due yet).
    assert [r.order.id for g in service.field_list(session, ana, tomorrow).groups for r in g.rows] == [late.id]
    assert service.field_list(session, ben, tomorrow).groups == []
    service.assign_order(
        session, clerk, later.id, {"assigned_to": str(ben.id), "crew": "North", "due_on": "2026-03-26"}, ON, NOW
    )
    assert (later.assigned_to_id, later.crew, later.due_on) == (ben.id, "North", date(2026, 3, 26))
    work = service.open_work_by_assignee(session, tomorrow)
    assert [(w.name, w.open, w.overdue) for w in work] == [("Ana", 1, 1), ("Ben, crew North", 1, 0)]
