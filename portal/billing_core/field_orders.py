"""Work orders for field staff: door tags, shutoffs, reconnections.

An order is opened (by the daily run, ``open_order``, or by the office), then done (with
the time, the meter read, the lock or tag number) or not done (with a reason) by the
person in the field, or cancelled by the office (with a reason). Every change is audited.

Money and promises move orders (``collection_hooks``): a payment in full (nothing past due
left, or nothing owed) or a payment plan or extension made cancels the account's open
shutoff order and door tag; when the water was already shut off (a done shutoff with no
reconnection after it) it opens the reconnection order, due the same day, and posts the
reconnection fee of the policy (ledger kind ``fee``), within the Act's caps for a
low-income customer (``collection_facts.low_income``).

After hours: a reconnection is after hours when it is queued outside the office's business
hours, ``BUSINESS_HOURS`` (8:00 to 17:00, agency time, ``AGENCY_TZ``) on a business day (not a
weekend, a holiday or an agency closure, ``collection_facts.closed_days``). Crews reconnect
the same day, so a payment made in the evening, on a weekend or a holiday is after hours and
carries the after-hours fee; the office can still queue it for the next business day by
hand instead (``queue_reconnection`` with ``after_hours=False``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import and_, exists, or_, select
from sqlalchemy.orm import Session, aliased

from . import audit, bulk, collection_facts, ledger, notices, permissions, posting
from .aging import age
from .errors import FieldErrors, InvalidInput
from .ladder_policy import SHUTOFF_SERVICES, Ladder, LadderPolicy
from .models import Account, CollectionAction, Notice, User, WorkOrder
from .permissions import Action

KINDS = {"door_tag": "Door tag", "shutoff": "Shutoff", "reconnect": "Reconnection"}
#: The office's business hours, agency time: [start, end).
BUSINESS_HOURS = (time(8, 0), time(17, 0))
AGENCY_TZ = ZoneInfo("America/Los_Angeles")
#: Why an order was not done: the choices on the field staff's form (plus "other").
NOT_DONE_REASONS = {
    "no_access": "Could not reach the meter (locked gate, dog, vehicle)",
    "customer_paid": "Customer showed proof of payment",
    "medical": "Customer reports a medical emergency",
    "meter_problem": "Meter or valve problem",
    "unsafe": "Unsafe to work",
    "other": "Other (say what)",
}


def _audit_state(order: WorkOrder) -> dict[str, object]:
    return {
        "kind": order.kind,
        "status": order.status,
        "due_on": order.due_on.isoformat(),
        "after_hours": order.after_hours,
        "amount_cents": order.amount_cents,
        "completed_at": order.completed_at.isoformat() if order.completed_at else None,
        "meter_read": str(order.meter_read) if order.meter_read is not None else None,
        "lock_or_tag": order.lock_or_tag,
        "not_done_reason": order.not_done_reason,
        "cancelled_reason": order.cancelled_reason,
        "fee_transaction_id": order.fee_transaction_id,
    }


def open_order(
    session: Session,
    account: Account,
    kind: str,
    due_on: date,
    amount_cents: int | None,
    deadline_on: date | None,
    action_id: int | None,
    now: datetime,
    created_by_id: int | None = None,
) -> WorkOrder:
    """Open a door-tag, shutoff or reconnection order at the account's premise. Once: with
    ``action_id``, the order that action already opened; without, an open order of the same
    kind on the account is returned as it is. The action (when given) names the order."""
    if kind not in KINDS:
        raise InvalidInput(f"Unknown field order kind {kind!r}.", "kind")
    action = session.get(CollectionAction, action_id) if action_id is not None else None
    if action is not None and action.work_order_id is not None:
        found = session.get(WorkOrder, action.work_order_id)
        if found is not None:
            return found
    found = session.scalar(
        select(WorkOrder)
        .where(WorkOrder.account_id == account.id, WorkOrder.kind == kind, WorkOrder.status == "open")
        .order_by(WorkOrder.id)
        .limit(1)
    )
    if found is None:
        found = WorkOrder(
            kind=kind,
            account_id=account.id,
            premise_id=account.premise_id,
            status="open",
            due_on=due_on,
            amount_cents=amount_cents,
            deadline_on=deadline_on,
            created_by_id=created_by_id,
            created_at=now,
        )
        session.add(found)
        session.flush()
        audit.record(
            session,
            "work_order.opened",
            actor_label=None if created_by_id else "collections",
            entity_type="work_order",
            entity_id=found.id,
            after={"account": account.number, "action_id": action_id, **_audit_state(found)},
        )
    if action is not None and action.work_order_id is None:
        action.work_order_id = found.id
    session.flush()
    return found


# --- The field staff's work -----------------------------------------------------------------


@dataclass(frozen=True)
class Completion:
    """What field staff report for a done order (parsed by ``parse_completion``)."""

    completed_at: datetime
    meter_read: Decimal | None
    lock_or_tag: str | None


def parse_completion(
    order: WorkOrder, day: date, time_text: str, read_text: str, lock_text: str, tz: ZoneInfo = AGENCY_TZ
) -> Completion:
    """The form's values for ``order`` done on ``day`` at ``time_text`` (HH:MM, agency time),
    or ``FieldErrors`` naming each bad field: the time is required; the meter read is
    required for a shutoff or a reconnection; the lock number for a shutoff and the tag
    number for a door tag."""
    errors: dict[str, InvalidInput] = {}
    moment: datetime | None = None
    try:
        hours = time.fromisoformat(time_text.strip())
        moment = datetime.combine(day, hours, tz)
    except ValueError:
        errors["time"] = InvalidInput("Enter the time the work was done, like 14:30.", "time")
    read: Decimal | None = None
    text = read_text.strip().replace(",", "")
    if text:
        try:
            read = Decimal(text)
            if read < 0 or read.as_tuple().exponent < -4 or abs(read) >= Decimal(10) ** 10:  # type: ignore[operator]
                raise ValueError
        except (ArithmeticError, ValueError):
            errors["meter_read"] = InvalidInput("Enter the meter read as a number, like 01234.", "meter_read")
            read = None
    elif order.kind in ("shutoff", "reconnect"):
        errors["meter_read"] = InvalidInput("Enter the meter read.", "meter_read")
    lock = lock_text.strip()[:40] or None
    if lock is None and order.kind == "shutoff":
        errors["lock_or_tag"] = InvalidInput("Enter the lock number.", "lock_or_tag")
    if lock is None and order.kind == "door_tag":
        errors["lock_or_tag"] = InvalidInput("Enter the door tag number.", "lock_or_tag")
    if errors:
        raise FieldErrors(errors)
    assert moment is not None
    return Completion(moment, read, lock)


def _require_open(order: WorkOrder) -> None:
    if order.status != "open":
        raise FieldErrors.one("order", f"Order {order.id} is {order.status.replace('_', ' ')}, not open.")


def complete(session: Session, actor: User, order: WorkOrder, done: Completion, now: datetime) -> list[Notice]:
    """Field staff mark ``order`` done. A reconnection done tells the customer (a
    ``reconnected`` notice); returns the notices issued."""
    permissions.require(actor, Action.FIELD_ORDERS_WORK)
    session.refresh(order, with_for_update=_locks(session))
    _require_open(order)
    before = _audit_state(order)
    order.status = "done"
    order.completed_at = done.completed_at
    order.completed_by_id = actor.id
    order.meter_read = done.meter_read
    order.lock_or_tag = done.lock_or_tag
    audit.record(
        session, "work_order.done", actor=actor, entity_type="work_order", entity_id=order.id,
        before=before, after=_audit_state(order),
    )  # fmt: skip
    session.flush()
    if order.kind == "reconnect" and order.account_id is not None:
        account = session.get(Account, order.account_id)
        assert account is not None
        on = done.completed_at.astimezone(AGENCY_TZ).date()
        return notices.issue(session, account, "reconnected", on, 0, None, None, None, now)
    return []


def not_done(session: Session, actor: User, order: WorkOrder, reason: str, detail: str, now: datetime) -> None:
    """Field staff could not do ``order``: ``reason`` one of ``NOT_DONE_REASONS`` (with
    ``detail`` in words; required for "other")."""
    permissions.require(actor, Action.FIELD_ORDERS_WORK)
    detail = detail.strip()[:500]
    if reason not in NOT_DONE_REASONS:
        raise FieldErrors.one("reason", "Choose why the work was not done.")
    if reason == "other" and not detail:
        raise FieldErrors.one("detail", "Say why the work was not done.")
    session.refresh(order, with_for_update=_locks(session))
    _require_open(order)
    before = _audit_state(order)
    order.status = "not_done"
    order.completed_at = now
    order.completed_by_id = actor.id
    order.not_done_reason = NOT_DONE_REASONS[reason] + (f": {detail}" if detail else "")
    audit.record(
        session, "work_order.not_done", actor=actor, entity_type="work_order", entity_id=order.id,
        before=before, after=_audit_state(order),
    )  # fmt: skip
    session.flush()


def cancel(session: Session, actor: User, order: WorkOrder, reason: str, now: datetime) -> None:
    """The office cancels an open order, with a reason."""
    permissions.require(actor, Action.FIELD_ORDERS_MANAGE)
    reason = reason.strip()[:500]
    if not reason:
        raise FieldErrors.one("cancel_reason", "Say why the order is cancelled.")
    session.refresh(order, with_for_update=_locks(session))
    _require_open(order)
    _cancel(session, order, reason, actor)


def _cancel(session: Session, order: WorkOrder, reason: str, actor: User | None) -> None:
    before = _audit_state(order)
    order.status = "cancelled"
    order.cancelled_reason = reason
    audit.record(
        session, "work_order.cancelled", actor=actor, actor_label=None if actor else "collections",
        entity_type="work_order", entity_id=order.id, before=before, after=_audit_state(order),
    )  # fmt: skip


def _locks(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


# --- Reconnection -----------------------------------------------------------------------------


def after_hours_at(session: Session, now: datetime, tz: ZoneInfo = AGENCY_TZ) -> bool:
    """Whether ``now`` is outside business hours (the rule in the module's doc)."""
    local = now.astimezone(tz)
    day = local.date()
    if day.weekday() >= 5 or day in collection_facts.closed_days(session, day):
        return True
    return not (BUSINESS_HOURS[0] <= local.time() < BUSINESS_HOURS[1])


def _ladder(policy: LadderPolicy, account: Account) -> Ladder:
    versions = notices.gate_module("ladder_versions")
    if versions is not None:
        return versions.ladder_of(account, account.services, policy)
    types = [s.service_type for s in account.services]
    main = next((s for s in SHUTOFF_SERVICES if s in types), types[0] if types else "*")
    return policy.ladder_for(main, account.customer_class)


def reconnection_fee(session: Session, account: Account, on: date, after_hours: bool) -> int:
    """The reconnection fee the policy in force on ``on`` charges ``account``."""
    policy = notices.policy_on(session, on)
    low = collection_facts.low_income(session, account.id, on)
    return policy.reconnection_fee(_ladder(policy, account), after_hours, low)


def fee_transaction(account_id: int, on: date, cents: int, order_id: int) -> ledger.Transaction:
    return ledger.Transaction(
        ledger.Kind.FEE,
        on,
        (
            ledger.Entry(ledger.receivable(ledger.FEES), cents, account_id, ledger.FEES),
            ledger.Entry(ledger.FEE_REVENUE, -cents, None, ledger.FEES),
        ),
        due_date=on,
        memo=f"Reconnection fee (work order {order_id})",
    )


def _reconnect(
    session: Session,
    account: Account,
    shutoff: WorkOrder,
    on: date,
    now: datetime,
    after_hours: bool,
    actor: User | None,
    why: str,
) -> WorkOrder:
    order = WorkOrder(
        kind="reconnect",
        account_id=account.id,
        premise_id=shutoff.premise_id,
        status="open",
        reason=why,
        due_on=on,
        after_hours=after_hours,
        follows_id=shutoff.id,
        created_by_id=actor.id if actor else None,
        created_at=now,
    )
    session.add(order)
    session.flush()
    fee = reconnection_fee(session, account, on, after_hours)
    order.amount_cents = fee
    if fee > 0:
        row = posting.post(
            session, fee_transaction(account.id, on, fee, order.id), account.id, actor.id if actor else None,
            posted_at=now,
        )  # fmt: skip
        order.fee_transaction_id = row.id
    audit.record(
        session, "work_order.opened", actor=actor, actor_label=None if actor else "collections",
        entity_type="work_order", entity_id=order.id,
        after={"account": account.number, "why": why, "fee_cents": fee, **_audit_state(order)},
    )  # fmt: skip
    session.flush()
    return order


def _pending(session: Session, account_ids: Sequence[int]) -> list[WorkOrder]:
    """The accounts' open door tags and shutoffs, and their done shutoffs with no
    reconnection (open or done) after them: one indexed query per chunk of ids (one in all
    on PostgreSQL)."""
    recon = aliased(WorkOrder)
    out: list[WorkOrder] = []
    for part in bulk.chunks(session, sorted(set(account_ids))):
        out += session.scalars(
            select(WorkOrder)
            .where(
                bulk.among(session, WorkOrder.account_id, part),
                or_(
                    and_(WorkOrder.kind.in_(("door_tag", "shutoff")), WorkOrder.status == "open"),
                    and_(
                        WorkOrder.kind == "shutoff",
                        WorkOrder.status == "done",
                        ~exists().where(
                            recon.follows_id == WorkOrder.id,
                            recon.kind == "reconnect",
                            recon.status.in_(("open", "done")),
                        ),
                    ),
                ),
            )
            .order_by(WorkOrder.account_id, WorkOrder.id)
        )
    return out


def _settle(
    session: Session,
    orders: Sequence[WorkOrder],
    on: date,
    now: datetime,
    why: str,
    actor: User | None = None,
) -> list[WorkOrder]:
    """Cancel the open orders, reconnect the shut-off accounts; returns the reconnections."""
    made: list[WorkOrder] = []
    after_hours: bool | None = None
    for order in orders:
        if order.status == "open":
            _cancel(session, order, why, actor)
        elif order.account_id is not None:
            account = session.get(Account, order.account_id)
            assert account is not None
            if after_hours is None:
                after_hours = after_hours_at(session, now)
            made.append(_reconnect(session, account, order, on, now, after_hours, actor, why))
    session.flush()
    return made


def after_payment(session: Session, account_ids: Sequence[int], as_of: date, now: datetime) -> None:
    """Cancel the pending shutoff order (and door tag) of each account now paid in full; queue
    its reconnection when it was shut off. One query when none is pending."""
    pending = _pending(session, account_ids)
    if not pending:
        return
    postings = collection_facts.postings_for_many(session, sorted({o.account_id for o in pending if o.account_id}))
    paid: set[int | None] = set()
    for account_id, rows in postings.items():
        aged = age(rows, as_of)
        if aged.past_due_cents <= 0 or aged.balance_cents <= 0:
            paid.add(account_id)
    paid |= {o.account_id for o in pending} - set(postings)  # no postings at all: nothing owed
    _settle(session, [o for o in pending if o.account_id in paid], as_of, now, f"Paid in full on {as_of.isoformat()}")


def after_promise(session: Session, account_id: int, as_of: date, now: datetime) -> None:
    """A payment plan or an extension was made: cancel the pending shutoff order (and door
    tag), and reconnect when the water is off."""
    pending = _pending(session, [account_id])
    if pending:
        _settle(session, pending, as_of, now, f"Payment plan or extension made on {as_of.isoformat()}")


def queue_reconnection(
    session: Session, actor: User, account: Account, on: date, now: datetime, after_hours: bool | None = None
) -> WorkOrder:
    """The office queues the reconnection of a shut-off account by hand (after a payment
    taken elsewhere, a protection recorded, a mistake). ``after_hours`` None: by the clock."""
    permissions.require(actor, Action.FIELD_ORDERS_MANAGE)
    shutoffs = [o for o in _pending(session, [account.id]) if o.kind == "shutoff" and o.status == "done"]
    if not shutoffs:
        raise FieldErrors.one("reconnect", f"Account {account.number} has no shutoff waiting for reconnection.")
    hours = after_hours_at(session, now) if after_hours is None else after_hours
    return _reconnect(session, account, shutoffs[-1], on, now, hours, actor, "Queued by the office")


__all__ = [
    "BUSINESS_HOURS",
    "KINDS",
    "NOT_DONE_REASONS",
    "Completion",
    "after_hours_at",
    "after_payment",
    "after_promise",
    "cancel",
    "complete",
    "not_done",
    "open_order",
    "parse_completion",
    "queue_reconnection",
    "reconnection_fee",
]
