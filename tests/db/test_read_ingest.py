"""Issue 17's read ingest: the set-based path (PostgreSQL) decides every read as the chunked
path (SQLite, and the code before issue 17) does: every kind of exception and of rejected
line, with the same messages, recorded once from the code before issue 17."""

from __future__ import annotations

import random
from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.adapters.clock import system_clock
from portal.billing_core import read_import, reads
from portal.billing_core.models import Account, Meter, MeterRead, Service
from portal.billing_core.read_import import import_reads

from .factories import district

TODAY = date(2026, 11, 22)
HEADER = "meter_serial,account_number,read_value,read_time,source"


def scenario(session: Session) -> list[Account]:
    """Ten accounts, T000001 to T000010, read 1000 on April 5 and 10 CCF more each month to
    October 5 (1060); T000006 read 999995 on November 1; T000007's account is final;
    T000008 has no reads; T000010 is in stock; FRESH1 (4 dials) is installed on no account;
    account 11 has two meters, account 12 none."""
    accounts = district(session, 12)
    meters = {m.serial: m for m in session.scalars(select(Meter))}
    for i in range(1, 11):
        if i == 8:
            continue
        for month in range(4, 11):
            value = Decimal(1000 + 10 * (month - 4))
            session.add(
                MeterRead(meter_id=meters[f"T{i:06d}"].id, read_on=date(2026, month, 5), value=value, source="amr")
            )
    session.add(
        MeterRead(meter_id=meters["T000006"].id, read_on=date(2026, 11, 1), value=Decimal(999995), source="field")
    )
    accounts[6].status = "final"
    meters["T000010"].status = "in_stock"
    session.add(Meter(serial="FRESH1", size='5/8"', status="installed", dials=4))
    second = Meter(serial="T000011B", size='5/8"', status="installed", premise_id=accounts[10].premise_id)
    session.add(second)
    session.flush()
    water = session.scalar(select(Service).where(Service.meter_id == meters["T000011"].id))
    session.add(
        Service(
            account_id=accounts[10].id,
            service_type="irrigation",
            rate_schedule_id=water.rate_schedule_id,
            meter_id=second.id,
            options={},
            started_on=date(2020, 1, 1),
        )
    )
    session.execute(Service.__table__.delete().where(Service.meter_id == meters["T000012"].id))
    session.flush()
    return accounts


def accepted(accounts: list[Account]) -> bytes:
    rows = [
        "T000001,,1070,2026-11-05,amr",  # 10 CCF: valid
        "t000002,,1160,2026-11-05,handheld",  # 100 CCF: high
        "T000003,,1061,2026-11-05,amr",  # 1 CCF: low
        "T000004,,1060,2026-11-05,ami",  # no use on an active account: zero
        "T000005,,900,2026-11-05,amr",  # below October's 1060: below previous
        "T000006,,5,2026-11-20,amr",  # 999995 -> 5 on six dials: rollover (and low beside the jump)
        "T000007,,1075,2026-11-05,amr",  # use on a final account: inactive use
        "T000008,,500,2026-11-05,amr",  # a first read: nothing to check against
        "T000009,,1060,2026-10-05,amr",  # already on record, same value: unchanged
        "T000009,,1072,2026-11-05,amr",  # the same meter again, a new day: valid
        "T000009,,1172,2026-11-20,amr",  # 100 CCF after the file's own 1072: high
        f",{accounts[0].number},1070,2026-11-05,amr",  # the same read by account number: one read
        f",{accounts[4].number},1070,2026-11-06,amr",  # by account number, 170 after the file's 900: high
        "FRESH1,,9999,2026-11-05,amr",  # a first read on a 4-dial meter
    ]
    return (HEADER + "\n" + "\n".join(rows) + "\n").encode()


def rejected(accounts: list[Account]) -> bytes:
    rows = [
        "T000001,,1070,2026-11-05,amr",
        "NOPE1,,5,2026-11-05,amr",  # no such meter
        "T000010,,5,2026-11-05,amr",  # in stock
        "T000001,,1000000,2026-11-06,amr",  # beyond six dials
        "FRESH1,,10000,2026-11-06,amr",  # beyond four dials
        "T000001,,1071,2026-11-05,amr",  # another read of line 2's meter and day
        "T000002,,1061,2026-10-05,amr",  # clashes with the read on record
        f",{accounts[10].number},5,2026-11-05,amr",  # an account with two meters
        f",{accounts[11].number},5,2026-11-05,amr",  # an account with no meter
        "T000003,,x,2026-11-05,amr",
        ",,5,2026-11-05,amr",
    ]
    return (HEADER + "\n" + "\n".join(rows) + "\n").encode()


def outcome(session: Session, content: bytes, name: str) -> tuple:  # type: ignore[type-arg]
    report = import_reads(session, content, name, "csv", today=TODAY, actor_label="test", now=system_clock())
    written = (
        []
        if report.import_id is None
        else session.execute(
            select(
                Meter.serial,
                MeterRead.read_on,
                MeterRead.value,
                MeterRead.source,
                MeterRead.status,
                MeterRead.exception,
            )
            .join(Meter, Meter.id == MeterRead.meter_id)
            .where(MeterRead.import_id == report.import_id)
            .order_by(Meter.serial, MeterRead.read_on)
        ).all()
    )
    return (
        (report.lines, report.added, report.unchanged, report.exceptions),
        [(r.line, r.value, r.reason) for r in report.rejected],
        [(s, d.isoformat(), reads.format_quantity(v), src, st, e) for s, d, v, src, st, e in written],
    )


