"""Field orders for the staff pages: the field staff's list of open orders by route (their
own, their crew's, and nobody's), the door-tag route sheet, the account page's panel, the
office's list of work orders with its filters and the new-order form; marking done (with a
photo) or not done, assigning, cancelling and queueing a reconnection; the re-read order of
the read review; the open work by person for the supervisor's dashboard
(``billing_core.field_orders`` does each, audited)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import Session, joinedload

from ..billing_core import field_orders, permissions, read_review
from ..billing_core.errors import FieldErrors, InvalidInput, NotFound
from ..billing_core.models import (
    Account,
    AuditEvent,
    Customer,
    Meter,
    MeterRead,
    Notice,
    Premise,
    Route,
    ServiceRequest,
    User,
    WorkOrder,
)
from ..billing_core.permissions import Action


@dataclass(frozen=True)
class OrderRow:
    order: WorkOrder
    account_number: str
    customer_name: str
    route: str
    walk_sequence: int | None
    #: Past its due date and not done.
    overdue: bool = False
    #: Who works it: a person's name, a crew, or "".
    assignee: str = ""


@dataclass(frozen=True)
class RouteGroup:
    route: str
    rows: list[OrderRow]


def _rows(
    session: Session, where: list, limit: int = 2000, today: date | None = None, by_due: bool = False
) -> list[OrderRow]:
    route_order = (Route.code.nulls_last(), Premise.walk_sequence.nulls_last(), Premise.address_line1, WorkOrder.id)
    found = session.execute(
        select(WorkOrder, Account.number, Route.code, Route.name, Premise.walk_sequence)
        .join(Premise, Premise.id == WorkOrder.premise_id)
        .outerjoin(Route, Route.id == Premise.route_id)
        .outerjoin(Account, Account.id == WorkOrder.account_id)
        .options(joinedload(WorkOrder.premise))
        .where(*where)
        .order_by(*((WorkOrder.due_on, *route_order) if by_due else route_order))
        .limit(limit)
    ).all()
    people = _names(session, {o.assigned_to_id for o, *_ in found if o.assigned_to_id})
    names = {}
    ids = {o.account_id for o, *_ in found if o.account_id}
    if ids:
        names = dict(
            session.execute(
                select(Account.id, Customer.name)
                .join(Customer, Customer.id == Account.customer_id)
                .where(Account.id.in_(ids))
            ).all()
        )
    return [
        OrderRow(
            o,
            number or "",
            names.get(o.account_id or 0, ""),
            f"{code} {rname}" if code else "No route",
            seq,
            today is not None and field_orders.is_overdue(o, today),
            _assignee(o, people),
        )
        for o, number, code, rname, seq in found
    ]


def _names(session: Session, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    return {
        i: name or email
        for i, name, email in session.execute(
            select(User.id, User.display_name, User.email).where(User.id.in_(sorted(ids)))
        )
    }


def _assignee(order: WorkOrder, people: dict[int, str]) -> str:
    person = people.get(order.assigned_to_id or 0, "")
    crew = f"crew {order.crew}" if order.crew else ""
    return ", ".join(p for p in (person, crew) if p)


def _groups(rows: list[OrderRow]) -> list[RouteGroup]:
    out: list[RouteGroup] = []
    for row in rows:
        if not out or out[-1].route != row.route:
            out.append(RouteGroup(row.route, []))
        out[-1].rows.append(row)
    return out


@dataclass(frozen=True)
class FieldList:
    on: date
    groups: list[RouteGroup]
    reasons: dict[str, str]
    #: Field staff mark orders done here; the office who manages orders only reads the list.
    can_work: bool
    #: The crew whose orders are shown besides one's own ("" none), and the crews with open orders.
    crew: str = ""
    crews: tuple[str, ...] = ()
    everyone: bool = False


def _may_see(user: User) -> bool:
    """Field staff, and the office who manages field orders, see the lists."""
    if permissions.can(user.role, Action.FIELD_ORDERS_MANAGE):
        return permissions.can(user.role, Action.FIELD_ORDERS_WORK)
    permissions.require(user, Action.FIELD_ORDERS_WORK)
    return True


def _crews(session: Session) -> tuple[str, ...]:
    return tuple(
        session.scalars(
            select(WorkOrder.crew)
            .where(WorkOrder.status == "open", WorkOrder.crew.is_not(None))
            .group_by(WorkOrder.crew)
            .order_by(WorkOrder.crew)
        )
    )


def field_list(session: Session, user: User, on: date, crew: str = "", everyone: bool = False) -> FieldList:
    """The open orders by route in walk order: the user's own and ``crew``'s (whenever due),
    and those given to nobody due by ``on``; with ``everyone``, every open order due by ``on``
    and the user's own."""
    can_work = _may_see(user)
    crew = " ".join(crew.split())[:60]
    mine = or_(WorkOrder.assigned_to_id == user.id, *([WorkOrder.crew == crew] if crew else []))
    nobody = and_(WorkOrder.assigned_to_id.is_(None), WorkOrder.crew.is_(None), WorkOrder.due_on <= on)
    shown = or_(mine, WorkOrder.due_on <= on) if everyone else or_(mine, nobody)
    rows = _rows(session, [WorkOrder.status == "open", shown], today=on)
    return FieldList(on, _groups(rows), field_orders.NOT_DONE_REASONS, can_work, crew, _crews(session), everyone)


