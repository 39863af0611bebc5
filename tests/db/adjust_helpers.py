"""Builders for the adjustment, leak and write-off tests: an account with a tiered water
rate and posted monthly bills whose usage and lines are those the rate gives."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from sqlalchemy.orm import Session

from portal.billing_core import ledger, posting, rating, users
from portal.billing_core.models import (
    Account,
    Bill,
    BillLine,
    BillUsage,
    Meter,
    RateSchedule,
    RateScheduleVersion,
    Service,
    User,
)

from .factories import district

NOW = datetime(2026, 11, 20, 17, tzinfo=UTC)
TODAY = NOW.date()
TIERED = {
    "unit": "CCF",
    "components": [
        {"type": "fixed", "description": "Water service charge", "amount": "20.00"},
        {
            "type": "tiered",
            "description": "Water usage",
            "tiers": [
                {"up_to": "10", "price": "2.00"},
                {"up_to": "30", "price": "4.00"},
                {"up_to": None, "price": "6.00"},
            ],
        },
    ],
}


def staff(session: Session) -> dict[str, User]:
    return {
        role: users.create_user(session, f"{role}@x.org", "a long password", role, now=NOW)
        for role in ("csr", "specialist", "supervisor", "admin", "cashier")
    }


def tiered_account(session: Session) -> Account:
    """An account on the tiered water rate (no bills yet)."""
    (account,) = district(session, 1)
    schedule = RateSchedule(code="WT", name="Water tiered", service_type="water", customer_class="RESIDENTIAL_SINGLE")
    session.add(schedule)
    session.flush()
    session.add(RateScheduleVersion(schedule_id=schedule.id, effective_on=date(2020, 1, 1), definition=TIERED))
    session.flush()
    water = next(s for s in account.services if s.service_type == "water")
    water.rate_schedule_id = schedule.id
    session.flush()
    return account


def post_bill(session: Session, account: Account, start: date, usage: str, n: int) -> Bill:
    """A posted monthly water bill for ``usage`` CCF, its lines rated by the tiered rate."""
    end = date(start.year + (start.month // 12), start.month % 12 + 1, start.day)
    water = next(s for s in account.services if s.service_type == "water")
    version = session.query(RateScheduleVersion).filter(RateScheduleVersion.schedule_id == water.rate_schedule_id).one()
    lines = rating.rate("water", version.definition, rating.Usage(quantity=Decimal(usage)), version.id)
    charges = sum(line.amount_cents for line in lines)
    bill = Bill(
        number=f"B{account.id:03d}{n:03d}",
        account_id=account.id,
        period_start=start,
        period_end=end,
        bill_date=end,
        due_date=end + timedelta(days=21),
        previous_balance_cents=0,
        current_charges_cents=charges,
        total_due_cents=charges,
        status="posted",
    )
    session.add(bill)
    session.flush()
    meter = session.get(Meter, water.meter_id)
    session.add(BillUsage(bill_id=bill.id, meter_id=meter.id, quantity=Decimal(usage)))
    for i, line in enumerate(lines):
        session.add(
            BillLine(
                bill_id=bill.id,
                sequence=i,
                service_type="water",
                description=line.description,
                quantity=line.quantity,
                unit=line.unit,
                unit_price=line.unit_price,
                amount_cents=line.amount_cents,
                rate_version_id=line.rate_version_id,
            )
        )
    row = posting.post(session, ledger.bill_transaction(account.id, end, bill.due_date, {"water": charges}), account.id)
    bill.ledger_transaction_id = row.id
    session.flush()
    return bill


def history(session: Session, account: Account, usages: list[str]) -> list[Bill]:
    """Monthly bills from 2025-11-05 on, one per usage given (the last is the newest)."""
    bills = []
    start = date(2025, 11, 5)
    for n, usage in enumerate(usages):
        bills.append(post_bill(session, account, start, usage, n))
        start = date(start.year + (start.month // 12), start.month % 12 + 1, 5)
    return bills


__all__ = ["NOW", "TODAY", "Service", "history", "post_bill", "staff", "tiered_account"]
