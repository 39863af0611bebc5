"""What a calculation reads and writes, as plain rows: loading ORM objects for every
account, service and read was most of a run's time.

Reads come in a few grouped queries per chunk of accounts (``prefetch``); drafts go out
in one batch per table (``write_drafts``).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, NamedTuple

from sqlalchemy import Executable, Select, Text, cast, delete, func, select
from sqlalchemy.orm import Session

from .. import rating
from ..bulk import among, insert_rows, reserve_ids
from ..models import (
    Account,
    Bill,
    BillLine,
    BillRun,
    BillUsage,
    LedgerEntry,
    Meter,
    MeterRead,
    Premise,
    RateSchedule,
    RateScheduleVersion,
    Service,
)
from ..status import BillStatus

READ_WINDOW_DAYS = 7
#: How far back "the last bill" is looked for when checking for an unusually large change.
LAST_BILL_DAYS = 100


@dataclass(frozen=True)
class Rebill:
    """The period and dates a rebill is drafted for (no run of its own)."""

    id: int | None
    period_start: date
    period_end: date
    bill_date: date
    due_date: date
    #: A full period's days, when this one is shorter (a final bill): fixed charges prorate by it.
    full_days: int | None = None


def plain_rows(session: Session, stmt: Executable) -> Sequence[Any]:
    """A select of plain columns, run on the session's connection: its rows as the driver
    gives them, without the ORM's result machinery (a third of a chunk's reading time).
    What the session holds is flushed first, as ``session.execute`` would."""
    session.flush()
    return session.connection().execute(stmt).all()


def cycle_accounts(session: Session, cycle_id: int) -> list[int]:
    return list(
        session.scalars(
            select(Account.id).where(Account.cycle_id == cycle_id, Account.status == "active").order_by(Account.id)
        )
    )


@dataclass(slots=True)
class MeterRow:
    id: int
    size: str | None
    dials: int
    multiplier: Decimal
    removed_on: date | None = None


@dataclass(slots=True)
class ServiceRow:
    service_type: str
    rate_schedule_id: int
    meter: MeterRow | None
    options: dict[str, str]  # values as text, as the rates read them
    started_on: date
    ended_on: date | None


@dataclass(slots=True)
class AccountRow:
    id: int
    premise_id: int
    dwelling_units: int
    services: list[ServiceRow] = field(default_factory=list)


class ReadRow(NamedTuple):
    id: int | None
    meter_id: int
    read_on: date
    value: Decimal
    source: str
    status: str
    exception: str | None


@dataclass(slots=True)
class Estimate:
    """A read this calculation estimates; it gets its id when the drafts are written."""

    meter_id: int
    read_on: date
    value: Decimal
    note: str
    id: int | None = None
    source = "estimate"
    status = "estimated"
    exception = None


@dataclass(slots=True)
class Draft:
    account_id: int
    bill: tuple  # BILL_COLUMNS, without the id
    lines: list[tuple]  # LINE_COLUMNS, without bill_id
    usages: list[list]  # USAGE_COLUMNS, without bill_id; reads as ReadRow or Estimate
    exceptions: list[str]


BILL_COLUMNS = (
    "id",
    "account_id",
    "bill_run_id",
    "period_start",
    "period_end",
    "bill_date",
    "due_date",
    "previous_balance_cents",
    "payments_since_cents",
    "current_charges_cents",
    "total_due_cents",
    "status",
    "estimated",
    "exceptions",
)
LINE_COLUMNS = (
    "bill_id",
    "sequence",
    "service_type",
    "description",
    "quantity",
    "unit",
    "unit_price",
    "amount_cents",
    "rate_version_id",
)
USAGE_COLUMNS = (
    "bill_id",
    "meter_id",
    "previous_read_id",
    "current_read_id",
    "previous_value",
    "current_value",
    "quantity",
    "estimated",
    "note",
)
READ_COLUMNS = ("id", "meter_id", "read_on", "value", "source", "status", "created_at", "note")


def load_accounts(session: Session, ids: Sequence[int]) -> list[AccountRow]:
    accounts: dict[int, AccountRow] = {}
    meters: dict[int, MeterRow] = {}
    for row in plain_rows(
        session,
        select(
            Account.id,
            Account.premise_id,
            Premise.dwelling_units,
            Service.id,
            Service.service_type,
            Service.rate_schedule_id,
            cast(Service.options, Text),  # read as text: a district has few distinct options
            Service.started_on,
            Service.ended_on,
            Meter.id,
            Meter.size,
            Meter.dials,
            Meter.multiplier,
        )
        .join(Premise, Premise.id == Account.premise_id)
        .outerjoin(Service, Service.account_id == Account.id)
        .outerjoin(Meter, Meter.id == Service.meter_id)
        .where(among(session, Account.id, ids))
        .order_by(Account.id, Service.id),
    ):
        (aid, premise_id, units, sid, kind, schedule, options, started, ended, mid, size, dials, mult) = row
        account = accounts.get(aid)
        if account is None:
            account = accounts[aid] = AccountRow(aid, premise_id, units)
        if sid is None:
            continue
        meter = None
        if mid is not None:
            meter = meters.get(mid)
            if meter is None:
                meter = meters[mid] = MeterRow(mid, size, dials, mult)
        account.services.append(ServiceRow(kind, schedule, meter, _options(options), started, ended))
    return list(accounts.values())


_OPTIONS: dict[str | None, dict] = {}


def _options(text: str | None) -> dict:
    """A service's options from their JSON text, as the rates read them (values as text),
    parsed once per distinct text: the dicts are shared, and nothing changes them."""
    found = _OPTIONS.get(text)
    if found is None:
        if len(_OPTIONS) > 10_000:
            _OPTIONS.clear()
        parsed = json.loads(text) if text else None
        found = _OPTIONS[text] = {k: str(v) for k, v in (parsed or {}).items()}
    return found


def run_drafts(session: Session, run: BillRun, account_ids: Sequence[int], *columns: Any) -> Select[Any]:
    """The drafts of these accounts that may be the run's: select ``columns``, the bill's id
    and its run's id, and keep the rows of ``run`` (the caller's filter).

    The run is left out of the query on purpose: PostgreSQL's statistics of ``bill_run_id``
    predate the run, so it took the run's index as the most selective and read every bill
    the run had so far for each chunk (10 million rows for a run of 100,000). By account,
    and from the run's period end on (its bill date is never before it, ``create_run``),
    each account's newest bills are all it reads."""
    return select(*columns, Bill.id, Bill.bill_run_id).where(
        among(session, Bill.account_id, account_ids),
        Bill.bill_date >= run.period_end,
        Bill.status == BillStatus.DRAFT,
    )