def door_tag_sheet(session: Session, user: User, on: date) -> FieldList:
    """The open door tags due by ``on`` in route order, with the amount and the deadline."""
    can_work = _may_see(user)
    rows = _rows(session, [WorkOrder.status == "open", WorkOrder.kind == "door_tag", WorkOrder.due_on <= on])
    return FieldList(on, _groups(rows), field_orders.NOT_DONE_REASONS, can_work)


def _order(session: Session, order_id: int) -> WorkOrder:
    order = session.get(WorkOrder, order_id)
    if order is None:
        raise NotFound(f"work order {order_id}")
    return order


@dataclass(frozen=True)
class Photo:
    """A photo uploaded with a completion: its declared type and its bytes (read up to one
    byte past the limit, so one too large is known)."""

    content_type: str
    data: bytes


#: Where field photos are kept, under files_dir (the folder the app keeps its files in).
PHOTO_FOLDER = "work_orders"


def mark_done(
    session: Session,
    user: User,
    order_id: int,
    values: Mapping[str, str],
    on: date,
    now: datetime,
    tz: ZoneInfo,
    photo: Photo | None = None,
    files_dir: str | None = None,
) -> tuple[WorkOrder, list[Notice]]:
    """``values``: time (HH:MM), meter_read, lock_or_tag, and the other fields of
    ``field_orders.parse_completion`` (day, serial, notes, new_read, a test's result and
    flows). The whole form is checked (the photo too: an image of at most 5 MB) and a
    refusal changes nothing: ``FieldErrors`` names bad fields. The photo is kept under
    ``files_dir/work_orders``. Returns the order and the notices it issued (a reconnection
    tells the customer)."""
    permissions.require(user, Action.FIELD_ORDERS_WORK)
    order = _order(session, order_id)
    errors: dict[str, InvalidInput] = {}
    done: field_orders.Completion | None = None
    try:
        done = field_orders.parse_completion(
            order, on, values.get("time", ""), values.get("meter_read", ""), values.get("lock_or_tag", ""), tz,
            extra=values,
        )  # fmt: skip
    except FieldErrors as exc:
        errors.update(exc.errors)
    target: Path | None = None
    if photo is not None:
        try:
            suffix = field_orders.check_photo(photo.content_type, len(photo.data))
            name = f"{PHOTO_FOLDER}/order-{order.id}-{hashlib.sha256(photo.data).hexdigest()[:16]}.{suffix}"
            if done is not None:
                done = replace(done, photo_path=name)
            target = Path(files_dir or ".") / name
        except FieldErrors as exc:
            errors.update(exc.errors)
    if errors:
        raise FieldErrors(errors)
    assert done is not None
    with session.begin_nested():
        issued = field_orders.complete(session, user, order, done, now)
    if photo is not None and target is not None:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(photo.data)
    return order, issued


