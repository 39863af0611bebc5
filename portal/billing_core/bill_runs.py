"""Bill runs: create for a cycle and period, calculate drafts, review the
register, approve (a supervisor), post to the ledger.

Drafts are plain rows that a new calculation replaces, so calculating an
account twice never bills it twice; posting skips bills already posted, so a
post that stops half way can be run again. A draft with a problem nobody has
resolved (a read waiting for review, no read and no history to estimate from,
a rate that cannot be computed) is held: it stays a draft when the run posts.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any, NamedTuple

from sqlalchemy import and_, delete, func, or_, select
from sqlalchemy.orm import Session

from . import audit, ledger, posting, rating, reads
from .bulk import among, custom_plans, insert_rows, reserve_ids, update_rows
from .errors import InvalidInput, NotAllowed
from .models import (
    Account,
    Bill,
    BillingCycle,
    BillLine,
    BillRun,
    BillUsage,
    FinalBillReview,
    LedgerEntry,
    LedgerTransaction,
    Meter,
    MeterRead,
    Premise,
    RateSchedule,
    RateScheduleVersion,
    Service,
    User,
    utcnow,
)

APPROVERS = ("supervisor", "admin")
HOLDING = ("missing_read", "read_review", "below_previous", "rating_error")
READ_WINDOW_DAYS = 7
LARGE_CHANGE = Decimal(2)
#: How far back "the last bill" is looked for when checking for an unusually large change.
LAST_BILL_DAYS = 100


@dataclass(frozen=True)
class _Rebill:
    """The period and dates a rebill is drafted for (no run of its own)."""

    id: int | None
    period_start: date
    period_end: date
    bill_date: date
    due_date: date
    #: A full period's days, when this one is shorter (a final bill): fixed charges prorate by it.
    full_days: int | None = None


@dataclass(frozen=True)
class RunStep:
    """What a step did, for the CLI and the staff view."""

    run: BillRun
    accounts: int = 0
    held: int = 0


def create_run(
    session: Session,
    cycle_code: str,
    period_start: date,
    period_end: date,
    *,
    bill_date: date | None = None,
    due_days: int = 21,
    actor: User | None = None,
    actor_label: str | None = None,
) -> BillRun:
    cycle = session.scalar(select(BillingCycle).where(BillingCycle.code == cycle_code))
    if cycle is None:
        raise InvalidInput(f"no billing cycle {cycle_code!r}", "cycle")
    if period_end <= period_start:
        raise InvalidInput("the period must end after it starts", "period_end")
    bill_date = bill_date or period_end + timedelta(days=2)
    if bill_date < period_end:
        raise InvalidInput("the bill date cannot be before the period ends", "bill_date")
    if not 10 <= due_days <= 60:
        raise InvalidInput("the due date is 10 to 60 days after the bill date", "due_days")
    clash = session.scalar(
        select(BillRun).where(
            BillRun.cycle_id == cycle.id,
            BillRun.status != "cancelled",
            BillRun.period_start < period_end,
            BillRun.period_end > period_start,
        )
    )
    if clash is not None:
        raise InvalidInput(f"run {clash.id} already covers cycle {cycle_code} for part of this period", "period_start")
    run = BillRun(
        cycle_id=cycle.id,
        period_start=period_start,
        period_end=period_end,
        bill_date=bill_date,
        due_date=bill_date + timedelta(days=due_days),
        created_by_id=actor.id if actor else None,
        accounts_total=len(cycle_accounts(session, cycle.id)),
    )
    session.add(run)
    session.flush()
    audit.record(
        session,
        "bill_run.create",
        actor=actor,
        actor_label=actor_label,
        entity_type="bill_run",
        entity_id=run.id,
        after={"cycle": cycle_code, "period": [str(period_start), str(period_end)]},
    )
    return run


def cycle_accounts(session: Session, cycle_id: int) -> list[int]:
    return list(
        session.scalars(
            select(Account.id).where(Account.cycle_id == cycle_id, Account.status == "active").order_by(Account.id)
        )
    )


def chunks(ids: Sequence[int], size: int) -> list[list[int]]:
    return [list(ids[i : i + size]) for i in range(0, len(ids), size)]


# --------------------------------------------------------------------------- calculating


def calculate(
    session: Session, run: BillRun, account_ids: Iterable[int] | None = None, rules: reads.Rules = reads.Rules()
) -> RunStep:
    """Draft the bills of some (or all) of the run's accounts, replacing earlier drafts."""
    after_posting = run.status in ("posting", "posted")
    if run.status not in ("created", "calculating", "calculated") and not after_posting:
        raise InvalidInput(f"run {run.id} is {run.status}; only a run not yet approved is calculated", "status")
    ids = list(account_ids) if account_ids is not None else cycle_accounts(session, run.cycle_id)
    if after_posting:
        # Once a run is posting, only its held drafts are calculated again (after their reads are reviewed).
        held_ids = set(
            session.scalars(select(Bill.account_id).where(Bill.bill_run_id == run.id, Bill.status == "draft"))
        )
        ids = [i for i in ids if i in held_ids]
    elif run.status == "created":
        run.status = "calculating"
    custom_plans(session)
    _drop_drafts(session, run, ids)
    accounts = _load_accounts(session, ids)
    data = _prefetch(session, run, accounts)
    drafts = [_draft(run, account, rules, data) for account in accounts]
    held = sum(any(code in HOLDING for code in d.exceptions) for d in drafts)
    _write_drafts(session, drafts, data)
    # Chunks of one run may be calculated side by side by several workers. Only this
    # last step takes the run's row lock, and it counts what has been committed once
    # it holds it, so the last chunk to finish sees every other one and closes the step.
    _lock(session, run)
    if not after_posting and run.status not in ("calculating", "calculated"):
        # Approved (or cancelled) while this chunk was working: its drafts must not land.
        raise InvalidInput(f"run {run.id} became {run.status} while this chunk was calculated", "status")
    run.accounts_done = session.scalar(select(func.count(Bill.id)).where(Bill.bill_run_id == run.id)) or 0
    if not after_posting and run.accounts_done >= run.accounts_total:
        run.status = "calculated"
        run.calculated_at = utcnow()
    return RunStep(run, len(accounts), held)


