"""The meter inventory and one meter, for the staff pages: the stock list by size and state,
receiving meters (one, or a CSV file of serials), one meter's page (its reads, its use, the
accounts it serves, its tests and history); recording a read by hand, exchanging it,
installing a stocked meter, recording a test, retiring it, and moving it between states.
The rules are in ``billing_core/meters.py`` and ``billing_core/meter_inventory.py``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..billing_core import meter_inventory, meters, permissions, reads
from ..billing_core.errors import FieldErrors, InvalidInput, NotFound
from ..billing_core.models import (
    Account,
    AccountStatus,
    AuditEvent,
    Meter,
    MeterRead,
    MeterStatus,
    MeterTest,
    Premise,
    ReadStatus,
    Service,
    User,
)
from ..billing_core.permissions import Action

HISTORY_READS = 25
USE_PERIODS = 13


@dataclass(frozen=True)
class MeterPage:
    meter: Meter
    #: The accounts this meter serves; for a meter taken out, the accounts at its premise.
    accounts: list[str]
    #: Its latest reads, newest first.
    reads: list[MeterRead]
    #: Use per read period, oldest first: (the read's day, the use, None when it cannot be known).
    uses: list[tuple[date, Decimal | None]]
    #: The states a person may move it to from here (installing and removing go with reads,
    #: retiring has its own form).
    moves: list[str]
    #: Its tests, newest first.
    tests: list[MeterTest]
    #: What happened to it, oldest first.
    history: list[HistoryItem]
    #: Where it is installed (None when it is not).
    premise: Premise | None


@dataclass(frozen=True)
class HistoryItem:
    at: datetime
    #: The day it happened, when the event says (a received or install date), else None.
    on: date | None
    what: str
    detail: str
    by: str | None


def _meter(session: Session, serial: str) -> Meter:
    meter = session.scalar(select(Meter).where(Meter.serial == serial))
    if meter is None:
        raise NotFound(f"meter {serial}")
    return meter


def meter_page(session: Session, serial: str) -> MeterPage:
    meter = _meter(session, serial)
    history = session.scalars(
        select(MeterRead).where(MeterRead.meter_id == meter.id).order_by(MeterRead.read_on.desc()).limit(HISTORY_READS)
    ).all()
    uses: list[tuple[date, Decimal | None]] = []
    ordered = list(reversed(history))
    for older, newer in zip(ordered, ordered[1:], strict=False):
        q: Decimal | None
        try:
            q = reads.consumption(older.value, newer.value, meter.dials, meter.multiplier).quantity
        except InvalidInput:
            q = None
        uses.append((newer.read_on, q))
    by_reads = {MeterStatus.INSTALLED.value, MeterStatus.REMOVED.value, MeterStatus.RETIRED.value}
    tests = session.scalars(
        select(MeterTest)
        .where(MeterTest.meter_id == meter.id)
        .order_by(MeterTest.tested_on.desc(), MeterTest.id.desc())
    ).all()
    return MeterPage(
        meter,
        _meter_accounts(session, meter),
        list(history),
        uses[-USE_PERIODS:],
        sorted(meters.MOVES.get(meter.status, set()) - by_reads),
        list(tests),
        _history(session, meter),
        session.get(Premise, meter.premise_id) if meter.premise_id and meter.status == "installed" else None,
    )


#: How each audited meter event reads in its history.
EVENT_LABELS = {
    "meter.receive": "Received into stock",
    "meter.install": "Installed",
    "meter.exchange": "Exchanged out",
    "meter.exchange_in": "Installed by exchange",
    "meter.move": "State changed",
    "meter.test": "Tested",
    "meter.retire": "Retired",
}


#: Which of an event's ``after`` values is the day it happened.
DAY_OF = {
    "meter.receive": "received_on",
    "meter.install": "installed_on",
    "meter.test": "tested_on",
    "meter.retire": "retired_on",
}


def _history(session: Session, meter: Meter) -> list[HistoryItem]:
    events = session.execute(
        select(AuditEvent.occurred_at, AuditEvent.action, AuditEvent.before, AuditEvent.after, AuditEvent.actor_label)
        .where(
            AuditEvent.entity_type == "meter",
            AuditEvent.entity_id == meter.serial,
            AuditEvent.action.in_(list(EVENT_LABELS)),
        )
        .order_by(AuditEvent.occurred_at, AuditEvent.id)
    ).all()
    out = []
    for at, action, before, after, by in events:
        after = after or {}
        day = after.get(DAY_OF.get(action, "on"))
        detail = _detail(action, before or {}, after)
        out.append(HistoryItem(at, date.fromisoformat(day) if day else None, EVENT_LABELS[action], detail, by))
    if not any(h.what.startswith("Installed") for h in out) and meter.installed_on is not None:
        # Meters installed before the inventory kept a history (the demo's, a conversion's).
        out.insert(0, HistoryItem(datetime.min, meter.installed_on, "Installed", "before this history was kept", None))
    return out


def _detail(action: str, before: dict[str, object], after: dict[str, object]) -> str:
    if action == "meter.receive":
        parts = [str(after.get(k)) for k in ("size", "make", "model") if after.get(k)]
        return " ".join(parts) + (f"; {after['note']}" if after.get("note") else "")
    if action in ("meter.install", "meter.exchange_in"):
        text = f"at {after.get('premise')}, first read {after.get('first_read')}"
        return text + (f", replacing {before['replaces']}" if before.get("replaces") else "")
    if action == "meter.exchange":
        return f"final read {before.get('final_read')}, replaced by {after.get('meter')}"
    if action == "meter.test":
        pcts = ", ".join(
            f"{label} {after[k]}%"
            for k, label in (("low_flow_pct", "low"), ("mid_flow_pct", "mid"), ("high_flow_pct", "high"))
            if after.get(k) is not None
        )
        moved = (
            f"; then {meter_inventory.state_label(str(after['status'])).lower()}"
            if after.get("status") != before.get("status")
            else ""
        )
        return f"{str(after.get('result', '')).capitalize()}" + (f" ({pcts})" if pcts else "") + moved
    if action == "meter.retire":
        return str(after.get("reason") or "")
    if action == "meter.move":
        return (
            f"{meter_inventory.state_label(str(before.get('status'))).lower()} to "
            f"{meter_inventory.state_label(str(after.get('status'))).lower()}"
            + (f"; {after['note']}" if after.get("note") else "")
        )
    return ""


def _meter_accounts(session: Session, meter: Meter) -> list[str]:
    served = session.scalars(
        select(Account.number)
        .join(Service, Service.account_id == Account.id)
        .where(Service.meter_id == meter.id)
        .group_by(Account.number)
        .order_by(Account.number)
    ).all()
    if served or meter.premise_id is None:
        return list(served)
    return list(
        session.scalars(
            select(Account.number)
            .where(Account.premise_id == meter.premise_id)
            .order_by((Account.status == AccountStatus.ACTIVE.value).desc(), Account.opened_on.desc())
            .limit(3)
        )
    )


#: The fields of each form on the meter page; a refusal names one of them.
READ_FIELDS = ("read_on", "read_value")
EXCHANGE_FIELDS = ("new_serial", "on", "final_read", "first_read")
INSTALL_FIELDS = ("premise", "install_on", "install_read", "service_type")
RETIRE_FIELDS = ("retired_on", "reason")
#: Who may do each action of the meter page (a move or an exchange: ``METERS_CHANGE``).
ACTION_RIGHTS = {
    "install": Action.METERS_INVENTORY,
    "retire": Action.METERS_INVENTORY,
    "test": Action.METERS_TEST,
}


def _date(values: dict[str, str], field: str, today: date) -> date:
    try:
        return date.fromisoformat(values[field]) if values.get(field) else today
    except ValueError as exc:
        raise InvalidInput("Enter the date as YYYY-MM-DD.", field) from exc


def find_premise(session: Session, text: str) -> Premise:
    """The premise a person typed: an account number there, or its street address (the first
    address line, as on file; it must name one premise)."""
    text = (text or "").strip()
    if not text:
        raise InvalidInput("Enter the account number at the premise, or its street address.", "premise")
    premise_id = session.scalar(select(Account.premise_id).where(Account.number == text))
    if premise_id is None:
        found = session.scalars(
            select(Premise.id).where(func.lower(Premise.address_line1) == text.lower()).limit(2)
        ).all()
        if len(found) > 1:
            raise InvalidInput(f"More than one premise is at {text}: enter the account number there.", "premise")
        premise_id = found[0] if found else None
    premise = session.get(Premise, premise_id) if premise_id is not None else None
    if premise is None:
        raise InvalidInput(f"No account or premise {text}.", "premise")
    return premise


def change_meter(
    session: Session, actor: User, serial: str, values: dict[str, str], *, today: date, now: datetime | None = None
) -> str:
    """Do what the meter page's form asked (``values["action"]``: ``read``, ``exchange``,
    ``install``, ``test``, ``retire``, or a move with ``to``) and say what was done. A refusal
    changes nothing: ``FieldErrors`` for a form (by its field), ``InvalidInput`` for a move."""
    action = values.get("action", "")
    permissions.require(actor, ACTION_RIGHTS.get(action, Action.METERS_CHANGE))
    meter = _meter(session, serial)
    moment = now or datetime.combine(today, datetime.min.time(), meter_inventory.AGENCY_TZ)
    if action == "test":
        return _test(session, actor, meter, values, today, moment)
    fields = {
        "read": READ_FIELDS,
        "exchange": EXCHANGE_FIELDS,
        "install": INSTALL_FIELDS,
        "retire": RETIRE_FIELDS,
    }.get(action)
    date_field = {"read": "read_on", "install": "install_on", "retire": "retired_on"}.get(action, "on")
    try:
        on = _date(values, date_field, today)
        with session.begin_nested():
            if action == "read":
                value = reads.read_value(values.get("read_value", ""), meter.dials, "read_value")
                read = meters.record_read(session, meter, on, value, actor, today, values.get("read_note", ""))
                return "Read recorded." if read.status == ReadStatus.VALID else "Read recorded; it waits for review."
            if action == "exchange":
                new_serial = values.get("new_serial", "")
                new = session.scalar(select(Meter).where(Meter.serial == new_serial.upper()))
                if new is None:
                    raise InvalidInput(f"No meter with serial {new_serial}.", "new_serial")
                final = reads.read_value(values.get("final_read", ""), meter.dials, "final_read")
                first = reads.read_value(values.get("first_read", "") or "0", new.dials, "first_read")
                meters.exchange(session, meter, new, on, final, first, actor)
            elif action == "install":
                service_type = values.get("service_type") or "water"
                if service_type not in ("water", "irrigation", "fire", "recycled"):
                    raise InvalidInput("Choose the service the meter measures.", "service_type")
                premise = find_premise(session, values.get("premise", ""))
                value = reads.read_value(values.get("install_read", ""), meter.dials, "install_read")
                try:
                    meter_inventory.install(
                        session, meter, premise, value, on, actor, moment, service_type=service_type
                    )
                except InvalidInput as exc:
                    named = {"read_on": "install_on", "read_value": "install_read", "serial": "premise"}
                    raise InvalidInput(exc.message, named.get(exc.field or "", exc.field)) from exc
                return f"Meter {meter.serial} installed at {premise.one_line}."
            elif action == "retire":
                meter_inventory.retire(session, meter, on, values.get("reason", ""), actor, moment)
                return f"Meter {meter.serial} retired."
            else:
                meters.move(session, meter, values.get("to", ""), actor, on)
    except InvalidInput as exc:
        session.expire_all()
        if fields is None:
            raise
        field = exc.field if exc.field is not None and exc.field in fields else fields[-1 if action == "read" else 0]
        raise FieldErrors({field: exc}) from exc
    return "Meter updated."


def _test(session: Session, actor: User, meter: Meter, values: dict[str, str], today: date, now: datetime) -> str:
    result = meter_inventory.parse_test(values, today)
    then = values.get("then") or None
    try:
        with session.begin_nested():
            meter_inventory.record_test(session, meter, result, actor, now, then=then)
    except InvalidInput as exc:
        session.expire_all()
        field = exc.field if exc.field in meter_inventory.TEST_FIELDS else "result"
        raise FieldErrors({field: exc}) from exc
    moved = f"; it is {meter_inventory.state_label(meter.status).lower()} now" if then else ""
    return f"Test recorded ({'pass' if result.passed else 'fail'}){moved}."


# --------------------------------------------------------------------------- the stock list

#: Meters listed on one page of the stock list.
STOCK_PAGE = 50


@dataclass(frozen=True)
class StockList:
    #: size -> state -> how many; sizes in ``SIZES`` order, then any other.
    counts: dict[str, dict[str, int]]
    #: state -> how many, every size.
    totals: dict[str, int]
    states: list[str]
    #: Meters matching the filters, by serial (one page of them).
    meters: list[Meter]
    #: How many meters match the filters.
    matching: int
    page: int
    pages: int
    size: str
    status: str
    q: str


def stock_list(session: Session, *, size: str = "", status: str = "", q: str = "", page: int = 1) -> StockList:
    """The inventory: counts by size and state, and the meters that match the filters (a
    size, a state, the start of a serial), one page of ``STOCK_PAGE`` at a time."""
    counts: dict[str, dict[str, int]] = {}
    for sz, st, n in session.execute(select(Meter.size, Meter.status, func.count()).group_by(Meter.size, Meter.status)):
        counts.setdefault(sz, {})[st] = n
    order = {s: i for i, s in enumerate(meter_inventory.SIZES)}
    counts = dict(sorted(counts.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])))
    states = [s.value for s in MeterStatus]
    totals = {st: sum(by.get(st, 0) for by in counts.values()) for st in states}
    where = []
    if size:
        where.append(Meter.size == size)
    if status in states:
        where.append(Meter.status == status)
    else:
        status = ""
    q = q.strip().upper()[:40]
    if q:
        where.append(Meter.serial.like(q.replace("\\", "").replace("%", "").replace("_", "") + "%"))
    matching = session.scalar(select(func.count()).select_from(Meter).where(*where)) or 0
    pages = max(1, -(-matching // STOCK_PAGE))
    page = min(max(page, 1), pages)
    listed = session.scalars(
        select(Meter).where(*where).order_by(Meter.serial).offset((page - 1) * STOCK_PAGE).limit(STOCK_PAGE)
    ).all()
    return StockList(counts, totals, states, list(listed), matching, page, pages, size, status, q)


# --------------------------------------------------------------------------- receiving

RECEIVE_FIELDS = ("serial", "size", "make", "model", "dials", "multiplier", "received_on")


def receive_one(session: Session, actor: User, values: dict[str, str], *, today: date, now: datetime) -> Meter:
    """The receive-one form; ``FieldErrors`` names every wrong field, nothing written."""
    permissions.require(actor, Action.METERS_INVENTORY)
    errors: dict[str, InvalidInput] = {}
    try:
        new = meter_inventory.parse_meter(values)
    except FieldErrors as exc:
        errors.update(exc.errors)
    try:
        on = _date(values, "received_on", today)
    except InvalidInput as exc:
        errors["received_on"] = exc
    if errors:
        raise FieldErrors(errors)
    try:
        with session.begin_nested():
            return meter_inventory.receive(session, [new], on, actor, now)[0]
    except InvalidInput as exc:
        session.expire_all()
        raise FieldErrors({exc.field if exc.field in RECEIVE_FIELDS else "serial": exc}) from exc


def receive_file(
    session: Session, actor: User, content: bytes, defaults: dict[str, str], *, today: date, now: datetime
) -> list[Meter]:
    """A CSV of serials, with the form's defaults (``size``, ``make``, ``model``, ``dials``,
    ``multiplier``, ``received_on``): all received, or none (``FileRefused`` lists every
    wrong line; ``FieldErrors`` for a wrong default or an unreadable file)."""
    permissions.require(actor, Action.METERS_INVENTORY)
    try:
        on = _date(defaults, "received_on", today)
    except InvalidInput as exc:
        raise FieldErrors({"file_received_on": exc}) from exc
    try:
        with session.begin_nested():
            return meter_inventory.receive_file(session, content, defaults, on, actor, now)
    except meter_inventory.FileRefused:
        session.expire_all()
        raise
    except InvalidInput as exc:
        session.expire_all()
        raise FieldErrors({"file_received_on" if exc.field == "received_on" else "file": exc}) from exc