#: What the code before issue 17 (chunked lookups on both databases) made of the two files.
BEFORE_ACCEPTED = (
    (14, 12, 1, 8),
    [],
    [
        ("FRESH1", "2026-11-05", "9999", "amr", "valid", None),
        ("T000001", "2026-11-05", "1070", "amr", "valid", None),
        ("T000002", "2026-11-05", "1160", "handheld", "exception", "high"),
        ("T000003", "2026-11-05", "1061", "amr", "exception", "low"),
        ("T000004", "2026-11-05", "1060", "ami", "exception", "zero"),
        ("T000005", "2026-11-05", "900", "amr", "exception", "below_previous"),
        ("T000005", "2026-11-06", "1070", "amr", "exception", "high"),
        ("T000006", "2026-11-20", "5", "amr", "exception", "rollover,low"),
        ("T000007", "2026-11-05", "1075", "amr", "exception", "inactive_use"),
        ("T000008", "2026-11-05", "500", "amr", "valid", None),
        ("T000009", "2026-11-05", "1072", "amr", "valid", None),
        ("T000009", "2026-11-20", "1172", "amr", "exception", "high"),
    ],
)
BEFORE_REJECTED = (
    (11, 0, 0, 0),
    [
        (3, "NOPE1", "no meter with this serial"),
        (4, "T000010", "meter is in stock, not installed"),
        (5, "1000000", "meter T000001: a 6-dial meter reads at most 999999"),
        (6, "10000", "meter FRESH1: a 4-dial meter reads at most 9999"),
        (7, "1071", "line 2 has another read of meter T000001 on 11/05/2026"),
        (8, "1061", "meter T000002 already has read 1060 on 10/05/2026"),
        (9, "00090118", "the account has several meters: give the meter serial"),
        (10, "00090126", "no account with this number and a meter"),
        (11, "x", "the read value is not a number"),
        (12, ",,5,2026-11-05,amr", "no meter serial or account number"),
    ],
    [],
)


def test_every_kind_of_exception_and_rejected_line_as_before_issue_17(session: Session) -> None:
    accounts = scenario(session)
    assert outcome(session, rejected(accounts), "bad.csv") == BEFORE_REJECTED
    assert outcome(session, accepted(accounts), "good.csv") == BEFORE_ACCEPTED


def test_the_set_based_lookups_find_what_the_chunked_ones_find(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL: the same files through the chunked lookups (forced) and the set-based ones."""
    if session.get_bind().dialect.name != "postgresql":
        pytest.skip("SQLite has only the chunked lookups")
    accounts = scenario(session)
    session.flush()
    got = {}
    for path in ("chunked", "bulk"):
        with monkeypatch.context() as patch:
            if path == "chunked":
                patch.setattr(read_import, "_known_reads", read_import._known_reads_chunked)
                patch.setattr(read_import, "_meters_by_serial", read_import._meters_by_serial_chunked)
            savepoint = session.begin_nested()
            got[path] = [outcome(session, content(accounts), path) for content in (rejected, accepted)]
            savepoint.rollback()
    assert got["bulk"] == got["chunked"] == [BEFORE_REJECTED, BEFORE_ACCEPTED]


def reference_judge(
    dials: int, multiplier: Decimal, history: list[Decimal], value: Decimal, active: bool
) -> list[reads.ReadException]:
    """``read_import.judge`` as it was before issue 17: reads.consumption for every pair."""
    if not history:
        return []
    try:
        use = reads.consumption(history[0], value, dials, multiplier)
    except Exception:
        return [reads.ReadException.BELOW_PREVIOUS]
    past = []
    ordered = list(reversed(history))
    for older, newer in zip(ordered, ordered[1:], strict=False):
        if older.is_finite() and newer.is_finite() and older <= newer < Decimal(10) ** dials:
            past.append((newer - older) * multiplier)
            continue
        try:
            past.append(reads.consumption(older, newer, dials, multiplier).quantity)
        except Exception:
            continue
    return reads.validate(use.quantity, past, active=active, rollover=use.rollover)


def test_judge_decides_as_before_on_any_history() -> None:
    rng = random.Random(17)
    odd = [Decimal("NaN"), Decimal(-5), Decimal(999999), Decimal(0), Decimal("1000000")]
    for _ in range(5000):
        dials = rng.choice([4, 6, 6, 6, 8, 12])
        history, value = [], Decimal(rng.randrange(0, 10**dials)) / rng.choice([1, 1, 10, 1000])
        for _k in range(rng.randrange(0, 14)):
            step = rng.choice([0, 1, 5, 10, 10, 10, 12, 40, -3, -(10**dials) + 20])
            history.append(max(Decimal(0), value - step) if rng.random() < 0.9 else rng.choice(odd))
        multiplier = rng.choice([Decimal(1), Decimal("1.0000"), Decimal(10), Decimal("0.5")])
        active = rng.random() < 0.9
        assert read_import.judge(dials, multiplier, history, value, active) == reference_judge(
            dials, multiplier, history, value, active
        ), (dials, multiplier, history, value, active)
