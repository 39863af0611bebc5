"""Payment plans and extensions: the arrears in installments, or a promise to pay an amount
by a date, made by staff or approved from a customer's request. While kept, they pause the
collection ladder (the shutoff gate reads an active plan as a kept one).

A plan's installments are exact: integer cents, the odd cents on the first installments
(``arrangements.schedule``), and with a down payment (installment 0, due the day the plan
starts) they add up to the plan's amount to the cent. An extension is one installment, due
on the promised date.

What counts toward the installments is the money paid on the account since the plan
started (payments less the payments returned since), applied to the installments in order.
It is counted again from the ledger each time (``after_payment`` on every payment, and the
daily ``review``), so a returned payment un-pays what it had paid.

An installment not paid by the end of its date plus the plan's grace days
(``LadderPolicy.plan_grace_days``; none for an extension) breaks the plan; the ladder then
resumes. A plan paid in full completes.
"""

from __future__ import annotations

import importlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import and_, bindparam, delete, func, or_, select
from sqlalchemy.orm import Session, aliased, selectinload

from . import arrangements, audit, bulk, collection_hooks, ladder_policy, statements
from .errors import FieldErrors, InvalidInput
from .ladder_policy import LadderPolicy
from .models import Account, LedgerEntry, LedgerTransaction, PaymentPlan, PaymentPlanInstallment, User
from .users import parse_amount

KINDS = ("plan", "extension")
KIND_LABELS = {"plan": "Payment plan", "extension": "Extension"}
STATUSES = ("active", "completed", "broken", "cancelled")
#: Who ended a plan when no person did: the daily review, or a payment that paid it all.
SYSTEM = "daily review"
PAYMENTS = "payment posted"


def policy_on(session: Session, on: date) -> LadderPolicy:
    """The delinquency policy in force on ``on``: the stored version when the policy
    versions exist (``ladder_versions.current``), else ``ladder_policy.DEFAULT``."""
    try:
        versions = importlib.import_module(f"{__package__}.ladder_versions")
    except ImportError:
        return ladder_policy.DEFAULT
    _version, policy = versions.current(session, on)
    return policy


# --- Terms: what staff typed, checked -------------------------------------------------------


@dataclass(frozen=True)
class Terms:
    kind: str
    total_cents: int
    down_cents: int
    #: (due date, amount) of each installment after the down payment.
    schedule: tuple[tuple[date, int], ...]
    grace_days: int
    note: str

    @property
    def installments(self) -> list[tuple[int, date, int]]:
        """(seq, due, amount) of every row: the down payment is seq 0, due ``starts_on``."""
        return [(i + 1, due, cents) for i, (due, cents) in enumerate(self.schedule)]


def _amount(values: dict[str, str], field: str, errors: dict[str, InvalidInput]) -> int | None:
    text = values.get(field, "").strip()
    cents = parse_amount(text) if text else None
    if cents is None:
        errors[field] = InvalidInput("Enter the amount in dollars and cents, like 250.00.", field)
        return None
    if cents <= 0:
        errors[field] = InvalidInput("The amount must be more than zero.", field)
        return None
    return cents


def _day(values: dict[str, str], field: str, errors: dict[str, InvalidInput]) -> date | None:
    try:
        return date.fromisoformat(values.get(field, "").strip())
    except ValueError:
        errors[field] = InvalidInput("Enter the date as year-month-day, for example 2026-12-15.", field)
        return None


def _note(values: dict[str, str], errors: dict[str, InvalidInput], required: bool = False) -> str:
    note = values.get("note", "").strip()
    if len(note) > 1000:
        errors["note"] = InvalidInput("Please keep this under 1,000 characters.", "note")
    elif required and not note:
        errors["note"] = InvalidInput("Say why (the customer's circumstances, what was agreed).", "note")
    return note


