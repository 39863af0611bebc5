from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from portal.adapters.clock import system_clock
from portal.billing_core import bill_runs, posting, users
from portal.billing_core.errors import InvalidInput
from portal.billing_core.models import (
    Account,
    Bill,
    BillLine,
    BillUsage,
    LedgerEntry,
    Meter,
    MeterRead,
    RateSchedule,
    RateScheduleVersion,
)

from .factories import district

D = Decimal


def office(session: Session, accounts: int = 3):  # type: ignore[no-untyped-def]
    accts = district(session, accounts)
    for meter in session.scalars(select(Meter).order_by(Meter.id)):
        value = D(1000)
        for month in range(5, 12):  # reads on the 5th, May to November
            session.add(MeterRead(meter_id=meter.id, read_on=date(2026, month, 5), value=value, source="amr"))
            value += 10 + meter.id
    supervisor = users.create_user(session, "sup@x.org", "a long password", "supervisor")
    specialist = users.create_user(session, "spec@x.org", "a long password", "specialist")
    session.flush()
    return accts, supervisor, specialist


def test_a_run_from_drafts_to_posted_bills(session: Session) -> None:
    accts, supervisor, specialist = office(session)
    run = bill_runs.create_run(session, "C1", date(2026, 10, 5), date(2026, 11, 5), actor=specialist)
    assert (run.accounts_total, run.bill_date, run.due_date) == (3, date(2026, 11, 7), date(2026, 11, 28))
    step = bill_runs.calculate(session, run, now=system_clock())
    assert step.accounts == 3 and run.status == "calculated"
    draft = session.scalar(select(Bill).where(Bill.account_id == accts[0].id))
    assert draft.status == "draft" and draft.number is None
    usage = session.scalar(select(BillUsage).where(BillUsage.bill_id == draft.id))
    assert usage.quantity == D(11)  # meter 1 used 10 + 1 a month
    # Water: $24.61 + 11 x $2.78 = $55.19; sewer $38.52.
    assert draft.current_charges_cents == 2461 + 3058 + 3852
    reg = bill_runs.register(session, run)
    assert (reg.drafts, reg.held, reg.total_cents) == (
        3,
        0,
        sum(b.current_charges_cents for b in session.scalars(select(Bill))),
    )
    assert set(reg.by_service) == {"water", "sewer"} and reg.by_class["RESIDENTIAL_SINGLE"][0] == 3
    with pytest.raises(bill_runs.NotAllowed):
        bill_runs.approve(session, run, specialist, now=system_clock())
    with pytest.raises(InvalidInput, match="approve it before posting"):
        bill_runs.post(session, run, supervisor, now=system_clock())
    bill_runs.approve(session, run, supervisor, now=system_clock())
    step = bill_runs.post(session, run, supervisor, now=system_clock())
    assert step.accounts == 3 and run.status == "posted"
    posted = session.scalars(select(Bill).order_by(Bill.id)).all()
    assert all(b.status == "posted" and b.number == f"{b.id:09d}" and b.ledger_transaction_id for b in posted)
    assert session.scalar(select(func.sum(LedgerEntry.amount_cents))) == 0
    for b in posted:
        assert posting.account_balance(session, b.account_id) == b.total_due_cents == b.current_charges_cents
    # A post that is run again (as after a worker died) bills nobody twice.
    entries = session.scalar(select(func.count(LedgerEntry.id)))
    run.status = "posting"
    assert bill_runs.post(session, run, supervisor, now=system_clock()).accounts == 0
    assert session.scalar(select(func.count(LedgerEntry.id))) == entries


def test_calculating_again_replaces_drafts_instead_of_adding(session: Session) -> None:
    _, supervisor, specialist = office(session)
    run = bill_runs.create_run(session, "C1", date(2026, 10, 5), date(2026, 11, 5), actor=specialist)
    bill_runs.calculate(session, run, now=system_clock())
    bill_runs.calculate(session, run, now=system_clock())
    assert session.scalar(select(func.count(Bill.id))) == 3
    assert session.scalar(select(func.count(BillLine.id))) == 9


