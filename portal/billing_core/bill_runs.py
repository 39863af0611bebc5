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

from sqlalchemy import delete, func, insert, select, text
from sqlalchemy.orm import Session, selectinload

from . import audit, ledger, posting, rating, reads
from .errors import BillingError, InvalidInput
from .models import (
    Account,
    Bill,
    BillingCycle,
    BillLine,
    BillRun,
    BillUsage,
    LedgerEntry,
    LedgerTransaction,
    Meter,
    MeterRead,
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


@dataclass(frozen=True)
class _Rebill:
    """The period and dates a rebill is drafted for (no run of its own)."""

    id: int | None
    period_start: date
    period_end: date
    bill_date: date
    due_date: date


class NotAllowed(BillingError):
    """The signed-in person's role does not allow this step."""


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
    _drop_drafts(session, run, ids)
    accounts = session.scalars(
        select(Account)
        .where(Account.id.in_(ids))
        .options(selectinload(Account.services).selectinload(Service.meter), selectinload(Account.premise))
    ).all()
    versions = _versions(session)
    data = _prefetch(session, run, accounts)
    held = 0
    drafts = []
    for account in accounts:
        bill = _draft(session, run, account, versions, rules, data)
        held += any(code in HOLDING for code in (bill.exceptions or "").split(","))
        drafts.append(bill)
    _insert_drafts(session, drafts)
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


BILL_COLUMNS = (
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
    "sequence",
    "service_type",
    "description",
    "quantity",
    "unit",
    "unit_price",
    "amount_cents",
    "rate_version_id",
)
USAGE_COLUMNS = ("meter_id", "previous_value", "current_value", "quantity", "estimated", "note")


def _insert_drafts(session: Session, drafts: list[Bill]) -> None:
    """Write a chunk's drafts with three multi-row inserts instead of the unit of work."""
    if not drafts:
        return
    session.flush()  # estimated reads made for this chunk get their ids
    ids = _reserve_ids(session, "bill", len(drafts))
    bills, lines, usages = [], [], []
    for bill_id, bill in zip(ids, drafts, strict=True):
        bills.append({"id": bill_id, **{c: getattr(bill, c) for c in BILL_COLUMNS}})
        lines += [{"bill_id": bill_id, **{c: getattr(line, c) for c in LINE_COLUMNS}} for line in bill.lines]
        usages += [
            {
                "bill_id": bill_id,
                **{c: getattr(u, c) for c in USAGE_COLUMNS},
                "previous_read_id": u.previous_read.id if u.previous_read else u.previous_read_id,
                "current_read_id": u.current_read.id if u.current_read else u.current_read_id,
                "estimated": bool(u.estimated),
            }
            for u in bill.usages
        ]
    session.execute(insert(Bill.__table__), bills)
    if lines:
        session.execute(insert(BillLine.__table__), lines)
    if usages:
        session.execute(insert(BillUsage.__table__), usages)


def _reserve_ids(session: Session, table: str, n: int) -> list[int]:
    if session.get_bind().dialect.name == "postgresql":
        return list(
            session.scalars(
                text(f"SELECT nextval(pg_get_serial_sequence('{table}', 'id')) FROM generate_series(1, :n)"),
                {"n": n},
            )
        )
    # SQLite has one writer at a time, and this transaction is it.
    top = session.scalar(text(f"SELECT COALESCE(MAX(id), 0) FROM {table}")) or 0
    return list(range(top + 1, top + n + 1))


def _lock(session: Session, run: BillRun) -> None:
    # NO KEY UPDATE: inserting bills takes KEY SHARE on the run row, which this must not wait on.
    session.execute(select(BillRun.id).where(BillRun.id == run.id).with_for_update(key_share=True))
    session.refresh(run)


def _drop_drafts(session: Session, run: BillRun, account_ids: Sequence[int]) -> None:
    drafts = select(Bill.id).where(Bill.bill_run_id == run.id, Bill.status == "draft", Bill.account_id.in_(account_ids))
    session.execute(delete(BillLine).where(BillLine.bill_id.in_(drafts)))
    session.execute(delete(BillUsage).where(BillUsage.bill_id.in_(drafts)))
    session.execute(delete(Bill).where(Bill.id.in_(drafts.scalar_subquery())))


def _versions(session: Session) -> dict[int, list[tuple[date, int, dict]]]:
    out: dict[int, list[tuple[date, int, dict]]] = defaultdict(list)
    for v in session.scalars(select(RateScheduleVersion).order_by(RateScheduleVersion.effective_on)):
        out[v.schedule_id].append((v.effective_on, v.id, v.definition))
    return out


@dataclass
class _Use:
    quantity: Decimal = Decimal(0)
    estimated: bool = False
    exceptions: list[str] = field(default_factory=list)
    rows: list[BillUsage] = field(default_factory=list)


@dataclass
class _Prefetched:
    """What a chunk's drafts need, read in a few queries instead of several per account."""

    reads: dict[int, list[MeterRead]]
    balances: dict[int, int]
    last_charges: dict[int, int]
    removed: dict[int, list[Meter]]


def _prefetch(session: Session, run: BillRun | _Rebill, accounts: Sequence[Account]) -> _Prefetched:
    ids = [a.id for a in accounts]
    removed: dict[int, list[Meter]] = defaultdict(list)
    for meter in session.scalars(
        select(Meter).where(
            Meter.premise_id.in_([a.premise_id for a in accounts]),
            Meter.removed_on > run.period_start,
            Meter.removed_on <= run.period_end,
        )
    ):
        removed[meter.premise_id].append(meter)
    meter_ids = {s.meter_id for a in accounts for s in a.services if s.meter_id is not None}
    meter_ids |= {m.id for ms in removed.values() for m in ms}
    by_meter: dict[int, list[MeterRead]] = defaultdict(list)

    def load(ids_: set[int], since: date) -> None:
        for read in session.scalars(
            select(MeterRead)
            .where(MeterRead.meter_id.in_(ids_), MeterRead.read_on >= since)
            .order_by(MeterRead.meter_id, MeterRead.read_on)
        ):
            by_meter[read.meter_id].append(read)

    if meter_ids:
        # The reads around this period; a year and more only for meters that need an estimate.
        load(meter_ids, run.period_start - timedelta(days=45))
        window_end = run.period_end + timedelta(days=READ_WINDOW_DAYS)
        missing = {
            m
            for m in meter_ids
            if not any(
                run.period_start + timedelta(days=READ_WINDOW_DAYS) < r.read_on <= window_end
                for r in by_meter.get(m, [])
            )
        }
        if missing:
            for m in missing:
                by_meter.pop(m, None)
            load(missing, run.period_start - timedelta(days=430))
    balances = _balances(session, ids)
    last = _last_bill_dates(ids)
    last_charges = dict(
        session.execute(
            select(Bill.account_id, func.max(Bill.current_charges_cents))
            .join(last, (last.c.account_id == Bill.account_id) & (last.c.last == Bill.bill_date))
            .where(Bill.status == "posted")
            .group_by(Bill.account_id)
        ).all()
    )
    return _Prefetched(by_meter, balances, {k: int(v or 0) for k, v in last_charges.items()}, removed)


def _balances(session: Session, account_ids: Sequence[int]) -> dict[int, int]:
    """Each account's balance: the sum of its ledger entries, in one grouped query."""
    rows = session.execute(
        select(LedgerEntry.account_id, func.sum(LedgerEntry.amount_cents))
        .where(LedgerEntry.account_id.in_(account_ids))
        .group_by(LedgerEntry.account_id)
    ).all()
    return {account_id: int(total or 0) for account_id, total in rows}


def _last_bill_dates(account_ids: Sequence[int]):  # type: ignore[no-untyped-def]
    """A subquery: each account's latest posted bill date (columns account_id, last)."""
    return (
        select(Bill.account_id, func.max(Bill.bill_date).label("last"))
        .where(Bill.account_id.in_(account_ids), Bill.status == "posted")
        .group_by(Bill.account_id)
        .subquery()
    )


def _draft(
    session: Session,
    run: BillRun | _Rebill,
    account: Account,
    versions: dict[int, list],
    rules: reads.Rules,
    data: _Prefetched,
) -> Bill:
    exceptions: list[str] = []
    use = _Use()
    meters = {s.meter.id: s.meter for s in account.services if s.meter is not None and _in_period(s, run)}
    # A meter exchanged during the period served the premise until its final read: its use counts too.
    for old in data.removed.get(account.premise_id, []):
        if run.period_start < old.removed_on <= run.period_end and meters:
            meters.setdefault(old.id, old)
    for meter in meters.values():
        _meter_use(session, run, meter, use, rules, data.reads.get(meter.id, []))
    exceptions += use.exceptions
    lines: list[rating.LineDraft] = []
    days = (run.period_end - run.period_start).days
    if not any(code in ("missing_read", "below_previous") for code in exceptions):
        for service in account.services:
            if not _in_period(service, run):
                continue
            usage = rating.Usage(
                quantity=use.quantity
                if service.service_type in ("water", "sewer", "irrigation", "recycled")
                else Decimal(0),
                meter_size=service.meter.size if service.meter else _water_meter_size(account),
                options={k: str(v) for k, v in (service.options or {}).items()},
                dwelling_units=account.premise.dwelling_units,
                water_quantity=use.quantity,
            )
            try:
                lines += rating.rate_period(
                    service.service_type,
                    versions.get(service.rate_schedule_id, []),
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
    bill = Bill(
        account_id=account.id,
        bill_run_id=run.id,
        period_start=run.period_start,
        period_end=run.period_end,
        bill_date=run.bill_date,
        due_date=run.due_date,
        previous_balance_cents=balance,
        payments_since_cents=0,
        current_charges_cents=current,
        total_due_cents=balance + current,
        status="draft",
        estimated=use.estimated,
        exceptions=",".join(dict.fromkeys(exceptions)) or None,
        lines=[
            BillLine(
                sequence=n,
                service_type=line.service,
                description=line.description[:200],
                quantity=line.quantity,
                unit=line.unit[:10],
                unit_price=line.unit_price,
                amount_cents=line.amount_cents,
                rate_version_id=line.rate_version_id,
            )
            for n, line in enumerate(lines, start=1)
        ],
    )
    bill.usages = use.rows
    return bill


def _in_period(service: Service, run: BillRun | _Rebill) -> bool:
    return service.started_on < run.period_end and (service.ended_on is None or service.ended_on > run.period_start)


def _water_meter_size(account: Account) -> str | None:
    return next((s.meter.size for s in account.services if s.meter is not None), None)


def _meter_use(
    session: Session, run: BillRun, meter: Meter, use: _Use, rules: reads.Rules, meter_reads: list[MeterRead]
) -> None:
    window = timedelta(days=READ_WINDOW_DAYS)
    in_window = [r for r in meter_reads if run.period_start + window < r.read_on <= run.period_end + window]
    current = in_window[-1] if in_window else None
    cutoff = current.read_on - timedelta(days=1) if current else run.period_start + window
    earlier = [r for r in meter_reads if r.read_on <= cutoff]
    previous = earlier[-1] if earlier else None
    if current is None:
        history = _history(meter, [r for r in meter_reads if r.read_on <= run.period_start])
        try:
            guess = reads.estimate(run.period_start, run.period_end, history)
        except InvalidInput:
            use.exceptions.append("missing_read")
            use.rows.append(
                BillUsage(
                    meter_id=meter.id,
                    previous_read=previous,
                    previous_value=previous.value if previous else None,
                    quantity=Decimal(0),
                    note="No read and no history to estimate from; order a read",
                )
            )
            return
        base = previous.value if previous else Decimal(0)
        value = (base + guess.quantity) % (Decimal(10) ** meter.dials)
        current = MeterRead(
            meter_id=meter.id,
            read_on=run.period_end,
            value=value,
            source="estimate",
            status="estimated",
            note=f"Estimated: {guess.method}"[:300],
        )
        session.add(current)
        use.estimated = True
    if current.status == "exception":
        use.exceptions.append("read_review")
        if current.exception and "high" in current.exception:
            use.exceptions.append("high")
    if previous is None:
        use.rows.append(
            BillUsage(
                meter_id=meter.id,
                current_read=current,
                current_value=current.value,
                quantity=Decimal(0),
                note="First read of this meter",
            )
        )
        return
    try:
        got = reads.consumption(previous.value, current.value, meter.dials, meter.multiplier, rules)
    except InvalidInput:
        use.exceptions.append("below_previous")
        return
    use.quantity += got.quantity
    use.rows.append(
        BillUsage(
            meter_id=meter.id,
            previous_read=previous,
            current_read=current,
            previous_value=previous.value,
            current_value=current.value,
            quantity=got.quantity,
            estimated=current.source == "estimate",
            note="Meter dials rolled over" if got.rollover else None,
        )
    )


def _history(meter: Meter, rows: list[MeterRead]) -> list[reads.Period]:
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
    stmt = select(Bill).where(Bill.bill_run_id == run.id, Bill.status == "draft").options(selectinload(Bill.lines))
    if account_ids is not None:
        stmt = stmt.where(Bill.account_id.in_(list(account_ids)))
    held = 0
    ready: list[Bill] = []
    for bill in session.scalars(stmt.order_by(Bill.account_id)).all():
        if any(code in HOLDING for code in (bill.exceptions or "").split(",")):
            held += 1
        else:
            ready.append(bill)
    _post_bills(session, ready, actor)
    done = len(ready)
    session.flush()
    _lock(session, run)
    remaining = session.scalar(select(func.count(Bill.id)).where(Bill.bill_run_id == run.id, Bill.status == "draft"))
    held_total = sum(
        1
        for (codes,) in session.execute(
            select(Bill.exceptions).where(Bill.bill_run_id == run.id, Bill.status == "draft")
        )
        if any(c in HOLDING for c in (codes or "").split(","))
    )
    if remaining == held_total and run.status != "posted":
        run.status, run.posted_at, run.posted_by_id = "posted", utcnow(), actor.id
        audit.record(
            session, "bill_run.post", actor=actor, entity_type="bill_run", entity_id=run.id, after={"held": held_total}
        )
    return RunStep(run, done, held)


def _post_bills(session: Session, bills: list[Bill], actor: User | None) -> None:
    """Post drafts together: three grouped queries for the accounts' figures, one flush for
    all the ledger transactions, then the bills' numbers and totals."""
    if not bills:
        return
    ids = [b.account_id for b in bills]
    balances = _balances(session, ids)
    last_bill = _last_bill_dates(ids)
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
                LedgerTransaction.account_id.in_(ids),
                LedgerTransaction.effective_on >= last_bill.c.last,
                LedgerEntry.amount_cents < 0,
            )
            .group_by(LedgerTransaction.account_id)
        ).all()
    )
    txns: dict[int, ledger.Transaction] = {}
    for bill in bills:
        by_service: dict[str, int] = defaultdict(int)
        for line in bill.lines:
            by_service[line.service_type] += line.amount_cents
        if any(by_service.values()):
            txn = ledger.bill_transaction(
                bill.account_id,
                bill.bill_date,
                bill.due_date,
                dict(by_service),
                memo=f"Bill for {bill.period_start:%m/%d/%Y} to {bill.period_end - timedelta(days=1):%m/%d/%Y}",
            )
            ledger.check_balanced(txn)
            txns[bill.id] = txn
    # Transactions and entries in two multi-row inserts, ids reserved up front.
    txn_ids = dict(zip(txns, _reserve_ids(session, "ledger_transaction", len(txns)), strict=True))
    posted_at = utcnow()
    actor_id = actor.id if actor else None
    if txns:
        session.execute(
            insert(LedgerTransaction.__table__),
            [
                {
                    "id": txn_ids[bill_id],
                    "kind": t.kind.value,
                    "account_id": t.entries[0].account_id,
                    "effective_on": t.effective_date,
                    "due_on": t.due_date,
                    "memo": t.memo,
                    "reverses_id": None,
                    "posted_at": posted_at,
                    "posted_by_id": actor_id,
                }
                for bill_id, t in txns.items()
            ],
        )
        session.execute(
            insert(LedgerEntry.__table__),
            [
                {
                    "transaction_id": txn_ids[bill_id],
                    "gl_account": e.gl_account,
                    "account_id": e.account_id,
                    "service_type": e.service,
                    "amount_cents": e.amount_cents,
                }
                for bill_id, t in txns.items()
                for e in t.entries
            ],
        )
    for bill in bills:
        balance = balances.get(bill.account_id, 0)
        credits_since = -int(credits.get(bill.account_id) or 0)
        bill.number = f"{bill.id:09d}"
        bill.previous_balance_cents = balance + credits_since
        bill.payments_since_cents = credits_since
        bill.total_due_cents = balance + bill.current_charges_cents
        bill.ledger_transaction_id = txn_ids.get(bill.id)
        bill.status = "posted"


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
) -> Bill:
    """Void a posted bill (its transaction reversed, linked to it) and post a corrected one for
    the same period from today's reads and rates. All in the caller's transaction: if the new
    bill cannot be made (a read still held, a rate that fails), nothing changes."""
    if actor.role not in APPROVERS:
        raise NotAllowed("only a billing supervisor voids and rebills a bill")
    if not (reason or "").strip():
        raise InvalidInput("say why the bill is voided", "reason")
    if bill.status != "posted":
        raise InvalidInput(f"bill {bill.number or bill.id} is {bill.status}; only a posted bill is voided", "status")
    if bill.ledger_transaction_id is not None:
        posting.reverse(
            session, bill.ledger_transaction_id, today, f"Void of bill {bill.number}: {reason.strip()}", actor.id
        )
    bill.status = "voided"
    account = session.scalar(
        select(Account)
        .where(Account.id == bill.account_id)
        .options(selectinload(Account.services).selectinload(Service.meter), selectinload(Account.premise))
    )
    assert account is not None
    period = _Rebill(bill.bill_run_id, bill.period_start, bill.period_end, today, today + timedelta(days=due_days))
    # Reads this period: the ones the voided bill used may have been corrected since.
    session.flush()
    new = _draft(session, period, account, _versions(session), reads.Rules(), _prefetch(session, period, [account]))
    session.add(new)
    held = [c for c in (new.exceptions or "").split(",") if c in HOLDING]
    if held:
        raise InvalidInput(
            "the new bill cannot be made yet: " + ", ".join(EXCEPTION_LABELS.get(c, c).lower() for c in held),
            "reads",
        )
    session.flush()
    _post_bills(session, [new], actor)
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
