from datetime import date
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from portal.billing_core.models import AuditEvent, Meter, MeterRead, ReadImport
from portal.billing_core.read_import import import_reads

from .factories import district

TODAY = date(2026, 11, 22)


def with_history(session: Session) -> list:  # type: ignore[type-arg]
    accounts = district(session, 2)
    meters = session.scalars(select(Meter).order_by(Meter.id)).all()
    for meter in meters:
        value = Decimal(1000)
        for month in range(4, 11):  # April to October reads, 10 CCF a month
            session.add(MeterRead(meter_id=meter.id, read_on=date(2026, month, 5), value=value, source="amr"))
            value += 10
    session.flush()
    return accounts


def csv(*rows: str) -> bytes:
    return ("meter_serial,account_number,read_value,read_time,source\n" + "\n".join(rows) + "\n").encode()


def count(session: Session) -> int:
    return session.scalar(select(func.count(MeterRead.id)))


def test_a_file_imports_once_and_flags_exceptions(session: Session) -> None:
    accounts = with_history(session)
    before = count(session)
    content = csv("T000001,,1072,2026-11-05,amr", f",{accounts[1].number},1100,2026-11-05,handheld")
    report = import_reads(session, content, "nov.csv", "csv", today=TODAY, actor_label="test")
    assert report.ok and (report.lines, report.added, report.exceptions) == (2, 2, 1)
    assert count(session) == before + 2
    high = session.scalar(select(MeterRead).where(MeterRead.value == Decimal(1100)))
    assert (high.status, high.exception, high.source) == ("exception", "high", "handheld")  # 40 CCF vs 10 average
    normal = session.scalar(select(MeterRead).where(MeterRead.value == Decimal(1072)))
    assert (normal.status, normal.exception) == ("valid", None)
    again = import_reads(session, content, "nov-copy.csv", "csv", today=TODAY, actor_label="test")
    assert again.already_imported_at is not None and again.added == 0 and count(session) == before + 2
    assert session.scalar(select(func.count(ReadImport.id))) == 1
    assert session.scalar(select(AuditEvent).where(AuditEvent.action == "reads.import")).after["added"] == 2


def test_one_bad_line_imports_nothing_and_every_bad_line_is_reported(session: Session) -> None:
    with_history(session)
    before = count(session)
    content = csv(
        "T000001,,1072,2026-11-05,amr",
        "NOPE1,,5,2026-11-05,amr",
        "T000002,,x,2026-11-05,amr",
        "T000001,,1073,2026-11-05,amr",
    )
    report = import_reads(session, content, "bad.csv", "csv", today=TODAY)
    assert not report.ok and report.added == 0 and count(session) == before
    assert [(r.line, r.value, r.reason) for r in report.rejected] == [
        (3, "NOPE1", "no meter with this serial"),
        (4, "x", "the read value is not a number"),
        (5, "1073", "line 2 has another read of meter T000001 on 11/05/2026"),
    ]
    assert session.scalar(select(func.count(ReadImport.id))) == 0


def test_reads_on_record_are_kept_or_conflicts_rejected(session: Session) -> None:
    with_history(session)
    same = import_reads(session, csv("T000001,,1060,2026-10-05,amr"), "a.csv", "csv", today=TODAY)
    assert same.ok and (same.added, same.unchanged) == (0, 1)
    clash = import_reads(session, csv("T000001,,1061,2026-10-05,amr"), "b.csv", "csv", today=TODAY)
    assert clash.rejected[0].reason == "meter T000001 already has read 1060 on 10/05/2026"


def test_below_previous_and_rollover(session: Session) -> None:
    with_history(session)
    meter = session.scalar(select(Meter).where(Meter.serial == "T000001"))
    session.add(MeterRead(meter_id=meter.id, read_on=date(2026, 11, 1), value=Decimal(999995), source="field"))
    session.flush()
    report = import_reads(
        session, csv("T000001,,5,2026-11-20,amr", "T000002,,900,2026-11-20,amr"), "r.csv", "csv", today=TODAY
    )
    assert report.ok
    rolled = session.scalar(select(MeterRead).where(MeterRead.meter_id == meter.id, MeterRead.value == 5))
    assert "rollover" in rolled.exception
    below = session.scalar(select(MeterRead).where(MeterRead.value == 900))
    assert below.exception == "below_previous" and below.status == "exception"
