"""Meter inventory: states and the moves between them, install and exchange.

States: in stock -> installed -> removed -> in test -> in stock again, or retired.
An exchange records the old meter's final read and the new meter's first read on
the same day, moves the premise's services to the new meter, and leaves the old
one removed; the bill for that period adds the use on both meters.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from . import audit, permissions, reads
from .errors import InvalidInput
from .models import Meter, MeterRead, Premise, Service, User
from .permissions import Action

MOVES = {
    "in_stock": {"installed", "in_test", "retired"},
    "installed": {"removed"},
    "removed": {"in_test", "in_stock", "retired"},
    "in_test": {"in_stock", "retired"},
    "retired": set(),
}


def _check(actor: User) -> None:
    if not permissions.can(actor.role, Action.METERS_CHANGE):
        raise InvalidInput("only billing specialists and supervisors change meters", "role")


def move(session: Session, meter: Meter, to: str, actor: User, on: date, note: str = "") -> None:
    """Change a meter's state (not install or remove: those go with reads)."""
    _check(actor)
    if to not in MOVES.get(meter.status, set()) or to in ("installed", "removed"):
        raise InvalidInput(
            f"a meter that is {meter.status.replace('_', ' ')} cannot become {to.replace('_', ' ')} this way", "status"
        )
    before = meter.status
    meter.status = to
    if to == "retired":
        meter.retired_on = on
    if note:
        meter.location_notes = note[:300] if to == "in_stock" else meter.location_notes
    audit.record(
        session,
        "meter.move",
        actor=actor,
        entity_type="meter",
        entity_id=meter.serial,
        before={"status": before},
        after={"status": to, "on": on.isoformat(), "note": note},
    )


def _read(session: Session, meter: Meter, on: date, value: Decimal, note: str, field: str = "value") -> MeterRead:
    reads.check_read(value, meter.dials, field)
    clash = session.scalar(select(MeterRead).where(MeterRead.meter_id == meter.id, MeterRead.read_on == on))
    if clash is not None:
        raise InvalidInput(f"meter {meter.serial} already has a read on {on:%m/%d/%Y}", "on")
    read = MeterRead(meter_id=meter.id, read_on=on, value=value, source="field", status="approved", note=note)
    session.add(read)
    return read


def record_read(
    session: Session, meter: Meter, on: date, value: Decimal, actor: User, today: date, note: str = ""
) -> MeterRead:
    """A read taken by hand (a field visit, a customer's photo): held for review like an
    imported read when the account's history says it needs a look."""
    from .read_import import validate_new_read

    _check(actor)
    if meter.status != "installed":
        raise InvalidInput(f"meter {meter.serial} is {meter.status.replace('_', ' ')}, not installed", "read_value")
    if on > today:
        raise InvalidInput("The read date is in the future.", "read_on")
    reads.check_read(value, meter.dials, "read_value")
    if session.scalar(select(MeterRead.id).where(MeterRead.meter_id == meter.id, MeterRead.read_on == on)):
        raise InvalidInput(f"meter {meter.serial} already has a read on {on:%m/%d/%Y}", "read_on")
    found = validate_new_read(session, meter, on, value)
    read = MeterRead(
        meter_id=meter.id,
        read_on=on,
        value=value,
        source="field",
        status="exception" if found else "valid",
        exception=",".join(e.value for e in found) or None,
        note=(note.strip() or "Read by hand")[:300],
    )
    session.add(read)
    session.flush()
    audit.record(
        session,
        "meter.read",
        actor=actor,
        entity_type="meter",
        entity_id=meter.serial,
        after={"on": on.isoformat(), "value": str(value), "status": read.status, "exception": read.exception},
    )
    return read


def exchange(
    session: Session,
    old: Meter,
    new: Meter,
    on: date,
    final_read: Decimal,
    first_read: Decimal,
    actor: User,
    note: str = "",
) -> None:
    """Take ``old`` out and put ``new`` in its place, reads recorded for both."""
    _check(actor)
    if old.status != "installed" or old.premise_id is None:
        raise InvalidInput(f"meter {old.serial} is not installed", "old")
    if new.status != "in_stock":
        raise InvalidInput(f"meter {new.serial} is {new.status.replace('_', ' ')}, not in stock", "new_serial")
    reads.check_read(final_read, old.dials, "final_read")
    reads.check_read(first_read, new.dials, "first_read")
    last = session.scalar(
        select(MeterRead).where(MeterRead.meter_id == old.id).order_by(MeterRead.read_on.desc()).limit(1)
    )
    if last is not None and (on <= last.read_on):
        raise InvalidInput(
            f"the exchange must come after meter {old.serial}'s last read ({last.read_on:%m/%d/%Y})", "on"
        )
    if last is not None and last.value.is_finite() and final_read < last.value:
        raise InvalidInput(
            f"the final read {reads.format_quantity(final_read)} is below the last read "
            f"{reads.format_quantity(last.value)}",
            "final_read",
        )
    _read(session, old, on, final_read, "Final read at exchange", "final_read")
    _read(session, new, on, first_read, "First read at exchange", "first_read")
    premise = session.get(Premise, old.premise_id)
    new.premise_id, new.installed_on, new.status = old.premise_id, on, "installed"
    new.location_notes = new.location_notes or old.location_notes
    old.status, old.removed_on = "removed", on
    for service in session.scalars(select(Service).where(Service.meter_id == old.id)):
        service.meter_id = new.id
    audit.record(
        session,
        "meter.exchange",
        actor=actor,
        entity_type="meter",
        entity_id=old.serial,
        before={"meter": old.serial, "final_read": str(final_read)},
        after={
            "meter": new.serial,
            "first_read": str(first_read),
            "on": on.isoformat(),
            "premise": premise.one_line if premise else None,
            "note": note,
        },
    )
    # The new meter's own history says where it went in (its page lists its events).
    audit.record(
        session,
        "meter.exchange_in",
        actor=actor,
        entity_type="meter",
        entity_id=new.serial,
        before={"status": "in_stock", "replaces": old.serial},
        after={
            "status": "installed",
            "on": on.isoformat(),
            "first_read": str(first_read),
            "premise": premise.one_line if premise else None,
        },
    )
