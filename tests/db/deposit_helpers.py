"""Builders shared by the deposit and refund tests: staff, posted bills and payments."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from portal.adapters.database import transaction
from portal.billing_core import ledger, posting, users
from portal.billing_core.models import Account, Bill, User

from .factories import district

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


def office(sessions: sessionmaker[Session], accounts: int = 2) -> tuple[list[str], dict[str, User]]:
    with transaction(sessions) as session:
        numbers = [a.number for a in district(session, accounts)]
        staff = {
            role: users.create_user(session, f"{role}@example.org", "long enough password", role, now=NOW)
            for role in ("csr", "specialist", "supervisor", "admin", "cashier")
        }
    return numbers, staff


def account(session: Session, number: str) -> Account:
    from sqlalchemy import select

    found = session.scalar(select(Account).where(Account.number == number))
    assert found is not None
    return found


def post_bill(session: Session, account_id: int, bill_date: date, cents: int, n: int) -> Bill:
    due = bill_date + timedelta(days=21)
    row = posting.post(session, ledger.bill_transaction(account_id, bill_date, due, {"water": cents}), account_id)
    bill = Bill(
        number=f"B{account_id:04d}{n:04d}",
        account_id=account_id,
        period_start=bill_date - timedelta(days=30),
        period_end=bill_date - timedelta(days=1),
        bill_date=bill_date,
        due_date=due,
        previous_balance_cents=0,
        current_charges_cents=cents,
        total_due_cents=cents,
        status="posted",
        ledger_transaction_id=row.id,
    )
    session.add(bill)
    session.flush()
    return bill


def pay(session: Session, account_id: int, on: date, cents: int) -> None:
    txn = ledger.payment_transaction(account_id, on, cents, "counter", posting.open_by_service(session, account_id))
    posting.post(session, txn, account_id)


def months_of_bills(
    sessions: sessionmaker[Session], number: str, first: date, months: int, cents: int, late: set[int] = frozenset()
) -> None:
    """A bill a month from ``first``, each paid five days after it is billed (or, for the
    months in ``late``, thirty days after its due date)."""
    with transaction(sessions) as session:
        acct = account(session, number)
        for i in range(months):
            y, m = divmod(first.month - 1 + i, 12)
            bill_date = date(first.year + y, m + 1, first.day)
            bill = post_bill(session, acct.id, bill_date, cents, i)
            paid_on = bill.due_date + timedelta(days=30) if i in late else bill_date + timedelta(days=5)
            pay(session, acct.id, paid_on, cents)
