"""Importing a read file into the database: all or nothing, once per file.

Every line is checked before anything is written. If any line is rejected,
nothing is imported and the report lists every rejected line (line number,
value, reason). The same file imported again (same bytes) adds nothing, and a
read already on record for that meter and day, with the same value, is left
as it is. Each new read is validated against the account's history; reads
that need a person's eye are stored with status ``exception`` and wait in the
review queue.
"""

from __future__ import annotations

import bisect
import hashlib
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, NamedTuple

from sqlalchemy import String, func, select, text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from . import audit, reads
from .bulk import among, chunks, custom_plans, insert_rows
from .errors import InvalidInput
from .models import Account, Meter, MeterRead, ReadImport, Service, User
from .read_files import ParsedRead, Rejected, parse

READ_COLUMNS = ("meter_id", "read_on", "value", "source", "import_id", "status", "exception", "created_at")


@dataclass
class ImportReport:
    file_name: str
    lines: int = 0
    added: int = 0
    unchanged: int = 0
    exceptions: int = 0
    rejected: list[Rejected] = field(default_factory=list)
    already_imported_at: datetime | None = None
    import_id: int | None = None

    @property
    def ok(self) -> bool:
        return not self.rejected


class _Meter(NamedTuple):
    """What the import needs of a meter: plain values, not ORM objects."""

    id: int
    serial: str
    status: str
    dials: int
    multiplier: Decimal


def import_reads(
    session: Session,
    content: bytes,
    file_name: str,
    fmt: str,
    *,
    layout_name: str | None = None,
    mapping: Mapping[str, str] | None = None,
    today: date,
    now: datetime,
    actor: User | None = None,
    actor_label: str | None = None,
    remote_addr: str | None = None,
    rules: reads.Rules = reads.Rules(),
) -> ImportReport:
    """Check every line, then write the file's new reads in bulk, or nothing.

    Set-based whatever the file's size. On PostgreSQL the meters come in one statement, and
    each meter's recent history, its read on record that day and its account's status in
    two more (``_known_reads_bulk``; a meter with several reads in the file as on SQLite);
    the reads stream into one binary COPY as they are judged. On SQLite the same facts come
    in a few queries per chunk of ``bulk.IN_CHUNK`` meters and the reads go in with one
    executemany. The rules run in Python either way. ``today`` bounds the reads' dates;
    ``now`` stamps the reads written."""
    file_name = "".join(c for c in file_name if c.isprintable())[:200] or "reads"
    report = ImportReport(file_name=file_name)
    digest = hashlib.sha256(content).hexdigest()
    earlier = session.scalar(select(ReadImport).where(ReadImport.sha256 == digest))
    if earlier is not None:
        report.already_imported_at = earlier.imported_at
        report.import_id = earlier.id
        report.lines = earlier.lines_total
        report.unchanged = earlier.reads_added + earlier.reads_unchanged
        return report
    parsed, rejected, lines = parse(content, fmt, layout_name, mapping, today)
    report.lines = lines
    session.flush()  # the lookups below are Core statements, which do not autoflush
    custom_plans(session)
    meters = _resolve_meters(session, parsed, rejected)
    known = _known_reads(session, meters, rules)
    seen: dict[tuple[int, date], ParsedRead] = {}
    to_add: list[tuple[ParsedRead, _Meter]] = []
    one_day = known.one_day
    for p, meter in meters:
        key = (meter.id, p.read_on)
        if key in seen:
            if seen[key].value != p.value:
                rejected.append(
                    Rejected(
                        p.line,
                        str(p.value),
                        f"line {seen[key].line} has another read of meter {meter.serial} on {p.read_on:%m/%d/%Y}",
                    )
                )
            continue
        seen[key] = p
        quick = one_day.get(meter.id)  # known.on_day, without the call for a day's AMI file
        on_record = quick[2] if quick is not None and quick[0] == p.read_on else known.on_day(meter.id, p.read_on)
        if on_record is not None:
            if on_record != p.value:
                rejected.append(
                    Rejected(
                        p.line,
                        str(p.value),
                        f"meter {meter.serial} already has read {reads.format_quantity(on_record)} "
                        f"on {p.read_on:%m/%d/%Y}",
                    )
                )
            else:
                report.unchanged += 1
            continue
        to_add.append((p, meter))
    if rejected:
        report.rejected = sorted(rejected, key=lambda r: r.line)
        return report
    if session.get_bind().dialect.name == "postgresql":
        # Back to cached plans before the write: under force_custom_plan the foreign-key checks
        # of the COPY (two a read: its meter, its file) are planned again for every row, which
        # made the write about twice as slow.
        session.execute(text("SET LOCAL plan_cache_mode TO DEFAULT"))
    try:
        with session.begin_nested():  # all or nothing, even when the database refuses the write
            _write(
                session,
                report,
                to_add,
                known,
                digest,
                fmt,
                layout_name,
                lines,
                actor,
                actor_label,
                remote_addr,
                rules,
                now,
            )
    except (IntegrityError, OperationalError) as exc:
        # PostgreSQL: a unique key refuses a read or the file another load wrote first; SQLite:
        # that load's commit left this transaction's snapshot stale ("database is locked").
        if isinstance(exc, OperationalError) and "database is locked" not in str(exc):
            raise
        raise InvalidInput(
            "Nothing was loaded: another load of this file or of some of its reads finished while this one "
            "ran. Load the file again to see what is on record.",
            "file",
        ) from exc
    return report


