"""The supervisor's view of open work: each queue's count and its oldest item, the open work
orders and cases by the person they are assigned to, today's bill runs, the exceptions
waiting; and moving an open work order or case from one person to another (audited).

Every count is one aggregate query on the queue's own table (the columns exist since
migration 0018), so the page costs the same on a small district and a large one. The day
(``today``) comes from the caller.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from . import audit, permissions
from .errors import InvalidInput, NotFound
from .models import (
    Account,
    BillingCycle,
    BillRun,
    EmailOutbox,
    FinalBillReview,
    MeterRead,
    PaymentImport,
    PaymentImportRow,
    ServiceCase,
    ServiceRequest,
    User,
    WorkOrder,
)
from .permissions import STAFF, Action

#: Open states of the work that has an assignee.
OPEN_ORDER = ("open",)
OPEN_CASE = ("open", "pending")
OPEN_REQUEST = ("submitted", "scheduled")
#: What may be reassigned, and the permission the new assignee needs to work it.
REASSIGNABLE = {"work_order": Action.FIELD_ORDERS_WORK, "case": Action.CASES_WORK}
NOUNS = {"work_order": "work order", "case": "case"}


def _days(today: date, at: datetime | date | None) -> int | None:
    if at is None:
        return None
    day = at.date() if isinstance(at, datetime) else at
    return max((today - day).days, 0)


@dataclass(frozen=True)
class QueueLine:
    key: str
    label: str
    count: int
    oldest_days: int | None
    link: str
    #: Past their due date (work orders and cases).
    overdue: int = 0


def queues(session: Session, today: date) -> list[QueueLine]:
    """The open work of each queue: how many, the oldest's age, how many overdue."""

    def one(stmt: Any) -> tuple[int, Any]:
        count, oldest = session.execute(stmt).one()
        return int(count or 0), oldest

    lines: list[QueueLine] = []
    n, oldest = one(
        select(func.count(ServiceRequest.id), func.min(ServiceRequest.created_at)).where(
            ServiceRequest.status.in_(OPEN_REQUEST)
        )
    )
    lines.append(QueueLine("service_requests", "Service requests", n, _days(today, oldest), "/staff/requests"))
    n, oldest, late = session.execute(
        select(
            func.count(WorkOrder.id),
            func.min(WorkOrder.created_at),
            func.count(WorkOrder.id).filter(WorkOrder.due_on < today),
        ).where(WorkOrder.status.in_(OPEN_ORDER))
    ).one()
    lines.append(QueueLine("work_orders", "Work orders", n, _days(today, oldest), "/staff/field", late))
    n, oldest, late = session.execute(
        select(
            func.count(ServiceCase.id),
            func.min(ServiceCase.opened_at),
            func.count(ServiceCase.id).filter(ServiceCase.due_on < today),
        ).where(ServiceCase.status.in_(OPEN_CASE))
    ).one()
    lines.append(QueueLine("cases", "Cases", n, _days(today, oldest), "/staff/cases", late))
    n, oldest = one(
        select(func.count(PaymentImportRow.id), func.min(PaymentImport.imported_at))
        .join(PaymentImport, PaymentImport.id == PaymentImportRow.import_id)
        .where(PaymentImportRow.outcome == "unmatched", PaymentImportRow.resolution.is_(None))
    )
    lines.append(QueueLine("lockbox", "Unmatched bank rows", n, _days(today, oldest), "/staff/payments/imports/queue"))
    n, oldest = one(
        select(func.count(MeterRead.id), func.min(MeterRead.created_at)).where(MeterRead.status == "exception")
    )
    lines.append(QueueLine("read_exceptions", "Read exceptions", n, _days(today, oldest), "/staff/reads"))
    n, oldest = one(
        select(func.count(FinalBillReview.id), func.min(FinalBillReview.entered_at)).where(
            FinalBillReview.status == "held"
        )
    )
    lines.append(
        QueueLine("final_bills", "Final bills held", n, _days(today, oldest), "/staff/approvals?kind=final_bill")
    )
    return lines


