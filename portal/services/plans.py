"""Payment plans and extensions, one use case per function: the account page's panel, the
staff list, making, changing and cancelling one (``Action.PLANS_MANAGE``), and the
resident's next installment. The rules and the arithmetic are ``billing_core/plans.py``.

Each runs in the caller's transaction with the caller's clock; bad input is a
``FieldErrors`` raised before anything is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from ..billing_core import accounts, payments, permissions, plans
from ..billing_core.accounts import AccountSummary
from ..billing_core.errors import FieldErrors, InvalidInput, NotFound
from ..billing_core.ladder_policy import LadderPolicy
from ..billing_core.models import Account, AuditEvent, PaymentPlan, User
from ..billing_core.permissions import Action

#: The form fields of each kind.
FIELDS = {
    "plan": ("amount", "down_payment", "installments", "first_due", "note"),
    "extension": ("amount", "promise_on", "note"),
}


def _account(session: Session, number: str) -> Account:
    account = session.scalar(select(Account).where(Account.number == number.strip()))
    if account is None:
        raise NotFound(f"no account {number}")
    return account


def _names(session: Session, ids: set[int | None]) -> dict[int, str]:
    wanted = {i for i in ids if i}
    if not wanted:
        return {}
    return {i: e for i, e in session.execute(select(User.id, User.email).where(User.id.in_(wanted)))}


@dataclass(frozen=True)
class Panel:
    account: Account
    summary: AccountSummary
    policy: LadderPolicy
    current: PaymentPlan | None
    history: list[PaymentPlan]
    events: list[AuditEvent]
    names: dict[int, str]
    can_manage: bool


def panel(session: Session, user: User, number: str, on: date) -> Panel:
    permissions.require(user, Action.STAFF_VIEW)
    account = _account(session, number)
    rows = list(
        session.scalars(
            select(PaymentPlan)
            .where(PaymentPlan.account_id == account.id)
            .order_by(PaymentPlan.id.desc())
            .options(selectinload(PaymentPlan.installments))
        )
    )
    events = list(
        session.scalars(
            select(AuditEvent)
            .where(
                AuditEvent.entity_type == "payment_plan", AuditEvent.entity_id.in_([str(p.id) for p in rows] or ["-"])
            )
            .order_by(AuditEvent.occurred_at.desc(), AuditEvent.id.desc())
            .limit(50)
        )
    )
    return Panel(
        account=account,
        summary=accounts.summarise(session, account, on),
        policy=plans.policy_on(session, on),
        current=next((p for p in rows if p.status == "active"), None),
        history=[p for p in rows if p.status != "active"],
        events=events,
        names=_names(session, {p.created_by_id for p in rows}),
        can_manage=permissions.can(user.role, Action.PLANS_MANAGE),
    )


def _terms(
    session: Session, account: Account, kind: str, values: dict[str, str], on: date, plan: PaymentPlan | None = None
) -> plans.Terms:
    """The terms typed, checked against what the account owes (for a change: owes now plus
    what was paid since the plan started, which still counts toward it)."""
    owed = accounts.summarise(session, account, on).balance_cents
    if plan is not None:
        owed += plans.paid_since_start(session, [plan]).get(plan.id, 0)
    return plans.check(kind, values, owed, on, plans.policy_on(session, on), note_required=plan is not None)


def create(
    session: Session, user: User, number: str, kind: str, values: dict[str, str], on: date, now: datetime
) -> PaymentPlan:
    """Make a plan or an extension on the account (``FieldErrors``: nothing written)."""
    permissions.require(user, Action.PLANS_MANAGE)
    account = _account(session, number)
    payments.lock_account(session, account.id)
    terms = _terms(session, account, kind, values, on)
    try:
        return plans.create(session, account, terms, user, on, now)
    except InvalidInput as exc:
        raise FieldErrors({"kind": exc}) from exc


def _plan(session: Session, number: str, plan_id: int) -> tuple[Account, PaymentPlan]:
    account = _account(session, number)
    plan = session.get(PaymentPlan, plan_id)
    if plan is None or plan.account_id != account.id:
        raise NotFound(f"no plan {plan_id} on account {number}")
    return account, plan


def change(
    session: Session, user: User, number: str, plan_id: int, values: dict[str, str], on: date, now: datetime
) -> PaymentPlan:
    """New terms for the account's active plan; the note (why) is required."""
    permissions.require(user, Action.PLANS_MANAGE)
    account, plan = _plan(session, number, plan_id)
    payments.lock_account(session, account.id)
    session.refresh(plan)
    terms = _terms(session, account, plan.kind, values, on, plan)
    try:
        plans.change(session, plan, terms, user, on, now)
    except InvalidInput as exc:
        raise FieldErrors({"kind": exc}) from exc
    return plan


def cancel(session: Session, user: User, number: str, plan_id: int, reason: str, on: date) -> PaymentPlan:
    permissions.require(user, Action.PLANS_MANAGE)
    account, plan = _plan(session, number, plan_id)
    payments.lock_account(session, account.id)
    session.refresh(plan)
    try:
        plans.cancel(session, plan, user, reason, on)
    except InvalidInput as exc:
        raise FieldErrors({"reason": exc}) from exc
    return plan


# --- The staff list -----------------------------------------------------------------------


@dataclass(frozen=True)
class Listing:
    rows: list[PaymentPlan]
    numbers: dict[int, str]
    status: str
    kind: str
    account: str


def listing(session: Session, user: User, status: str = "active", kind: str = "", account: str = "") -> Listing:
    """Plans and extensions by status (active, broken, completed, cancelled), kind and
    account number, newest first (at most 500)."""
    permissions.require(user, Action.STAFF_VIEW)
    status = status if status in plans.STATUSES else "active"
    kind = kind if kind in plans.KINDS else ""
    query = (
        select(PaymentPlan, Account.number)
        .join(Account, Account.id == PaymentPlan.account_id)
        .where(PaymentPlan.status == status)
        .options(selectinload(PaymentPlan.installments))
        .order_by(PaymentPlan.id.desc())
        .limit(500)
    )
    if kind:
        query = query.where(PaymentPlan.kind == kind)
    if account.strip():
        query = query.where(Account.number == account.strip())
    found = session.execute(query).all()
    return Listing([p for p, _n in found], {p.account_id: n for p, n in found}, status, kind, account.strip())


# --- The resident's dashboard -------------------------------------------------------------


def next_installment(session: Session, account_id: int, on: date) -> plans.NextInstallment | None:
    """The next installment (date and amount left) of the account's active plan, if any."""
    return plans.next_installment(session, account_id, on)