def _write(
    session: Session,
    report: ImportReport,
    to_add: list[tuple[ParsedRead, _Meter]],
    known: _Known,
    digest: str,
    fmt: str,
    layout_name: str | None,
    lines: int,
    actor: User | None,
    actor_label: str | None,
    remote_addr: str | None,
    rules: reads.Rules,
    now: datetime,
) -> None:
    file_name = report.file_name
    batch = ReadImport(
        file_name=file_name,
        sha256=digest,
        format=fmt,
        layout=layout_name,
        imported_by_id=actor.id if actor else None,
        lines_total=lines,
    )
    session.add(batch)
    session.flush()
    batch_id = batch.id
    counted = [0, 0]  # reads, exceptions

    one_day = known.one_day

    def judged() -> Iterator[tuple[Any, ...]]:
        for p, meter in sorted(to_add, key=lambda pm: (pm[1].id, pm[0].read_on)):
            quick = one_day.get(meter.id)  # known.before, without the call for a day's AMI file
            if quick is not None and quick[0] == p.read_on:
                history = [Decimal(v) for v in quick[1].split()]
            else:
                history = known.before(meter.id, p.read_on, rules)
            found = judge(meter.dials, meter.multiplier, history, p.value, known.active(meter.id), rules)
            known.add(meter.id, p.read_on, p.value)  # the next read of this meter in the file sees it
            counted[0] += 1
            if found:
                counted[1] += 1
                exception = ",".join(e.value for e in found)
                yield (meter.id, p.read_on, p.value, p.source, batch_id, "exception", exception, now)
            else:
                yield (meter.id, p.read_on, p.value, p.source, batch_id, "valid", None, now)

    if session.get_bind().dialect.name == "postgresql":
        _copy_reads(session, judged())
    else:
        insert_rows(session, MeterRead.__table__, READ_COLUMNS, list(judged()))
    report.added, report.exceptions = counted
    batch.reads_added, batch.reads_unchanged, batch.exceptions = report.added, report.unchanged, report.exceptions
    report.import_id = batch.id
    audit.record(
        session,
        "reads.import",
        actor=actor,
        actor_label=actor_label,
        entity_type="read_import",
        entity_id=batch.id,
        remote_addr=remote_addr,
        after={
            "file": file_name,
            "lines": lines,
            "added": report.added,
            "unchanged": report.unchanged,
            "exceptions": report.exceptions,
        },
    )
    session.flush()


_COPY_READS = f"COPY meter_read ({', '.join(READ_COLUMNS)}) FROM STDIN (FORMAT BINARY)"
_COPY_TYPES = ["int8", "date", "numeric", "varchar", "int8", "varchar", "varchar", "timestamptz"]


