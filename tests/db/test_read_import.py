from datetime import date
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from portal.adapters.clock import system_clock
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
    report = import_reads(session, content, "nov.csv", "csv", today=TODAY, actor_label="test", now=system_clock())
    assert report.ok and (report.lines, report.added, report.exceptions) == (2, 2, 1)
    assert count(session) == before + 2
    high = session.scalar(select(MeterRead).where(MeterRead.value == Decimal(1100)))
    assert (high.status, high.exception, high.source) == ("exception", "high", "handheld")  # 40 CCF vs 10 average
    normal = session.scalar(select(MeterRead).where(MeterRead.value == Decimal(1072)))
    assert (normal.status, normal.exception) == ("valid", None)
    again = import_reads(session, content, "nov-copy.csv", "csv", today=TODAY, actor_label="test", now=system_clock())
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
    report = import_reads(session, content, "bad.csv", "csv", today=TODAY, now=system_clock())
    assert not report.ok and report.added == 0 and count(session) == before
    assert [(r.line, r.value, r.reason) for r in report.rejected] == [
        (3, "NOPE1", "no meter with this serial"),
        (4, "x", "the read value is not a number"),
        (5, "1073", "line 2 has another read of meter T000001 on 11/05/2026"),
    ]
    assert session.scalar(select(func.count(ReadImport.id))) == 0


def test_reads_on_record_are_kept_or_conflicts_rejected(session: Session) -> None:
    with_history(session)
    same = import_reads(session, csv("T000001,,1060,2026-10-05,amr"), "a.csv", "csv", today=TODAY, now=system_clock())
    assert same.ok and (same.added, same.unchanged) == (0, 1)
    clash = import_reads(session, csv("T000001,,1061,2026-10-05,amr"), "b.csv", "csv", today=TODAY, now=system_clock())
    assert clash.rejected[0].reason == "meter T000001 already has read 1060 on 10/05/2026"


def test_below_previous_and_rollover(session: Session) -> None:
    with_history(session)
    meter = session.scalar(select(Meter).where(Meter.serial == "T000001"))
    session.add(MeterRead(meter_id=meter.id, read_on=date(2026, 11, 1), value=Decimal(999995), source="field"))
    session.flush()
    report = import_reads(
        session,
        csv("T000001,,5,2026-11-20,amr", "T000002,,900,2026-11-20,amr"),
        "r.csv",
        "csv",
        today=TODAY,
        now=system_clock(),
    )
    assert report.ok
    rolled = session.scalar(select(MeterRead).where(MeterRead.meter_id == meter.id, MeterRead.value == 5))
    assert "rollover" in rolled.exception
    below = session.scalar(select(MeterRead).where(MeterRead.value == 900))
    assert below.exception == "below_previous" and below.status == "exception"


def test_a_value_beyond_the_dials_is_rejected_with_its_line_first_read_or_not(session: Session) -> None:
    with_history(session)
    session.add(Meter(serial="FRESH1", size='5/8"', status="installed", dials=4))
    session.flush()
    before = count(session)
    content = csv(
        "T000001,,1000000,2026-11-05,amr",  # 6 dials: 999999 at most
        "FRESH1,,10000,2026-11-05,amr",  # a first read on a 4-dial meter
        "T000002,,1E+1000000,2026-11-05,amr",
        "T000002,,Infinity,2026-11-06,amr",
        "T000002,,NaN,2026-11-07,amr",
        "T000002,,-1,2026-11-08,amr",
        "FRESH1,,9999,2026-11-06,amr",
    )
    report = import_reads(session, content, "absurd.csv", "csv", today=TODAY, now=system_clock())
    assert [(r.line, r.value, r.reason) for r in report.rejected] == [
        (2, "1000000", "meter T000001: a 6-dial meter reads at most 999999"),
        (3, "10000", "meter FRESH1: a 4-dial meter reads at most 9999"),
        (4, "1E+1000000", "write the read with the digits 0-9 and a decimal point only"),
        (5, "Infinity", "the read value is not a number"),
        (6, "NaN", "the read value is not a number"),
        (7, "-1", "the read value is negative"),
    ]
    assert report.added == 0 and count(session) == before
    assert session.scalar(select(func.count(ReadImport.id))) == 0