# What a calculation reads, as plain rows: loading ORM objects for every account,
# service and read was most of a run's time.


@dataclass(slots=True)
class _Meter:
    id: int
    size: str | None
    dials: int
    multiplier: Decimal
    removed_on: date | None = None


@dataclass(slots=True)
class _Service:
    service_type: str
    rate_schedule_id: int
    meter: _Meter | None
    options: dict
    started_on: date
    ended_on: date | None


@dataclass(slots=True)
class _Account:
    id: int
    premise_id: int
    dwelling_units: int | None
    services: list[_Service] = field(default_factory=list)


class _Read(NamedTuple):
    id: int | None
    meter_id: int
    read_on: date
    value: Decimal
    source: str
    status: str
    exception: str | None


@dataclass(slots=True)
class _Estimate:
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
class _Draft:
    account_id: int
    bill: tuple  # BILL_COLUMNS, without the id
    lines: list[tuple]  # LINE_COLUMNS, without bill_id
    usages: list[list]  # USAGE_COLUMNS, without bill_id; reads as _Read or _Estimate
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


def _load_accounts(session: Session, ids: Sequence[int]) -> list[_Account]:
    accounts: dict[int, _Account] = {}
    meters: dict[int, _Meter] = {}
    for row in session.execute(
        select(
            Account.id,
            Account.premise_id,
            Premise.dwelling_units,
            Service.id,
            Service.service_type,
            Service.rate_schedule_id,
            Service.options,
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
        .order_by(Account.id, Service.id)
    ):
        (aid, premise_id, units, sid, kind, schedule, options, started, ended, mid, size, dials, mult) = row
        account = accounts.get(aid)
        if account is None:
            account = accounts[aid] = _Account(aid, premise_id, units)
        if sid is None:
            continue
        meter = None
        if mid is not None:
            meter = meters.get(mid)
            if meter is None:
                meter = meters[mid] = _Meter(mid, size, dials, mult)
        account.services.append(_Service(kind, schedule, meter, options or {}, started, ended))
    return list(accounts.values())


def _drop_drafts(session: Session, run: BillRun, account_ids: Sequence[int]) -> None:
    drafts = list(
        session.scalars(
            select(Bill.id).where(
                among(session, Bill.account_id, account_ids), Bill.bill_run_id == run.id, Bill.status == "draft"
            )
        )
    )
    if drafts:
        session.execute(delete(BillLine).where(among(session, BillLine.bill_id, drafts)))
        session.execute(delete(BillUsage).where(among(session, BillUsage.bill_id, drafts)))
        session.execute(delete(Bill).where(among(session, Bill.id, drafts)))


def _write_drafts(session: Session, drafts: list[_Draft], data: _Prefetched) -> list[int]:
    """Write the drafts (and the reads estimated for them) in one batch per table. Returns the bills' ids."""
    if not drafts:
        return []
    now = utcnow()
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


def _lock(session: Session, run: BillRun) -> None:
    # NO KEY UPDATE: inserting bills takes KEY SHARE on the run row, which this must not wait on.
    session.execute(select(BillRun.id).where(BillRun.id == run.id).with_for_update(key_share=True))
    session.refresh(run)


# Raters live as long as the worker process: a version's answers stay true until
# its definition changes, and the next chunk asks mostly the same questions.
_RATERS: dict[int, rating.Rater] = {}


def _raters(session: Session) -> dict[int, list[tuple[date, int, rating.Rater]]]:
    """Each schedule's versions (effective date, id, rater), oldest first."""
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
        .order_by(RateScheduleVersion.effective_on)
    ):
        rater = _RATERS.get(vid)
        if rater is None or rater.definition != definition or rater.service != service:
            rater = _RATERS[vid] = rating.Rater(service, definition, vid)
        out[schedule_id].append((effective_on, vid, rater))
    return out


@dataclass
class _Use:
    quantity: Decimal = Decimal(0)
    estimated: bool = False
    exceptions: list[str] = field(default_factory=list)
    rows: list[list] = field(default_factory=list)


@dataclass
class _Prefetched:
    """What a chunk's drafts need, read in a few queries instead of several per account."""

    reads: dict[int, list[_Read]]
    balances: dict[int, int]
    last_charges: dict[int, int]
    removed: dict[int, list[_Meter]]
    raters: dict[int, list[tuple[date, int, rating.Rater]]]
    estimates: list[_Estimate] = field(default_factory=list)


def _prefetch(session: Session, run: BillRun | _Rebill, accounts: Sequence[_Account]) -> _Prefetched:
    ids = [a.id for a in accounts]
    removed: dict[int, list[_Meter]] = defaultdict(list)
    for mid, premise_id, size, dials, mult, removed_on in session.execute(
        select(Meter.id, Meter.premise_id, Meter.size, Meter.dials, Meter.multiplier, Meter.removed_on).where(
            among(session, Meter.premise_id, {a.premise_id for a in accounts}),
            Meter.removed_on > run.period_start,
            Meter.removed_on <= run.period_end,
        )
    ):
        removed[premise_id].append(_Meter(mid, size, dials, mult, removed_on))
    meter_ids = {s.meter.id for a in accounts for s in a.services if s.meter is not None}
    meter_ids |= {m.id for ms in removed.values() for m in ms}
    by_meter: dict[int, list[_Read]] = defaultdict(list)

    def load(ids_: set[int], since: date) -> None:
        for row in session.execute(
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
            .order_by(MeterRead.meter_id, MeterRead.read_on)
        ):
            by_meter[row[1]].append(_Read(*row))

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
    for account_id, _bill_date, cents in session.execute(
        select(Bill.account_id, Bill.bill_date, Bill.current_charges_cents)
        .where(
            among(session, Bill.account_id, ids),
            Bill.status == "posted",
            Bill.bill_date >= run.period_start - timedelta(days=LAST_BILL_DAYS),
        )
        .order_by(Bill.account_id, Bill.bill_date, Bill.id)
    ):
        last_charges[account_id] = int(cents)
    return _Prefetched(by_meter, _balances(session, ids), last_charges, removed, _raters(session))


