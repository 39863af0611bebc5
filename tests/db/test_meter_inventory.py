"""The meter inventory on both databases: receiving one meter and a CSV file of serials (a
wrong file writes nothing and names every wrong line), installing a stocked meter with its
first read (refused for a meter not in stock, or where the premise already has one), a test
result that sends a meter to retirement, retiring refused while installed, and the stock
list's counts. Every change is audited with before and after."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from portal.billing_core import meter_inventory as inventory
from portal.billing_core.errors import FieldErrors, InvalidInput, NotAllowed
from portal.billing_core.models import (
    Account,
    AuditEvent,
    Meter,
    MeterRead,
    MeterTest,
    Premise,
    Service,
    User,
)
from portal.cli import main
from portal.services import meters as service

from .factories import district

NOW = datetime(2026, 11, 20, 18, 0, tzinfo=UTC)  # 10:00 in Chino
TODAY = date(2026, 11, 20)


def person(session: Session, role: str) -> User:
    user = User(email=f"{role}@example.net", role=role)
    session.add(user)
    session.flush()
    return user


def events(session: Session, action: str) -> list[AuditEvent]:
    return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)))


def test_receive_one_meter_checks_the_whole_form_and_audits(session: Session) -> None:
    specialist = person(session, "specialist")
    with pytest.raises(FieldErrors) as refused:
        service.receive_one(
            session, specialist, {"serial": "bad serial!", "size": "7", "dials": "13"}, today=TODAY, now=NOW
        )
    assert set(refused.value.errors) == {"serial", "size", "dials"}
    meter = service.receive_one(
        session,
        specialist,
        {"serial": "n100", "size": "5/8", "make": "Badger", "model": "M25", "received_on": "2026-11-19"},
        today=TODAY,
        now=NOW,
    )
    assert (meter.serial, meter.size, meter.status, meter.received_on) == (
        "N100",
        '5/8"',
        "in_stock",
        date(2026, 11, 19),
    )
    with pytest.raises(FieldErrors) as twice:
        service.receive_one(session, specialist, {"serial": "N100", "size": '1"'}, today=TODAY, now=NOW)
    assert "already on file" in twice.value.errors["serial"].message
    (event,) = events(session, "meter.receive")
    assert event.before is None and event.after is not None and event.after["status"] == "in_stock"
    with pytest.raises(NotAllowed):
        service.receive_one(session, person(session, "csr"), {"serial": "N101", "size": '1"'}, today=TODAY, now=NOW)


def test_a_wrong_file_receives_nothing_and_names_every_line(session: Session) -> None:
    district(session, 1)  # meter T000001 is on file
    specialist = person(session, "specialist")
    bad = b'serial,size,dials\nA1,5/8",6\nA2,7",6\nA1,1",6\nT000001,1",6\n,1",6\nA3,2",x\n'
    with pytest.raises(inventory.FileRefused) as refused:
        service.receive_file(session, specialist, bad, {"size": '1"'}, today=TODAY, now=NOW)
    found = {(p.line, p.reason.split(";")[0]) for p in refused.value.problems}
    assert found == {
        (3, "The size must be one of " + ", ".join(inventory.SIZES) + "."),
        (4, "serial A1 is also on line 2"),
        (5, "meter T000001 is already on file"),
        (6, "Enter the meter's serial number."),
        (7, "Dials must be a whole number from 1 to 12."),
    }
    assert session.scalar(select(func.count()).select_from(Meter)) == 1
    assert not events(session, "meter.receive")
    other = b'size,serial\n1",C1\n1",T000001\n2",C2,x\n'  # the serial need not come first
    with pytest.raises(inventory.FileRefused) as again:
        service.receive_file(session, specialist, other, {}, today=TODAY, now=NOW)
    assert [(p.line, p.serial) for p in again.value.problems] == [(3, "T000001"), (4, "C2")]
    received = service.receive_file(session, specialist, b"B1\nB2\n\nb3\n", {"size": '3/4"'}, today=TODAY, now=NOW)
    assert [(m.serial, m.size, m.status) for m in received] == [(s, '3/4"', "in_stock") for s in ("B1", "B2", "B3")]
    assert len(events(session, "meter.receive")) == 3


def test_install_a_stocked_meter_with_its_first_read(session: Session) -> None:
    (account,) = district(session, 1)
    field = person(session, "field")
    old = session.scalar(select(Meter).where(Meter.serial == "T000001"))
    assert old is not None
    (new,) = inventory.receive(session, [inventory.parse_meter({"serial": "N1", "size": '5/8"'})], TODAY, field, NOW)
    premise = session.get(Premise, account.premise_id)
    assert premise is not None
    with pytest.raises(InvalidInput, match="already has meter T000001 installed for water: exchange it"):
        inventory.install(session, new, premise, Decimal(5), TODAY, field, NOW)
    # A new premise whose account's water service has no meter yet.
    empty = Premise(address_line1="9 Elm St", city="Chino", state="CA", zip="91710")
    session.add(empty)
    session.flush()
    opened = Account(
        number="00077777", customer_id=account.customer_id, premise_id=empty.id, customer_class="RESIDENTIAL_SINGLE",
        cycle_id=account.cycle_id, opened_on=TODAY,
    )  # fmt: skip
    session.add(opened)
    session.flush()
    water = Service(
        account_id=opened.id,
        service_type="water",
        rate_schedule_id=account.services[0].rate_schedule_id,
        options={},
        started_on=TODAY,
    )
    session.add(water)
    session.flush()
    with pytest.raises(InvalidInput, match="6-dial meter reads at most"):
        inventory.install(session, new, empty, Decimal(1_000_000), TODAY, field, NOW)
    with pytest.raises(InvalidInput, match="in the future"):
        inventory.install(session, new, empty, Decimal(5), date(2026, 11, 21), field, NOW)
    read = inventory.install(session, new, empty, Decimal("12.5"), NOW, field, NOW)
    assert (new.status, new.premise_id, new.installed_on) == ("installed", empty.id, TODAY)
    assert (read.meter_id, read.read_on, read.value, read.source) == (new.id, TODAY, Decimal("12.5"), "field")
    assert water.meter_id == new.id
    (event,) = events(session, "meter.install")
    assert event.before is not None and event.before["status"] == "in_stock"
    assert event.after is not None and event.after["status"] == "installed" and event.after["first_read"] == "12.5"
    # Installed now: not in stock, so it cannot be installed again.
    with pytest.raises(InvalidInput, match="only a meter in stock can be installed"):
        inventory.install(session, new, premise, Decimal(5), TODAY, field, NOW)
    assert session.scalar(select(func.count()).select_from(MeterRead).where(MeterRead.meter_id == new.id)) == 1


def test_install_from_the_meter_page_finds_the_premise_and_names_the_field(session: Session) -> None:
    (account,) = district(session, 1)
    specialist = person(session, "specialist")
    (meter,) = inventory.receive(
        session, [inventory.parse_meter({"serial": "N2", "size": '1"'})], TODAY, specialist, NOW
    )
    values = {"action": "install", "premise": account.number, "install_read": "0", "install_on": "2026-11-20"}
    with pytest.raises(FieldErrors) as refused:
        service.change_meter(session, specialist, "N2", values, today=TODAY, now=NOW)
    assert list(refused.value.errors) == ["premise"]
    with pytest.raises(FieldErrors) as unknown:
        service.change_meter(session, specialist, "N2", {**values, "premise": "1 Nowhere Rd"}, today=TODAY, now=NOW)
    assert unknown.value.errors["premise"].message == "No account or premise 1 Nowhere Rd."
    assert meter.status == "in_stock"
    assert session.scalar(select(func.count()).select_from(MeterRead).where(MeterRead.meter_id == meter.id)) == 0


def test_a_failed_test_retires_the_meter_and_retiring_is_refused_while_installed(session: Session) -> None:
    district(session, 1)
    field = person(session, "field")
    installed = session.scalar(select(Meter).where(Meter.serial == "T000001"))
    assert installed is not None
    with pytest.raises(InvalidInput, match="installed: exchange it"):
        inventory.retire(session, installed, TODAY, "worn out", field, NOW)
    with pytest.raises(FieldErrors) as wrong:
        inventory.parse_test({"result": "maybe", "low_flow_pct": "abc", "tested_on": "2026-12-01"}, TODAY)
    assert set(wrong.value.errors) == {"result", "low_flow_pct", "tested_on"}
    failed = inventory.parse_test(
        {
            "result": "fail",
            "low_flow_pct": "91.5",
            "mid_flow_pct": "97",
            "high_flow_pct": "99.2",
            "tested_by": "R. Diaz",
        },
        TODAY,
    )
    with pytest.raises(InvalidInput, match="installed: exchange it before"):
        inventory.record_test(session, installed, failed, field, NOW, then="retired")
    installed.installed_on = date(2020, 1, 1)
    inventory.record_test(session, installed, failed, field, NOW)  # a field test, it stays in
    assert installed.status == "installed"
    (tested,) = [h for h in service.meter_page(session, "T000001").history if h.what == "Tested"]
    assert tested.on == TODAY and tested.detail.startswith("Fail (low 91.50%")
    (spare,) = inventory.receive(session, [inventory.parse_meter({"serial": "S1", "size": '1"'})], TODAY, field, NOW)
    with pytest.raises(InvalidInput, match="failed its test does not go back to stock"):
        inventory.record_test(session, spare, failed, field, NOW, then="in_stock")
    test = inventory.record_test(session, spare, failed, field, NOW, then="retired")
    assert (spare.status, spare.retired_on) == ("retired", TODAY)
    stored = session.get(MeterTest, test.id)
    assert stored is not None and (stored.result, stored.low_flow_pct) == ("fail", Decimal("91.50"))
    last = events(session, "meter.test")[-1]
    assert last.before is not None and last.before["status"] == "in_stock"
    assert last.after is not None and last.after["status"] == "retired"
    with pytest.raises(InvalidInput, match="is retired"):
        inventory.record_test(session, spare, failed, field, NOW)
    (other,) = inventory.receive(session, [inventory.parse_meter({"serial": "S2", "size": '1"'})], TODAY, field, NOW)
    inventory.retire(session, other, TODAY, "Damaged in the yard", field, NOW)
    assert other.status == "retired" and events(session, "meter.retire")[0].after["reason"] == "Damaged in the yard"  # type: ignore[index]
    page = service.meter_page(session, "S1")
    assert [h.what for h in page.history] == ["Received into stock", "Tested"]
    assert page.history[1].detail == "Fail (low 91.50%, mid 97.00%, high 99.20%); then retired"


def test_the_stock_list_counts_by_size_and_state(session: Session) -> None:
    district(session, 2)  # two 5/8" meters installed
    specialist = person(session, "specialist")
    service.receive_file(session, specialist, b'serial,size\nR1,1"\nR2,1"\nR3,5/8"\n', {}, today=TODAY, now=NOW)
    retired = session.scalar(select(Meter).where(Meter.serial == "R2"))
    assert retired is not None
    inventory.retire(session, retired, TODAY, "dropped", specialist, NOW)
    stock = service.stock_list(session)
    assert stock.counts == {'5/8"': {"installed": 2, "in_stock": 1}, '1"': {"in_stock": 1, "retired": 1}}
    assert stock.totals["in_stock"] == 2 and stock.matching == 5
    only = service.stock_list(session, size='1"', status="in_stock")
    assert [m.serial for m in only.meters] == ["R1"] and only.matching == 1
    assert [m.serial for m in service.stock_list(session, q="t0").meters] == ["T000001", "T000002"]


def test_the_receive_command_names_each_wrong_line_or_receives_the_file(
    engine: Engine,
    session: Session,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("DATABASE_URL", engine.url.render_as_string(hide_password=False))
    person(session, "specialist")
    session.commit()
    bad, good = tmp_path / "bad.csv", tmp_path / "good.csv"
    bad.write_text('serial,size\nK1,5/8"\nK1,1"\n')
    good.write_text("K1\nK2\n")
    assert main(["meters", "receive", str(bad), "--as", "specialist@example.net"]) == 1
    assert "line 3: K1: serial K1 is also on line 2" in capsys.readouterr().err
    argv = ["meters", "receive", str(good), "--size", '3/4"', "--on", "2026-11-20", "--as", "specialist@example.net"]
    assert main(argv) == 0
    assert "2 meters received into stock on 2026-11-20." in capsys.readouterr().out
    session.expire_all()
    assert session.scalars(select(Meter.serial).where(Meter.size == '3/4"').order_by(Meter.serial)).all() == [
        "K1",
        "K2",
    ]