def test_reads_of_one_meter_in_one_file_are_checked_against_each_other(session: Session) -> None:
    with_history(session)  # T000001 read 1060 on October 5
    content = csv("T000001,,1170,2026-11-20,amr", "T000001,,1070,2026-11-05,amr", "T000002,,1065,2026-10-20,amr")
    report = import_reads(session, content, "two.csv", "csv", today=TODAY, now=system_clock())
    assert report.ok and (report.added, report.exceptions) == (3, 1)
    got = dict(
        session.execute(select(MeterRead.value, MeterRead.exception).where(MeterRead.read_on > date(2026, 10, 5))).all()
    )
    # 1170 is 100 CCF after the file's own 1070 (high); 1065 on Oct 20 is 5 after Oct 5's 1060.
    assert got == {Decimal(1070): None, Decimal(1170): "high", Decimal(1065): None}


def test_an_over_long_csv_field_is_a_clear_error_and_loads_nothing(session: Session) -> None:
    import pytest

    from portal.billing_core.errors import InvalidInput

    with_history(session)
    before = count(session)
    content = csv("T000001,,1072,2026-11-05,amr", "T000002,," + "1" * 200_000 + ",2026-11-05,amr")
    with pytest.raises(InvalidInput, match="line 3: a field is longer than 131,072 characters"):
        import_reads(session, content, "long.csv", "csv", today=TODAY, now=system_clock())
    assert count(session) == before


def test_the_cli_says_what_is_wrong_with_a_file_without_a_traceback(engine, tmp_path, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from portal import cli

    path = tmp_path / "long.csv"
    path.write_bytes(b"meter_serial,read_value,read_time\nM1," + b"9" * 200_000 + b",2026-11-05\n")
    monkeypatch.setenv("DATABASE_URL", engine.url.render_as_string(hide_password=False))
    assert cli.main(["reads", "import", str(path), "--format", "csv"]) != 0
    err = capsys.readouterr().err
    assert "line 2: a field is longer than 131,072 characters" in err and "Traceback" not in err


def test_a_day_of_ami_reads_for_a_city_imports_in_bulk(session: Session) -> None:
    """100,000 lines: once a crash on PostgreSQL (one IN list with every serial, over its
    65,535 parameters) and 28 s for 20,000 lines; now a few set-based queries per chunk of
    meters and one COPY (PostgreSQL) or executemany (SQLite)."""
    import time

    from bench.read_import import ami_file, build_meters

    meters = 100_000
    # Every meter has its October read; every 100th has four (three periods of use, enough to
    # call a read high), among them the 100 whose November use is 100 CCF.
    build_meters(session, meters, history=4, deep_every=100)
    content = ami_file(meters, history=4, high_every=1000)
    before = count(session)
    started = time.perf_counter()
    report = import_reads(
        session,
        content,
        "ami.csv",
        "csv",
        layout_name="ami-interval-export",
        today=TODAY,
        actor_label="test",
        now=system_clock(),
    )
    took = time.perf_counter() - started
    assert report.ok, report.rejected[:5]
    assert (report.lines, report.added, report.unchanged, report.exceptions) == (meters, meters, 0, meters // 1000)
    assert count(session) == before + meters
    held = session.scalars(select(MeterRead.exception).where(MeterRead.status == "exception")).all()
    assert held == ["high"] * (meters // 1000)
    assert took < 60, f"{meters} reads took {took:.1f} s"  # about 10 s on a quiet 2-core machine
    again = import_reads(
        session, content, "again.csv", "csv", layout_name="ami-interval-export", today=TODAY, now=system_clock()
    )
    assert again.already_imported_at is not None and count(session) == before + meters