def failed_emails(session: Session) -> int:
    return int(session.scalar(select(func.count(EmailOutbox.id)).where(EmailOutbox.status == "failed")) or 0)


@dataclass(frozen=True)
class PersonLine:
    user_id: int | None
    #: Their email; "Unassigned" for work nobody has.
    name: str
    work_orders: int
    cases: int
    oldest_days: int | None
    overdue: int


def by_person(session: Session, today: date) -> list[PersonLine]:
    """Open work orders and cases by assignee (nobody's first), with the oldest and overdue."""
    tally: dict[int | None, dict[str, Any]] = defaultdict(lambda: {"orders": 0, "cases": 0, "oldest": None, "late": 0})

    def add(who: int | None, kind: str, count: int, oldest: Any, late: int) -> None:
        row = tally[who]
        row[kind] += count
        row["late"] += late
        age = _days(today, oldest)
        if age is not None and (row["oldest"] is None or age > row["oldest"]):
            row["oldest"] = age

    for who, count, oldest, late in session.execute(
        select(
            WorkOrder.assigned_to_id,
            func.count(WorkOrder.id),
            func.min(WorkOrder.created_at),
            func.count(WorkOrder.id).filter(WorkOrder.due_on < today),
        )
        .where(WorkOrder.status.in_(OPEN_ORDER))
        .group_by(WorkOrder.assigned_to_id)
    ):
        add(who, "orders", count, oldest, late)
    for who, count, oldest, late in session.execute(
        select(
            ServiceCase.assigned_to_id,
            func.count(ServiceCase.id),
            func.min(ServiceCase.opened_at),
            func.count(ServiceCase.id).filter(ServiceCase.due_on < today),
        )
        .where(ServiceCase.status.in_(OPEN_CASE))
        .group_by(ServiceCase.assigned_to_id)
    ):
        add(who, "cases", count, oldest, late)
    ids = [i for i in tally if i is not None]
    emails = dict(session.execute(select(User.id, User.email).where(User.id.in_(ids))).all()) if ids else {}
    lines = [
        PersonLine(
            who, emails.get(who, str(who)) if who else "Unassigned", t["orders"], t["cases"], t["oldest"], t["late"]
        )
        for who, t in tally.items()
    ]
    lines.sort(key=lambda p: (p.user_id is not None, p.name))
    return lines


@dataclass(frozen=True)
class OpenWork:
    kind: str  # work_order, case
    id: int
    label: str
    what: str
    account_number: str | None
    assignee_id: int | None
    opened_at: datetime
    due_on: date
    link: str

    def age_days(self, today: date) -> int:
        return _days(today, self.opened_at) or 0


def open_work(session: Session, person: int | None = None, unassigned: bool = False, limit: int = 50) -> list[OpenWork]:
    """The oldest open work orders and cases (of one person, or nobody's), to reassign."""
    orders = (
        select(WorkOrder.id, WorkOrder.kind, WorkOrder.reason, Account.number, WorkOrder.assigned_to_id)
        .add_columns(WorkOrder.created_at, WorkOrder.due_on)
        .outerjoin(Account, Account.id == WorkOrder.account_id)
        .where(WorkOrder.status.in_(OPEN_ORDER))
    )
    cases = (
        select(ServiceCase.id, ServiceCase.number, ServiceCase.kind, ServiceCase.subject, Account.number)
        .add_columns(ServiceCase.assigned_to_id, ServiceCase.opened_at, ServiceCase.due_on)
        .outerjoin(Account, Account.id == ServiceCase.account_id)
        .where(ServiceCase.status.in_(OPEN_CASE))
    )
    if unassigned:
        orders, cases = (
            orders.where(WorkOrder.assigned_to_id.is_(None)),
            cases.where(ServiceCase.assigned_to_id.is_(None)),
        )
    elif person is not None:
        orders, cases = (
            orders.where(WorkOrder.assigned_to_id == person),
            cases.where(ServiceCase.assigned_to_id == person),
        )
    work = [
        OpenWork(
            "work_order",
            oid,
            f"Work order {oid}",
            f"{kind.replace('_', ' ')}: {reason}"[:200],
            number,
            who,
            at,
            due,
            "/staff/work-orders",
        )
        for oid, kind, reason, number, who, at, due in session.execute(
            orders.order_by(WorkOrder.created_at, WorkOrder.id).limit(limit)
        )
    ]
    work += [
        OpenWork(
            "case",
            cid,
            f"Case {cnumber}",
            f"{kind.replace('_', ' ')}: {subject}",
            number,
            who,
            at,
            due,
            f"/staff/cases/{cid}",
        )
        for cid, cnumber, kind, subject, number, who, at, due in session.execute(
            cases.order_by(ServiceCase.opened_at, ServiceCase.id).limit(limit)
        )
    ]
    work.sort(key=lambda w: (w.opened_at, w.kind, w.id))
    return work[:limit]


