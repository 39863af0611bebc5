"""Final bills when service stops: a short period, fixed charges prorated by days."""

from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.billing_core import bill_runs, posting
from portal.billing_core.errors import InvalidInput
from portal.billing_core.models import Bill, BillLine, Meter, MeterRead, Service

from .test_bill_runs import office


def billed_through_november(session: Session):  # type: ignore[no-untyped-def]
    accts, supervisor, specialist = office(session, 2)
    run = bill_runs.create_run(session, "C1", date(2026, 10, 5), date(2026, 11, 5), actor=specialist)
    bill_runs.calculate(session, run)
    bill_runs.approve(session, run, supervisor)
    bill_runs.post(session, run, supervisor)
    return accts, supervisor, specialist


def test_a_final_bill_prorates_fixed_charges_and_bills_the_final_read(session: Session) -> None:
    accts, _supervisor, specialist = billed_through_november(session)
    account = accts[0]
    meter = session.scalar(
        select(Meter).join(Service, Service.meter_id == Meter.id).where(Service.account_id == account.id)
    )
    last = session.scalar(
        select(MeterRead.value).where(MeterRead.meter_id == meter.id, MeterRead.read_on == date(2026, 11, 5))
    )
    before = posting.account_balance(session, account.id)
    bill = bill_runs.final_bill(
        session, account, date(2026, 11, 20), {meter.id: last + 5}, specialist, date(2026, 11, 21)
    )
    assert bill.status == "posted" and bill.number and bill.bill_run_id is None
    assert (bill.period_start, bill.period_end) == (date(2026, 11, 5), date(2026, 11, 20))
    lines = session.scalars(select(BillLine).where(BillLine.bill_id == bill.id)).all()
    # 15 of 30 days: half of the $24.61 water service charge and of the $38.52 sewer charge.
    assert any(ln.service_type == "water" and ln.amount_cents in (1230, 1231) for ln in lines)
    assert any(ln.service_type == "sewer" and ln.amount_cents == 1926 for ln in lines)
    assert any(ln.quantity == Decimal(5) and ln.amount_cents == 1390 for ln in lines)
    assert posting.account_balance(session, account.id) == before + bill.current_charges_cents
    assert account.status == "final" and account.closed_on == date(2026, 11, 20)
    assert all(
        s.ended_on == date(2026, 11, 20)
        for s in session.scalars(select(Service).where(Service.account_id == account.id))
    )
    # The account is not in the next run of its cycle.
    assert account.id not in bill_runs.cycle_accounts(session, account.cycle_id)


def test_a_final_read_below_the_last_one_changes_nothing(session: Session) -> None:
    accts, _supervisor, specialist = billed_through_november(session)
    account = accts[1]
    meter_id = session.scalar(
        select(Service.meter_id).where(Service.account_id == account.id, Service.meter_id.is_not(None))
    )
    bills = session.scalar(select(Bill.id).order_by(Bill.id.desc()).limit(1))
    with pytest.raises(InvalidInput, match="read below the previous one"), session.begin_nested():
        bill_runs.final_bill(
            session, account, date(2026, 11, 20), {meter_id: Decimal(1)}, specialist, date(2026, 11, 21)
        )
    session.expire_all()
    assert session.scalar(select(Bill.id).order_by(Bill.id.desc()).limit(1)) == bills
    assert account.status == "active"
    with pytest.raises(InvalidInput, match="final read of every meter"):
        bill_runs.final_bill(session, account, date(2026, 11, 20), {}, specialist, date(2026, 11, 21))
    with pytest.raises(InvalidInput, match="stop date must be after"):
        bill_runs.final_bill(
            session, account, date(2026, 11, 1), {meter_id: Decimal(10**5)}, specialist, date(2026, 11, 21)
        )