def _copy_reads(session: Session, rows: Iterable[tuple[Any, ...]]) -> None:
    """PostgreSQL: the reads in one binary COPY, each row sent as soon as it is judged, so the
    server stores rows while the next ones are checked."""
    with _cursor(session) as cursor:
        raw = cursor.connection
        try:
            with cursor.copy(_COPY_READS) as copy:
                copy.set_types(_COPY_TYPES)
                for row in rows:
                    copy.write_row(row)
        except raw.IntegrityError as exc:  # as SQLAlchemy raises it for its own statements
            raise IntegrityError(_COPY_READS, None, exc) from exc


# Core columns, not ORM attributes: rows come back as tuples, without the ORM's loading.
_M, _R, _S, _A = (Meter.__table__.c, MeterRead.__table__.c, Service.__table__.c, Account.__table__.c)
_METER_COLUMNS = (_M.id, _M.serial, _M.status, _M.dials, _M.multiplier)


def _resolve_meters(
    session: Session, parsed: list[ParsedRead], rejected: list[Rejected]
) -> list[tuple[ParsedRead, _Meter]]:
    """Each line's meter, by serial or by the account's one meter in service; lines whose
    meter cannot take the read are rejected (unknown, not installed, value beyond its dials)."""
    serials = {p.meter_serial for p in parsed if p.meter_serial}
    numbers = {p.account_number for p in parsed if p.account_number and not p.meter_serial}
    by_serial = _meters_by_serial(session, serials)
    db = session.connection()
    by_account: dict[str, list[_Meter]] = defaultdict(list)
    for part in chunks(session, numbers):
        rows = db.execute(
            select(_A.number, *_METER_COLUMNS)
            .join_from(Account.__table__, Service.__table__, _S.account_id == _A.id)
            .join(Meter.__table__, _M.id == _S.meter_id)
            .where(among(session, _A.number, part, String()), _S.ended_on.is_(None))
        ).all()
        for number, *values in rows:
            on_account = _Meter(*values)
            if on_account not in by_account[number]:
                by_account[number].append(on_account)
    out = []
    for p in parsed:
        if p.meter_serial:
            meter = by_serial.get(p.meter_serial)
            if meter is None:
                rejected.append(Rejected(p.line, p.meter_serial, "no meter with this serial"))
                continue
            if meter.status != "installed":
                rejected.append(
                    Rejected(p.line, p.meter_serial, f"meter is {meter.status.replace('_', ' ')}, not installed")
                )
                continue
        else:
            found = by_account.get(p.account_number or "", [])
            if len(found) != 1:
                reason = (
                    "no account with this number and a meter"
                    if not found
                    else "the account has several meters: give the meter serial"
                )
                rejected.append(Rejected(p.line, p.account_number or "", reason))
                continue
            meter = found[0]
        if not p.value < (_CAPACITY.get(meter.dials) or _capacity(meter.dials)):  # parse_read checked the rest
            try:
                reads.check_read(p.value, meter.dials)
            except InvalidInput as exc:
                rejected.append(Rejected(p.line, str(p.value), f"meter {meter.serial}: {exc.message}"))
                continue
        out.append((p, meter))
    return out


def _meters_by_serial(session: Session, serials: set[str]) -> dict[str, _Meter]:
    """The meters with these serials: in one statement on PostgreSQL, by chunks on SQLite."""
    if session.get_bind().dialect.name == "postgresql":
        with _cursor(session) as cursor:
            cursor.execute(_METERS_BY_SERIAL, {"serials": "\n".join(serials)})
            return {row[1]: _Meter(*row) for row in cursor.fetchall()}
    return _meters_by_serial_chunked(session, serials)


def _meters_by_serial_chunked(session: Session, serials: set[str]) -> dict[str, _Meter]:
    by_serial: dict[str, _Meter] = {}
    for part in chunks(session, serials):
        for row in session.connection().execute(
            select(*_METER_COLUMNS).where(among(session, _M.serial, part, String()))
        ):
            by_serial[row.serial] = _Meter(*row)
    return by_serial


def _capacity(dials: int) -> Decimal:
    """What a ``dials``-dial register cannot reach (10^dials), or what the database cannot hold."""
    return min(Decimal(10) ** dials, reads.STORED_LIMIT)


_CAPACITY = {d: min(Decimal(10) ** d, reads.STORED_LIMIT) for d in range(1, 13)}


