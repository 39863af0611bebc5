"""The register of disputes, appeals and investigations, one use case per function: staff
open one on an account (``Action.DISPUTES_OPEN``), the resident disputes a bill of their
own linked account from its page, a supervisor decides (``Action.DISPUTES_DECIDE``); the
register and the account page's panel. The rules are ``billing_core/disputes.py``.

Each runs in the caller's transaction with the caller's clock; bad input is a
``FieldErrors`` raised before anything is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..billing_core import accounts, disputes, permissions
from ..billing_core.errors import NotFound
from ..billing_core.models import Account, AuditEvent, Bill, Dispute, User
from ..billing_core.permissions import Action
from ..billing_core.status import BillStatus


def _account(session: Session, number: str) -> Account:
    account = session.scalar(select(Account).where(Account.number == number.strip()))
    if account is None:
        raise NotFound(f"no account {number}")
    return account


def _bills(session: Session, account_id: int) -> list[Bill]:
    return list(
        session.scalars(
            select(Bill)
            .where(Bill.account_id == account_id, Bill.status == BillStatus.POSTED)
            .order_by(Bill.bill_date.desc(), Bill.id.desc())
            .limit(24)
        )
    )


def _names(session: Session, ids: set[int | None]) -> dict[int, str]:
    wanted = [i for i in ids if i]
    return {i: e for i, e in session.execute(select(User.id, User.email).where(User.id.in_(wanted)))} if wanted else {}


@dataclass(frozen=True)
class Panel:
    account: Account
    disputes: list[Dispute]
    bills: list[Bill]
    bill_numbers: dict[int, str]
    names: dict[int, str]
    events: list[AuditEvent]
    open_cents: int
    can_open: bool
    can_decide: bool


def panel(session: Session, user: User, number: str) -> Panel:
    permissions.require(user, Action.STAFF_VIEW)
    account = _account(session, number)
    rows = list(session.scalars(select(Dispute).where(Dispute.account_id == account.id).order_by(Dispute.id.desc())))
    bills = _bills(session, account.id)
    numbers = {b.id: b.number or "" for b in bills}
    missing = {d.bill_id for d in rows if d.bill_id and d.bill_id not in numbers}
    if missing:
        numbers.update(
            {i: n or "" for i, n in session.execute(select(Bill.id, Bill.number).where(Bill.id.in_(missing)))}
        )
    events = list(
        session.scalars(
            select(AuditEvent)
            .where(AuditEvent.entity_type == "dispute", AuditEvent.entity_id.in_([str(d.id) for d in rows] or ["-"]))
            .order_by(AuditEvent.occurred_at.desc(), AuditEvent.id.desc())
            .limit(50)
        )
    )
    return Panel(
        account=account,
        disputes=rows,
        bills=bills,
        bill_numbers=numbers,
        names=_names(session, {d.opened_by_id for d in rows} | {d.decided_by_id for d in rows}),
        events=events,
        open_cents=sum(d.amount_cents for d in rows if d.status == "open"),
        can_open=permissions.can(user.role, Action.DISPUTES_OPEN),
        can_decide=permissions.can(user.role, Action.DISPUTES_DECIDE),
    )


def open_by_staff(session: Session, user: User, number: str, values: dict[str, str], now: datetime) -> Dispute:
    permissions.require(user, Action.DISPUTES_OPEN)
    account = _account(session, number)
    bills = {b.number: b for b in _bills(session, account.id) if b.number}
    number_given = values.get("bill", "").strip()
    if number_given and number_given not in bills:
        found = session.scalar(
            select(Bill).where(
                Bill.account_id == account.id, Bill.number == number_given, Bill.status == BillStatus.POSTED
            )
        )
        if found is not None:
            bills[number_given] = found
    opening = disputes.check_staff(values, bills)
    return disputes.open_dispute(session, account, opening, "staff", user, now)


def decide(session: Session, user: User, dispute_id: int, decision: str, note: str, now: datetime) -> Dispute:
    permissions.require(user, Action.DISPUTES_DECIDE)
    dispute = session.get(Dispute, dispute_id, with_for_update=True)
    if dispute is None:
        raise NotFound(f"no dispute {dispute_id}")
    disputes.decide(session, dispute, user, decision, note, now)
    return dispute


# --- The register -------------------------------------------------------------------------


@dataclass(frozen=True)
class Register:
    rows: list[Dispute]
    numbers: dict[int, str]
    bill_numbers: dict[int, str]
    status: str
    kind: str
    via: str
    account: str
    open_cents: int


def register(
    session: Session, user: User, status: str = "open", kind: str = "", via: str = "", account: str = ""
) -> Register:
    """Disputes by status (open, upheld, denied, withdrawn; empty for all), kind, who opened
    them (staff, resident) and account number; oldest open first, else newest first."""
    permissions.require(user, Action.STAFF_VIEW)
    status = status if status in disputes.STATUSES else ""
    kind = kind if kind in disputes.KINDS else ""
    via = via if via in ("staff", "resident") else ""
    query = select(Dispute, Account.number).join(Account, Account.id == Dispute.account_id).limit(500)
    if status:
        query = query.where(Dispute.status == status)
    if kind:
        query = query.where(Dispute.kind == kind)
    if via:
        query = query.where(Dispute.opened_via == via)
    if account.strip():
        query = query.where(Account.number == account.strip())
    query = query.order_by(Dispute.opened_at, Dispute.id) if status == "open" else query.order_by(Dispute.id.desc())
    found = session.execute(query).all()
    bill_ids = {d.bill_id for d, _n in found if d.bill_id}
    bill_numbers = (
        {i: n or "" for i, n in session.execute(select(Bill.id, Bill.number).where(Bill.id.in_(bill_ids)))}
        if bill_ids
        else {}
    )
    rows = [d for d, _n in found]
    return Register(
        rows,
        {d.account_id: n for d, n in found},
        bill_numbers,
        status,
        kind,
        via,
        account.strip(),
        sum(d.amount_cents for d in rows if d.status == "open"),
    )


# --- The resident's side ------------------------------------------------------------------


@dataclass(frozen=True)
class ResidentBill:
    account: Account
    bill: Bill
    disputes: list[Dispute]


def _my_bill(session: Session, user: User, number: str, bill_number: str) -> tuple[Account, Bill]:
    """A posted bill on one of ``user``'s linked accounts, or ``NotFound`` (a 404)."""
    account = accounts.account_for_user(session, user, number)
    bill = accounts.bill_with_lines(session, account.id, bill_number) if account else None
    if account is None or bill is None or bill.status != BillStatus.POSTED:
        raise NotFound(bill_number)
    return account, bill


def resident_bill(session: Session, user: User, number: str, bill_number: str) -> ResidentBill:
    account, bill = _my_bill(session, user, number, bill_number)
    rows = list(session.scalars(select(Dispute).where(Dispute.bill_id == bill.id).order_by(Dispute.id.desc())))
    return ResidentBill(account, bill, rows)


def open_by_resident(
    session: Session,
    user: User,
    number: str,
    bill_number: str,
    values: dict[str, str],
    now: datetime,
    remote_addr: str | None = None,
    today: date | None = None,
) -> Dispute:
    """The resident disputes a bill of their own linked account (``NotFound`` for anyone
    else's): an amount up to the bill's total (the whole bill when empty), a reason. Since
    issue 16 it is opened as a case of type dispute (``services/cases.py``), whose dispute
    this is (``Dispute.case_id``): staff work it in the cases queue."""
    from . import cases

    _my_bill(session, user, number, bill_number)
    case = cases.open_by_resident(
        session,
        user,
        {**values, "kind": "dispute", "account": number, "bill": bill_number},
        today or now.date(),
        now,
        remote_addr,
    )
    dispute = session.scalar(select(Dispute).where(Dispute.case_id == case.id))
    assert dispute is not None  # a case of type dispute opens its dispute
    return dispute