def drop_drafts(session: Session, run: BillRun, account_ids: Sequence[int]) -> int:
    """Delete the run's drafts of these accounts (and their lines and usage). Returns how many."""
    found = plain_rows(session, run_drafts(session, run, account_ids))
    drafts = [bill_id for bill_id, run_id in found if run_id == run.id]
    if drafts:
        session.execute(delete(BillLine).where(among(session, BillLine.bill_id, drafts)))
        session.execute(delete(BillUsage).where(among(session, BillUsage.bill_id, drafts)))
        session.execute(delete(Bill).where(among(session, Bill.id, drafts)))
    return len(drafts)


def write_drafts(session: Session, drafts: list[Draft], data: Prefetched, now: datetime) -> list[int]:
    """Write the drafts (and the reads estimated for them) in one batch per table. Returns the bills' ids."""
    if not drafts:
        return []
    read_ids = reserve_ids(session, "meter_read", len(data.estimates))
    for read_id, read in zip(read_ids, data.estimates, strict=True):
        read.id = read_id
    insert_rows(
        session,
        MeterRead.__table__,
        READ_COLUMNS,
        [(r.id, r.meter_id, r.read_on, r.value, r.source, r.status, now, r.note) for r in data.estimates],
    )
    data.estimates.clear()
    ids = reserve_ids(session, "bill", len(drafts))
    bills, lines, usages = [], [], []
    for bill_id, draft in zip(ids, drafts, strict=True):
        bills.append((bill_id, *draft.bill))
        lines += [(bill_id, *line) for line in draft.lines]
        for u in draft.usages:
            previous, current = u[1], u[2]
            usages.append((bill_id, u[0], previous and previous.id, current and current.id, *u[3:]))
    insert_rows(session, Bill.__table__, BILL_COLUMNS, bills)
    insert_rows(session, BillLine.__table__, LINE_COLUMNS, lines)
    insert_rows(session, BillUsage.__table__, USAGE_COLUMNS, usages)
    return ids


def lock_run(session: Session, run: BillRun) -> None:
    # NO KEY UPDATE: inserting bills takes KEY SHARE on the run row, which this must not wait on.
    session.execute(select(BillRun.id).where(BillRun.id == run.id).with_for_update(key_share=True))
    session.refresh(run)


# Raters live as long as the worker process: a version's answers stay true until
# its definition changes, and the next chunk asks mostly the same questions.
_RATERS: dict[int, rating.Rater] = {}