class _Known:
    """The reads on record that the file's reads are checked against, per meter, oldest first:
    the ``history_periods + 1`` before the meter's first day in the file and every one from
    that day to its last; plus, per meter, whether its account is active."""

    def __init__(self) -> None:
        self.days: dict[int, list[date]] = defaultdict(list)
        self.values: dict[int, list[Decimal]] = defaultdict(list)
        self.status: dict[int, tuple[date, str]] = {}
        #: Meters with one read in the file (``_known_reads_bulk``): the file's day, the values
        #: before it (newest first, space-separated, parsed only when judged) and the read on
        #: record that day, if any. Only that day is ever asked of them.
        self.one_day: dict[int, tuple[date, str, Decimal | None]] = {}

    def load(self, rows: Iterable[tuple[int, date, Decimal]]) -> None:
        """Reads on record, in any order, for meters not loaded before."""
        for meter_id, day, value in sorted(rows, key=lambda r: (r[0], r[1])):
            self.days[meter_id].append(day)
            self.values[meter_id].append(value)

    def add(self, meter_id: int, day: date, value: Decimal) -> None:
        if meter_id in self.one_day:
            on, before, _value = self.one_day[meter_id]
            assert day == on, (meter_id, day)
            self.one_day[meter_id] = (on, before, value)
            return
        days = self.days[meter_id]
        at = bisect.bisect_left(days, day)
        days.insert(at, day)
        self.values[meter_id].insert(at, value)

    def on_day(self, meter_id: int, day: date) -> Decimal | None:
        if meter_id in self.one_day:
            on, _before, value = self.one_day[meter_id]
            assert day == on, (meter_id, day)
            return value
        days = self.days.get(meter_id, [])
        at = bisect.bisect_left(days, day)
        return self.values[meter_id][at] if at < len(days) and days[at] == day else None

    def before(self, meter_id: int, day: date, rules: reads.Rules) -> list[Decimal]:
        """The meter's read values before ``day``, newest first, as many as the rules look at."""
        if meter_id in self.one_day:
            on, before, _value = self.one_day[meter_id]
            assert day == on, (meter_id, day)
            return [Decimal(v) for v in before.split()]
        days = self.days.get(meter_id, [])
        at = bisect.bisect_left(days, day)
        values = self.values[meter_id][max(0, at - rules.history_periods - 1) : at]
        return values[::-1]

    def active(self, meter_id: int) -> bool:
        return self.status.get(meter_id, (date.min, "active"))[1] == "active"


def _known_reads(session: Session, lines: Sequence[tuple[ParsedRead, _Meter]], rules: reads.Rules) -> _Known:
    """What the file's reads are checked against: in a few set-based statements on
    PostgreSQL (``_known_reads_bulk``), in chunks of ``bulk.IN_CHUNK`` meters on SQLite."""
    if session.get_bind().dialect.name == "postgresql":
        return _known_reads_bulk(session, lines, rules)
    return _known_reads_chunked(session, lines, rules)


@contextmanager
def _cursor(session: Session) -> Iterator[Any]:
    """A cursor of the driver (psycopg) on the session's connection, in its transaction: rows
    as plain tuples, a parameter bound as one text, nothing between the rows and the caller."""
    raw = session.connection().connection.driver_connection
    assert raw is not None  # a live pooled connection always has its driver connection
    with raw.cursor() as cursor:
        yield cursor


#: Meters by serial, the serials one text parameter (newline-separated: a serial is printable).
_METERS_BY_SERIAL = """
SELECT m.id, m.serial, m.status, m.dials, m.multiplier
FROM meter m WHERE m.serial = ANY(string_to_array(%(serials)s, E'\n'))
"""

#: For each meter and its day in the file: the values of its last ``keep`` reads before that
#: day (newest first, as text) and its read on record that day. One scan, one row a meter.
_HISTORY_BY_METER = """
WITH wanted AS (
    SELECT * FROM unnest(string_to_array(%(ids)s, ',')::bigint[], string_to_array(%(days)s, ',')::date[])
        AS w (meter_id, day)
)
SELECT w.meter_id,
       array_to_string(
           (array_agg(r.value ORDER BY r.read_on DESC) FILTER (WHERE r.read_on < w.day))[1:%(keep)s::int], ' '
       ),
       max(r.value) FILTER (WHERE r.read_on = w.day)
FROM wanted w JOIN meter_read r ON r.meter_id = w.meter_id AND r.read_on <= w.day
GROUP BY w.meter_id
"""

