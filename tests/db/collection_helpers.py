"""Builders for the delinquency run's tests: bills and payments on the factories' district."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from portal.billing_core import ledger, payments, posting
from portal.billing_core.models import Account, Bill, CollectionAction, Notice, User, WorkOrder


def moment(day: date, hour: int = 14) -> datetime:
    return datetime.combine(day, time(hour), UTC)


def user(session: Session, role: str = "supervisor") -> User:
    found = User(email=f"{role}-run@example.net", role=role)
    session.add(found)
    session.flush()
    return found


def bill(session: Session, account: Account, bill_date: date, cents: int, due_days: int = 21) -> Bill:
    """A posted bill of ``cents`` (water 70 %, sewer the rest), due ``due_days`` later."""
    due = bill_date + timedelta(days=due_days)
    water = cents * 7 // 10
    txn = ledger.bill_transaction(account.id, bill_date, due, {"water": water, "sewer": cents - water})
    row = posting.post(session, txn, account.id, posted_at=moment(bill_date, 9))
    number = (session.scalar(select(func.count()).select_from(Bill)) or 0) + 1
    item = Bill(
        number=f"B{number:07d}",
        account_id=account.id,
        period_start=bill_date - timedelta(days=30),
        period_end=bill_date,
        bill_date=bill_date,
        due_date=due,
        previous_balance_cents=0,
        current_charges_cents=cents,
        total_due_cents=cents,
        status="posted",
        ledger_transaction_id=row.id,
    )
    session.add(item)
    session.flush()
    return item


def pay(session: Session, account: Account, cents: int, on: date) -> None:
    payments.post_received(session, [payments.Received(account.id, cents, "check", "test payment")], on, moment(on, 10))


def balance(session: Session, account: Account) -> int:
    return posting.account_balance(session, account.id)


def actions(session: Session, account: Account | None = None) -> list[CollectionAction]:
    query = select(CollectionAction).order_by(CollectionAction.id)
    if account is not None:
        query = query.where(CollectionAction.account_id == account.id)
    return list(session.scalars(query))


def complete_door_tags(session: Session, on: date) -> int:
    """Field staff leave every open door tag due by ``on`` (marked done that day)."""
    orders = list(
        session.scalars(
            select(WorkOrder).where(WorkOrder.kind == "door_tag", WorkOrder.status == "open", WorkOrder.due_on <= on)
        )
    )
    for order in orders:
        order.status, order.completed_at, order.lock_or_tag = "done", moment(on, 16), f"T{order.id}"
    session.flush()
    return len(orders)


def notices(session: Session, account: Account) -> list[Notice]:
    return list(session.scalars(select(Notice).where(Notice.account_id == account.id).order_by(Notice.id)))