def _balances(session: Session, account_ids: Sequence[int]) -> dict[int, int]:
    """Each account's balance: the sum of its ledger entries, in one grouped query."""
    rows = session.execute(
        select(LedgerEntry.account_id, func.sum(LedgerEntry.amount_cents))
        .where(among(session, LedgerEntry.account_id, account_ids))
        .group_by(LedgerEntry.account_id)
    ).all()
    return {account_id: int(total or 0) for account_id, total in rows}


METERED = frozenset(("water", "sewer", "irrigation", "recycled"))


def _draft(run: BillRun | _Rebill, account: _Account, rules: reads.Rules, data: _Prefetched) -> _Draft:
    exceptions: list[str] = []
    use = _Use()
    meters = {s.meter.id: s.meter for s in account.services if s.meter is not None and _in_period(s, run)}
    # A meter exchanged during the period served the premise until its final read: its use counts too.
    for old in data.removed.get(account.premise_id, ()):
        if meters:
            meters.setdefault(old.id, old)
    for meter in meters.values():
        _meter_use(run, meter, use, rules, data.reads.get(meter.id, []), data.estimates)
    exceptions += use.exceptions
    lines: list[rating.LineDraft] = []
    days = getattr(run, "full_days", None) or (run.period_end - run.period_start).days
    if not any(code in ("missing_read", "below_previous") for code in exceptions):
        water_size = next((s.meter.size for s in account.services if s.meter is not None), None)
        for service in account.services:
            if not _in_period(service, run):
                continue
            usage = rating.Usage(
                quantity=use.quantity if service.service_type in METERED else Decimal(0),
                meter_size=service.meter.size if service.meter else water_size,
                options={k: str(v) for k, v in service.options.items()},
                dwelling_units=account.dwelling_units,
                water_quantity=use.quantity,
            )
            try:
                lines += rating.rate_period(
                    service.service_type,
                    data.raters.get(service.rate_schedule_id, []),
                    usage,
                    run.period_start,
                    run.period_end,
                    days,
                )
            except InvalidInput:
                exceptions.append("rating_error")
    current = sum(line.amount_cents for line in lines)
    if use.estimated:
        exceptions.append("estimated")
    if meters and use.quantity == 0 and "missing_read" not in exceptions:
        exceptions.append("zero")
    if current < 0:
        exceptions.append("negative")
    last = data.last_charges.get(account.id)
    if last and current and (current > last * LARGE_CHANGE or current * LARGE_CHANGE < last):
        exceptions.append("large_change")
    balance = data.balances.get(account.id, 0)
    codes = list(dict.fromkeys(exceptions))
    bill = (
        account.id,
        run.id,
        run.period_start,
        run.period_end,
        run.bill_date,
        run.due_date,
        balance,
        0,
        current,
        balance + current,
        "draft",
        use.estimated,
        ",".join(codes) or None,
    )
    return _Draft(
        account.id,
        bill,
        [
            (
                n,
                line.service,
                line.description[:200],
                line.quantity,
                line.unit[:10],
                line.unit_price,
                line.amount_cents,
                line.rate_version_id,
            )
            for n, line in enumerate(lines, start=1)
        ],
        use.rows,
        codes,
    )


def _in_period(service: _Service, run: BillRun | _Rebill) -> bool:
    return service.started_on < run.period_end and (service.ended_on is None or service.ended_on > run.period_start)