#: The status of the account on each meter's latest service (by start, then id), where it is
#: not active: the few services of accounts not active, each checked for a later one.
_NOT_ACTIVE_BY_METER = """
SELECT s.meter_id, s.started_on, a.status
FROM service s JOIN account a ON a.id = s.account_id
WHERE a.status <> 'active' AND s.meter_id = ANY(string_to_array(%(ids)s, ',')::bigint[])
  AND NOT EXISTS (
      SELECT 1 FROM service later
      WHERE later.meter_id = s.meter_id AND (later.started_on, later.id) > (s.started_on, s.id)
  )
"""


def _known_reads_bulk(session: Session, lines: Sequence[tuple[ParsedRead, _Meter]], rules: reads.Rules) -> _Known:
    """PostgreSQL: the meters with one read in the file (a day's AMI file: all of them) in two
    statements whatever their number, each meter's history coming back as one text; the
    meters with several reads in the file as ``_known_reads_chunked`` loads them."""
    day_of: dict[int, date] = {}
    several: set[int] = set()
    for p, meter in lines:
        if meter.id in day_of:
            several.add(meter.id)
        day_of[meter.id] = p.read_on
    known = _known_reads_chunked(session, [(p, m) for p, m in lines if m.id in several], rules) if several else _Known()
    ids = [m for m in day_of if m not in several]
    if not ids:
        return known
    id_text = ",".join(map(str, ids))
    one_day = known.one_day
    with _cursor(session) as cursor:
        cursor.execute(
            _HISTORY_BY_METER,
            {"ids": id_text, "days": ",".join([day_of[m].isoformat() for m in ids]), "keep": rules.history_periods + 1},
        )
        found = {meter_id: (before, on_day) for meter_id, before, on_day in cursor.fetchall()}
        for meter_id in ids:
            before, on_day = found.get(meter_id, ("", None))
            one_day[meter_id] = (day_of[meter_id], before or "", on_day)
        cursor.execute(_NOT_ACTIVE_BY_METER, {"ids": id_text})
        for meter_id, started_on, status in cursor:
            known.status[meter_id] = (started_on, status)
    return known


def _known_reads_chunked(session: Session, lines: Sequence[tuple[ParsedRead, _Meter]], rules: reads.Rules) -> _Known:
    known = _Known()
    first: dict[int, date] = {}
    last: dict[int, date] = {}
    for p, meter in lines:
        first[meter.id] = min(first.get(meter.id, p.read_on), p.read_on)
        last[meter.id] = max(last.get(meter.id, p.read_on), p.read_on)
    by_first: dict[date, list[int]] = defaultdict(list)  # usually one day, or a handful
    for meter_id, day in first.items():
        by_first[day].append(meter_id)
    db = session.connection()
    rank = func.row_number().over(partition_by=_R.meter_id, order_by=_R.read_on.desc()).label("rank")
    for day, meter_ids in sorted(by_first.items()):
        until = max(last[m] for m in meter_ids)
        for part in chunks(session, meter_ids):
            recent = (
                select(_R.meter_id, _R.read_on, _R.value, rank)
                .where(among(session, _R.meter_id, part), _R.read_on < day)
                .subquery()
            )
            rows = list(
                db.execute(
                    select(recent.c.meter_id, recent.c.read_on, recent.c.value).where(
                        recent.c.rank <= rules.history_periods + 1
                    )
                ).all()
            )
            rows += db.execute(
                select(_R.meter_id, _R.read_on, _R.value).where(
                    among(session, _R.meter_id, part), _R.read_on >= day, _R.read_on <= until
                )
            ).all()
            known.load(row for row in rows if row[1] <= last[row[0]])
    for part in chunks(session, first):
        for meter_id, started_on, status in db.execute(
            select(_S.meter_id, _S.started_on, _A.status)
            .join_from(Service.__table__, Account.__table__, _A.id == _S.account_id)
            .where(among(session, _S.meter_id, part))
        ):
            if meter_id not in known.status or started_on > known.status[meter_id][0]:
                known.status[meter_id] = (started_on, status)
    return known