def mark_not_done(session: Session, user: User, order_id: int, values: dict[str, str], now: datetime) -> WorkOrder:
    permissions.require(user, Action.FIELD_ORDERS_WORK)
    order = _order(session, order_id)
    field_orders.not_done(session, user, order, values.get("reason", ""), values.get("detail", ""), now)
    return order


def _account(session: Session, number: str) -> Account:
    account = session.scalar(select(Account).where(Account.number == number.strip()))
    if account is None:
        raise NotFound(f"account {number}")
    return account


@dataclass(frozen=True)
class Panel:
    account: Account
    orders: list[WorkOrder]
    can_manage: bool
    can_reconnect: bool
    events: list[AuditEvent]
    names: dict[int, str]
    #: The day orders past due are overdue from.
    today: date | None = None


def panel(session: Session, user: User, number: str, today: date | None = None) -> Panel:
    permissions.require(user, Action.STAFF_VIEW)
    account = _account(session, number)
    orders = list(
        session.scalars(
            select(WorkOrder).where(WorkOrder.account_id == account.id).order_by(WorkOrder.id.desc()).limit(200)
        )
    )
    waiting = any(
        o.kind == "shutoff"
        and o.status == "done"
        and not any(r.follows_id == o.id and r.status in ("open", "done") for r in orders)
        for o in orders
    )
    events = list(
        session.scalars(
            select(AuditEvent)
            .where(
                AuditEvent.entity_type == "work_order", AuditEvent.entity_id.in_([str(o.id) for o in orders] or ["-"])
            )
            .order_by(AuditEvent.occurred_at.desc(), AuditEvent.id.desc())
            .limit(50)
        )
    )
    ids = {o.completed_by_id for o in orders if o.completed_by_id} | {
        o.assigned_to_id for o in orders if o.assigned_to_id
    }
    names = dict(session.execute(select(User.id, User.email).where(User.id.in_(ids))).all()) if ids else {}
    can = permissions.can(user.role, Action.FIELD_ORDERS_MANAGE)
    return Panel(account, orders, can, can and waiting, events, names, today)


def cancel(session: Session, user: User, number: str, order_id: int, reason: str, now: datetime) -> WorkOrder:
    permissions.require(user, Action.FIELD_ORDERS_MANAGE)
    account = _account(session, number)
    order = _order(session, order_id)
    if order.account_id != account.id:
        raise NotFound(f"work order {order_id} of account {number}")
    field_orders.cancel(session, user, order, reason, now)
    return order


def queue_reconnection(session: Session, user: User, number: str, on: date, now: datetime, when: str = "") -> WorkOrder:
    """``when``: "after_hours", "business_hours" or "" (by the clock)."""
    permissions.require(user, Action.FIELD_ORDERS_MANAGE)
    account = _account(session, number)
    hours = {"after_hours": True, "business_hours": False}.get(when)
    return field_orders.queue_reconnection(session, user, account, on, now, hours)


# --- The office's list of work orders (issue 16) ---------------------------------------------------

#: The list's filters and their choices.
STATUSES = {"open": "Open", "done": "Done", "not_done": "Not done", "cancelled": "Cancelled", "all": "Any status"}
DUE = {"": "Any due date", "overdue": "Overdue", "today": "Due by today", "week": "Due within a week"}


@dataclass(frozen=True)
class Filters:
    kind: str = ""
    status: str = "open"
    #: "" anyone, "me", "none" (nobody), a user id, or "crew:<name>".
    assignee: str = ""
    due: str = ""


def parse_filters(values: Mapping[str, str]) -> Filters:
    """The list's filters from its query string; anything unknown is dropped."""
    kind = values.get("kind", "")
    status = values.get("status", "open")
    due = values.get("due", "")
    assignee = values.get("assignee", "").strip()[:70]
    return Filters(
        kind if kind in field_orders.KINDS else "",
        status if status in STATUSES else "open",
        assignee,
        due if due in DUE else "",
    )


@dataclass(frozen=True)
class WorkOrderList:
    today: date
    filters: Filters
    rows: list[OrderRow]
    overdue_count: int
    #: Who orders may be given to, and the crews with open orders (for the filters and forms).
    people: list[User]
    crews: tuple[str, ...]
    can_manage: bool
    #: The list was cut at this many rows.
    limit: int
    #: order id -> the assignment form as it was filled in (shown again with its errors).
    forms: dict[int, dict[str, object]]


