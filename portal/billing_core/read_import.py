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

import hashlib
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from . import audit, reads
from .errors import InvalidInput
from .models import Account, Meter, MeterRead, ReadImport, Service, User
from .read_files import ParsedRead, Rejected, parse


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


def import_reads(
    session: Session,
    content: bytes,
    file_name: str,
    fmt: str,
    *,
    layout_name: str | None = None,
    mapping: Mapping[str, str] | None = None,
    today: date,
    actor: User | None = None,
    actor_label: str | None = None,
    remote_addr: str | None = None,
    rules: reads.Rules = reads.Rules(),
) -> ImportReport:
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
    meters = _resolve_meters(session, parsed, rejected)
    seen: dict[tuple[int, date], ParsedRead] = {}
    to_add: list[tuple[ParsedRead, Meter]] = []
    existing = _existing_reads(session, {(m.id, p.read_on) for p, m in meters})
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
        if key in existing:
            if existing[key] != p.value:
                rejected.append(
                    Rejected(
                        p.line,
                        str(p.value),
                        f"meter {meter.serial} already has read {existing[key].normalize():f} on {p.read_on:%m/%d/%Y}",
                    )
                )
            else:
                report.unchanged += 1
            continue
        to_add.append((p, meter))
    if rejected:
        report.rejected = sorted(rejected, key=lambda r: r.line)
        return report
    batch = ReadImport(
        file_name=file_name[:200],
        sha256=digest,
        format=fmt,
        layout=layout_name,
        imported_by_id=actor.id if actor else None,
        lines_total=lines,
    )
    session.add(batch)
    session.flush()
    for p, meter in sorted(to_add, key=lambda pm: (pm[1].id, pm[0].read_on)):
        found = validate_new_read(session, meter, p.read_on, p.value, rules)
        session.add(
            MeterRead(
                meter_id=meter.id,
                read_on=p.read_on,
                value=p.value,
                source=p.source,
                import_id=batch.id,
                status="exception" if found else "valid",
                exception=",".join(e.value for e in found) or None,
            )
        )
        session.flush()
        report.added += 1
        report.exceptions += bool(found)
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
    return report


def _resolve_meters(
    session: Session, parsed: list[ParsedRead], rejected: list[Rejected]
) -> list[tuple[ParsedRead, Meter]]:
    serials = {p.meter_serial for p in parsed if p.meter_serial}
    numbers = {p.account_number for p in parsed if p.account_number and not p.meter_serial}
    by_serial = (
        {m.serial: m for m in session.scalars(select(Meter).where(Meter.serial.in_(serials)))} if serials else {}
    )
    by_account: dict[str, list[Meter]] = defaultdict(list)
    if numbers:
        rows = session.execute(
            select(Account.number, Meter)
            .join(Service, Service.account_id == Account.id)
            .join(Meter, Meter.id == Service.meter_id)
            .where(Account.number.in_(numbers), Service.ended_on.is_(None))
        ).all()
        for number, meter in rows:
            if meter not in by_account[number]:
                by_account[number].append(meter)
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
            meters = by_account.get(p.account_number or "", [])
            if len(meters) != 1:
                reason = (
                    "no account with this number and a meter"
                    if not meters
                    else "the account has several meters: give the meter serial"
                )
                rejected.append(Rejected(p.line, p.account_number or "", reason))
                continue
            meter = meters[0]
        out.append((p, meter))
    return out


def _existing_reads(session: Session, keys: set[tuple[int, date]]) -> dict[tuple[int, date], Decimal]:
    if not keys:
        return {}
    meter_ids = {k[0] for k in keys}
    days = {k[1] for k in keys}
    rows = session.execute(
        select(MeterRead.meter_id, MeterRead.read_on, MeterRead.value).where(
            MeterRead.meter_id.in_(meter_ids), MeterRead.read_on.in_(days)
        )
    ).all()
    return {(m, d): v for m, d, v in rows if (m, d) in keys}


def validate_new_read(
    session: Session, meter: Meter, read_on: date, value: Decimal, rules: reads.Rules = reads.Rules()
) -> list[reads.ReadException]:
    """Check a read against the meter's previous read and the account's recent use."""
    history = session.scalars(
        select(MeterRead)
        .where(MeterRead.meter_id == meter.id, MeterRead.read_on < read_on)
        .order_by(MeterRead.read_on.desc())
        .limit(rules.history_periods + 1)
    ).all()
    if not history:
        return []
    previous = history[0]
    try:
        use = reads.consumption(previous.value, value, meter.dials, meter.multiplier, rules)
    except reads.BelowPrevious:
        return [reads.ReadException.BELOW_PREVIOUS]
    except InvalidInput:
        return [reads.ReadException.BELOW_PREVIOUS]
    past: list[Decimal] = []
    ordered = list(reversed(history))
    for older, newer in zip(ordered, ordered[1:], strict=False):
        try:
            past.append(reads.consumption(older.value, newer.value, meter.dials, meter.multiplier, rules).quantity)
        except InvalidInput:
            continue
    active = session.scalar(
        select(Account.status)
        .join(Service, Service.account_id == Account.id)
        .where(Service.meter_id == meter.id)
        .order_by(Service.started_on.desc())
        .limit(1)
    )
    return reads.validate(use.quantity, past, active=active in (None, "active"), rollover=use.rollover, rules=rules)


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