def judge(
    dials: int,
    multiplier: Decimal,
    history: Sequence[Decimal],
    value: Decimal,
    active: bool,
    rules: reads.Rules = reads.Rules(),
) -> list[reads.ReadException]:
    """Why a new read needs review, given the meter's earlier read values (newest first,
    ``history_periods + 1`` of them at most). A first read has nothing to be checked against."""
    if not history:
        return []
    capacity = _POWERS.get(dials) or Decimal(10) ** dials
    previous = history[0]
    if value.is_finite() and previous.is_finite() and 0 <= previous <= value < capacity:
        quantity, rollover = (value - previous) * multiplier, False  # what reads.consumption says, quickly
    else:
        try:
            use = reads.consumption(previous, value, dials, multiplier, rules)
        except InvalidInput:
            return [reads.ReadException.BELOW_PREVIOUS]
        quantity, rollover = use.quantity, use.rollover
    past: list[Decimal] = []
    ordered = list(reversed(history))
    finite = all(map(Decimal.is_finite, ordered))
    older = ordered[0]
    for newer in ordered[1:]:
        if finite and older <= newer < capacity:  # the usual case, quickly
            past.append((newer - older) * multiplier)
        elif older.is_finite() and newer.is_finite() and older <= newer < capacity:
            past.append((newer - older) * multiplier)
        else:
            try:
                past.append(reads.consumption(older, newer, dials, multiplier, rules).quantity)
            except InvalidInput:
                pass
        older = newer
    return reads.validate(quantity, past, active=active, rollover=rollover, rules=rules)


_POWERS = {d: Decimal(10) ** d for d in range(1, 13)}


def validate_new_read(
    session: Session, meter: Meter, read_on: date, value: Decimal, rules: reads.Rules = reads.Rules()
) -> list[reads.ReadException]:
    """Check one read against the meter's previous reads and the account's recent use."""
    history = session.scalars(
        select(MeterRead.value)
        .where(MeterRead.meter_id == meter.id, MeterRead.read_on < read_on)
        .order_by(MeterRead.read_on.desc())
        .limit(rules.history_periods + 1)
    ).all()
    status = session.scalar(
        select(Account.status)
        .join(Service, Service.account_id == Account.id)
        .where(Service.meter_id == meter.id)
        .order_by(Service.started_on.desc())
        .limit(1)
    )
    return judge(meter.dials, meter.multiplier, history, value, status in (None, "active"), rules)


def route_stops(session: Session, cycle_code: str, scheduled_on: date, route_code: str | None = None) -> list:
    """The stops of a cycle's routes in walking order, each meter with its last read."""
    from sqlalchemy import func

    from .models import BillingCycle, Premise, Route
    from .read_files import RouteStop

    last = select(MeterRead.meter_id, func.max(MeterRead.read_on).label("day")).group_by(MeterRead.meter_id).subquery()
    stmt = (
        select(Route.code, Premise.walk_sequence, Account.number, Meter.serial, MeterRead.value)
        .join(Premise, Premise.route_id == Route.id)
        .join(BillingCycle, BillingCycle.id == Route.cycle_id)
        .join(Account, Account.premise_id == Premise.id)
        .join(Service, Service.account_id == Account.id)
        .join(Meter, Meter.id == Service.meter_id)
        .outerjoin(last, last.c.meter_id == Meter.id)
        .outerjoin(MeterRead, (MeterRead.meter_id == Meter.id) & (MeterRead.read_on == last.c.day))
        .where(BillingCycle.code == cycle_code, Account.status == "active", Meter.status == "installed")
        .order_by(Route.code, Premise.walk_sequence, Meter.serial)
    )
    if route_code:
        stmt = stmt.where(Route.code == route_code)
    seen = set()
    stops = []
    for route, seq, number, serial, value in session.execute(stmt):
        if serial in seen:
            continue
        seen.add(serial)
        stops.append(
            RouteStop(route, seq or 0, number, serial, value if value is not None else Decimal(0), scheduled_on)
        )
    return stops
