"""Adjustments with maker-checker and the leak helper (the approvals queue that decides
them is ``services/approvals.py``).

Each function is one use case in the caller's transaction (the view's ``db(request)``, the
command's ``transaction``); the clock and the money policy come from the caller. The rules
are in ``billing_core/adjustments.py``, ``billing_core/leak.py`` and
``billing_core/write_offs.py``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..billing_core import adjustments, leak, permissions, posting
from ..billing_core.errors import InvalidInput, NotFound
from ..billing_core.models import Account, Adjustment, Bill, User
from ..billing_core.money_policy import MoneyPolicy
from ..billing_core.permissions import Action
from ..billing_core.status import BillStatus


def _account(session: Session, number: str, lock: bool = False) -> Account:
    account = session.scalar(select(Account).where(Account.number == (number or "").strip()))
    if account is None:
        raise NotFound(str(number))
    if lock:
        session.get(Account, account.id, with_for_update=True)
    return account


def _users(session: Session, ids: Iterable[int | None]) -> dict[int, User]:
    wanted = [i for i in ids if i is not None]
    if not wanted:
        return {}
    return {u.id: u for u in session.scalars(select(User).where(User.id.in_(wanted)))}


@dataclass(frozen=True)
class Panel:
    """The account page's adjustments panel."""

    account: Account
    items: list[Adjustment]
    people: dict[int, User]
    services: list[str]
    bills: list[str]
    owed: dict[str, int]
    can_prepare: bool
    limit_cents: int | None
    policy: MoneyPolicy
    bill_numbers: dict[int, str] = field(default_factory=dict)


def panel(session: Session, staff: User, number: str, policy: MoneyPolicy) -> Panel:
    account = _account(session, number)
    items = adjustments.for_account(session, account.id)
    bills = list(
        session.execute(
            select(Bill.id, Bill.number)
            .where(Bill.account_id == account.id, Bill.status == BillStatus.POSTED.value)
            .order_by(Bill.bill_date.desc())
        ).all()
    )
    return Panel(
        account=account,
        items=items,
        people=_users(session, {i.prepared_by_id for i in items} | {i.decided_by_id for i in items}),
        services=adjustments.services_of(account),
        bills=[n for _i, n in bills if n],
        owed=posting.open_by_service(session, account.id),
        can_prepare=permissions.can(staff.role, Action.ADJUSTMENTS_PREPARE),
        limit_cents=permissions.limit_cents(staff.role, Action.ADJUSTMENTS_PREPARE),
        policy=policy,
        bill_numbers={i: n for i, n in bills if n},
    )


@dataclass(frozen=True)
class Prepared:
    adjustment: Adjustment
    #: The part of a credit beyond what the service owed: it became a credit on the account.
    becomes_credit_cents: int


def prepare(session: Session, staff: User, number: str, values: dict[str, str], today: date, now: datetime) -> Prepared:
    """Check the form whole (``FieldErrors``, nothing written), then prepare: posted at once
    within the preparer's limit, else pending for someone else's approval."""
    permissions.require(staff, Action.ADJUSTMENTS_PREPARE)
    account = _account(session, number, lock=True)
    draft = adjustments.check(
        session,
        account,
        service=values.get("service", ""),
        amount=values.get("amount", ""),
        direction=values.get("direction", ""),
        reason=values.get("reason", ""),
        note=values.get("note", ""),
        bill=values.get("bill", ""),
    )
    return Prepared(adjustments.prepare(session, account, staff, draft, today, now), draft.becomes_credit_cents)


@dataclass(frozen=True)
class LeakResult:
    working: leak.Working
    adjustment: Adjustment | None


def leak_credit(
    session: Session,
    staff: User,
    number: str,
    values: dict[str, str],
    policy: MoneyPolicy,
    today: date,
    now: datetime,
    *,
    preview: bool = False,
) -> LeakResult:
    """Work the leak credit out (``FieldErrors`` when there is none); unless ``preview``,
    prepare it as a leak adjustment against the leak bill (limits and approval apply)."""
    permissions.require(staff, Action.ADJUSTMENTS_PREPARE)
    account = _account(session, number, lock=True)
    proof = (values.get("proof") or "").strip()[:300]
    # The working may be looked at before the proof of repair is at hand; preparing needs it.
    checked = dataclasses.replace(policy, leak_requires_proof=False) if preview else policy
    working = leak.work_out(session, account, today, checked, proof=proof, bill_number=values.get("leak_bill", ""))
    if preview:
        return LeakResult(working, None)
    owed = posting.open_by_service(session, account.id).get(leak.SERVICE, 0)
    draft = adjustments.Draft(
        leak.SERVICE,
        -working.credit_cents,
        "leak",
        (values.get("note") or "").strip()[:2000] or f"Leak credit on bill {working.bill_number}",
        working.bill_id,
        owed,
    )
    item = adjustments.prepare(
        session, account, staff, draft, today, now, working=working.data, repair_proof=proof or None
    )
    return LeakResult(working, item)


def _adjustment(session: Session, adjustment_id: int | str) -> Adjustment:
    try:
        number = int(adjustment_id)
    except (TypeError, ValueError):
        raise NotFound(str(adjustment_id)) from None
    item = session.get(Adjustment, number, with_for_update=True)
    if item is None:
        raise NotFound(str(adjustment_id))
    return item


def decide(
    session: Session,
    staff: User,
    adjustment_id: int | str,
    decision: str,
    note: str,
    today: date,
    now: datetime,
) -> Adjustment:
    """Approve (post) or reject (with why) a pending adjustment: never the preparer, and
    within the approver's limit."""
    item = _adjustment(session, adjustment_id)
    if decision == "approve":
        session.get(Account, item.account_id, with_for_update=True)
        return adjustments.approve(session, item, staff, today, now)
    if decision == "reject":
        return adjustments.reject(session, item, staff, note, now)
    raise InvalidInput("Choose approve or reject.", "decision")