def check_plan(
    values: dict[str, str], owed_cents: int, today: date, policy: LadderPolicy, note_required: bool = False
) -> Terms:
    """A payment plan from the staff form (``amount``, ``down_payment``, ``installments``,
    ``first_due``, ``note``), or every problem with it by field."""
    errors: dict[str, InvalidInput] = {}
    total = _amount(values, "amount", errors)
    if total is not None and total > owed_cents:
        errors["amount"] = InvalidInput(
            "More than the account owes (%(owed)s).", "amount", owed=f"${max(owed_cents, 0) / 100:,.2f}"
        )
    down_text = values.get("down_payment", "").strip()
    down = parse_amount(down_text) if down_text else 0
    if down is None or down < 0:
        errors["down_payment"] = InvalidInput("Enter the amount in dollars and cents, like 25.00.", "down_payment")
        down = 0
    elif total is not None and down >= total:
        errors["down_payment"] = InvalidInput("The down payment must be less than the plan's amount.", "down_payment")
    text = values.get("installments", "").strip()
    months = int(text) if text.isascii() and text.isdigit() else 0
    if not 2 <= months <= policy.max_plan_months:
        errors["installments"] = InvalidInput(
            "Choose from 2 to %(max)s monthly installments.", "installments", max=policy.max_plan_months
        )
    first = _day(values, "first_due", errors)
    latest = today + timedelta(days=arrangements.POLICY.first_due_within_days)
    if first is not None and not today <= first <= latest:
        errors["first_due"] = InvalidInput(
            "Choose a day from today to %(latest)s.", "first_due", latest=latest.isoformat()
        )
    minimum = arrangements.POLICY.min_installment_cents
    if total is not None and months and "down_payment" not in errors and (total - down) // months < minimum:
        errors["installments"] = InvalidInput(
            "Each installment must be at least %(amount)s: choose fewer.",
            "installments",
            amount=f"${minimum / 100:.2f}",
        )
    note = _note(values, errors, note_required)
    if errors:
        raise FieldErrors(errors)
    assert total is not None and first is not None
    return Terms(
        "plan",
        total,
        down,
        tuple(arrangements.schedule(total, down, months, first)),
        policy.plan_grace_days,
        note,
    )


def check_extension(
    values: dict[str, str], owed_cents: int, today: date, policy: LadderPolicy, note_required: bool = False
) -> Terms:
    """An extension from the staff form (``amount``, ``promise_on``, ``note``): at most
    ``policy.extension_max_days`` away."""
    errors: dict[str, InvalidInput] = {}
    total = _amount(values, "amount", errors)
    if total is not None and total > owed_cents:
        errors["amount"] = InvalidInput(
            "More than the account owes (%(owed)s).", "amount", owed=f"${max(owed_cents, 0) / 100:,.2f}"
        )
    promise = _day(values, "promise_on", errors)
    latest = today + timedelta(days=policy.extension_max_days)
    if promise is not None and not today < promise <= latest:
        errors["promise_on"] = InvalidInput(
            "Choose a day after today, at most %(days)s days away (by %(latest)s).",
            "promise_on",
            days=policy.extension_max_days,
            latest=latest.isoformat(),
        )
    note = _note(values, errors, note_required)
    if errors:
        raise FieldErrors(errors)
    assert total is not None and promise is not None
    return Terms("extension", total, 0, ((promise, total),), 0, note)


def check(
    kind: str, values: dict[str, str], owed_cents: int, today: date, policy: LadderPolicy, note_required: bool = False
) -> Terms:
    if kind == "extension":
        return check_extension(values, owed_cents, today, policy, note_required)
    if kind == "plan":
        return check_plan(values, owed_cents, today, policy, note_required)
    raise FieldErrors.one("kind", "Choose a payment plan or an extension.")


# --- Making, changing, cancelling -----------------------------------------------------------


def active_for(session: Session, account_id: int, lock: bool = False) -> PaymentPlan | None:
    query = select(PaymentPlan).where(PaymentPlan.account_id == account_id, PaymentPlan.status == "active")
    if lock:
        query = query.with_for_update()
    return session.scalar(query)


def _rows(plan: PaymentPlan, terms: Terms) -> list[PaymentPlanInstallment]:
    rows = []
    if terms.down_cents:
        rows.append(PaymentPlanInstallment(seq=0, due_on=plan.starts_on, amount_cents=terms.down_cents))
    rows += [PaymentPlanInstallment(seq=s, due_on=d, amount_cents=c) for s, d, c in terms.installments]
    return rows


def describe(plan: PaymentPlan) -> dict[str, object]:
    """The plan's terms for the audit trail."""
    return {
        "kind": plan.kind,
        "status": plan.status,
        "total_cents": plan.total_cents,
        "down_payment_cents": plan.down_payment_cents,
        "grace_days": plan.grace_days,
        "installments": [[i.seq, i.due_on.isoformat(), i.amount_cents] for i in plan.installments],
    }


def create(
    session: Session,
    account: Account,
    terms: Terms,
    actor: User | None,
    today: date,
    now: datetime,
    arrangement_request_id: int | None = None,
) -> PaymentPlan:
    """A new plan or extension on ``account`` (which the caller has locked), starting today.
    ``InvalidInput`` when the account has one active already. Counts what was paid today,
    audits it and tells collections a promise was made (``collection_hooks.after_promise``)."""
    if active_for(session, account.id, lock=True) is not None:
        raise InvalidInput(
            "This account already has an active payment plan or extension: change or cancel it instead.", "kind"
        )
    plan = PaymentPlan(
        account_id=account.id,
        kind=terms.kind,
        status="active",
        total_cents=terms.total_cents,
        down_payment_cents=terms.down_cents,
        starts_on=today,
        grace_days=terms.grace_days,
        arrangement_request_id=arrangement_request_id,
        note=terms.note,
        created_by_id=actor.id if actor else None,
        created_at=now,
    )
    plan.installments = _rows(plan, terms)
    session.add(plan)
    session.flush()
    audit.record(
        session,
        f"{plan.kind}.created",
        actor=actor,
        entity_type="payment_plan",
        entity_id=plan.id,
        after={"account": account.number, **describe(plan), "arrangement_request": arrangement_request_id},
        detail=terms.note or None,
    )
    track(session, [plan], today, now)
    collection_hooks.after_promise(session, account.id, today, now)
    return plan


