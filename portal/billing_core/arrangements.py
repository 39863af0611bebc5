"""Payment arrangements the customer proposes: the balance in monthly installments within
the office's policy, sent to staff for a decision.

The proposal is checked against the policy before it is sent (so staff only see plans they
may approve), and the installments are exact: integer cents, the odd cents on the first
installments, adding up to the balance to the cent.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import Select, bindparam, exists, select
from sqlalchemy.orm import Session

from . import audit, delinquency, statements
from .errors import N_, FieldErrors, InvalidInput
from .models import Account, ArrangementRequest, PaymentPlan, User
from .status import ARRANGEMENT_TRANSITIONS, ArrangementStatus, allowed, move
from .users import parse_amount


@dataclass(frozen=True)
class Policy:
    max_months: int = delinquency.DEFAULT.max_plan_months
    min_installment_cents: int = 1_000
    #: The first installment is due within this many days.
    first_due_within_days: int = 30


POLICY = Policy()


def add_months(day: date, months: int) -> date:
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def schedule(total_cents: int, down_cents: int, installments: int, first_due: date) -> list[tuple[date, int]]:
    """Each installment's due date and amount; they add up to ``total_cents - down_cents``."""
    rest = total_cents - down_cents
    base, odd = divmod(rest, installments)
    return [(add_months(first_due, i), base + (1 if i < odd else 0)) for i in range(installments)]


@dataclass(frozen=True)
class Proposal:
    total_cents: int
    down_cents: int
    installments: int
    first_due: date
    reason: str

    @property
    def plan(self) -> list[tuple[date, int]]:
        return schedule(self.total_cents, self.down_cents, self.installments, self.first_due)


def check(
    balance_cents: int,
    installments: str,
    down_payment: str,
    first_due: str,
    reason: str,
    today: date,
    policy: Policy = POLICY,
) -> Proposal:
    """A proposal from the form's text, or every problem with it by field."""
    errors: dict[str, InvalidInput] = {}
    if balance_cents <= 0:
        raise FieldErrors.one("installments", N_("There is nothing to pay on this account."))
    try:
        if not installments.strip().isascii() or not installments.strip().isdigit():
            raise ValueError  # int() would take Arabic-Indic or full-width digits too
        months = int(installments)
        if not 2 <= months <= policy.max_months:
            raise ValueError
    except ValueError:
        months = 0
        errors["installments"] = InvalidInput(
            N_("Choose from 2 to %(max)s monthly payments."), "installments", max=policy.max_months
        )
    down = parse_amount(down_payment) if down_payment.strip() else 0
    if down is None or down < 0:
        errors["down_payment"] = InvalidInput(N_("Enter the amount in dollars and cents, like 25.00."), "down_payment")
        down = 0
    elif down >= balance_cents:
        errors["down_payment"] = InvalidInput(
            N_("That pays it all: you can pay the whole balance online instead."), "down_payment"
        )
    try:
        first = date.fromisoformat(first_due.strip())
        if not today < first <= today + timedelta(days=policy.first_due_within_days):
            errors["first_due"] = InvalidInput(
                N_("Choose a day in the next %(days)s days."), "first_due", days=policy.first_due_within_days
            )
    except ValueError:
        first = today
        errors["first_due"] = InvalidInput(N_("Enter the date as year-month-day, for example 2026-12-15."), "first_due")
    if months and "down_payment" not in errors and (balance_cents - down) // months < policy.min_installment_cents:
        errors["installments"] = InvalidInput(
            N_("Each payment must be at least %(amount)s. Choose fewer payments."),
            "installments",
            amount=f"${policy.min_installment_cents / 100:.2f}",
        )
    if len(reason) > 1000:
        errors["reason"] = InvalidInput(N_("Please keep this under 1,000 characters."), "reason")
    if errors:
        raise FieldErrors(errors)
    return Proposal(balance_cents, down, months, first, reason.strip())


#: A plan that is waiting for a decision or in force: an account has at most one.
OPEN = (ArrangementStatus.SUBMITTED, ArrangementStatus.APPROVED)


