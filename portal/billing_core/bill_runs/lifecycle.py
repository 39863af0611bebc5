"""A bill run's life: created for a cycle and period, calculated (``drafting``), its
register reviewed, approved by a supervisor, posted (``posting``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .. import audit, permissions
from ..errors import InvalidInput
from ..models import (
    Account,
    Bill,
    BillingCycle,
    BillLine,
    BillRun,
    RateSchedule,
    RateScheduleVersion,
    User,
)
from ..permissions import Action
from ..status import BILL_RUN_TRANSITIONS, BillRunStatus, BillStatus, move
from .drafting import HOLDING
from .rows import cycle_accounts


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
            BillRun.status != BillRunStatus.CANCELLED,
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


def chunks(ids: Sequence[int], size: int) -> list[list[int]]:
    return [list(ids[i : i + size]) for i in range(0, len(ids), size)]


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


def register(session: Session, run: BillRun) -> Register:
    reg = Register(run)
    bills = session.execute(
        select(Bill.status, Bill.current_charges_cents, Bill.exceptions, Account.number, Account.customer_class)
        .join(Account, Account.id == Bill.account_id)
        .where(Bill.bill_run_id == run.id)
    ).all()
    for status, cents, exceptions, number, klass in bills:
        reg.drafts += status == BillStatus.DRAFT
        reg.posted += status == BillStatus.POSTED
        reg.total_cents += cents
        count, total = reg.by_class.get(klass, (0, 0))
        reg.by_class[klass] = (count + 1, total + cents)
        codes = [c for c in (exceptions or "").split(",") if c]
        reg.held += status == BillStatus.DRAFT and any(c in HOLDING for c in codes)
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


def approve(session: Session, run: BillRun, actor: User, *, now: datetime) -> BillRun:
    """A supervisor approves a calculated run (at ``now``); then it may be posted."""
    permissions.require(actor, Action.BILL_RUNS_APPROVE)
    if run.status != BillRunStatus.CALCULATED:
        raise InvalidInput(f"run {run.id} is {run.status}; only a calculated run is approved", "status")
    move(BILL_RUN_TRANSITIONS, run, BillRunStatus.APPROVED)
    run.approved_by_id, run.approved_at = actor.id, now
    audit.record(
        session,
        "bill_run.approve",
        actor=actor,
        entity_type="bill_run",
        entity_id=run.id,
        after={"register": _summary(register(session, run))},
    )
    return run


def _summary(reg: Register) -> dict:
    return {
        "drafts": reg.drafts,
        "held": reg.held,
        "total_cents": reg.total_cents,
        "exceptions": {k: len(v) for k, v in reg.exceptions.items()},
    }