def change(session: Session, plan: PaymentPlan, terms: Terms, actor: User, today: date, now: datetime) -> None:
    """New terms for an active plan (same kind, same start: what was paid since still
    counts); its installments are made again from the terms."""
    if plan.status != "active":
        raise InvalidInput("Only an active plan can be changed.", "kind")
    if terms.kind != plan.kind:
        raise InvalidInput("Cancel it and make the other kind instead.", "kind")
    before = describe(plan)
    session.flush()
    session.execute(delete(PaymentPlanInstallment).where(PaymentPlanInstallment.plan_id == plan.id))
    session.expire(plan, ["installments"])
    plan.total_cents, plan.down_payment_cents, plan.grace_days = terms.total_cents, terms.down_cents, terms.grace_days
    plan.installments = _rows(plan, terms)
    if terms.note:
        plan.note = terms.note
    session.flush()
    audit.record(
        session,
        f"{plan.kind}.changed",
        actor=actor,
        entity_type="payment_plan",
        entity_id=plan.id,
        before=before,
        after=describe(plan),
        detail=terms.note or None,
    )
    track(session, [plan], today, now)
    collection_hooks.after_promise(session, plan.account_id, today, now)


def cancel(session: Session, plan: PaymentPlan, actor: User, reason: str, today: date) -> None:
    """Staff cancel an active plan (the ladder resumes at the next daily run)."""
    reason = reason.strip()
    if not reason:
        raise InvalidInput("Say why the plan is cancelled.", "reason")
    if len(reason) > 500:
        raise InvalidInput("Please keep this under 500 characters.", "reason")
    if plan.status != "active":
        raise InvalidInput("This plan is already %(status)s.", "reason", status=plan.status)
    _end(session, plan, "cancelled", today, reason, actor)


def _end(
    session: Session, plan: PaymentPlan, status: str, on: date, reason: str, actor: User | None, label: str = SYSTEM
) -> None:
    before = plan.status
    plan.status, plan.ended_on, plan.end_reason = status, on, reason
    audit.record(
        session,
        f"{plan.kind}.{status}",
        actor=actor,
        actor_label=None if actor else label,
        entity_type="payment_plan",
        entity_id=plan.id,
        before={"status": before},
        after={"status": status, "ended_on": on.isoformat(), "end_reason": reason},
    )


# --- Tracking payments ----------------------------------------------------------------------


def paid_since_start(session: Session, plans: Sequence[PaymentPlan]) -> dict[int, int]:
    """Money paid on each plan's account since the plan started: payments effective on or
    after ``starts_on``, less the reversals of those payments (returned payments)."""
    if not plans:
        return {}
    txn, original = LedgerTransaction, aliased(LedgerTransaction)
    rows = session.execute(
        select(PaymentPlan.id, func.sum(LedgerEntry.amount_cents))
        .join(LedgerEntry, LedgerEntry.account_id == PaymentPlan.account_id)
        .join(txn, txn.id == LedgerEntry.transaction_id)
        .outerjoin(original, original.id == txn.reverses_id)
        .where(
            PaymentPlan.id.in_([p.id for p in plans]),
            or_(
                and_(txn.kind == "payment", txn.effective_on >= PaymentPlan.starts_on),
                and_(
                    txn.kind == "reversal", original.kind == "payment", original.effective_on >= PaymentPlan.starts_on
                ),
            ),
        )
        .group_by(PaymentPlan.id)
    ).all()
    return {plan_id: -int(total or 0) for plan_id, total in rows}


def _apply(plan: PaymentPlan, paid_cents: int, as_of: date) -> None:
    left = max(paid_cents, 0)
    for row in plan.installments:
        part = min(row.amount_cents, left)
        left -= part
        row.paid_cents = part
        if part == row.amount_cents:
            if row.status != "paid":
                row.status, row.paid_on = "paid", as_of
        elif row.status == "paid":  # a payment that had paid it was returned
            row.status, row.paid_on = "due", None