def open_for(session: Session, account_id: int) -> ArrangementRequest | None:
    """The request waiting for a decision, or the approved one whose payment plan is still
    in force (an approved request whose ``PaymentPlan`` completed, broke or was cancelled
    is history: the customer may ask again)."""

    def build() -> Select[ArrangementRequest]:
        ended = exists().where(
            PaymentPlan.arrangement_request_id == ArrangementRequest.id, PaymentPlan.status != "active"
        )
        return (
            select(ArrangementRequest)
            .where(
                ArrangementRequest.account_id == bindparam("account_id"), ArrangementRequest.status.in_(OPEN), ~ended
            )
            .order_by(ArrangementRequest.id.desc())
            .limit(1)
        )

    return session.scalar(statements.once(("arrangements.open_for",), build), {"account_id": account_id})


def for_account(session: Session, account_id: int) -> list[ArrangementRequest]:
    stmt = statements.once(
        ("arrangements.for_account",),
        lambda: (
            select(ArrangementRequest)
            .where(ArrangementRequest.account_id == bindparam("account_id"))
            .order_by(ArrangementRequest.id.desc())
        ),
    )
    return list(session.scalars(stmt, {"account_id": account_id}))


def submit(
    session: Session, account: Account, user: User, proposal: Proposal, now: datetime, remote_addr: str | None
) -> ArrangementRequest:
    if open_for(session, account.id) is not None:
        raise InvalidInput(N_("This account already has a payment plan or a request waiting."), "installments")
    request = ArrangementRequest(
        account_id=account.id,
        user_id=user.id,
        status=ArrangementStatus.SUBMITTED.value,
        total_cents=proposal.total_cents,
        down_payment_cents=proposal.down_cents,
        installments=proposal.installments,
        first_due_on=proposal.first_due,
        reason=proposal.reason or None,
        created_at=now,
    )
    session.add(request)
    session.flush()
    audit.record(
        session,
        "arrangement.requested",
        actor=user,
        entity_type="arrangement_request",
        entity_id=request.id,
        after={
            "account": account.number,
            "total_cents": proposal.total_cents,
            "down_payment_cents": proposal.down_cents,
            "installments": proposal.installments,
            "first_due_on": proposal.first_due.isoformat(),
        },
        remote_addr=remote_addr,
    )
    return request


def decide(
    session: Session, request: ArrangementRequest, staff: User, approve: bool, message: str, now: datetime
) -> None:
    new = ArrangementStatus.APPROVED if approve else ArrangementStatus.DECLINED
    if not allowed(ARRANGEMENT_TRANSITIONS, request.status, new):
        raise InvalidInput(f"This request is already {request.status}.", "decision")
    message = message.strip()[:500]
    if not approve and not message:
        raise InvalidInput(
            "Tell the customer why the plan is declined, and what they could ask for instead.", "message"
        )
    before = request.status
    move(ARRANGEMENT_TRANSITIONS, request, new)
    request.message = message or None
    request.decided_at, request.decided_by_id = now, staff.id
    audit.record(
        session,
        f"arrangement.{new.value}",
        actor=staff,
        entity_type="arrangement_request",
        entity_id=request.id,
        before={"status": before},
        after={"status": new.value, "message": request.message},
    )


def may_decide(request: ArrangementRequest) -> bool:
    """Is the request still waiting for a decision?"""
    return allowed(ARRANGEMENT_TRANSITIONS, request.status, ArrangementStatus.APPROVED)


def withdraw(session: Session, request: ArrangementRequest, user: User, now: datetime) -> None:
    if not allowed(ARRANGEMENT_TRANSITIONS, request.status, ArrangementStatus.WITHDRAWN):
        raise InvalidInput(N_("Staff already decided on this request. Call us to change the plan."), "decision")
    before = request.status
    move(ARRANGEMENT_TRANSITIONS, request, ArrangementStatus.WITHDRAWN)
    request.decided_at = now
    audit.record(
        session,
        "arrangement.withdrawn",
        actor=user,
        entity_type="arrangement_request",
        entity_id=request.id,
        before={"status": before},
        after={"status": ArrangementStatus.WITHDRAWN.value},
    )


def queue(session: Session, status: str = ArrangementStatus.SUBMITTED) -> list[ArrangementRequest]:
    return list(
        session.scalars(
            select(ArrangementRequest)
            .where(ArrangementRequest.status == status)
            .order_by(ArrangementRequest.created_at, ArrangementRequest.id)
            .limit(500)
        )
    )
