"""One meter, for the staff pages: its reads, its use and the accounts it serves; recording
a read by hand, exchanging it, and moving it between states."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..billing_core import meters, permissions, reads
from ..billing_core.errors import FieldErrors, InvalidInput, NotFound
from ..billing_core.models import Account, AccountStatus, Meter, MeterRead, MeterStatus, ReadStatus, Service, User
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
    #: The states a person may move it to from here (installing and removing go with reads).
    moves: list[str]


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
    by_reads = {MeterStatus.INSTALLED.value, MeterStatus.REMOVED.value}
    return MeterPage(
        meter,
        _meter_accounts(session, meter),
        list(history),
        uses[-USE_PERIODS:],
        sorted(meters.MOVES.get(meter.status, set()) - by_reads),
    )


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


def change_meter(session: Session, actor: User, serial: str, values: dict[str, str], *, today: date) -> str:
    """Do what the meter page's form asked (``values["action"]``: ``read``, ``exchange``, or
    a move with ``to``) and say what was done. A refusal changes nothing: ``FieldErrors``
    for a read or an exchange (by the form's field), ``InvalidInput`` for a move."""
    permissions.require(actor, Action.METERS_CHANGE)
    meter = _meter(session, serial)
    action = values.get("action", "")
    date_field = "read_on" if action == "read" else "on"
    try:
        try:
            on = date.fromisoformat(values[date_field]) if values.get(date_field) else today
        except ValueError as exc:
            raise InvalidInput("Enter the date as YYYY-MM-DD.", date_field) from exc
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
            else:
                meters.move(session, meter, values.get("to", ""), actor, on)
    except InvalidInput as exc:
        if action not in ("exchange", "read"):
            raise
        fields = READ_FIELDS if action == "read" else EXCHANGE_FIELDS
        field = exc.field if exc.field is not None and exc.field in fields else fields[-1 if action == "read" else 0]
        raise FieldErrors({field: exc}) from exc
    return "Meter updated."