def _may_list(user: User) -> None:
    if not any(
        permissions.can(user.role, a)
        for a in (Action.FIELD_ORDERS_MANAGE, Action.FIELD_ORDERS_WORK, Action.WORK_SUPERVISE)
    ):
        permissions.require(user, Action.FIELD_ORDERS_MANAGE)


LIST_LIMIT = 500


def work_order_list(
    session: Session, user: User, filters: Filters, today: date, forms: dict[int, dict[str, object]] | None = None
) -> WorkOrderList:
    """The work orders the filters pick, by due date (the most overdue first) then route."""
    _may_list(user)
    where: list = []
    if filters.kind:
        where.append(WorkOrder.kind == filters.kind)
    if filters.status != "all":
        where.append(WorkOrder.status == filters.status)
    if filters.assignee == "me":
        where.append(WorkOrder.assigned_to_id == user.id)
    elif filters.assignee == "none":
        where += [WorkOrder.assigned_to_id.is_(None), WorkOrder.crew.is_(None)]
    elif filters.assignee.startswith("crew:"):
        where.append(WorkOrder.crew == filters.assignee.removeprefix("crew:"))
    elif filters.assignee.isdigit():
        where.append(WorkOrder.assigned_to_id == int(filters.assignee))
    if filters.due == "overdue":
        where += [WorkOrder.status == "open", WorkOrder.due_on < today]
    elif filters.due == "today":
        where.append(WorkOrder.due_on <= today)
    elif filters.due == "week":
        where.append(WorkOrder.due_on <= today + timedelta(days=7))
    rows = _rows(session, where, LIST_LIMIT, today=today, by_due=True)
    overdue = session.scalar(
        select(func.count()).select_from(WorkOrder).where(WorkOrder.status == "open", WorkOrder.due_on < today)
    )
    return WorkOrderList(
        today,
        filters,
        rows,
        int(overdue or 0),
        field_orders.field_people(session),
        _crews(session),
        permissions.can(user.role, Action.FIELD_ORDERS_MANAGE) or permissions.can(user.role, Action.WORK_SUPERVISE),
        LIST_LIMIT,
        forms or {},
    )


def assign_order(
    session: Session, user: User, order_id: int, values: Mapping[str, str], today: date, now: datetime
) -> WorkOrder:
    """Give an open order to a person or a crew with a due date (``assigned_to``, ``crew``,
    ``due_on``). ``FieldErrors`` by field; a refusal changes nothing."""
    if not permissions.can(user.role, Action.WORK_SUPERVISE):
        permissions.require(user, Action.FIELD_ORDERS_MANAGE)
    order = _order(session, order_id)
    assignment = field_orders.parse_assignment(session, values, today)
    with session.begin_nested():
        field_orders.assign(session, user, order, assignment, now)
    return order


@dataclass(frozen=True)
class NewOrderPage:
    kinds: dict[str, str]
    people: list[User]
    crews: tuple[str, ...]
    #: The account the form is for, when one was named and found.
    account: Account | None
    meter: Meter | None


def new_order_page(session: Session, user: User, account_number: str = "") -> NewOrderPage:
    permissions.require(user, Action.FIELD_ORDERS_MANAGE)
    account = (
        session.scalar(select(Account).where(Account.number == account_number.strip())) if account_number else None
    )
    return NewOrderPage(
        {k: field_orders.KINDS[k] for k in field_orders.HAND_KINDS},
        field_orders.field_people(session),
        _crews(session),
        account,
        field_orders.account_meter(session, account) if account is not None else None,
    )


def create_order(session: Session, user: User, values: Mapping[str, str], today: date, now: datetime) -> WorkOrder:
    """Open a work order by hand from the new-order form (``field_orders.parse_new_order``):
    ``FieldErrors`` by field when any of it is wrong, and nothing is written."""
    permissions.require(user, Action.FIELD_ORDERS_MANAGE)
    new = field_orders.parse_new_order(session, values, today)
    with session.begin_nested():
        return field_orders.create(session, user, new, now)


