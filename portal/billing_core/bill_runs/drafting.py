"""Drafting bills: calculate a run's drafts (or some of them), estimating a read where a
meter has none. Drafts are plain rows that a new calculation replaces, so calculating an
account twice never bills it twice.

A draft with a problem nobody has resolved (``HOLDING``: a read waiting for review, no read
and no history to estimate from, a rate that cannot be computed) is held: it stays a draft
when the run posts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .. import rating, reads
from ..bulk import custom_plans
from ..errors import InvalidInput
from ..models import Bill, BillRun
from ..status import BILL_RUN_TRANSITIONS, BillRunStatus, BillStatus, move
from .rows import (
    READ_WINDOW_DAYS,
    AccountRow,
    Draft,
    Estimate,
    MeterRow,
    Prefetched,
    ReadRow,
    Rebill,
    ServiceRow,
    cycle_accounts,
    drop_drafts,
    load_accounts,
    lock_run,
    prefetch,
    write_drafts,
)

HOLDING = ("missing_read", "read_review", "below_previous", "rating_error")
LARGE_CHANGE = Decimal(2)
ONE = Decimal(1)
METERED = frozenset(("water", "sewer", "irrigation", "recycled"))
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


@dataclass(frozen=True)
class RunStep:
    """What a step did, for the CLI and the staff view."""

    run: BillRun
    accounts: int = 0
    held: int = 0


def calculate(
    session: Session,
    run: BillRun,
    account_ids: Iterable[int] | None = None,
    rules: reads.Rules = reads.Rules(),
    *,
    now: datetime,
) -> RunStep:
    """Draft the bills of some (or all) of the run's accounts, replacing earlier drafts.
    ``now`` stamps the reads it estimates and, when the last chunk is done, the run."""
    after_posting = run.status in (BillRunStatus.POSTING, BillRunStatus.POSTED)
    not_approved = (BillRunStatus.CREATED, BillRunStatus.CALCULATING, BillRunStatus.CALCULATED)
    if run.status not in not_approved and not after_posting:
        raise InvalidInput(f"run {run.id} is {run.status}; only a run not yet approved is calculated", "status")
    ids = list(account_ids) if account_ids is not None else cycle_accounts(session, run.cycle_id)
    if after_posting:
        # Once a run is posting, only its held drafts are calculated again (after their reads are reviewed).
        held_ids = set(
            session.scalars(select(Bill.account_id).where(Bill.bill_run_id == run.id, Bill.status == BillStatus.DRAFT))
        )
        ids = [i for i in ids if i in held_ids]
    elif run.status == BillRunStatus.CREATED:
        move(BILL_RUN_TRANSITIONS, run, BillRunStatus.CALCULATING)
    custom_plans(session)
    dropped = drop_drafts(session, run, ids)
    accounts = load_accounts(session, ids)
    # The run's dates as a plain value: drafting reads them a dozen times an account.
    period = Rebill(run.id, run.period_start, run.period_end, run.bill_date, run.due_date)
    data = prefetch(session, period, accounts)
    drafts = [draft_bill(period, account, rules, data) for account in accounts]
    held = sum(any(code in HOLDING for code in d.exceptions) for d in drafts)
    write_drafts(session, drafts, data, now)
    # Chunks of one run may be calculated side by side by several workers. Only this
    # last step takes the run's row lock, and it counts what has been committed once
    # it holds it, so the last chunk to finish sees every other one and closes the step.
    lock_run(session, run)
    if not after_posting and run.status not in (BillRunStatus.CALCULATING, BillRunStatus.CALCULATED):
        # Approved (or cancelled) while this chunk was working: its drafts must not land.
        raise InvalidInput(f"run {run.id} became {run.status} while this chunk was calculated", "status")
    if after_posting:
        run.accounts_done = session.scalar(select(func.count(Bill.id)).where(Bill.bill_run_id == run.id)) or 0
    else:
        # The run's bills, kept up to date instead of counted again at every chunk (counting
        # a run of 100,000 bills 200 times read 10 million index entries): under the run's
        # lock, each chunk adds the drafts it wrote less those it replaced.
        run.accounts_done += len(drafts) - dropped
    if not after_posting and run.accounts_done >= run.accounts_total:
        move(BILL_RUN_TRANSITIONS, run, BillRunStatus.CALCULATED)
        run.calculated_at = now
    return RunStep(run, len(accounts), held)


@dataclass
class Use:
    quantity: Decimal = Decimal(0)
    estimated: bool = False
    exceptions: list[str] = field(default_factory=list)
    rows: list[list] = field(default_factory=list)


def draft_bill(run: BillRun | Rebill, account: AccountRow, rules: reads.Rules, data: Prefetched) -> Draft:
    exceptions: list[str] = []
    use = Use()
    meters = {s.meter.id: s.meter for s in account.services if s.meter is not None and in_period(s, run)}
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
        served = [s for s in account.services if in_period(s, run)]
        for service in served:
            # A service that started, stopped or changed its terms inside the period is rated
            # for its own days; the period's use is shared by days among the services of its
            # kind that ran one after another (old terms up to the change, new ones after).
            share = _use_share(service, served, run)
            quantity = use.quantity * share if share != 1 else use.quantity
            usage = rating.Usage(
                quantity=quantity if service.service_type in METERED else Decimal(0),
                meter_size=service.meter.size if service.meter else water_size,
                options=service.options,
                dwelling_units=account.dwelling_units,
                water_quantity=quantity,
            )
            try:
                lines += rating.rate_period(
                    service.service_type,
                    data.raters.get(service.rate_schedule_id, []),
                    usage,
                    run.period_start,
                    run.period_end,
                    days,
                    served=(service.started_on, service.ended_on),
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
        BillStatus.DRAFT.value,
        use.estimated,
        ",".join(codes) or None,
    )
    return Draft(
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


def in_period(service: ServiceRow, run: BillRun | Rebill) -> bool:
    return service.started_on < run.period_end and (service.ended_on is None or service.ended_on > run.period_start)


def _days(service: ServiceRow, run: BillRun | Rebill) -> tuple[date, date]:
    """The part of the period the service ran: ``[from, to)``."""
    end = run.period_end if service.ended_on is None else min(run.period_end, service.ended_on)
    return max(run.period_start, service.started_on), end


def _use_share(service: ServiceRow, served: list[ServiceRow], run: BillRun | Rebill) -> Decimal:
    """The service's share of the period's use: its days over the days its kind was served
    (services of one kind side by side each take the whole; one that ran alone takes all of
    it, however few its days: the meter measured just those)."""
    if service.started_on <= run.period_start and (service.ended_on is None or service.ended_on >= run.period_end):
        return ONE  # served the whole period (most services): no days to count
    a, b = _days(service, run)
    if (a, b) == (run.period_start, run.period_end):
        return ONE
    covered: set[date] = set()
    for other in served:
        if other.service_type == service.service_type:
            x, y = _days(other, run)
            covered.update(x + timedelta(days=n) for n in range((y - x).days))
    return Decimal((b - a).days) / Decimal(len(covered)) if covered else Decimal(1)


def _meter_use(
    run: BillRun | Rebill,
    meter: MeterRow,
    use: Use,
    rules: reads.Rules,
    meter_reads: list[ReadRow],
    estimates: list[Estimate],
) -> None:
    # A short period (a final bill) looks no further back than half its length for its read.
    window = timedelta(days=min(READ_WINDOW_DAYS, (run.period_end - run.period_start).days // 2))
    in_window = [r for r in meter_reads if run.period_start + window < r.read_on <= run.period_end + window]
    current: ReadRow | Estimate | None = in_window[-1] if in_window else None
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
        current = Estimate(meter.id, run.period_end, value, f"Estimated: {guess.method}"[:300])
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


def _history(meter: MeterRow, rows: list[ReadRow]) -> list[reads.Period]:
    ordered = rows[-14:]
    out = []
    for a, b in zip(ordered, ordered[1:], strict=False):
        try:
            q = reads.consumption(a.value, b.value, meter.dials, meter.multiplier).quantity
        except InvalidInput:
            continue
        out.append(reads.Period(a.read_on, b.read_on, q))
    return out
