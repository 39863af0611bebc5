"""Payment plans: the customer proposes one for an account and may withdraw it while it
waits; staff approve or decline it from a queue (``billing_core/arrangements.py`` holds the
policy and the arithmetic).

Each function is one use case in the caller's transaction; the clock comes from the caller.
Deciding checks the permission table first (``Action.ARRANGEMENTS_DECIDE``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..billing_core import accounts, arrangements, outbox, payments, permissions, plans
from ..billing_core.accounts import AccountSummary
from ..billing_core.arrangements import Policy, Proposal
from ..billing_core.errors import N_, FieldErrors, InvalidInput, NotFound
from ..billing_core.models import Account, ArrangementRequest, EmailOutbox, User
from ..billing_core.permissions import Action
from ..billing_core.status import ArrangementStatus
from .customers import account_numbers

# --- The customer's side -----------------------------------------------------------------


@dataclass(frozen=True)
class PlanPage:
    account: Account
    summary: AccountSummary
    policy: Policy
    #: The plan waiting for a decision or in force, if any
    current: ArrangementRequest | None
    history: list[ArrangementRequest]


def plan_page(session: Session, account: Account, as_of: date) -> PlanPage:
    return PlanPage(
        account=account,
        summary=accounts.summarise(session, account, as_of),
        policy=arrangements.POLICY,
        current=arrangements.open_for(session, account.id),
        history=arrangements.for_account(session, account.id),
    )


def propose(
    session: Session,
    account: Account,
    user: User,
    values: dict[str, str],
    today: date,
    now: datetime,
    remote_addr: str | None,
    send: bool = True,
) -> Proposal:
    """Check the plan the customer typed against the policy and the balance today; with
    ``send``, send it to staff. Every problem is a ``FieldErrors`` (nothing is written),
    an account that already has a plan or a request waiting too."""
    summary = accounts.summarise(session, account, today)
    if send and plans.active_for(session, account.id) is not None:
        raise FieldErrors.one("installments", N_("This account already has a payment plan or a request waiting."))
    proposal = arrangements.check(
        summary.balance_cents,
        values.get("installments", ""),
        values.get("down_payment", ""),
        values.get("first_due", ""),
        values.get("reason", ""),
        today,
    )
    if send:
        try:
            arrangements.submit(session, account, user, proposal, now, remote_addr)
        except InvalidInput as exc:
            raise FieldErrors({exc.field or "installments": exc}) from exc
    return proposal


def withdraw(session: Session, account: Account, user: User, request_id: int, now: datetime) -> ArrangementRequest:
    """The customer withdraws a request on this account; ``InvalidInput`` once staff decided."""
    item = session.scalar(
        select(ArrangementRequest).where(
            ArrangementRequest.id == request_id, ArrangementRequest.account_id == account.id
        )
    )
    if item is None:
        raise NotFound(str(request_id))
    arrangements.withdraw(session, item, user, now)
    return item


# --- The staff queue -----------------------------------------------------------------------


@dataclass(frozen=True)
class Queue:
    items: list[ArrangementRequest]
    numbers: dict[int, str]


def queue(session: Session, status: ArrangementStatus) -> Queue:
    items = arrangements.queue(session, status)
    return Queue(items, account_numbers(session, (i.account_id for i in items)))


@dataclass(frozen=True)
class StaffPlan:
    item: ArrangementRequest
    account: Account
    summary: AccountSummary
    plan: list[tuple[date, int]]
    requester: User | None
    can_act: bool
    emails: list[EmailOutbox]


def _get(session: Session, request_id: int | str, lock: bool = False) -> ArrangementRequest:
    """The request by its id (as a number or as the page's address has it), or ``NotFound``."""
    try:
        number = int(request_id)
    except ValueError:
        raise NotFound(str(request_id)) from None
    item = session.get(ArrangementRequest, number, with_for_update=lock)
    if item is None:
        raise NotFound(str(request_id))
    return item


def staff_plan(session: Session, staff: User, request_id: int | str, as_of: date) -> StaffPlan:
    """A payment plan request as staff see it (any staff role may read it)."""
    item = _get(session, request_id)
    account = session.get(Account, item.account_id)
    assert account is not None  # a plan request always names its account
    return StaffPlan(
        item=item,
        account=account,
        summary=accounts.summarise(session, account, as_of),
        plan=arrangements.schedule(item.total_cents, item.down_payment_cents, item.installments, item.first_due_on),
        requester=session.get(User, item.user_id),
        can_act=permissions.can(staff.role, Action.ARRANGEMENTS_DECIDE) and arrangements.may_decide(item),
        emails=outbox.about(session, "arrangement_request", item.id),
    )


#: The decisions the staff form offers: approve (True) or decline (False).
DECISIONS = {"approve": True, "decline": False}


def decide(
    session: Session,
    staff: User,
    request_id: int | str,
    decision: str,
    message: str,
    now: datetime,
    on: date | None = None,
) -> ArrangementRequest:
    """Staff approve or decline: ``NotAllowed`` for a role that does not decide plans,
    ``InvalidInput`` for a decision the request cannot take (the caller shows the page again).
    Approving makes the payment plan itself (``billing_core/plans.py``), starting ``on``
    (the office's date; today in UTC when not given), with the installments the customer
    asked for: it then pauses the ladder and counts the payments toward its installments."""
    permissions.require(staff, Action.ARRANGEMENTS_DECIDE)
    item = _get(session, request_id, lock=True)
    if decision not in DECISIONS:
        raise InvalidInput("Choose approve or decline.", "decision")
    approve = DECISIONS[decision]
    day = on or now.date()
    if approve:
        payments.lock_account(session, item.account_id)
        if plans.active_for(session, item.account_id) is not None:
            raise InvalidInput(
                "This account already has an active payment plan or extension: cancel it on the account page first.",
                "decision",
            )
    arrangements.decide(session, item, staff, approve, message, now)
    if approve:
        account = session.get(Account, item.account_id)
        assert account is not None
        terms = plans.Terms(
            "plan",
            item.total_cents,
            item.down_payment_cents,
            tuple(
                arrangements.schedule(item.total_cents, item.down_payment_cents, item.installments, item.first_due_on)
            ),
            plans.policy_on(session, day).plan_grace_days,
            f"Approved from the customer's request {item.id}.",
        )
        plans.create(session, account, terms, staff, day, now, arrangement_request_id=item.id)
    return item
