"""Field orders for the staff pages: the field staff's list of open orders by route, the
door-tag route sheet, the account page's panel; marking done or not done, cancelling and
queueing a reconnection (``billing_core.field_orders`` does each, audited)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from ..billing_core import field_orders, permissions
from ..billing_core.errors import NotFound
from ..billing_core.models import Account, AuditEvent, Customer, Notice, Premise, Route, User, WorkOrder
from ..billing_core.permissions import Action


@dataclass(frozen=True)
class OrderRow:
    order: WorkOrder
    account_number: str
    customer_name: str
    route: str
    walk_sequence: int | None


@dataclass(frozen=True)
class RouteGroup:
    route: str
    rows: list[OrderRow]


def _rows(session: Session, where: list, limit: int = 2000) -> list[OrderRow]:
    found = session.execute(
        select(WorkOrder, Account.number, Route.code, Route.name, Premise.walk_sequence)
        .join(Premise, Premise.id == WorkOrder.premise_id)
        .outerjoin(Route, Route.id == Premise.route_id)
        .outerjoin(Account, Account.id == WorkOrder.account_id)
        .options(joinedload(WorkOrder.premise))
        .where(*where)
        .order_by(Route.code.nulls_last(), Premise.walk_sequence.nulls_last(), Premise.address_line1, WorkOrder.id)
        .limit(limit)
    ).all()
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
        OrderRow(o, number or "", names.get(o.account_id or 0, ""), f"{code} {rname}" if code else "No route", seq)
        for o, number, code, rname, seq in found
    ]


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


def _may_see(user: User) -> bool:
    """Field staff, and the office who manages field orders, see the lists."""
    if permissions.can(user.role, Action.FIELD_ORDERS_MANAGE):
        return permissions.can(user.role, Action.FIELD_ORDERS_WORK)
    permissions.require(user, Action.FIELD_ORDERS_WORK)
    return True


def field_list(session: Session, user: User, on: date) -> FieldList:
    """The open orders due by ``on``, by route in walk order."""
    can_work = _may_see(user)
    rows = _rows(session, [WorkOrder.status == "open", WorkOrder.due_on <= on])
    return FieldList(on, _groups(rows), field_orders.NOT_DONE_REASONS, can_work)


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


def mark_done(
    session: Session, user: User, order_id: int, values: dict[str, str], on: date, now: datetime, tz: ZoneInfo
) -> tuple[WorkOrder, list[Notice]]:
    """``values``: time (HH:MM), meter_read, lock_or_tag. ``FieldErrors`` names bad fields.
    Returns the order and the notices it issued (a reconnection tells the customer)."""
    permissions.require(user, Action.FIELD_ORDERS_WORK)
    order = _order(session, order_id)
    done = field_orders.parse_completion(
        order, on, values.get("time", ""), values.get("meter_read", ""), values.get("lock_or_tag", ""), tz
    )
    issued = field_orders.complete(session, user, order, done, now)
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


def panel(session: Session, user: User, number: str) -> Panel:
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
    ids = {o.completed_by_id for o in orders if o.completed_by_id}
    names = dict(session.execute(select(User.id, User.email).where(User.id.in_(ids))).all()) if ids else {}
    can = permissions.can(user.role, Action.FIELD_ORDERS_MANAGE)
    return Panel(account, orders, can, can and waiting, events, names)


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