def test_missing_reads_are_estimated_or_held(session: Session) -> None:
    accts, supervisor, specialist = office(session)
    meter1 = session.scalar(select(Meter).where(Meter.serial == "T000001"))
    session.execute(
        MeterRead.__table__.delete().where(MeterRead.read_on == date(2026, 11, 5), MeterRead.meter_id == meter1.id)
    )
    new_meter = session.scalar(select(Meter).where(Meter.serial == "T000002"))
    session.execute(MeterRead.__table__.delete().where(MeterRead.meter_id == new_meter.id))
    run = bill_runs.create_run(session, "C1", date(2026, 10, 5), date(2026, 11, 5), actor=specialist)
    bill_runs.calculate(session, run, now=system_clock())
    estimated = session.scalar(select(Bill).where(Bill.account_id == accts[0].id))
    assert estimated.estimated and "estimated" in estimated.exceptions
    est_read = session.scalar(select(MeterRead).where(MeterRead.meter_id == meter1.id, MeterRead.source == "estimate"))
    assert est_read.status == "estimated" and "average of the last 3 periods" in est_read.note
    held = session.scalar(select(Bill).where(Bill.account_id == accts[1].id))
    assert "missing_read" in held.exceptions and held.current_charges_cents == 0
    reg = bill_runs.register(session, run)
    assert reg.held == 1 and [n for n, _ in reg.exceptions["missing_read"]] == [accts[1].number]
    bill_runs.approve(session, run, supervisor, now=system_clock())
    step = bill_runs.post(session, run, supervisor, now=system_clock())
    assert (step.accounts, step.held, run.status) == (2, 1, "posted")
    assert session.scalar(select(Bill.status).where(Bill.id == held.id)) == "draft"


def test_a_rate_change_inside_the_period_splits_the_bill(session: Session) -> None:
    accts, supervisor, specialist = office(session, 1)
    water = session.scalar(select(RateSchedule).where(RateSchedule.code == "W"))
    old = session.scalar(select(RateScheduleVersion).where(RateScheduleVersion.schedule_id == water.id))
    new_def = {
        "unit": "CCF",
        "components": [
            {"type": "fixed", "description": "Water service charge", "amount": "31.00"},
            {"type": "uniform", "description": "Water usage", "price": "3.10"},
        ],
    }
    new = RateScheduleVersion(schedule_id=water.id, effective_on=date(2026, 10, 20), definition=new_def)
    session.add(new)
    session.flush()
    run = bill_runs.create_run(session, "C1", date(2026, 10, 5), date(2026, 11, 5), actor=specialist)
    bill_runs.calculate(session, run, now=system_clock())
    lines = session.scalars(select(BillLine).where(BillLine.service_type == "water").order_by(BillLine.sequence)).all()
    assert {line.rate_version_id for line in lines} == {old.id, new.id}
    assert any("10/05 to 10/19, 15 days" in line.description for line in lines)
    assert any("10/20 to 11/04, 16 days" in line.description for line in lines)


def test_runs_cannot_overlap_and_need_a_real_period(session: Session) -> None:
    _, _, specialist = office(session, 1)
    bill_runs.create_run(session, "C1", date(2026, 10, 5), date(2026, 11, 5), actor=specialist)
    with pytest.raises(InvalidInput, match="already covers cycle C1"):
        bill_runs.create_run(session, "C1", date(2026, 10, 20), date(2026, 11, 20), actor=specialist)
    with pytest.raises(InvalidInput, match="must end after it starts"):
        bill_runs.create_run(session, "C1", date(2026, 12, 5), date(2026, 12, 5), actor=specialist)
    with pytest.raises(InvalidInput, match="no billing cycle"):
        bill_runs.create_run(session, "C9", date(2026, 12, 5), date(2027, 1, 5), actor=specialist)
    assert session.scalar(select(func.count(Account.id))) == 1


def test_a_held_read_is_reviewed_then_billed(session: Session) -> None:
    from portal.billing_core import read_review

    accts, supervisor, specialist = office(session, 2)
    meter = session.scalar(select(Meter).where(Meter.serial == "T000001"))
    nov = session.scalar(
        select(MeterRead).where(MeterRead.meter_id == meter.id, MeterRead.read_on == date(2026, 11, 5))
    )
    nov.status, nov.exception, nov.value = "exception", "high", nov.value + 200
    run = bill_runs.create_run(session, "C1", date(2026, 10, 5), date(2026, 11, 5), actor=specialist)
    bill_runs.calculate(session, run, now=system_clock())
    bill_runs.approve(session, run, supervisor, now=system_clock())
    assert bill_runs.post(session, run, supervisor, now=system_clock()).held == 1 and run.status == "posted"
    assert read_review.queue(session) == [nov]
    cashier = users.create_user(session, "cash@x.org", "a long password", "cashier")
    with pytest.raises(InvalidInput, match="only billing specialists"):
        read_review.approve(session, nov, cashier, now=system_clock())
    with pytest.raises(InvalidInput, match="say why"):
        read_review.correct(session, nov, nov.value - 200, "", specialist, now=system_clock())
    read_review.correct(
        session, nov, nov.value - 195, "digits transposed on the handheld", specialist, now=system_clock()
    )
    assert nov.status == "approved" and read_review.queue(session) == []
    bill_runs.calculate(session, run, [accts[0].id], now=system_clock())
    assert bill_runs.post(session, run, supervisor, now=system_clock()).accounts == 1
    bill = session.scalar(select(Bill).where(Bill.account_id == accts[0].id))
    assert bill.status == "posted"
    usage = session.scalar(select(BillUsage).where(BillUsage.bill_id == bill.id))
    assert usage.quantity == D(16)  # 11 a month, plus the 5 the corrected read added


