"""The meter reads behind a bill, as its "Meter reads" section prints them: for each meter,
the prior read and the current read with their dates, the multiplier and the use.

A bill run keeps them with the bill (``BillUsage``). A bill without them (a bill loaded
from an older system, as the demo's history is) is shown from the meter reads themselves:
the read of each meter on the account at the start of the period and the one at its end.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from . import reads
from .errors import InvalidInput
from .models import Bill, BillUsage, Meter, MeterRead, Service

#: How far before the period's first day the prior read may be (the read window).
WINDOW_DAYS = 7
USABLE = ("valid", "approved", "estimated")


@dataclass(frozen=True)
class MeterReads:
    serial: str
    unit: str
    multiplier: Decimal
    previous_on: date | None
    previous_value: Decimal | None
    current_on: date | None
    current_value: Decimal | None
    quantity: Decimal
    estimated: bool = False


def for_bills(session: Session, bills: Sequence[Bill]) -> dict[int, list[MeterReads]]:
    """Each bill's meter reads by bill id, in a fixed number of queries."""
    result: dict[int, list[MeterReads]] = {b.id: [] for b in bills}
    if not bills:
        return result
    for usage in session.scalars(
        select(BillUsage)
        .where(BillUsage.bill_id.in_(list(result)))
        .options(joinedload(BillUsage.meter), joinedload(BillUsage.previous_read), joinedload(BillUsage.current_read))
        .order_by(BillUsage.id)
    ):
        meter = usage.meter
        result[usage.bill_id].append(
            MeterReads(
                meter.serial,
                meter.unit,
                meter.multiplier,
                usage.previous_read.read_on if usage.previous_read else None,
                usage.previous_value,
                usage.current_read.read_on if usage.current_read else None,
                usage.current_value,
                usage.quantity,
                usage.estimated or bool(usage.current_read and usage.current_read.source == "estimate"),
            )
        )
    missing = [b for b in bills if not result[b.id]]
    if missing:
        _from_meter_reads(session, missing, result)
    return result


def _from_meter_reads(session: Session, bills: Sequence[Bill], result: dict[int, list[MeterReads]]) -> None:
    services: dict[int, list[tuple[Meter, date, date | None]]] = defaultdict(list)
    for service, meter in session.execute(
        select(Service, Meter)
        .join(Meter, Meter.id == Service.meter_id)
        .where(Service.account_id.in_({b.account_id for b in bills}))
        .order_by(Service.id)
    ):
        if all(m.id != meter.id for m, _s, _e in services[service.account_id]):
            services[service.account_id].append((meter, service.started_on, service.ended_on))
    meter_ids = {m.id for rows in services.values() for m, _s, _e in rows}
    if not meter_ids:
        return
    since = min(b.period_start for b in bills) - timedelta(days=WINDOW_DAYS)
    until = max(b.period_end for b in bills)
    by_meter: dict[int, list[MeterRead]] = defaultdict(list)
    for read in session.scalars(
        select(MeterRead)
        .where(
            MeterRead.meter_id.in_(meter_ids),
            MeterRead.read_on >= since,
            MeterRead.read_on <= until,
            MeterRead.status.in_(USABLE),
        )
        .order_by(MeterRead.meter_id, MeterRead.read_on)
    ):
        by_meter[read.meter_id].append(read)
    for bill in bills:
        for meter, started, ended in services[bill.account_id]:
            if started > bill.period_end or (ended is not None and ended < bill.period_start):
                continue
            history = by_meter[meter.id]
            previous = _last(history, bill.period_start - timedelta(days=WINDOW_DAYS), bill.period_start)
            current = _last(history, bill.period_start + timedelta(days=1), bill.period_end)
            if previous is None or current is None:
                continue
            try:
                used = reads.consumption(previous.value, current.value, meter.dials, meter.multiplier).quantity
            except InvalidInput:
                continue
            result[bill.id].append(
                MeterReads(
                    meter.serial,
                    meter.unit,
                    meter.multiplier,
                    previous.read_on,
                    previous.value,
                    current.read_on,
                    current.value,
                    used,
                    current.source == "estimate",
                )
            )


def _last(history: Sequence[MeterRead], first: date, last: date) -> MeterRead | None:
    found = None
    for read in history:
        if first <= read.read_on <= last:
            found = read
    return found