def _meter_use(
    run: BillRun | _Rebill,
    meter: _Meter,
    use: _Use,
    rules: reads.Rules,
    meter_reads: list[_Read],
    estimates: list[_Estimate],
) -> None:
    # A short period (a final bill) looks no further back than half its length for its read.
    window = timedelta(days=min(READ_WINDOW_DAYS, (run.period_end - run.period_start).days // 2))
    in_window = [r for r in meter_reads if run.period_start + window < r.read_on <= run.period_end + window]
    current: _Read | _Estimate | None = in_window[-1] if in_window else None
    cutoff = current.read_on - timedelta(days=1) if current else run.period_start + window
    earlier = [r for r in meter_reads if r.read_on <= cutoff]
    previous = earlier[-1] if earlier else None
    # usage rows: meter, previous read, current read, previous value, current value, quantity, estimated, note
    if current is None:
        history = _history(meter, [r for r in meter_reads if r.read_on <= run.period_start])
        try:
            guess = reads.estimate(run.period_start, run.period_end, history)
        except InvalidInput:
            use.exceptions.append("missing_read")
            use.rows.append(
                [
                    meter.id,
                    previous,
                    None,
                    previous.value if previous else None,
                    None,
                    Decimal(0),
                    False,
                    "No read and no history to estimate from; order a read",
                ]
            )
            return
        base = previous.value if previous else Decimal(0)
        value = (base + guess.quantity) % (Decimal(10) ** meter.dials)
        current = _Estimate(meter.id, run.period_end, value, f"Estimated: {guess.method}"[:300])
        estimates.append(current)
        use.estimated = True
    if current.status == "exception":
        use.exceptions.append("read_review")
        if current.exception and "high" in current.exception:
            use.exceptions.append("high")
    if previous is None:
        use.rows.append([meter.id, None, current, None, current.value, Decimal(0), False, "First read of this meter"])
        return
    try:
        got = reads.consumption(previous.value, current.value, meter.dials, meter.multiplier, rules)
    except InvalidInput:
        use.exceptions.append("below_previous")
        return
    use.quantity += got.quantity
    use.rows.append(
        [
            meter.id,
            previous,
            current,
            previous.value,
            current.value,
            got.quantity,
            current.source == "estimate",
            "Meter dials rolled over" if got.rollover else None,
        ]
    )


def _history(meter: _Meter, rows: list[_Read]) -> list[reads.Period]:
    ordered = rows[-14:]
    out = []
    for a, b in zip(ordered, ordered[1:], strict=False):
        try:
            q = reads.consumption(a.value, b.value, meter.dials, meter.multiplier).quantity
        except InvalidInput:
            continue
        out.append(reads.Period(a.read_on, b.read_on, q))
    return out


# --------------------------------------------------------------------------- the register


@dataclass
class Register:
    run: BillRun
    drafts: int = 0
    posted: int = 0
    held: int = 0
    total_cents: int = 0
    by_service: dict[str, tuple[int, int]] = field(default_factory=dict)  # service -> (lines, cents)
    by_rate: dict[str, int] = field(default_factory=dict)
    by_class: dict[str, tuple[int, int]] = field(default_factory=dict)  # class -> (bills, cents)
    exceptions: dict[str, list[tuple[str, int]]] = field(default_factory=dict)  # kind -> [(account, cents)]

    @property
    def exception_count(self) -> int:
        return sum(len(v) for v in self.exceptions.values())


EXCEPTION_LABELS = {
    "zero": "Zero use",
    "high": "High use",
    "estimated": "Estimated read",
    "missing_read": "Missing read",
    "negative": "Negative bill",
    "large_change": "Unusually large change",
    "read_review": "Read waiting for review",
    "below_previous": "Read below the previous one",
    "rating_error": "Rate could not be computed",
}


def register(session: Session, run: BillRun) -> Register:
    reg = Register(run)
    bills = session.execute(
        select(Bill.status, Bill.current_charges_cents, Bill.exceptions, Account.number, Account.customer_class)
        .join(Account, Account.id == Bill.account_id)
        .where(Bill.bill_run_id == run.id)
    ).all()
    for status, cents, exceptions, number, klass in bills:
        reg.drafts += status == "draft"
        reg.posted += status == "posted"
        reg.total_cents += cents
        count, total = reg.by_class.get(klass, (0, 0))
        reg.by_class[klass] = (count + 1, total + cents)
        codes = [c for c in (exceptions or "").split(",") if c]
        reg.held += status == "draft" and any(c in HOLDING for c in codes)
        for code in codes:
            reg.exceptions.setdefault(code, []).append((number, cents))
    for service, n, cents in session.execute(
        select(BillLine.service_type, func.count(BillLine.id), func.sum(BillLine.amount_cents))
        .join(Bill, Bill.id == BillLine.bill_id)
        .where(Bill.bill_run_id == run.id)
        .group_by(BillLine.service_type)
    ):
        reg.by_service[service] = (n, int(cents or 0))
    for name, cents in session.execute(
        select(RateSchedule.name, func.sum(BillLine.amount_cents))
        .join(Bill, Bill.id == BillLine.bill_id)
        .join(RateScheduleVersion, RateScheduleVersion.id == BillLine.rate_version_id)
        .join(RateSchedule, RateSchedule.id == RateScheduleVersion.schedule_id)
        .where(Bill.bill_run_id == run.id)
        .group_by(RateSchedule.name)
    ):
        reg.by_rate[name] = int(cents or 0)
    return reg


# --------------------------------------------------------------------------- approving and posting


def approve(session: Session, run: BillRun, actor: User) -> BillRun:
    if actor.role not in APPROVERS:
        raise NotAllowed("only a billing supervisor approves a bill run")
    if run.status != "calculated":
        raise InvalidInput(f"run {run.id} is {run.status}; only a calculated run is approved", "status")
    run.status, run.approved_by_id, run.approved_at = "approved", actor.id, utcnow()
    audit.record(
        session,
        "bill_run.approve",
        actor=actor,
        entity_type="bill_run",
        entity_id=run.id,
        after={"register": _summary(register(session, run))},
    )
    return run


def post(session: Session, run: BillRun, actor: User, account_ids: Iterable[int] | None = None) -> RunStep:
    """Post the run's drafts (or some of them): bill numbers and balanced ledger transactions.
    Bills already posted are skipped, so posting again finishes an interrupted post."""
    if actor.role not in APPROVERS:
        raise NotAllowed("only a billing supervisor posts a bill run")
    if run.status not in ("approved", "posting", "posted"):
        raise InvalidInput(f"run {run.id} is {run.status}; approve it before posting", "status")
    if run.status == "approved":
        run.status = "posting"
    custom_plans(session)
    stmt = select(*_POSTING).where(Bill.bill_run_id == run.id, Bill.status == "draft")
    if account_ids is not None:
        stmt = stmt.where(among(session, Bill.account_id, account_ids))
    held = 0
    ready = []
    for row in session.execute(stmt.order_by(Bill.account_id)):
        if _holding(row.exceptions):
            held += 1
        else:
            ready.append(row)
    _post_bills(session, ready, actor)
    _lock(session, run)
    # Cheap at every chunk: the first draft that is not held ends the search.
    unposted = session.scalar(
        select(Bill.id).where(Bill.bill_run_id == run.id, Bill.status == "draft", _not_held()).limit(1)
    )
    if unposted is None and run.status != "posted":
        held_total = session.scalar(
            select(func.count(Bill.id)).where(Bill.bill_run_id == run.id, Bill.status == "draft")
        )
        run.status, run.posted_at, run.posted_by_id = "posted", utcnow(), actor.id
        audit.record(
            session, "bill_run.post", actor=actor, entity_type="bill_run", entity_id=run.id, after={"held": held_total}
        )
    return RunStep(run, len(ready), held)


_POSTING = (
    Bill.id,
    Bill.account_id,
    Bill.exceptions,
    Bill.period_start,
    Bill.period_end,
    Bill.bill_date,
    Bill.due_date,
    Bill.current_charges_cents,
)


def _holding(exceptions: str | None) -> bool:
    return any(code in HOLDING for code in (exceptions or "").split(","))


def _not_held():  # type: ignore[no-untyped-def]
    """SQL for "this draft's exceptions hold none of HOLDING" (no code is part of another)."""
    return or_(Bill.exceptions.is_(None), and_(*(Bill.exceptions.not_like(f"%{code}%") for code in HOLDING)))


BILL_POSTED = (
    "number",
    "previous_balance_cents",
    "payments_since_cents",
    "total_due_cents",
    "ledger_transaction_id",
    "status",
)
TRANSACTION_COLUMNS = (
    "id",
    "kind",
    "account_id",
    "effective_on",
    "due_on",
    "memo",
    "reverses_id",
    "posted_at",
    "posted_by_id",
)
ENTRY_COLUMNS = ("transaction_id", "gl_account", "account_id", "service_type", "amount_cents")


def _post_bills(session: Session, bills: Sequence[Any], actor: User | None) -> None:
    """Post drafts together (rows with the columns of _POSTING): a few grouped queries for
    the accounts' figures, one batch of ledger transactions and entries, one update of the bills."""
    if not bills:
        return
    bill_ids = [b.id for b in bills]
    ids = [b.account_id for b in bills]
    by_bill: dict[int, dict[str, int]] = defaultdict(dict)
    for bill_id, service, cents in session.execute(
        select(BillLine.bill_id, BillLine.service_type, func.sum(BillLine.amount_cents))
        .where(among(session, BillLine.bill_id, bill_ids))
        .group_by(BillLine.bill_id, BillLine.service_type)
    ):
        by_bill[bill_id][service] = int(cents)
    balances = _balances(session, ids)
    last_bill = (
        select(Bill.account_id, func.max(Bill.bill_date).label("last"))
        .where(among(session, Bill.account_id, ids), Bill.status == "posted")
        .group_by(Bill.account_id)
        .subquery()
    )
    # Credits since each account's last bill, reached through its own transactions (indexed by account).
    credits = dict(
        session.execute(
            select(LedgerTransaction.account_id, func.sum(LedgerEntry.amount_cents))
            .join(
                LedgerEntry,
                (LedgerEntry.transaction_id == LedgerTransaction.id)
                & (LedgerEntry.account_id == LedgerTransaction.account_id),
            )
            .join(last_bill, last_bill.c.account_id == LedgerTransaction.account_id)
            .where(
                among(session, LedgerTransaction.account_id, ids),
                LedgerTransaction.effective_on >= last_bill.c.last,
                LedgerEntry.amount_cents < 0,
            )
            .group_by(LedgerTransaction.account_id)
        ).all()
    )
    txns: dict[int, ledger.Transaction] = {}
    for bill in bills:
        by_service = by_bill.get(bill.id, {})
        if any(by_service.values()):
            txn = ledger.bill_transaction(
                bill.account_id,
                bill.bill_date,
                bill.due_date,
                by_service,
                memo=f"Bill for {bill.period_start:%m/%d/%Y} to {bill.period_end - timedelta(days=1):%m/%d/%Y}",
            )
            ledger.check_balanced(txn)
            txns[bill.id] = txn
    txn_ids = dict(zip(txns, reserve_ids(session, "ledger_transaction", len(txns)), strict=True))
    posted_at = utcnow()
    actor_id = actor.id if actor else None
    insert_rows(
        session,
        LedgerTransaction.__table__,
        TRANSACTION_COLUMNS,
        [
            (txn_ids[bill_id], t.kind.value, t.entries[0].account_id, t.effective_date, t.due_date, t.memo, None)
            + (posted_at, actor_id)
            for bill_id, t in txns.items()
        ],
    )
    insert_rows(
        session,
        LedgerEntry.__table__,
        ENTRY_COLUMNS,
        [
            (txn_ids[bill_id], e.gl_account, e.account_id, e.service, e.amount_cents)
            for bill_id, t in txns.items()
            for e in t.entries
        ],
    )
    updates = []
    for bill in bills:
        balance = balances.get(bill.account_id, 0)
        credits_since = -int(credits.get(bill.account_id) or 0)
        updates.append(
            (
                bill.id,
                f"{bill.id:09d}",
                balance + credits_since,
                credits_since,
                balance + bill.current_charges_cents,
                txn_ids.get(bill.id),
                "posted",
            )
        )
    update_rows(session, Bill.__table__, BILL_POSTED, updates)
    # Bills this session already holds as objects were changed behind its back.
    posted = set(bill_ids)
    for obj in list(session.identity_map.values()):
        if isinstance(obj, Bill) and obj.id in posted:
            session.expire(obj)


def _summary(reg: Register) -> dict:
    return {
        "drafts": reg.drafts,
        "held": reg.held,
        "total_cents": reg.total_cents,
        "exceptions": {k: len(v) for k, v in reg.exceptions.items()},
    }


# --------------------------------------------------------------------------- void and rebill


def void_and_rebill(
    session: Session,
    bill: Bill,
    actor: User,
    reason: str,
    today: date,
    due_days: int = 21,
    remote_addr: str | None = None,
    corrected_reads: dict[int, Decimal] | None = None,
) -> Bill:
    """Void a posted bill (its transaction reversed, linked to it) and post a corrected one for
    the same period from today's reads and rates. ``corrected_reads`` (meter id -> value)
    replace the reads that closed the voided bill's period, checked by the rules of reads.
    A final bill's rebill keeps its proration (fixed charges by days of a full period). All in
    the caller's transaction: if the new bill cannot be made (a read still held, a rate that
    fails), nothing changes."""
    if actor.role not in APPROVERS:
        raise NotAllowed("only a billing supervisor voids and rebills a bill")
    if not (reason or "").strip():
        raise InvalidInput("say why the bill is voided", "reason")
    if bill.status != "posted":
        raise InvalidInput(f"bill {bill.number or bill.id} is {bill.status}; only a posted bill is voided", "status")
    for meter_id, value in (corrected_reads or {}).items():
        _correct_closing_read(session, bill, meter_id, value, reason.strip(), actor, remote_addr)
    final = _final_review_of(session, bill)
    if bill.ledger_transaction_id is not None:
        posting.reverse(
            session, bill.ledger_transaction_id, today, f"Void of bill {bill.number}: {reason.strip()}", actor.id
        )
    bill.status = "voided"
    # Reads this period: the ones the voided bill used may have been corrected since.
    session.flush()
    accounts = _load_accounts(session, [bill.account_id])
    full_days = FULL_PERIOD_DAYS if final is not None or _ends_service(session, bill) else None
    period = _Rebill(
        bill.bill_run_id, bill.period_start, bill.period_end, today, today + timedelta(days=due_days), full_days
    )
    data = _prefetch(session, period, accounts)
    draft = _draft(period, accounts[0], reads.Rules(), data)
    held = [c for c in draft.exceptions if c in HOLDING]
    if held:
        raise InvalidInput(
            "the new bill cannot be made yet: " + ", ".join(EXCEPTION_LABELS.get(c, c).lower() for c in held),
            "reads",
        )
    (new_id,) = _write_drafts(session, [draft], data)
    _post_bills(session, session.execute(select(*_POSTING).where(Bill.id == new_id)).all(), actor)
    new = session.get(Bill, new_id)
    assert new is not None
    if final is not None:
        final.bill_id = new.id
    audit.record(
        session,
        "bill.void_rebill",
        actor=actor,
        entity_type="bill",
        entity_id=bill.id,
        before={"number": bill.number, "charges_cents": bill.current_charges_cents},
        after={"new_number": new.number, "charges_cents": new.current_charges_cents, "reason": reason.strip()},
        remote_addr=remote_addr,
    )
    return new


def _final_review_of(session: Session, bill: Bill) -> FinalBillReview | None:
    return session.scalar(select(FinalBillReview).where(FinalBillReview.bill_id == bill.id))


def _ends_service(session: Session, bill: Bill) -> bool:
    """A final bill made before final bills were recorded: its period reaches the account's last day."""
    account = session.get(Account, bill.account_id)
    return bool(account and account.closed_on and bill.period_end >= account.closed_on)


def _correct_closing_read(
    session: Session,
    bill: Bill,
    meter_id: int,
    value: Decimal,
    reason: str,
    actor: User,
    remote_addr: str | None,
) -> None:
    """Replace the read that closed ``bill``'s period on one meter (read at a void and rebill)."""
    field_name = f"read-{meter_id}"
    usage = session.scalar(select(BillUsage).where(BillUsage.bill_id == bill.id, BillUsage.meter_id == meter_id))
    read = session.get(MeterRead, usage.current_read_id) if usage and usage.current_read_id else None
    meter = session.get(Meter, meter_id)
    if read is None or meter is None:
        raise InvalidInput("that meter has no read on this bill to correct", field_name)
    try:
        reads.check_read(value, meter.dials, field_name)  # the rules every read meets
        if usage is not None and usage.previous_value is not None:
            reads.consumption(usage.previous_value, value, meter.dials, meter.multiplier)
    except InvalidInput as exc:
        raise InvalidInput(f"meter {meter.serial}: {exc.message}", field_name) from exc
    before = {"value": str(read.value), "status": read.status, "source": read.source}
    read.value, read.status, read.exception = value, "approved", None
    if read.source == "estimate":
        read.source = "field"
    read.reviewed_by_id, read.reviewed_at = actor.id, utcnow()
    read.note = f"Corrected at the void of bill {bill.number}: {reason}"[:300]
    audit.record(
        session,
        "read.correct",
        actor=actor,
        entity_type="meter_read",
        entity_id=read.id,
        before=before,
        after={"value": str(value), "status": read.status, "reason": reason},
        remote_addr=remote_addr,
    )


# --------------------------------------------------------------------------- final bills
#
# The stop date is the LAST DAY OF SERVICE everywhere (the customer's request, the staff
# form, the account's closed_on): the customer is served and billed through it. The final
# period is [the end of the last bill, the day after the last day of service), so the last
# day counts; the final read is dated that day after, like every read that closes a period
# (a cycle read on the 5th closes the period through the 4th). The final bill is dated the
# same day after the last day of service, whenever staff enter or approve it; it is due
# ``due_days`` after that date or after the day it is posted, whichever is later.

FULL_PERIOD_DAYS = 30
FINAL_BILLERS = APPROVERS + ("specialist",)
#: A final period shorter than this is compared with the account's history as if it were this
#: long, so a day or two of ordinary use is not mistaken for a surge.
MIN_COMPARE_DAYS = 7
#: The read findings (reads.validate, the rules of imported reads) that hold a final bill for
#: review. Low and zero use are what an emptied home shows, so they do not hold it.
FINAL_HOLDING = (reads.ReadException.HIGH.value, reads.ReadException.ROLLOVER.value)
FUTURE_STOP = "future_stop"
FINAL_REASONS = {FUTURE_STOP: "The last day of service is still ahead"} | {
    e.value: e.plain for e in reads.ReadException
}


def final_bill_date(stop_on: date) -> date:
    """The date of the final bill for a last day of service: the day after it (the first day
    without service, the end of the final period and the date of its final read)."""
    return stop_on + timedelta(days=1)


@dataclass(frozen=True)
class FinalReadCheck:
    """A final read held against the meter's last read and the account's history."""

    meter: Meter
    value: Decimal
    previous: MeterRead | None
    #: Use since the last read (None: the meter's first read).
    quantity: Decimal | None
    #: The recent average use per FULL_PERIOD_DAYS, when there is history.
    average: Decimal | None
    #: reads.ReadException values the read raises.
    findings: tuple[str, ...]

    @property
    def holding(self) -> tuple[str, ...]:
        return tuple(f for f in self.findings if f in FINAL_HOLDING)


def check_final_read(
    session: Session, meter: Meter, stop_on: date, value: Decimal, rules: reads.Rules = reads.Rules()
) -> FinalReadCheck:
    """Check a final read by the rules of imported reads (reads.consumption and reads.validate):
    refused when it cannot be right (not a number, over the meter's dials, below the last read
    and not a plausible rollover); its findings (high, rollover, ...) are returned. Use is
    compared per day with the account's recent periods."""
    field_name = f"read-{meter.id}"
    if not value.is_finite() or value < 0:
        raise InvalidInput(f"enter the final read of meter {meter.serial} as a number, 0 or more", field_name)
    end = final_bill_date(stop_on)
    history = list(
        session.scalars(
            select(MeterRead)
            .where(MeterRead.meter_id == meter.id, MeterRead.read_on < end)
            .order_by(MeterRead.read_on.desc())
            .limit(rules.history_periods + 1)
        )
    )
    if not history:
        capacity = Decimal(10) ** meter.dials
        if value >= capacity:
            raise InvalidInput(
                f"meter {meter.serial} has {meter.dials} dials: it reads at most {capacity - 1}", field_name
            )
        return FinalReadCheck(meter, value, None, None, None, ())
    previous = history[0]
    try:
        use = reads.consumption(previous.value, value, meter.dials, meter.multiplier, rules)
    except reads.BelowPrevious as exc:
        raise InvalidInput(
            f"the final read of meter {meter.serial}, {value}, is below its last read, {previous.value} on "
            f"{previous.read_on.isoformat()}, and is not a plausible rollover",
            field_name,
        ) from exc
    except InvalidInput as exc:
        raise InvalidInput(f"meter {meter.serial}: {exc.message}", field_name) from exc
    past: list[Decimal] = []
    ordered = list(reversed(history))
    for older, newer in zip(ordered, ordered[1:], strict=False):
        days = (newer.read_on - older.read_on).days
        try:
            q = reads.consumption(older.value, newer.value, meter.dials, meter.multiplier, rules).quantity
        except InvalidInput:
            continue
        if days > 0:
            past.append(q * FULL_PERIOD_DAYS / days)
    days = max((end - previous.read_on).days, MIN_COMPARE_DAYS)
    found = reads.validate(use.quantity * FULL_PERIOD_DAYS / days, past, rollover=use.rollover, rules=rules)
    recent = past[-rules.history_periods :]
    average = (sum(recent, Decimal(0)) / len(recent)).quantize(Decimal("0.1")) if recent else None
    return FinalReadCheck(meter, value, previous, use.quantity, average, tuple(e.value for e in found))


def _open_services(session: Session, account: Account) -> list[Service]:
    return list(session.scalars(select(Service).where(Service.account_id == account.id, Service.ended_on.is_(None))))


def _final_start(session: Session, account: Account, services: Sequence[Service], stop_on: date) -> date:
    """The first day the final bill covers: the end of the last posted bill (or the start of service)."""
    last_end = session.scalar(
        select(func.max(Bill.period_end)).where(Bill.account_id == account.id, Bill.status == "posted")
    )
    start = last_end or min((s.started_on for s in services), default=stop_on)
    if stop_on < start:
        raise InvalidInput(
            f"the last day of service cannot be before {start.isoformat()}, the first day not billed yet", "stop_on"
        )
    return start


def _checks(session: Session, account: Account, stop_on: date, final_reads: dict[int, Decimal]) -> list[FinalReadCheck]:
    services = _open_services(session, account)
    meters = {s.meter_id: s.meter for s in services if s.meter_id is not None and s.meter is not None}
    missing = set(meters) - set(final_reads)
    if missing:
        raise InvalidInput("enter the final read of every meter", f"read-{min(missing)}")
    return [check_final_read(session, meters[m], stop_on, final_reads[m]) for m in sorted(meters)]


def _reasons(stop_on: date, today: date, checks: Sequence[FinalReadCheck]) -> list[str]:
    reasons = [FUTURE_STOP] if stop_on > today else []
    return list(dict.fromkeys(reasons + [f for c in checks for f in c.holding]))


def stop_service(
    session: Session,
    account: Account,
    stop_on: date,
    final_reads: dict[int, Decimal],
    actor: User,
    today: date,
    *,
    forward: Any = None,
    due_days: int = 21,
    remote_addr: str | None = None,
) -> FinalBillReview:
    """Stop an account's service after ``stop_on``, its last day of service, from the final read
    of each meter. The final bill posts at once, unless a final read implies use far beyond the
    account's history (high, or a rollover) or the last day of service is still ahead: then it
    is held for review (status "held") and nothing about the account changes until a
    supervisor approves and posts it. ``forward`` (a customers.MailingAddress) is where the
    final bill goes; it is set on the customer when the bill posts. All in the caller's
    transaction: nothing changes when the stop is refused."""
    if actor.role not in FINAL_BILLERS:
        raise NotAllowed("only billing staff make final bills")
    if account.status != "active":
        raise InvalidInput(f"account {account.number} is {account.status}; only an active account is stopped", "status")
    if held_for_account(session, account.id) is not None:
        raise InvalidInput("a final bill for this account is already waiting for review; work it there", "final")
    _final_start(session, account, _open_services(session, account), stop_on)
    checks = _checks(session, account, stop_on, final_reads)
    reasons = _reasons(stop_on, today, checks)
    review = FinalBillReview(
        account_id=account.id,
        stop_on=stop_on,
        reads={str(c.meter.id): str(c.value) for c in checks},
        reasons=",".join(reasons),
        status="held",
        forward_line1=forward.line1 if forward else None,
        forward_city=forward.city if forward else None,
        forward_state=forward.state if forward else None,
        forward_zip=forward.zip if forward else None,
        entered_by_id=actor.id,
        entered_at=utcnow(),
    )
    session.add(review)
    session.flush()
    if reasons:
        audit.record(
            session,
            "account.final_bill_held",
            actor=actor,
            entity_type="account",
            entity_id=account.id,
            after={"stop_on": str(stop_on), "reasons": reasons, "reads": review.reads, "review": review.id},
            remote_addr=remote_addr,
        )
        return review
    _post_final(session, review, account, actor, today, due_days, remote_addr)
    return review


def final_bill(
    session: Session,
    account: Account,
    stop_on: date,
    final_reads: dict[int, Decimal],
    actor: User,
    today: date,
    due_days: int = 21,
) -> Bill | None:
    """``stop_service`` for callers that want the bill: None when it was held for review."""
    review = stop_service(session, account, stop_on, final_reads, actor, today, due_days=due_days)
    return session.get(Bill, review.bill_id) if review.bill_id else None


def _post_final(
    session: Session,
    review: FinalBillReview,
    account: Account,
    actor: User,
    today: date,
    due_days: int,
    remote_addr: str | None,
) -> Bill:
    from . import customers

    stop_on = review.stop_on
    services = _open_services(session, account)
    start = _final_start(session, account, services, stop_on)
    final_reads = {int(k): Decimal(v) for k, v in review.reads.items()}
    checks = _checks(session, account, stop_on, final_reads)
    end = final_bill_date(stop_on)
    reviewed = review.decided_by_id is not None
    for check in checks:
        if session.scalar(select(MeterRead.id).where(MeterRead.meter_id == check.meter.id, MeterRead.read_on == end)):
            raise InvalidInput(
                f"meter {check.meter.serial} already has a read on {end.isoformat()}, the day after the last day "
                "of service; correct that read instead",
                f"read-{check.meter.id}",
            )
        session.add(
            MeterRead(
                meter_id=check.meter.id,
                read_on=end,
                value=check.value,
                source="field",
                status="approved" if reviewed else "valid",
                exception=",".join(check.findings) or None,
                reviewed_by_id=review.decided_by_id,
                reviewed_at=review.decided_at,
                note=f"Final read at the end of {stop_on.isoformat()}, the last day of service"[:300],
            )
        )
    for service in services:
        service.ended_on = end
    session.flush()
    accounts = _load_accounts(session, [account.id])
    due = max(end, today) + timedelta(days=due_days)
    period = _Rebill(None, start, end, end, due, FULL_PERIOD_DAYS)
    data = _prefetch(session, period, accounts)
    draft = _draft(period, accounts[0], reads.Rules(), data)
    held = [c for c in draft.exceptions if c in HOLDING]
    if held:
        raise InvalidInput(
            "the final bill cannot be made: " + ", ".join(EXCEPTION_LABELS.get(c, c).lower() for c in held),
            "final_read",
        )
    (bill_id,) = _write_drafts(session, [draft], data)
    _post_bills(session, session.execute(select(*_POSTING).where(Bill.id == bill_id)).all(), actor)
    account.status, account.closed_on = "final", stop_on
    if review.forward_line1:
        address = customers.MailingAddress(
            review.forward_line1, review.forward_city or "", review.forward_state or "", review.forward_zip or ""
        )
        customers.set_mailing_address(session, account.customer, address, actor, remote_addr)
    review.status, review.bill_id = "posted", bill_id
    bill = session.get(Bill, bill_id)
    assert bill is not None
    audit.record(
        session,
        "account.final_bill",
        actor=actor,
        entity_type="account",
        entity_id=account.id,
        after={
            "stop_on": str(stop_on),
            "bill": bill.number,
            "charges_cents": bill.current_charges_cents,
            "reviewed": reviewed,
        },
        remote_addr=remote_addr,
    )
    return bill


def held_final_bills(session: Session) -> list[FinalBillReview]:
    """Final bills waiting for review, oldest first."""
    return list(
        session.scalars(
            select(FinalBillReview)
            .where(FinalBillReview.status == "held")
            .order_by(FinalBillReview.entered_at, FinalBillReview.id)
        )
    )


def held_for_account(session: Session, account_id: int) -> FinalBillReview | None:
    return session.scalar(
        select(FinalBillReview).where(FinalBillReview.account_id == account_id, FinalBillReview.status == "held")
    )


def review_checks(session: Session, review: FinalBillReview) -> list[FinalReadCheck]:
    """The held reads checked again as they stand now (for the reviewer)."""
    account = session.get(Account, review.account_id)
    assert account is not None
    return _checks(session, account, review.stop_on, {int(k): Decimal(v) for k, v in review.reads.items()})


def approve_final(
    session: Session,
    review: FinalBillReview,
    actor: User,
    today: date,
    *,
    due_days: int = 21,
    remote_addr: str | None = None,
) -> Bill:
    """A supervisor approves a held final bill (the reads are right as they stand) and posts it.
    Not before the last day of service: the final read is only known then."""
    if actor.role not in APPROVERS:
        raise NotAllowed("only a billing supervisor approves and posts a held final bill")
    if review.status != "held":
        raise InvalidInput("this final bill is not waiting for review", "final")
    if review.stop_on > today:
        raise InvalidInput(
            f"the last day of service, {review.stop_on.isoformat()}, is still ahead; approve the final bill on or "
            "after that day, with the read taken then",
            "final",
        )
    account = session.get(Account, review.account_id)
    assert account is not None
    if account.status != "active":
        raise InvalidInput(f"account {account.number} is {account.status}", "final")
    review.decided_by_id, review.decided_at = actor.id, utcnow()
    return _post_final(session, review, account, actor, today, due_days, remote_addr)


def correct_final_read(
    session: Session,
    review: FinalBillReview,
    meter_id: int,
    value: Decimal,
    reason: str,
    actor: User,
    today: date,
    remote_addr: str | None = None,
) -> FinalBillReview:
    """Replace a held final read (a misread, or the real read once the day has come): checked
    by the same rules, the reason required and the change audited. It stays held until approved."""
    if actor.role not in FINAL_BILLERS:
        raise NotAllowed("only billing specialists and supervisors correct reads")
    if review.status != "held":
        raise InvalidInput("this final bill is not waiting for review", "final")
    if str(meter_id) not in review.reads:
        raise InvalidInput("that meter is not on this final bill", "meter")
    if not (reason or "").strip():
        raise InvalidInput("say why the read is corrected", "reason")
    meter = session.get(Meter, meter_id)
    assert meter is not None
    check_final_read(session, meter, review.stop_on, value)
    before = dict(review.reads)
    review.reads = {**review.reads, str(meter_id): str(value)}
    review.reasons = ",".join(_reasons(review.stop_on, today, review_checks(session, review)))
    stamp = f"{utcnow():%Y-%m-%d %H:%M} {actor.email}: meter {meter.serial} {before[str(meter_id)]} -> {value}: "
    line = stamp + reason.strip()[:200]
    review.note = f"{review.note}\n{line}" if review.note else line
    audit.record(
        session,
        "account.final_read_corrected",
        actor=actor,
        entity_type="final_bill_review",
        entity_id=review.id,
        before={"reads": before},
        after={"reads": review.reads, "reason": reason.strip(), "reasons": review.reasons},
        remote_addr=remote_addr,
    )
    return review
