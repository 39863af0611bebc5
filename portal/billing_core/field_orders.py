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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from zoneinfo import ZoneInfo

from sqlalchemy import and_, exists, func, or_, select
from sqlalchemy.orm import Session, aliased

from . import audit, bulk, collection_facts, ledger, notices, permissions, posting, reads
from .aging import age
from .errors import FieldErrors, InvalidInput
from .ladder_policy import SHUTOFF_SERVICES, Ladder, LadderPolicy
from .models import (
    Account,
    AccountStatus,
    Bill,
    CollectionAction,
    FinalBillReview,
    Meter,
    MeterRead,
    MeterStatus,
    Notice,
    Premise,
    ReadSource,
    ReadStatus,
    Service,
    ServiceRequest,
    User,
    WorkOrder,
)
from .permissions import Action

KINDS = {
    "door_tag": "Door tag",
    "shutoff": "Shutoff",
    "reconnect": "Reconnection",
    # Issue 16: general work orders.
    "turn_on": "Turn on",
    "turn_off": "Turn off",
    "read_in": "Read-in",
    "read_out": "Read-out",
    "re_read": "Re-read",
    "meter_set": "Meter install",
    "meter_exchange": "Meter exchange",
    "meter_test": "Meter test",
    "leak": "Leak investigation",
}
#: What the office opens by hand. Door tags and shutoffs come from the ladder (with its
#: protections: ``SHUTOFF_ORDER`` for a shutoff by hand), reconnections from payments and plans.
HAND_KINDS = (
    "turn_on",
    "turn_off",
    "read_in",
    "read_out",
    "re_read",
    "meter_set",
    "meter_exchange",
    "meter_test",
    "leak",
)
#: Orders about the meter on file: the serial entered must be that meter's.
METER_KINDS = frozenset({"turn_on", "turn_off", "read_in", "read_out", "re_read", "meter_exchange", "meter_test"})
#: Orders that set a meter: the serial entered is the meter put in (any stocked meter).
SETS_METER = frozenset({"meter_set", "meter_exchange"})
#: Orders done only with a meter read (an install's first read, an exchange's old out-read).
READ_REQUIRED = frozenset(
    {"shutoff", "reconnect", "turn_on", "turn_off", "read_in", "read_out", "re_read", "meter_set", "meter_exchange"}
)
#: Where the origin of an order is shown.
ORIGINS = {
    "hand": "By hand",
    "request": "Customer request",
    "read_exception": "Read exception",
    "ladder": "Collections",
    "account": "Account opened or changed",
    "case": "Case",
}
#: A photo from the field: an image, at most 5 MB.
PHOTO_MAX_BYTES = 5 * 1024 * 1024
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
        "meter_id": order.meter_id,
        "assigned_to_id": order.assigned_to_id,
        "crew": order.crew,
        "serial_entered": order.serial_entered,
        "notes": order.notes,
        "photo_path": order.photo_path,
        "read_id": order.read_id,
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
    *,
    meter_id: int | None = None,
    assigned_to_id: int | None = None,
    crew: str | None = None,
    notes: str | None = None,
    origin: str | None = None,
    service_request_id: int | None = None,
    read_id: int | None = None,
) -> WorkOrder:
    """Open an order of any of ``KINDS`` at the account's premise. Once: with ``action_id``,
    the order that action already opened; without, an open order of the same kind on the
    account (and the same meter, when one is named) is returned as it is. The action (when
    given) names the order. An order about a meter and none named gets the account's meter
    (``account_meter``). ``origin``: one of ``ORIGINS`` (by default "ladder" with an action,
    else "hand"); ``read_id`` on a re-read: the read held for review it is about."""
    if kind not in KINDS:
        raise InvalidInput(f"Unknown field order kind {kind!r}.", "kind")
    if meter_id is None and kind in METER_KINDS:
        found_meter = account_meter(session, account)
        meter_id = found_meter.id if found_meter is not None else None
    action = session.get(CollectionAction, action_id) if action_id is not None else None
    if action is not None and action.work_order_id is not None:
        found = session.get(WorkOrder, action.work_order_id)
        if found is not None:
            return found
    found = session.scalar(
        select(WorkOrder)
        .where(
            WorkOrder.account_id == account.id,
            WorkOrder.kind == kind,
            WorkOrder.status == "open",
            *([WorkOrder.meter_id == meter_id] if meter_id is not None else []),
        )
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
            meter_id=meter_id,
            assigned_to_id=assigned_to_id,
            crew=(crew or "").strip()[:60] or None,
            notes=(notes or "").strip() or None,
            origin=origin or ("ladder" if action_id is not None else "hand"),
            service_request_id=service_request_id,
            read_id=read_id,
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
class TestResult:
    """A meter test recorded from a meter-test order."""

    result: str
    low_flow_pct: Decimal | None = None
    mid_flow_pct: Decimal | None = None
    high_flow_pct: Decimal | None = None


@dataclass(frozen=True)
class Completion:
    """What field staff report for a done order (parsed by ``parse_completion``)."""

    completed_at: datetime
    meter_read: Decimal | None
    lock_or_tag: str | None
    #: The meter serial scanned or typed at the premise (upper case, no spaces).
    serial: str | None = None
    notes: str | None = None
    #: An exchange: the first read of the meter put in.
    new_read: Decimal | None = None
    test: TestResult | None = None
    #: Where the photo is kept (under files_dir), set by the caller once the photo is checked.
    photo_path: str | None = None
    #: A leak investigation: open a case for the office with what was found.
    open_case: bool = False


def _serial(text: str | None) -> str:
    return "".join((text or "").split()).upper()[:40]


def _pct(text: str, field: str, errors: dict[str, InvalidInput]) -> Decimal | None:
    text = text.strip().rstrip("%").strip()
    if not text:
        return None
    try:
        value = Decimal(text)
        if not value.is_finite() or value < 0 or value > 200 or value != value.quantize(Decimal("0.01")):
            raise ValueError
    except (ArithmeticError, ValueError):
        errors[field] = InvalidInput("Enter the accuracy as a percent from 0 to 200, like 98.5.", field)
        return None
    return value


def parse_completion(
    order: WorkOrder,
    day: date,
    time_text: str,
    read_text: str,
    lock_text: str,
    tz: ZoneInfo = AGENCY_TZ,
    *,
    extra: Mapping[str, str] | None = None,
) -> Completion:
    """The form's values for ``order`` done on ``day`` (today) at ``time_text`` (HH:MM,
    agency time), or ``FieldErrors`` naming each bad field: the time is required; the meter
    read is required for the kinds of ``READ_REQUIRED``; the lock number for a shutoff and
    the tag number for a door tag. ``extra`` holds the other fields: ``day`` (the date the
    work was done, not after ``day``), ``serial`` (required for the kinds about a meter and
    for an install), ``notes`` (required for a leak investigation), ``new_read`` (an
    exchange's new meter, 0 when blank) and a test's ``result`` and ``low_flow`` /
    ``mid_flow`` / ``high_flow`` percents."""
    more = extra or {}
    errors: dict[str, InvalidInput] = {}
    done_on = day
    if more.get("day", "").strip():
        try:
            done_on = date.fromisoformat(more["day"].strip())
            if done_on > day:
                errors["day"] = InvalidInput("The date done cannot be after today.", "day")
        except ValueError:
            errors["day"] = InvalidInput("Enter the date the work was done, like 2026-03-24.", "day")
    moment: datetime | None = None
    try:
        hours = time.fromisoformat(time_text.strip())
        moment = datetime.combine(done_on, hours, tz)
    except ValueError:
        errors["time"] = InvalidInput("Enter the time the work was done, like 14:30.", "time")
    read: Decimal | None = None
    if read_text.strip():
        try:
            read = reads.parse_read(read_text, "meter_read")
        except InvalidInput:
            errors["meter_read"] = InvalidInput("Enter the meter read as a number, like 01234.", "meter_read")
    elif order.kind in READ_REQUIRED:
        errors["meter_read"] = InvalidInput("Enter the meter read.", "meter_read")
    lock = lock_text.strip()[:40] or None
    if lock is None and order.kind == "shutoff":
        errors["lock_or_tag"] = InvalidInput("Enter the lock number.", "lock_or_tag")
    if lock is None and order.kind == "door_tag":
        errors["lock_or_tag"] = InvalidInput("Enter the door tag number.", "lock_or_tag")
    serial = _serial(more.get("serial")) or None
    if serial is None and (order.kind in METER_KINDS or order.kind in SETS_METER):
        what = "you put in" if order.kind in SETS_METER else "at the premise"
        errors["serial"] = InvalidInput(f"Scan or type the serial of the meter {what}.", "serial")
    notes = more.get("notes", "").strip()[:2000] or None
    if notes is None and order.kind == "leak":
        errors["notes"] = InvalidInput("Say what you found.", "notes")
    new_read: Decimal | None = None
    if order.kind == "meter_exchange":
        try:
            new_read = reads.parse_read(more.get("new_read", "").strip() or "0", "new_read")
        except InvalidInput:
            errors["new_read"] = InvalidInput("Enter the new meter's read as a number, like 0.", "new_read")
    test: TestResult | None = None
    if order.kind == "meter_test":
        result = more.get("result", "").strip()
        if result not in ("pass", "fail"):
            errors["result"] = InvalidInput("Choose whether the meter passed or failed.", "result")
        flows = [_pct(more.get(f"{n}_flow", ""), f"{n}_flow", errors) for n in ("low", "mid", "high")]
        test = TestResult(result, *flows)
    if errors:
        raise FieldErrors(errors)
    assert moment is not None
    wants_case = order.kind == "leak" and more.get("open_case", "") == "yes"
    return Completion(moment, read, lock, serial, notes, new_read, test, open_case=wants_case)


def check_photo(content_type: str, size: int) -> str:
    """A photo's file suffix, or ``FieldErrors`` on ``photo``: an image (``image/*``) of at
    most ``PHOTO_MAX_BYTES``."""
    kind = (content_type or "").split(";")[0].strip().lower()
    if not kind.startswith("image/") or len(kind) <= len("image/"):
        raise FieldErrors.one("photo", "The photo must be an image (a JPEG or PNG picture).")
    if size > PHOTO_MAX_BYTES:
        raise FieldErrors.one("photo", "The photo is larger than 5 MB; take a smaller one.")
    if size <= 0:
        raise FieldErrors.one("photo", "The photo is empty.")
    suffix = kind.removeprefix("image/").split("+")[0]
    return {"jpeg": "jpg", "pjpeg": "jpg"}.get(suffix, suffix)[:10]


def _require_open(order: WorkOrder) -> None:
    if order.status != "open":
        raise FieldErrors.one("order", f"Order {order.id} is {order.status.replace('_', ' ')}, not open.")


def account_meter(session: Session, account: Account) -> Meter | None:
    """The meter of the account's metered services still running (the water meter first)."""
    services = sorted(
        (s for s in account.services if s.meter_id is not None and s.ended_on is None),
        key=lambda s: (s.service_type != "water", s.id),
    )
    return session.get(Meter, services[0].meter_id) if services else None


def order_meter(session: Session, order: WorkOrder) -> Meter | None:
    """The meter on file for ``order``: the one it names, else its account's."""
    if order.meter_id is not None:
        return session.get(Meter, order.meter_id)
    if order.account_id is None:
        return None
    account = session.get(Account, order.account_id)
    return account_meter(session, account) if account is not None else None


def _check_meter(order: WorkOrder, meter: Meter | None, done: Completion) -> None:
    """The serial entered against the meter on file (refused when they differ, except where
    the order sets a meter), and the reads against that meter's dials."""
    errors: dict[str, InvalidInput] = {}
    if order.kind in METER_KINDS and meter is None:
        errors["serial"] = InvalidInput("No meter is on file for this order; ask the office to name it.", "serial")
    elif meter is not None and done.serial and order.kind not in SETS_METER and done.serial != _serial(meter.serial):
        errors["serial"] = InvalidInput(
            f"Serial {done.serial} is not the meter on file for this order. Check the address and the meter; only "
            "an install or an exchange puts in a different meter.",
            "serial",
        )
    if meter is not None and done.meter_read is not None and order.kind != "meter_set":
        try:
            reads.check_read(done.meter_read, meter.dials, "meter_read")
        except InvalidInput as exc:
            errors["meter_read"] = exc
    if errors:
        raise FieldErrors(errors)


def complete(session: Session, actor: User, order: WorkOrder, done: Completion, now: datetime) -> list[Notice]:
    """Field staff mark ``order`` done, and the completion closes the loop (``_close_loop``):
    a read-in or turn-on enters the read and makes a pending account active, a read-out or
    turn-off holds the final bill for review, a re-read replaces the read held for review,
    an exchange or install moves the meters, a test is recorded. A reconnection done tells
    the customer (a ``reconnected`` notice); returns the notices issued. A refusal raises
    ``FieldErrors`` (by the form's field); the caller's savepoint undoes what was written."""
    permissions.require(actor, Action.FIELD_ORDERS_WORK)
    session.refresh(order, with_for_update=_locks(session))
    _require_open(order)
    meter = order_meter(session, order)
    _check_meter(order, meter, done)
    before = _audit_state(order)
    order.status = "done"
    order.completed_at = done.completed_at
    order.completed_by_id = actor.id
    order.meter_read = done.meter_read
    order.lock_or_tag = done.lock_or_tag
    order.serial_entered = done.serial
    if order.meter_id is None and meter is not None and order.kind in METER_KINDS:
        order.meter_id = meter.id  # the meter read: the account's, set after the order was opened
    if done.notes:
        order.notes = f"{order.notes}\n{done.notes}" if order.notes else done.notes
    order.photo_path = done.photo_path
    try:
        _close_loop(session, actor, order, meter, done, now)
    except InvalidInput as exc:
        raise FieldErrors({_FIELD_OF.get(exc.field or "", exc.field or "meter_read"): exc}) from exc
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


#: What the meter rules call a field, by the completion form's name for it.
_FIELD_OF = {
    "old": "serial",
    "new_serial": "serial",
    "final_read": "meter_read",
    "first_read": "new_read",
    "read_value": "meter_read",
    "value": "meter_read",
    "on": "day",
    "read_on": "day",
    "final": "meter_read",
    "stop_on": "day",
    "premise": "serial",
    "tested_on": "day",
    "then": "result",
}


# --- Completion closes the loop -----------------------------------------------------------------


def _close_loop(
    session: Session, actor: User, order: WorkOrder, meter: Meter | None, done: Completion, now: datetime
) -> None:
    on = done.completed_at.astimezone(AGENCY_TZ).date()
    account = session.get(Account, order.account_id) if order.account_id is not None else None
    value = done.meter_read
    kind = order.kind
    if kind in ("read_in", "turn_on") and meter is not None and value is not None:
        if account is not None:
            _activate(session, actor, account, order)
        order.read_id = _enter_read(session, actor, order, meter, on, value, now).id
    elif kind in ("read_out", "turn_off") and meter is not None and value is not None:
        if account is not None and account.status == "active" and _serves(account, meter):
            _hold_final(session, actor, order, account, meter, on, value, now)
        else:
            order.read_id = _enter_read(session, actor, order, meter, on, value, now).id
    elif kind == "re_read" and meter is not None and value is not None:
        order.read_id = _reread(session, actor, order, meter, on, value, now).id
    elif kind == "meter_exchange" and meter is not None and value is not None:
        order.read_id = _exchange(session, actor, order, meter, done, on)
    elif kind == "meter_set" and value is not None:
        order.read_id = _install(session, actor, order, account, done, on, value)
    elif kind == "meter_test" and meter is not None and done.test is not None:
        _test(session, actor, order, meter, done.test, on, now)
    elif kind == "leak" and done.open_case and account is not None:
        _leak_case(session, actor, order, account, on, now)


def _leak_case(session: Session, actor: User, order: WorkOrder, account: Account, on: date, now: datetime) -> None:
    """A case for the office about the leak found, with the field's notes (``cases.open_case``)."""
    from . import cases

    permissions.require(actor, Action.CASES_OPEN)
    premise = session.get(Premise, order.premise_id)
    where = premise.one_line if premise is not None else f"account {account.number}"
    opening = cases.Opening(
        "inquiry", "field", f"Leak found at {where} (work order {order.id})"[:200],
        (order.notes or "Leak found in the field.")[:4000], None, None, None,
    )  # fmt: skip
    case = cases.open_case(session, account, opening, on, now, collection_facts.closed_days(session, on), staff=actor)
    order.case_id = case.id


def _serves(account: Account, meter: Meter) -> bool:
    return any(s.meter_id == meter.id and s.ended_on is None for s in account.services)


def _activate(session: Session, actor: User, account: Account, order: WorkOrder) -> None:
    """A pending account (opened, waiting for its turn-on) becomes active."""
    if account.status != AccountStatus.PENDING.value:
        return
    account.status = AccountStatus.ACTIVE.value
    audit.record(
        session, "account.activated", actor=actor, entity_type="account", entity_id=account.id,
        before={"status": AccountStatus.PENDING.value},
        after={"status": account.status, "work_order": order.id, "number": account.number},
    )  # fmt: skip
    session.flush()


def _enter_read(
    session: Session, actor: User, order: WorkOrder, meter: Meter, on: date, value: Decimal, now: datetime
) -> MeterRead:
    """The read as a regular meter read, checked like every read taken by hand
    (``meters.record_read``): the meter installed, one read a day, the dials, and the
    account's history (held for review when it needs a look)."""
    from .read_import import validate_new_read

    if meter.status != MeterStatus.INSTALLED.value:
        raise InvalidInput(f"Meter {meter.serial} is {meter.status.replace('_', ' ')}, not installed.", "serial")
    if on > now.astimezone(AGENCY_TZ).date():
        raise InvalidInput("The read date is in the future.", "day")
    reads.check_read(value, meter.dials, "meter_read")
    if session.scalar(select(MeterRead.id).where(MeterRead.meter_id == meter.id, MeterRead.read_on == on)):
        raise InvalidInput(f"Meter {meter.serial} already has a read on {on:%m/%d/%Y}.", "day")
    found = validate_new_read(session, meter, on, value)
    read = MeterRead(
        meter_id=meter.id,
        read_on=on,
        value=value,
        source=ReadSource.FIELD.value,
        status=ReadStatus.EXCEPTION.value if found else ReadStatus.VALID.value,
        exception=",".join(e.value for e in found) or None,
        note=f"{KINDS.get(order.kind, order.kind)} (work order {order.id})"[:300],
    )
    session.add(read)
    session.flush()
    audit.record(
        session, "meter.read", actor=actor, entity_type="meter", entity_id=meter.serial,
        after={
            "on": on.isoformat(), "value": str(value), "status": read.status, "exception": read.exception,
            "work_order": order.id,
        },
    )  # fmt: skip
    return read


def _hold_final(
    session: Session,
    actor: User,
    order: WorkOrder,
    account: Account,
    meter: Meter,
    on: date,
    value: Decimal,
    now: datetime,
) -> None:
    """The final read of a read-out or turn-off: the account's final bill, through ``on``,
    waits for review (``FinalBillReview``, the path stopping service takes), where the office
    approves and posts it (``bill_runs.approve_final``) or corrects the read."""
    from .bill_runs import final_bills

    if final_bills.held_for_account(session, account.id) is not None:
        raise InvalidInput(
            f"A final bill for account {account.number} already waits for review; the office works it there.",
            "meter_read",
        )
    running = {s.meter_id for s in account.services if s.meter_id is not None and s.ended_on is None}
    if running - {meter.id}:
        raise InvalidInput(
            f"Account {account.number} has other meters running; the office stops its service with every final read.",
            "meter_read",
        )
    last_end = session.scalar(
        select(func.max(Bill.period_end)).where(Bill.account_id == account.id, Bill.status == "posted")
    )
    if last_end is not None and on < last_end:
        raise InvalidInput(f"The account is billed through {last_end:%m/%d/%Y} already; check the date.", "day")
    try:
        check = final_bills.check_final_read(session, meter, on, value)
    except InvalidInput as exc:
        raise InvalidInput(exc.message, "meter_read") from exc
    reasons = list(dict.fromkeys([final_bills.FIELD_READ, *check.holding]))
    review = FinalBillReview(
        account_id=account.id,
        stop_on=on,
        reads={str(meter.id): str(value)},
        reasons=",".join(reasons),
        status="held",
        entered_by_id=actor.id,
        entered_at=now,
        note=f"Final read {reads.format_quantity(value)} from work order {order.id}",
    )
    session.add(review)
    session.flush()
    audit.record(
        session, "account.final_bill_held", actor=actor, entity_type="account", entity_id=account.id,
        after={
            "stop_on": str(on), "reasons": reasons, "reads": review.reads, "review": review.id, "work_order": order.id,
        },
    )  # fmt: skip


def _reread(
    session: Session, actor: User, order: WorkOrder, meter: Meter, on: date, value: Decimal, now: datetime
) -> MeterRead:
    """A re-read replaces the read held for review that the order is about, as a correction
    in the read review does (``read_review.correct``): the re-read's value and day, judged
    again by the same rules, approved (a person read the meter again) with what it still
    raises recorded; the same value confirms the held read. With no read held (a re-read
    by hand, or the held read already worked) it is a regular read."""
    from .read_import import validate_new_read

    held = session.get(MeterRead, order.read_id) if order.read_id is not None else None
    if held is None or held.meter_id != meter.id or held.status != ReadStatus.EXCEPTION.value:
        return _enter_read(session, actor, order, meter, on, value, now)
    if on > now.astimezone(AGENCY_TZ).date():
        raise InvalidInput("The read date is in the future.", "day")
    reads.check_read(value, meter.dials, "meter_read")
    before: dict[str, str | None] = {
        "value": str(held.value), "read_on": held.read_on.isoformat(), "status": held.status,
        "exception": held.exception,
    }  # fmt: skip
    if value == held.value:
        note = f"Confirmed by re-read (work order {order.id})"
    else:
        clash = session.scalar(
            select(MeterRead.id).where(MeterRead.meter_id == meter.id, MeterRead.read_on == on, MeterRead.id != held.id)
        )
        if clash:
            raise InvalidInput(f"Meter {meter.serial} already has a read on {on:%m/%d/%Y}.", "day")
        if held.read_on < on and session.scalar(
            select(MeterRead.id).where(MeterRead.meter_id == meter.id, MeterRead.read_on > held.read_on,
                                       MeterRead.read_on < on)
        ):  # fmt: skip
            raise InvalidInput(f"Meter {meter.serial} has a later read; the office corrects this read.", "day")
        held.value, held.read_on, held.source = value, on, ReadSource.FIELD.value
        session.flush()  # the held read is no longer the history the re-read is judged by
        still = validate_new_read(session, meter, on, value)
        held.exception = ",".join(e.value for e in still) or None
        note = f"Replaced by re-read (work order {order.id}): was {before['value']} on {before['read_on']}"
    held.status, held.reviewed_by_id, held.reviewed_at = ReadStatus.APPROVED.value, actor.id, now
    held.note = note[:300]
    session.flush()
    audit.record(
        session, "read.reread_done", actor=actor, entity_type="meter_read", entity_id=held.id, before=before,
        after={
            "value": str(held.value), "read_on": held.read_on.isoformat(), "status": held.status,
            "exception": held.exception, "work_order": order.id,
        },
    )  # fmt: skip
    return held


def _stocked(session: Session, serial: str | None) -> Meter:
    meter = session.scalar(select(Meter).where(Meter.serial == serial)) if serial else None
    if meter is None:
        raise InvalidInput(f"No meter with serial {serial} is on file.", "serial")
    if meter.status != MeterStatus.IN_STOCK.value:
        raise InvalidInput(f"Meter {meter.serial} is {meter.status.replace('_', ' ')}, not in stock.", "serial")
    return meter


def _exchange(session: Session, actor: User, order: WorkOrder, old: Meter, done: Completion, on: date) -> int | None:
    """The existing meter exchange (``meters.exchange``): the old meter's out-read, the new
    (stocked) meter's in-read, the services moved to it. Returns the out-read's id."""
    from . import meters

    assert done.meter_read is not None
    new = _stocked(session, done.serial)
    meters.exchange(
        session, old, new, on, done.meter_read, done.new_read or Decimal(0), actor, note=f"Work order {order.id}"
    )
    session.flush()
    order.meter_id = old.id
    return session.scalar(select(MeterRead.id).where(MeterRead.meter_id == old.id, MeterRead.read_on == on))


#: The services a meter measures.
METERED = ("water", "irrigation", "fire", "recycled")


def _install(
    session: Session, actor: User, order: WorkOrder, account: Account | None, done: Completion, on: date,
    value: Decimal,
) -> int:  # fmt: skip
    """Set a stocked meter at the order's premise with its first read, and put it on the
    account's running metered services that have none (``meter_inventory.install``)."""
    from . import meter_inventory

    meter = _stocked(session, done.serial)
    premise = session.get(Premise, order.premise_id)
    assert premise is not None
    first = meter_inventory.install(
        session, meter, premise, value, on, actor, done.completed_at,
        note=f"First read at install (work order {order.id})", work_order_id=order.id,
    )  # fmt: skip
    order.meter_id = meter.id
    return int(first.id)


def _test(
    session: Session, actor: User, order: WorkOrder, meter: Meter, test: TestResult, on: date, now: datetime
) -> None:
    from . import meter_inventory

    permissions.require(actor, Action.METERS_TEST)
    result = meter_inventory.TestResult(
        on, test.result == "pass", test.low_flow_pct, test.mid_flow_pct, test.high_flow_pct,
        (actor.display_name or actor.email)[:100], order.notes,
    )  # fmt: skip
    meter_inventory.record_test(session, meter, result, actor, now, work_order_id=order.id)


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


# --- The office: work orders by hand, from requests and read exceptions; assignment -----------


def is_overdue(order: WorkOrder, today: date) -> bool:
    """Past its due date and not done (nor not-done, nor cancelled)."""
    return order.status == "open" and order.due_on < today


def field_people(session: Session) -> list[User]:
    """Who can be given an order: the active sign-ins whose role works field orders."""
    roles = [r.value for r in permissions.GRANTS[Action.FIELD_ORDERS_WORK].roles]
    return list(
        session.scalars(
            select(User)
            .where(User.active.is_(True), User.role.in_(roles))
            .order_by(User.role != "field", User.display_name, User.email)
        )
    )


@dataclass(frozen=True)
class Assignment:
    """Who works an order, and by when (``parse_assignment``)."""

    assignee: User | None
    crew: str | None
    due_on: date


def parse_assignment(session: Session, values: Mapping[str, str], today: date) -> Assignment:
    """``assigned_to`` (a user id, blank for none), ``crew`` (a crew's name) and ``due_on``
    (YYYY-MM-DD, not before today), or ``FieldErrors`` by field."""
    errors: dict[str, InvalidInput] = {}
    assignee: User | None = None
    text = values.get("assigned_to", "").strip()
    if text:
        found = session.get(User, int(text)) if text.isdigit() else None
        if found is None or not found.active or not permissions.can(found.role, Action.FIELD_ORDERS_WORK):
            errors["assigned_to"] = InvalidInput("Choose a person who does field work.", "assigned_to")
        else:
            assignee = found
    crew = " ".join(values.get("crew", "").split())[:60] or None
    due_on = today
    try:
        due_on = date.fromisoformat(values.get("due_on", "").strip())
        if due_on < today:
            errors["due_on"] = InvalidInput("The due date cannot be before today.", "due_on")
    except ValueError:
        errors["due_on"] = InvalidInput("Enter the due date, like 2026-03-24.", "due_on")
    if errors:
        raise FieldErrors(errors)
    return Assignment(assignee, crew, due_on)


@dataclass(frozen=True)
class NewOrder:
    """A work order the office opens by hand (``parse_new_order``)."""

    kind: str
    account: Account
    meter: Meter | None
    assignment: Assignment
    notes: str | None


def parse_new_order(session: Session, values: Mapping[str, str], today: date) -> NewOrder:
    """The new-order form checked whole: ``kind`` (one of ``HAND_KINDS``), ``account`` (its
    number), ``meter`` (a serial: for an install, the stocked meter to set, optional; for
    the others, a meter of the account's premise, blank for the account's meter), the
    assignment (``parse_assignment``) and ``notes`` (required for a leak investigation)."""
    errors: dict[str, InvalidInput] = {}
    kind = values.get("kind", "").strip()
    if kind not in HAND_KINDS:
        errors["kind"] = InvalidInput("Choose what the work is.", "kind")
    number = values.get("account", "").strip()
    account = session.scalar(select(Account).where(Account.number == number)) if number else None
    if account is None:
        message = f"No account {number}." if number else "Enter the account number."
        errors["account"] = InvalidInput(message, "account")
    serial = _serial(values.get("meter"))
    meter: Meter | None = None
    if serial:
        meter = session.scalar(select(Meter).where(Meter.serial == serial))
        if meter is None:
            errors["meter"] = InvalidInput(f"No meter with serial {serial}.", "meter")
        elif kind == "meter_set" and meter.status != MeterStatus.IN_STOCK.value:
            errors["meter"] = InvalidInput(f"Meter {meter.serial} is not in stock.", "meter")
        elif kind != "meter_set" and account is not None and meter.premise_id != account.premise_id:
            errors["meter"] = InvalidInput(f"Meter {meter.serial} is not at this account's premise.", "meter")
    elif account is not None and kind in METER_KINDS:
        meter = account_meter(session, account)
        if meter is None:
            errors["meter"] = InvalidInput("The account has no meter; enter the meter's serial.", "meter")
    notes = values.get("notes", "").strip()[:2000] or None
    if kind == "leak" and notes is None:
        errors["notes"] = InvalidInput("Say what the customer reported.", "notes")
    assignment: Assignment | None = None
    try:
        assignment = parse_assignment(session, values, today)
    except FieldErrors as exc:
        errors.update(exc.errors)
    if errors:
        raise FieldErrors(errors)
    assert account is not None and assignment is not None
    return NewOrder(kind, account, meter, assignment, notes)


def create(
    session: Session,
    actor: User,
    new: NewOrder,
    now: datetime,
    *,
    origin: str = "hand",
    service_request_id: int | None = None,
    read_id: int | None = None,
) -> WorkOrder:
    """Open the work order the office asked for, audited."""
    permissions.require(actor, Action.FIELD_ORDERS_MANAGE)
    if new.kind not in HAND_KINDS:
        raise FieldErrors.one("kind", "Choose what the work is.")
    order = WorkOrder(
        kind=new.kind,
        account_id=new.account.id,
        premise_id=new.account.premise_id,
        status="open",
        due_on=new.assignment.due_on,
        meter_id=new.meter.id if new.meter is not None else None,
        assigned_to_id=new.assignment.assignee.id if new.assignment.assignee is not None else None,
        crew=new.assignment.crew,
        notes=new.notes,
        origin=origin,
        service_request_id=service_request_id,
        read_id=read_id,
        created_by_id=actor.id,
        created_at=now,
    )
    session.add(order)
    session.flush()
    audit.record(
        session, "work_order.opened", actor=actor, entity_type="work_order", entity_id=order.id,
        after={"account": new.account.number, "origin": origin, **_audit_state(order)},
    )  # fmt: skip
    return order


def assign(session: Session, actor: User, order: WorkOrder, assignment: Assignment, now: datetime) -> None:
    """Give an open order to a person or a crew (or neither) with a due date; audited. The
    office who manages orders does it, and a supervisor reassigning work."""
    if not permissions.can(actor.role, Action.WORK_SUPERVISE):
        permissions.require(actor, Action.FIELD_ORDERS_MANAGE)
    session.refresh(order, with_for_update=_locks(session))
    _require_open(order)
    before = _audit_state(order)
    order.assigned_to_id = assignment.assignee.id if assignment.assignee is not None else None
    order.crew = assignment.crew
    order.due_on = assignment.due_on
    audit.record(
        session, "work_order.assigned", actor=actor, entity_type="work_order", entity_id=order.id,
        before=before, after=_audit_state(order),
    )  # fmt: skip
    session.flush()


def open_for_request(
    session: Session,
    actor: User | None,
    request: ServiceRequest,
    account: Account,
    now: datetime,
    *,
    due_on: date | None = None,
    assigned_to_id: int | None = None,
    crew: str | None = None,
) -> WorkOrder:
    """The field order a customer's request needs: a start (or the start half of a
    transfer, ``account`` the new one) a turn-on with its read-in, due the day service
    starts; a stop (``account`` the one stopped) a turn-off with its final read, due the
    last day of service. Once per request and account (``open_order``)."""
    if actor is not None:
        permissions.require(actor, Action.FIELD_ORDERS_MANAGE)
    stopping = request.kind == "stop" or (request.kind == "transfer" and account.id == request.account_id)
    kind = "turn_off" if stopping else "turn_on"
    day = due_on or (request.stop_on if stopping else request.start_on) or now.astimezone(AGENCY_TZ).date()
    found = session.scalar(
        select(WorkOrder).where(
            WorkOrder.service_request_id == request.id, WorkOrder.account_id == account.id, WorkOrder.kind == kind
        )
    )
    if found is not None:
        return found
    return open_order(
        session, account, kind, day, None, None, None, now, actor.id if actor else None,
        assigned_to_id=assigned_to_id, crew=crew, origin="request", service_request_id=request.id,
        notes=f"{request.kind.capitalize()} request {request.id}",
    )  # fmt: skip


def open_reread(
    session: Session, actor: User, read: MeterRead, now: datetime, due_on: date, note: str = ""
) -> WorkOrder:
    """A re-read order for a read held for review (the read review's "order a re-read"): at
    the premise of an account the meter serves, about that read; once per read."""
    permissions.require(actor, Action.FIELD_ORDERS_MANAGE)
    if read.status != ReadStatus.EXCEPTION.value:
        raise FieldErrors.one("read", f"This read is {read.status}, not waiting for review.")
    found = session.scalar(select(WorkOrder).where(WorkOrder.kind == "re_read", WorkOrder.read_id == read.id))
    if found is not None and found.status == "open":
        return found
    account = session.scalar(
        select(Account)
        .join(Service, Service.account_id == Account.id)
        .where(Service.meter_id == read.meter_id)
        .order_by(Service.ended_on.is_not(None), Service.started_on.desc())
        .limit(1)
    )
    if account is None:
        raise FieldErrors.one("read", "The meter serves no account; open the order from the meter's premise.")
    order = WorkOrder(
        kind="re_read",
        account_id=account.id,
        premise_id=account.premise_id,
        status="open",
        due_on=due_on,
        meter_id=read.meter_id,
        read_id=read.id,
        origin="read_exception",
        notes=(f"Re-read of the {reads.format_quantity(read.value)} read on {read.read_on:%m/%d/%Y}"
               + (f": {note.strip()}" if note.strip() else ""))[:2000],
        created_by_id=actor.id,
        created_at=now,
    )  # fmt: skip
    session.add(order)
    session.flush()
    audit.record(
        session, "work_order.opened", actor=actor, entity_type="work_order", entity_id=order.id,
        after={"account": account.number, "origin": "read_exception", **_audit_state(order)},
    )  # fmt: skip
    return order


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
    "HAND_KINDS",
    "KINDS",
    "METER_KINDS",
    "NOT_DONE_REASONS",
    "ORIGINS",
    "PHOTO_MAX_BYTES",
    "READ_REQUIRED",
    "SETS_METER",
    "Assignment",
    "Completion",
    "NewOrder",
    "TestResult",
    "account_meter",
    "after_hours_at",
    "after_payment",
    "after_promise",
    "assign",
    "cancel",
    "check_photo",
    "complete",
    "create",
    "field_people",
    "is_overdue",
    "not_done",
    "open_for_request",
    "open_order",
    "open_reread",
    "order_meter",
    "parse_assignment",
    "parse_completion",
    "parse_new_order",
    "queue_reconnection",
    "reconnection_fee",
]