def test_void_and_rebill_reverses_the_old_bill_and_posts_a_corrected_one(session: Session) -> None:
    from portal.billing_core.models import LedgerTransaction

    accts, supervisor, specialist = office(session, 1)
    run = bill_runs.create_run(session, "C1", date(2026, 10, 5), date(2026, 11, 5), actor=specialist)
    bill_runs.calculate(session, run, now=system_clock())
    bill_runs.approve(session, run, supervisor, now=system_clock())
    bill_runs.post(session, run, supervisor, now=system_clock())
    old = session.scalar(select(Bill).where(Bill.status == "posted"))
    # The November read was wrong by 10 units; it is corrected, then the bill is redone.
    nov = session.scalar(select(MeterRead).where(MeterRead.read_on == date(2026, 11, 5)))
    nov.value -= 10
    with pytest.raises(bill_runs.NotAllowed):
        bill_runs.void_and_rebill(session, old, specialist, "misread", date(2026, 11, 20), now=system_clock())
    with pytest.raises(InvalidInput, match="say why"):
        bill_runs.void_and_rebill(session, old, supervisor, " ", date(2026, 11, 20), now=system_clock())
    new = bill_runs.void_and_rebill(session, old, supervisor, "misread meter", date(2026, 11, 20), now=system_clock())
    assert old.status == "voided" and new.status == "posted" and new.number != old.number
    assert old.current_charges_cents - new.current_charges_cents == 10 * 278  # 10 CCF at $2.78
    reversal = session.scalar(
        select(LedgerTransaction).where(LedgerTransaction.reverses_id == old.ledger_transaction_id)
    )
    assert reversal is not None and "misread meter" in reversal.memo
    assert posting.account_balance(session, accts[0].id) == new.current_charges_cents == new.total_due_cents
    assert session.scalar(select(func.sum(LedgerEntry.amount_cents))) == 0
    with pytest.raises(InvalidInput, match="only a posted bill is voided"):
        bill_runs.void_and_rebill(session, old, supervisor, "again", date(2026, 11, 20), now=system_clock())


def test_a_meter_exchanged_mid_period_bills_the_use_on_both_meters(session: Session) -> None:
    from portal.billing_core import meters

    accts, supervisor, specialist = office(session, 1)
    old = session.scalar(select(Meter).where(Meter.serial == "T000001"))
    new = Meter(serial="N000001", size='5/8"', dials=4, status="in_stock")
    session.add(new)
    session.flush()
    # October 5 read is 1000 + 5 x 11 = 1055; the old meter reads 1061 when it comes out on October 20.
    session.execute(MeterRead.__table__.delete().where(MeterRead.read_on == date(2026, 11, 5)))
    with pytest.raises(InvalidInput, match="below the last read"):
        meters.exchange(session, old, new, date(2026, 10, 20), D(1000), D(0), specialist)
    meters.exchange(session, old, new, date(2026, 10, 20), D(1061), D(0), specialist)
    assert (old.status, new.status, new.premise_id) == ("removed", "installed", old.premise_id)
    session.add(MeterRead(meter_id=new.id, read_on=date(2026, 11, 5), value=D(7), source="amr"))
    session.flush()
    run = bill_runs.create_run(session, "C1", date(2026, 10, 5), date(2026, 11, 5), actor=specialist)
    bill_runs.calculate(session, run, now=system_clock())
    bill = session.scalar(select(Bill).where(Bill.account_id == accts[0].id))
    usages = sorted((u.meter_id, u.quantity) for u in bill.usages)
    assert usages == [(old.id, D(6)), (new.id, D(7))] and bill.exceptions is None
    with pytest.raises(InvalidInput, match="not in stock"):
        meters.exchange(session, new, new, date(2026, 11, 20), D(8), D(0), specialist)


def test_meter_states(session: Session) -> None:
    from portal.billing_core import meters

    _, supervisor, specialist = office(session, 1)
    spare = Meter(serial="S1", size='1"', status="in_stock")
    session.add(spare)
    session.flush()
    meters.move(session, spare, "in_test", specialist, date(2026, 11, 1))
    meters.move(session, spare, "retired", supervisor, date(2026, 11, 2))
    with pytest.raises(InvalidInput, match="cannot become in stock"):
        meters.move(session, spare, "in_stock", supervisor, date(2026, 11, 3))
    cashier = users.create_user(session, "c@x.org", "a long password", "cashier")
    with pytest.raises(InvalidInput, match="only billing specialists"):
        meters.move(session, spare, "in_test", cashier, date(2026, 11, 3))