def request_order(
    session: Session,
    user: User | None,
    request_id: int,
    account_number: str,
    now: datetime,
    *,
    due_on: date | None = None,
    assigned_to_id: int | None = None,
    crew: str | None = None,
) -> WorkOrder:
    """The turn-on (a start, or a transfer's new account) or turn-off (a stop, or a
    transfer's old account) order a customer's request needs, once
    (``field_orders.open_for_request``). For the account opening and request work."""
    request = session.get(ServiceRequest, request_id)
    account = session.scalar(select(Account).where(Account.number == account_number.strip()))
    if request is None or account is None:
        raise NotFound(f"request {request_id} or account {account_number}")
    return field_orders.open_for_request(
        session, user, request, account, now, due_on=due_on, assigned_to_id=assigned_to_id, crew=crew
    )


#: A re-read ordered from the read review is due this many days later.
REREAD_DAYS = 2


def reread_order(
    session: Session,
    user: User,
    read_id: int,
    note: str,
    *,
    today: date,
    now: datetime,
    remote_addr: str | None = None,
) -> WorkOrder:
    """The read review's "order a re-read": the read stays held (``read_review.order_reread``)
    and a re-read work order for its meter goes to the field, due in ``REREAD_DAYS``; the
    re-read replaces or confirms the held read when it is done."""
    permissions.require(user, Action.READS_REVIEW)
    permissions.require(user, Action.FIELD_ORDERS_MANAGE)
    read = session.get(MeterRead, read_id)
    if read is None:
        raise NotFound(f"read {read_id}")
    try:
        with session.begin_nested():
            read_review.order_reread(session, read, user, note, remote_addr, now=now)
            return field_orders.open_reread(session, user, read, now, today + timedelta(days=REREAD_DAYS), note)
    except InvalidInput as exc:
        raise FieldErrors({"read": exc}) from exc


# --- For the supervisor's dashboard ----------------------------------------------------------------


@dataclass(frozen=True)
class AssigneeWork:
    """The open work orders of one person or crew (both None: given to nobody)."""

    user_id: int | None
    #: The person's name (or email), ``crew <name>``, or "Nobody".
    name: str
    crew: str | None
    open: int
    overdue: int
    #: The earliest due date among them (how far behind the oldest is).
    oldest_due: date


def open_work_by_assignee(session: Session, today: date) -> list[AssigneeWork]:
    """Open work orders counted by person (and crew), with how many are overdue on ``today``
    and the earliest due date: one grouped query. Most overdue first. Who may see it is the
    caller's to check (the supervisor dashboard: ``WORK_SUPERVISE``)."""
    late = func.sum(case((WorkOrder.due_on < today, 1), else_=0))
    found = session.execute(
        select(WorkOrder.assigned_to_id, WorkOrder.crew, func.count(), late, func.min(WorkOrder.due_on))
        .where(WorkOrder.status == "open")
        .group_by(WorkOrder.assigned_to_id, WorkOrder.crew)
    ).all()
    people = _names(session, {i for i, *_ in found if i})
    out = []
    for user_id, crew, count, overdue, oldest in found:
        name = people.get(user_id, "") if user_id else ""
        label = ", ".join(p for p in (name, f"crew {crew}" if crew else "") if p) or "Nobody"
        out.append(AssigneeWork(user_id, label, crew, int(count), int(overdue or 0), oldest))
    return sorted(out, key=lambda w: (-w.overdue, w.oldest_due, w.name))


def photo(session: Session, user: User, order_id: int, files_dir: str) -> tuple[bytes, str]:
    """The photo kept with an order, and its type (for the office's pages)."""
    _may_list(user)
    order = _order(session, order_id)
    if not order.photo_path or ".." in order.photo_path:
        raise NotFound(f"photo of work order {order_id}")
    path = Path(files_dir) / order.photo_path
    if not path.is_file():
        raise NotFound(f"photo of work order {order_id}")
    suffix = path.suffix.removeprefix(".").lower()
    return path.read_bytes(), f"image/{'jpeg' if suffix == 'jpg' else suffix}"
