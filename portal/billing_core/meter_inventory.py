"""The meter inventory: receiving meters into stock (one, or a CSV file of serials, checked
whole), installing a stocked meter at a premise with its first read, recording test results,
and retiring a meter. The states are ``meters.MOVES``'s (in stock -> installed -> removed ->
in test -> in stock again, or retired); every change is audited with before and after.

The field work orders call ``install`` and ``record_test`` directly (a completed install or
test order). The clock is passed in (``now``, an aware datetime; the agency's day is taken
from it in ``AGENCY_TZ``)."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from . import audit, meters, permissions, reads
from .errors import FieldErrors, InvalidInput
from .models import Account, AccountStatus, Meter, MeterRead, MeterStatus, MeterTest, Premise, Service, User
from .permissions import Action

AGENCY_TZ = ZoneInfo("America/Los_Angeles")

#: Meter sizes the district stocks, smallest first (the rate schedules' meter-size keys).
SIZES = ('5/8"', '3/4"', '1"', '1 1/2"', '2"', '3"', '4"', '6"', '8"', '10"')
#: How a state reads on the pages.
STATE_LABELS = {
    MeterStatus.IN_STOCK.value: "In stock",
    MeterStatus.INSTALLED.value: "Installed",
    MeterStatus.REMOVED.value: "Removed",
    MeterStatus.IN_TEST.value: "In test or repair",
    MeterStatus.RETIRED.value: "Retired",
}
#: Where a tested meter may go next (the test form's choice): none, or one of these states.
AFTER_TEST = (MeterStatus.IN_STOCK.value, MeterStatus.IN_TEST.value, MeterStatus.RETIRED.value)
#: At most this many meters in one received file.
MAX_FILE_ROWS = 5000
SERIAL = re.compile(r"[A-Z0-9][A-Z0-9-]{0,39}")
#: The columns a received file may have (``serial`` is needed; the rest default to the form's).
FILE_COLUMNS = ("serial", "size", "make", "model", "dials", "multiplier")


def agency_day(now: datetime) -> date:
    return now.astimezone(AGENCY_TZ).date()


def state_label(status: str) -> str:
    return STATE_LABELS.get(status, status.replace("_", " ").capitalize())


# --------------------------------------------------------------------------- receiving


@dataclass(frozen=True)
class NewMeter:
    """A meter checked and ready to be received."""

    serial: str
    size: str
    make: str | None
    model: str | None
    dials: int
    multiplier: Decimal


def parse_serial(text: str, field: str = "serial") -> str:
    serial = (text or "").strip().upper()
    if not serial:
        raise InvalidInput("Enter the meter's serial number.", field)
    if SERIAL.fullmatch(serial) is None:
        raise InvalidInput("A serial is up to 40 letters, digits and dashes.", field)
    return serial


def parse_size(text: str, field: str = "size") -> str:
    size = (text or "").strip().replace("”", '"').replace("''", '"')
    if size and not size.endswith('"'):
        size += '"'
    if size not in SIZES:
        raise InvalidInput(f"The size must be one of {', '.join(SIZES)}.", field)
    return size


def _text(value: str, field: str, what: str) -> str | None:
    value = (value or "").strip()
    if len(value) > 60:
        raise InvalidInput(f"The {what} is at most 60 characters.", field)
    return value or None


def _dials(text: str, field: str = "dials") -> int:
    text = (text or "").strip() or "6"
    if not text.isdigit() or not 1 <= int(text) <= 12:
        raise InvalidInput("Dials must be a whole number from 1 to 12.", field)
    return int(text)


def _multiplier(text: str, field: str = "multiplier") -> Decimal:
    text = (text or "").strip() or "1"
    try:
        value = Decimal(text)
    except InvalidOperation:
        value = Decimal(-1)
    if not value.is_finite() or value <= 0 or value >= 100000 or value != value.quantize(Decimal("0.0001")):
        raise InvalidInput("The multiplier is a number above 0 with at most 4 decimal places.", field)
    return value


def parse_meter(values: dict[str, str]) -> NewMeter:
    """The receive-one form (``serial``, ``size``, ``make``, ``model``, ``dials``,
    ``multiplier``), checked whole: ``FieldErrors`` names every wrong field."""
    errors: dict[str, InvalidInput] = {}
    got: dict[str, object] = {}
    for field, parse in (
        ("serial", lambda v: parse_serial(v)),
        ("size", lambda v: parse_size(v)),
        ("make", lambda v: _text(v, "make", "make")),
        ("model", lambda v: _text(v, "model", "model")),
        ("dials", lambda v: _dials(v)),
        ("multiplier", lambda v: _multiplier(v)),
    ):
        try:
            got[field] = parse(values.get(field, ""))
        except InvalidInput as exc:
            errors[field] = exc
    if errors:
        raise FieldErrors(errors)
    return NewMeter(**got)  # type: ignore[arg-type]


@dataclass(frozen=True)
class RowProblem:
    """One wrong line of a received file."""

    line: int
    serial: str
    reason: str


@dataclass(frozen=True)
class ParsedFile:
    meters: list[NewMeter]
    problems: list[RowProblem]
    #: Lines with a meter (blank lines are skipped).
    lines: int
    #: serial -> the line it is on.
    line_of: dict[str, int]


def parse_file(content: bytes, defaults: dict[str, str]) -> ParsedFile:
    """A CSV of serials: a header row naming ``FILE_COLUMNS`` (``serial`` needed), or one
    serial a line and no header. A column left out or a cell left empty takes the value in
    ``defaults`` (the upload form's size, make, model, dials, multiplier). Every wrong line
    is named with its line number and reason; duplicates within the file name both lines.
    Serials already on file are checked by ``receive_file``."""
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInput("The file is not UTF-8 text (save it as CSV UTF-8).", "file") from exc
    try:
        rows = list(csv.reader(io.StringIO(text)))
    except csv.Error as exc:
        raise InvalidInput(f"The file is not a CSV file: {exc}.", "file") from exc
    header: list[str] | None = None
    start = 1
    if rows and any(c.strip().lower() == "serial" for c in rows[0]):
        header = [c.strip().lower() for c in rows[0]]
        unknown = [c for c in header if c not in FILE_COLUMNS]
        if unknown:
            raise InvalidInput(
                f"Line 1: unknown column {unknown[0]!r}; the columns are {', '.join(FILE_COLUMNS)}.", "file"
            )
        if len(set(header)) != len(header):
            raise InvalidInput("Line 1: a column is named twice.", "file")
        start = 2
    out: list[NewMeter] = []
    problems: list[RowProblem] = []
    first_line: dict[str, int] = {}
    lines = 0
    for number, row in enumerate(rows[start - 1 :], start):
        if not any(cell.strip() for cell in row):
            continue
        lines += 1
        if lines > MAX_FILE_ROWS:
            raise InvalidInput(f"A file holds at most {MAX_FILE_ROWS:,} meters; split it.", "file")
        if header is None:
            if len(row) > 1 and any(c.strip() for c in row[1:]):
                problems.append(
                    RowProblem(number, row[0].strip(), "more than one column but no header row (serial,size,...)")
                )
                continue
            cells = {"serial": row[0]}
        else:
            cells = dict(zip(header, row, strict=False))
            if len(row) > len(header):
                serial = (cells.get("serial") or "").strip()
                problems.append(RowProblem(number, serial, f"{len(row)} cells, the header has {len(header)}"))
                continue
        values = {k: (cells.get(k) or "").strip() or defaults.get(k, "") for k in FILE_COLUMNS}
        values["serial"] = (cells.get("serial") or "").strip()
        try:
            meter = parse_meter(values)
        except FieldErrors as exc:
            reasons = "; ".join(e.message for e in exc.errors.values())
            problems.append(RowProblem(number, values["serial"], reasons))
            continue
        if meter.serial in first_line:
            problems.append(
                RowProblem(number, meter.serial, f"serial {meter.serial} is also on line {first_line[meter.serial]}")
            )
            continue
        first_line[meter.serial] = number
        out.append(meter)
    if not lines:
        raise InvalidInput("The file has no serials.", "file")
    return ParsedFile(out, problems, lines, first_line)


def _already(session: Session, serials: Sequence[str]) -> set[str]:
    found: set[str] = set()
    for i in range(0, len(serials), 500):
        found.update(session.scalars(select(Meter.serial).where(Meter.serial.in_(serials[i : i + 500]))))
    return found


def _audit_state(meter: Meter) -> dict[str, object]:
    return {
        "status": meter.status,
        "premise_id": meter.premise_id,
        "installed_on": meter.installed_on.isoformat() if meter.installed_on else None,
        "removed_on": meter.removed_on.isoformat() if meter.removed_on else None,
        "retired_on": meter.retired_on.isoformat() if meter.retired_on else None,
    }


def _check_day(on: date, now: datetime, field: str, what: str) -> None:
    if on > agency_day(now):
        raise InvalidInput(f"The {what} date is in the future.", field)


def receive(
    session: Session, new: Sequence[NewMeter], on: date, actor: User, now: datetime, note: str = ""
) -> list[Meter]:
    """Put meters into stock, received ``on``; all of them or (``InvalidInput``) none."""
    permissions.require(actor, Action.METERS_INVENTORY)
    _check_day(on, now, "received_on", "received")
    taken = _already(session, [m.serial for m in new])
    if taken:
        first = sorted(taken)[0]
        raise InvalidInput(f"Meter {first} is already on file.", "serial")
    out = []
    for m in new:
        meter = Meter(
            serial=m.serial,
            size=m.size,
            make=m.make,
            model=m.model,
            dials=m.dials,
            multiplier=m.multiplier,
            unit="CCF",
            status=MeterStatus.IN_STOCK.value,
            received_on=on,
        )
        session.add(meter)
        out.append(meter)
    try:
        session.flush()
    except IntegrityError as exc:  # received by someone else a moment ago
        raise InvalidInput("A meter of these serials was received meanwhile: nothing was received.", "serial") from exc
    audit.write(
        session,
        [
            audit.row(
                "meter.receive",
                actor=actor,
                entity_type="meter",
                entity_id=m.serial,
                before=None,
                after={
                    "status": m.status,
                    "size": m.size,
                    "make": m.make,
                    "model": m.model,
                    "dials": m.dials,
                    "multiplier": str(m.multiplier),
                    "received_on": on.isoformat(),
                    "note": note[:300] or None,
                },
            )
            for m in out
        ],
    )
    return out


def receive_file(
    session: Session, content: bytes, defaults: dict[str, str], on: date, actor: User, now: datetime
) -> list[Meter]:
    """``parse_file``, the serials already on file checked too, then ``receive``. Any wrong
    line and nothing is received: ``FileRefused`` lists them all, by line."""
    permissions.require(actor, Action.METERS_INVENTORY)
    parsed = parse_file(content, defaults)
    problems = list(parsed.problems)
    taken = _already(session, [m.serial for m in parsed.meters])
    problems += [RowProblem(parsed.line_of[s], s, f"meter {s} is already on file") for s in taken]
    if problems:
        raise FileRefused(sorted(problems, key=lambda p: p.line), parsed.lines)
    return receive(session, parsed.meters, on, actor, now, note="received from a file")


class FileRefused(InvalidInput):
    """A received file with wrong lines: nothing was received."""

    def __init__(self, problems: list[RowProblem], lines: int) -> None:
        super().__init__(
            f"Nothing was received: {len(problems)} of {lines} lines are wrong "
            f"(the first: line {problems[0].line}, {problems[0].reason}).",
            "file",
        )
        self.problems = problems
        self.lines = lines


# --------------------------------------------------------------------------- installing


def premise_meters(session: Session, premise: Premise) -> list[Meter]:
    return list(
        session.scalars(
            select(Meter)
            .where(Meter.premise_id == premise.id, Meter.status == MeterStatus.INSTALLED.value)
            .order_by(Meter.serial)
        )
    )


def install(
    session: Session,
    meter: Meter,
    premise: Premise,
    read_value: Decimal,
    read_at: date,
    actor: User,
    now: datetime,
    *,
    service_type: str = "water",
    note: str = "",
    work_order_id: int | None = None,
) -> MeterRead:
    """Install the stocked ``meter`` at ``premise`` with its first read (``read_value`` on
    the day ``read_at``, a date or an aware datetime). The running ``service_type``
    services of the premise's open accounts without a meter are put on it. Refused
    (``InvalidInput``, nothing written) when the meter is not in stock, when the premise
    already has a meter installed for that service (an exchange replaces it), or when the
    read is wrong (the meter's dials, a day in the future or before it was received)."""
    permissions.require(actor, Action.METERS_INVENTORY)
    session.refresh(meter, with_for_update=True)  # two installs of one meter: the second waits, then is refused
    on = read_at.astimezone(AGENCY_TZ).date() if isinstance(read_at, datetime) else read_at
    if meter.status != MeterStatus.IN_STOCK.value:
        raise InvalidInput(
            f"Meter {meter.serial} is {state_label(meter.status).lower()}: only a meter in stock can be installed.",
            "serial",
        )
    _check_day(on, now, "read_on", "read")
    if meter.received_on is not None and on < meter.received_on:
        raise InvalidInput(
            f"Meter {meter.serial} was received on {meter.received_on:%m/%d/%Y}, after the install date.", "read_on"
        )
    reads.check_read(read_value, meter.dials, "read_value")
    there = session.scalars(
        select(Account.id).where(
            Account.premise_id == premise.id,
            Account.status.in_([AccountStatus.ACTIVE.value, AccountStatus.PENDING.value]),
        )
    ).all()
    services = (
        list(
            session.scalars(
                select(Service).where(
                    Service.account_id.in_(there), Service.service_type == service_type, Service.ended_on.is_(None)
                )
            )
        )
        if there
        else []
    )
    metered_ids = {s.meter_id for s in services if s.meter_id is not None}
    for other in premise_meters(session, premise):
        if other.id in metered_ids or not session.scalar(
            select(func.count()).select_from(Service).where(Service.meter_id == other.id, Service.ended_on.is_(None))
        ):
            raise InvalidInput(
                f"{premise.one_line} already has meter {other.serial} installed for {service_type}: "
                f"exchange it from meter {other.serial}'s page instead.",
                "premise",
            )
    before = _audit_state(meter)
    meter.premise_id, meter.installed_on, meter.removed_on = premise.id, on, None
    meter.status = MeterStatus.INSTALLED.value
    linked = [s for s in services if s.meter_id is None]
    for service in linked:
        service.meter_id = meter.id
    read = MeterRead(
        meter_id=meter.id,
        read_on=on,
        value=read_value,
        source="field",
        status="valid",
        note=(note.strip() or "First read at install")[:300],
    )
    session.add(read)
    session.flush()
    audit.record(
        session,
        "meter.install",
        actor=actor,
        entity_type="meter",
        entity_id=meter.serial,
        before=before,
        after={
            **_audit_state(meter),
            "premise": premise.one_line,
            "first_read": str(read_value),
            "services": [s.id for s in linked],
            "work_order_id": work_order_id,
        },
    )
    return read


# --------------------------------------------------------------------------- tests and retiring


@dataclass(frozen=True)
class TestResult:
    """A checked test form."""

    __test__ = False  # not a pytest class

    tested_on: date
    passed: bool
    low_flow_pct: Decimal | None
    mid_flow_pct: Decimal | None
    high_flow_pct: Decimal | None
    tested_by: str | None
    notes: str | None


TEST_FIELDS = ("tested_on", "result", "low_flow_pct", "mid_flow_pct", "high_flow_pct", "tested_by", "notes", "then")


def _percent(text: str, field: str) -> Decimal | None:
    text = (text or "").strip().rstrip("%").strip()
    if not text:
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        value = Decimal(-1)
    if not value.is_finite() or not 0 <= value <= 200 or value != value.quantize(Decimal("0.01")):
        raise InvalidInput("Enter the accuracy as a percent from 0 to 200, at most 2 decimal places.", field)
    return value.quantize(Decimal("0.01"))


def parse_test(values: dict[str, str], today: date) -> TestResult:
    """The test form, checked whole (``FieldErrors`` by field): ``tested_on`` (YYYY-MM-DD,
    default today), ``result`` (pass or fail), the three accuracies (percent registered,
    optional), ``tested_by`` and ``notes``."""
    errors: dict[str, InvalidInput] = {}
    tested_on = today
    if values.get("tested_on"):
        try:
            tested_on = date.fromisoformat(values["tested_on"])
        except ValueError:
            errors["tested_on"] = InvalidInput("Enter the test date as YYYY-MM-DD.", "tested_on")
    if tested_on > today:
        errors["tested_on"] = InvalidInput("The test date is in the future.", "tested_on")
    result = values.get("result", "")
    if result not in ("pass", "fail"):
        errors["result"] = InvalidInput("Choose pass or fail.", "result")
    pcts: dict[str, Decimal | None] = {}
    for field in ("low_flow_pct", "mid_flow_pct", "high_flow_pct"):
        try:
            pcts[field] = _percent(values.get(field, ""), field)
        except InvalidInput as exc:
            errors[field] = exc
    tested_by = (values.get("tested_by") or "").strip()
    if len(tested_by) > 100:
        errors["tested_by"] = InvalidInput("The tester's name is at most 100 characters.", "tested_by")
    notes = (values.get("notes") or "").strip()
    if len(notes) > 2000:
        errors["notes"] = InvalidInput("Notes are at most 2,000 characters.", "notes")
    if errors:
        raise FieldErrors(errors)
    return TestResult(tested_on, result == "pass", tested_by=tested_by or None, notes=notes or None, **pcts)


def record_test(
    session: Session,
    meter: Meter,
    result: TestResult,
    actor: User,
    now: datetime,
    *,
    then: str | None = None,
    work_order_id: int | None = None,
) -> MeterTest:
    """Record a test of ``meter``; ``then`` moves it after (``AFTER_TEST``: back to stock,
    to test or repair, or retired), as its state allows: an installed meter stays installed
    (take it out by an exchange first). A retired meter is not tested."""
    permissions.require(actor, Action.METERS_TEST)
    if meter.status == MeterStatus.RETIRED.value:
        raise InvalidInput(f"Meter {meter.serial} is retired.", "result")
    _check_day(result.tested_on, now, "tested_on", "test")
    if then:
        if then not in AFTER_TEST:
            raise InvalidInput("Choose where the meter goes after the test.", "then")
        if meter.status == MeterStatus.INSTALLED.value:
            raise InvalidInput(
                f"Meter {meter.serial} is installed: exchange it before sending it to {state_label(then).lower()}.",
                "then",
            )
        if then == MeterStatus.IN_STOCK.value and not result.passed:
            raise InvalidInput("A meter that failed its test does not go back to stock.", "then")
        if then != meter.status and then not in meters.MOVES.get(meter.status, set()):
            raise InvalidInput(
                f"A meter {state_label(meter.status).lower()} cannot go to {state_label(then).lower()}.", "then"
            )
    test = MeterTest(
        meter_id=meter.id,
        tested_on=result.tested_on,
        result="pass" if result.passed else "fail",
        low_flow_pct=result.low_flow_pct,
        mid_flow_pct=result.mid_flow_pct,
        high_flow_pct=result.high_flow_pct,
        tested_by=result.tested_by,
        notes=result.notes,
        work_order_id=work_order_id,
        created_by_id=actor.id,
    )
    session.add(test)
    before = _audit_state(meter)
    if then and then != meter.status:
        meter.status = then
        if then == MeterStatus.RETIRED.value:
            meter.retired_on = result.tested_on
    session.flush()
    audit.record(
        session,
        "meter.test",
        actor=actor,
        entity_type="meter",
        entity_id=meter.serial,
        before=before,
        after={
            **_audit_state(meter),
            "test_id": test.id,
            "tested_on": result.tested_on.isoformat(),
            "result": test.result,
            "low_flow_pct": None if result.low_flow_pct is None else str(result.low_flow_pct),
            "mid_flow_pct": None if result.mid_flow_pct is None else str(result.mid_flow_pct),
            "high_flow_pct": None if result.high_flow_pct is None else str(result.high_flow_pct),
            "tested_by": result.tested_by,
            "work_order_id": work_order_id,
        },
    )
    return test


def retire(session: Session, meter: Meter, on: date, reason: str, actor: User, now: datetime) -> None:
    """Retire a meter (in stock, removed, or in test): never while it is installed."""
    permissions.require(actor, Action.METERS_INVENTORY)
    session.refresh(meter, with_for_update=True)
    if meter.status == MeterStatus.INSTALLED.value:
        raise InvalidInput(
            f"Meter {meter.serial} is installed: exchange it (or stop the service) before retiring it.", "retire"
        )
    if meter.status == MeterStatus.RETIRED.value:
        raise InvalidInput(f"Meter {meter.serial} is already retired.", "retire")
    _check_day(on, now, "retired_on", "retirement")
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("Say why the meter is retired.", "reason")
    before = _audit_state(meter)
    meter.status, meter.retired_on = MeterStatus.RETIRED.value, on
    session.flush()
    audit.record(
        session,
        "meter.retire",
        actor=actor,
        entity_type="meter",
        entity_id=meter.serial,
        before=before,
        after={**_audit_state(meter), "reason": reason[:300]},
    )