@dataclass(frozen=True)
class RunLine:
    id: int
    cycle: str
    period_start: date
    period_end: date
    bill_date: date
    status: str
    accounts_done: int
    accounts_total: int


def todays_runs(session: Session, today: date) -> list[RunLine]:
    """Bill runs dated today, started today, or still under way (not posted or cancelled)."""
    start = datetime.combine(today, time(), tzinfo=UTC)
    rows = session.execute(
        select(BillRun, BillingCycle.name)
        .join(BillingCycle, BillingCycle.id == BillRun.cycle_id)
        .where(
            or_(
                BillRun.bill_date == today,
                BillRun.created_at >= start,
                BillRun.status.notin_(("posted", "cancelled")),
            )
        )
        .order_by(BillRun.created_at.desc(), BillRun.id.desc())
        .limit(50)
    ).all()
    return [
        RunLine(r.id, name, r.period_start, r.period_end, r.bill_date, r.status, r.accounts_done, r.accounts_total)
        for r, name in rows
    ]


def assignable(session: Session, kind: str) -> list[User]:
    """Active staff who may work ``kind`` (the people it can be moved to)."""
    action = REASSIGNABLE[kind]
    roles = [r.value for r in STAFF if permissions.can(r, action)]
    return list(session.scalars(select(User).where(User.active.is_(True), User.role.in_(roles)).order_by(User.email)))


def reassign(session: Session, actor: User, kind: str, item_id: int, to_user_id: int, now: datetime) -> Any:
    """Move an open work order or case to another person who may work it; audited with
    the assignee before and after."""
    permissions.require(actor, Action.WORK_SUPERVISE)
    if kind not in REASSIGNABLE:
        raise InvalidInput("Only a work order or a case is reassigned.", "kind")
    model: Any = WorkOrder if kind == "work_order" else ServiceCase
    item = session.get(model, item_id, with_for_update=True)
    if item is None:
        raise NotFound(f"{kind} {item_id}")
    if item.status not in (OPEN_ORDER if kind == "work_order" else OPEN_CASE):
        raise InvalidInput(f"This {NOUNS[kind]} is {item.status}: only open work is reassigned.", "to")
    person = session.get(User, to_user_id)
    if person is None or not person.active or not permissions.can(person.role, REASSIGNABLE[kind]):
        raise InvalidInput(f"Choose someone who works {NOUNS[kind]}s.", "to")
    if item.assigned_to_id == person.id:
        raise InvalidInput(f"This {NOUNS[kind]} is already {person.email}'s.", "to")
    before = item.assigned_to_id
    item.assigned_to_id = person.id
    audit.record(
        session,
        f"{kind}.reassigned",
        actor=actor,
        entity_type=kind,
        entity_id=item.id,
        before={"assigned_to": before},
        after={"assigned_to": person.id, "email": person.email, "at": now.isoformat()},
    )
    session.flush()
    return item