def track(
    session: Session, plans: Sequence[PaymentPlan], as_of: date, now: datetime, label: str = PAYMENTS
) -> list[PaymentPlan]:
    """Apply the money paid since each plan started to its installments in order; a plan
    now paid in full completes. Returns the plans that completed."""
    paid = paid_since_start(session, plans)
    done = []
    for plan in plans:
        _apply(plan, paid.get(plan.id, 0), as_of)
        if plan.installments and all(row.status == "paid" for row in plan.installments):
            _end(session, plan, "completed", as_of, "Paid in full.", None, label)
            done.append(plan)
    return done


def after_payment(session: Session, account_ids: Sequence[int], as_of: date, now: datetime) -> None:
    """Count the payments just posted toward each account's active plan's installments.
    One indexed query when none of the accounts has an active plan."""
    ids = sorted(set(account_ids))
    if not ids:
        return
    found: list[PaymentPlan] = []
    for part in bulk.chunks(session, ids):
        found += session.scalars(
            select(PaymentPlan)
            .where(bulk.among(session, PaymentPlan.account_id, part), PaymentPlan.status == "active")
            .options(selectinload(PaymentPlan.installments))
        )
    if found:
        track(session, found, as_of, now)


# --- The daily review -----------------------------------------------------------------------


def review(session: Session, on: date, now: datetime) -> list[int]:
    """The daily review: every active plan's installments counted again (a returned payment
    un-pays), a plan paid in full completes, and a plan with an installment unpaid after its
    date and grace days breaks (an extension: unpaid after its date). Returns the account
    ids whose plan broke, so the daily run resumes their ladder with a new notice."""
    plans = list(
        session.scalars(
            select(PaymentPlan)
            .where(PaymentPlan.status == "active", PaymentPlan.starts_on <= on)
            .order_by(PaymentPlan.account_id)
            .options(selectinload(PaymentPlan.installments))
        )
    )
    completed = {p.id for p in track(session, plans, on, now, SYSTEM)}
    broken: list[int] = []
    for plan in plans:
        if plan.id in completed:
            continue
        missed = [
            row
            for row in plan.installments
            if row.status != "paid" and row.due_on + timedelta(days=plan.grace_days) < on
        ]
        if not missed:
            continue
        first = missed[0]
        for row in missed:
            row.status = "missed"
        unpaid = (first.amount_cents - first.paid_cents) / 100
        what = "The promised payment" if plan.kind == "extension" else f"Installment {first.seq}"
        by = first.due_on + timedelta(days=plan.grace_days)
        _end(
            session,
            plan,
            "broken",
            on,
            f"{what} due {first.due_on.isoformat()} (${unpaid:,.2f} unpaid) was not paid by {by.isoformat()}.",
            None,
        )
        broken.append(plan.account_id)
    return broken


def kept(session: Session, account_ids: Sequence[int], on: date) -> set[int]:
    """The accounts among ``account_ids`` whose active plan or extension is kept on ``on``:
    started, and no installment unpaid past its date and grace days."""
    ids = sorted(set(account_ids))
    out: set[int] = set()
    row = aliased(PaymentPlanInstallment)
    for part in bulk.chunks(session, ids):
        candidates = session.execute(
            select(PaymentPlan.account_id, PaymentPlan.grace_days, row.due_on, row.status)
            .outerjoin(row, row.plan_id == PaymentPlan.id)
            .where(
                bulk.among(session, PaymentPlan.account_id, part),
                PaymentPlan.status == "active",
                PaymentPlan.starts_on <= on,
            )
        ).all()
        late: defaultdict[int, bool] = defaultdict(bool)
        for account_id, grace, due_on, status in candidates:
            late[account_id] |= due_on is not None and status != "paid" and due_on + timedelta(days=grace) < on
        out.update(a for a, is_late in late.items() if not is_late)
    return out


@dataclass(frozen=True)
class NextInstallment:
    kind: str
    due_on: date
    #: What is left to pay of it.
    amount_cents: int
    #: The last day it may be paid before the plan breaks.
    pay_by: date


def next_installment(session: Session, account_id: int, on: date) -> NextInstallment | None:
    """The next installment of the account's active plan (the first not yet paid)."""
    stmt = statements.once(
        ("plans.next_installment",),
        lambda: (
            select(PaymentPlan)
            .where(PaymentPlan.account_id == bindparam("account_id"), PaymentPlan.status == "active")
            .options(selectinload(PaymentPlan.installments))
        ),
    )
    plan = session.scalar(stmt, {"account_id": account_id})
    if plan is None:
        return None
    row = next((r for r in plan.installments if r.status != "paid"), None)
    if row is None:
        return None
    return NextInstallment(
        plan.kind, row.due_on, row.amount_cents - row.paid_cents, row.due_on + timedelta(days=plan.grace_days)
    )