def _raters(session: Session) -> dict[int, list[tuple[date, int, rating.Rater]]]:
    """Each schedule's approved versions (effective date, id, rater), oldest first."""
    out: dict[int, list[tuple[date, int, rating.Rater]]] = defaultdict(list)
    for vid, schedule_id, effective_on, definition, service in session.execute(
        select(
            RateScheduleVersion.id,
            RateScheduleVersion.schedule_id,
            RateScheduleVersion.effective_on,
            RateScheduleVersion.definition,
            RateSchedule.service_type,
        )
        .join(RateSchedule, RateSchedule.id == RateScheduleVersion.schedule_id)
        # A proposed or rejected version never bills (issue 16: approvals).
        .where(RateScheduleVersion.status == "approved")
        .order_by(RateScheduleVersion.effective_on)
    ):
        rater = _RATERS.get(vid)
        if rater is None or rater.definition != definition or rater.service != service:
            rater = _RATERS[vid] = rating.Rater(service, definition, vid)
        out[schedule_id].append((effective_on, vid, rater))
    return out


@dataclass
class Prefetched:
    """What a chunk's drafts need, read in a few queries instead of several per account."""

    reads: dict[int, list[ReadRow]]
    balances: dict[int, int]
    last_charges: dict[int, int]
    removed: dict[int, list[MeterRow]]
    raters: dict[int, list[tuple[date, int, rating.Rater]]]
    estimates: list[Estimate] = field(default_factory=list)


def prefetch(session: Session, run: BillRun | Rebill, accounts: Sequence[AccountRow]) -> Prefetched:
    ids = [a.id for a in accounts]
    removed: dict[int, list[MeterRow]] = defaultdict(list)
    for mid, premise_id, size, dials, mult, removed_on in plain_rows(
        session,
        select(Meter.id, Meter.premise_id, Meter.size, Meter.dials, Meter.multiplier, Meter.removed_on).where(
            among(session, Meter.premise_id, {a.premise_id for a in accounts}),
            Meter.removed_on > run.period_start,
            Meter.removed_on <= run.period_end,
        ),
    ):
        assert premise_id is not None  # matched by premise above
        removed[premise_id].append(MeterRow(mid, size, dials, mult, removed_on))
    meter_ids = {s.meter.id for a in accounts for s in a.services if s.meter is not None}
    meter_ids |= {m.id for ms in removed.values() for m in ms}
    by_meter: dict[int, list[ReadRow]] = defaultdict(list)

    def load(ids_: set[int], since: date) -> None:
        for row in plain_rows(
            session,
            select(
                MeterRead.id,
                MeterRead.meter_id,
                MeterRead.read_on,
                MeterRead.value,
                MeterRead.source,
                MeterRead.status,
                MeterRead.exception,
            )
            .where(among(session, MeterRead.meter_id, ids_), MeterRead.read_on >= since)
            .order_by(MeterRead.meter_id, MeterRead.read_on),
        ):
            by_meter[row[1]].append(ReadRow(*row))

    if meter_ids:
        # The reads around this period; a year and more only for meters that need an estimate.
        load(meter_ids, run.period_start - timedelta(days=45))
        window_start = run.period_start + timedelta(days=READ_WINDOW_DAYS)
        window_end = run.period_end + timedelta(days=READ_WINDOW_DAYS)
        missing = {m for m in meter_ids if not any(window_start < r.read_on <= window_end for r in by_meter.get(m, ()))}
        if missing:
            for m in missing:
                by_meter.pop(m, None)
            load(missing, run.period_start - timedelta(days=430))
    # The last posted bill's charges, for "unusually large change": bills of the last few months.
    last_charges: dict[int, int] = {}
    for account_id, _bill_date, cents in plain_rows(
        session,
        select(Bill.account_id, Bill.bill_date, Bill.current_charges_cents)
        .where(
            among(session, Bill.account_id, ids),
            Bill.status == BillStatus.POSTED,
            Bill.bill_date >= run.period_start - timedelta(days=LAST_BILL_DAYS),
        )
        .order_by(Bill.account_id, Bill.bill_date, Bill.id),
    ):
        last_charges[account_id] = int(cents)
    return Prefetched(by_meter, balances(session, ids), last_charges, removed, _raters(session))


def balances(session: Session, account_ids: Sequence[int]) -> dict[int, int]:
    """Each account's balance: the sum of its ledger entries, in one grouped query."""
    rows = plain_rows(
        session,
        select(LedgerEntry.account_id, func.sum(LedgerEntry.amount_cents))
        .where(among(session, LedgerEntry.account_id, account_ids))
        .group_by(LedgerEntry.account_id),
    )
    # account_id is never None: the rows were chosen by it.
    return {account_id: int(total or 0) for account_id, total in rows if account_id is not None}
