"""Write-offs of uncollectible final balances: prepared by a specialist, approved by someone
else within their limit (``billing_core/write_offs.py``). A later payment is still taken
and recorded as a recovery (``write_offs.record_recovery``, called by every payment path)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..billing_core import permissions, posting, write_offs
from ..billing_core.errors import InvalidInput, NotFound
from ..billing_core.models import Account, User, WriteOff
from ..billing_core.permissions import Action


def _account(session: Session, number: str, lock: bool = False) -> Account:
    account = session.scalar(select(Account).where(Account.number == (number or "").strip()))
    if account is None:
        raise NotFound(str(number))
    if lock:
        session.get(Account, account.id, with_for_update=True)
    return account


@dataclass(frozen=True)
class Panel:
    account: Account
    items: list[WriteOff]
    people: dict[int, User]
    writable: dict[str, int]
    balance_cents: int
    unrecovered_cents: int
    can_prepare: bool
    eligible: bool


def panel(session: Session, staff: User, number: str) -> Panel:
    account = _account(session, number)
    items = write_offs.for_account(session, account.id)
    ids = {i.prepared_by_id for i in items} | {i.decided_by_id for i in items if i.decided_by_id}
    people = {u.id: u for u in session.scalars(select(User).where(User.id.in_(ids)))} if ids else {}
    return Panel(
        account=account,
        items=items,
        people=people,
        writable=write_offs.writable_cents(session, account.id),
        balance_cents=posting.account_balance(session, account.id),
        unrecovered_cents=write_offs.written_off_unrecovered(session, account.id),
        can_prepare=permissions.can(staff.role, Action.WRITE_OFFS_PREPARE),
        eligible=account.status in write_offs.WRITABLE_STATUSES,
    )


def prepare(session: Session, staff: User, number: str, values: dict[str, str], now: datetime) -> WriteOff:
    """Check the form whole (``FieldErrors``, nothing written); it waits for approval."""
    permissions.require(staff, Action.WRITE_OFFS_PREPARE)
    account = _account(session, number, lock=True)
    return write_offs.prepare(session, account, staff, values.get("amount", ""), values.get("reason", ""), now)


def decide(
    session: Session,
    staff: User,
    write_off_id: int | str,
    decision: str,
    note: str,
    today: date,
    now: datetime,
) -> WriteOff:
    try:
        number = int(write_off_id)
    except (TypeError, ValueError):
        raise NotFound(str(write_off_id)) from None
    item = session.get(WriteOff, number, with_for_update=True)
    if item is None:
        raise NotFound(str(write_off_id))
    if decision == "approve":
        return write_offs.approve(session, item, staff, today, now)
    if decision == "reject":
        return write_offs.reject(session, item, staff, note, now)
    raise InvalidInput("Choose approve or reject.", "decision")
