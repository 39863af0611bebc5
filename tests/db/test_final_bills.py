"""Final bills when service stops: a short period through the last day of service, fixed
charges prorated by days; held for review when the final read is far beyond the account's
history or the last day of service is still ahead."""

from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from portal.adapters.clock import system_clock
from portal.billing_core import bill_runs, posting
from portal.billing_core.errors import InvalidInput
from portal.billing_core.models import (
    Account,
    Bill,
    BillLine,
    FinalBillReview,
    LedgerTransaction,
    Meter,
    MeterRead,
    Service,
)

from .test_bill_runs import office


def billed_through_november(session: Session):  # type: ignore[no-untyped-def]
    accts, supervisor, specialist = office(session, 2)
    run = bill_runs.create_run(session, "C1", date(2026, 10, 5), date(2026, 11, 5), actor=specialist)
    bill_runs.calculate(session, run, now=system_clock())
    bill_runs.approve(session, run, supervisor, now=system_clock())
    bill_runs.post(session, run, supervisor, now=system_clock())
    return accts, supervisor, specialist


def meter_and_last_read(session: Session, account: Account) -> tuple[Meter, Decimal]:
    meter = session.scalar(
        select(Meter).join(Service, Service.meter_id == Meter.id).where(Service.account_id == account.id)
    )
    last = session.scalar(
        select(MeterRead.value).where(MeterRead.meter_id == meter.id, MeterRead.read_on == date(2026, 11, 5))
    )
    return meter, last


def lines_of(session: Session, bill: Bill) -> list[BillLine]:
    return list(session.scalars(select(BillLine).where(BillLine.bill_id == bill.id)))


def test_a_final_bill_bills_through_the_last_day_of_service(session: Session) -> None:
    accts, _supervisor, specialist = billed_through_november(session)
    account = accts[0]
    meter, last = meter_and_last_read(session, account)
    before = posting.account_balance(session, account.id)
    # The last day of service is November 20: November 5 to 20 is 16 days, the 20th included.
    bill = bill_runs.final_bill(
        session, account, date(2026, 11, 20), {meter.id: last + 5}, specialist, date(2026, 11, 21), now=system_clock()
    )
    assert bill.status == "posted" and bill.number and bill.bill_run_id is None
    assert (bill.period_start, bill.period_end) == (date(2026, 11, 5), date(2026, 11, 21))
    lines = lines_of(session, bill)
    # 16 of 30 days: of the $24.61 water service charge and of the $38.52 sewer charge.
    assert any(ln.service_type == "water" and ln.amount_cents in (1312, 1313) for ln in lines)
    assert any(ln.service_type == "sewer" and ln.amount_cents == 2054 for ln in lines)
    assert any(ln.quantity == Decimal(5) and ln.amount_cents == 1390 for ln in lines)
    assert posting.account_balance(session, account.id) == before + bill.current_charges_cents
    assert account.status == "final" and account.closed_on == date(2026, 11, 20)
    # A service runs [started_on, ended_on): it ends the day after its last day.
    assert all(
        s.ended_on == date(2026, 11, 21)
        for s in session.scalars(select(Service).where(Service.account_id == account.id))
    )
    final_read = session.scalar(select(MeterRead).where(MeterRead.meter_id == meter.id).order_by(MeterRead.id.desc()))
    assert (final_read.read_on, final_read.value) == (date(2026, 11, 21), last + 5)
    # The account is not in the next run of its cycle.
    assert account.id not in bill_runs.cycle_accounts(session, account.cycle_id)


def test_the_final_bill_is_dated_the_day_after_the_last_day_whenever_it_is_entered(session: Session) -> None:
    accts, _supervisor, specialist = billed_through_november(session)
    account = accts[0]
    meter, last = meter_and_last_read(session, account)
    # Entered eleven days late: dated for the stop, due 21 days after it went out.
    bill = bill_runs.final_bill(
        session, account, date(2026, 11, 20), {meter.id: last + 5}, specialist, date(2026, 12, 1), now=system_clock()
    )
    assert bill.bill_date == bill_runs.final_bill_date(date(2026, 11, 20)) == date(2026, 11, 21)
    assert bill.due_date == date(2026, 12, 22)
    txn = session.get(LedgerTransaction, bill.ledger_transaction_id)
    assert txn.effective_on == date(2026, 11, 21)


def test_a_final_read_below_the_last_one_or_over_the_dials_changes_nothing(session: Session) -> None:
    accts, _supervisor, specialist = billed_through_november(session)
    account = accts[1]
    meter, _last = meter_and_last_read(session, account)
    bills = session.scalar(select(Bill.id).order_by(Bill.id.desc()).limit(1))
    reads = session.scalar(select(func.count(MeterRead.id)))
    with pytest.raises(InvalidInput, match="below its last read") as below:
        bill_runs.final_bill(
            session,
            account,
            date(2026, 11, 20),
            {meter.id: Decimal(1)},
            specialist,
            date(2026, 11, 21),
            now=system_clock(),
        )
    assert below.value.field == f"read-{meter.id}"
    with pytest.raises(InvalidInput, match="at most 999999") as over:
        bill_runs.final_bill(
            session,
            account,
            date(2026, 11, 20),
            {meter.id: Decimal(10**6)},
            specialist,
            date(2026, 11, 21),
            now=system_clock(),
        )
    assert over.value.field == f"read-{meter.id}"
    with pytest.raises(InvalidInput, match="final read of every meter"):
        bill_runs.final_bill(
            session, account, date(2026, 11, 20), {}, specialist, date(2026, 11, 21), now=system_clock()
        )
    with pytest.raises(InvalidInput, match="cannot be before 2026-11-05"):
        bill_runs.final_bill(
            session,
            account,
            date(2026, 11, 4),
            {meter.id: Decimal(1)},
            specialist,
            date(2026, 11, 21),
            now=system_clock(),
        )
    session.expire_all()
    assert session.scalar(select(Bill.id).order_by(Bill.id.desc()).limit(1)) == bills
    assert session.scalar(select(func.count(MeterRead.id))) == reads
    assert session.get(Account, account.id).status == "active"


def test_an_absurd_final_read_is_held_for_review_not_posted(session: Session) -> None:
    accts, supervisor, specialist = billed_through_november(session)
    account = accts[0]
    meter, last = meter_and_last_read(session, account)
    bills = session.scalar(select(func.count(Bill.id)))
    reads = session.scalar(select(func.count(MeterRead.id)))
    # About 11 units a month for half a year; 5,000 in 16 days is a misread.
    assert (
        bill_runs.final_bill(
            session,
            account,
            date(2026, 11, 20),
            {meter.id: last + 5000},
            specialist,
            date(2026, 11, 21),
            now=system_clock(),
        )
        is None
    )
    review = bill_runs.held_for_account(session, account.id)
    assert review is not None and review.status == "held" and "high" in review.reasons.split(",")
    assert review in bill_runs.held_final_bills(session)
    # Nothing about the account changed: no bill, no read, the services go on.
    assert session.scalar(select(func.count(Bill.id))) == bills
    assert session.scalar(select(func.count(MeterRead.id))) == reads
    assert account.status == "active" and all(
        s.ended_on is None for s in session.scalars(select(Service).where(Service.account_id == account.id))
    )
    (check,) = bill_runs.review_checks(session, review)
    assert check.quantity == 5000 and check.average is not None and check.holding == ("high",)
    # A second stop waits for this one.
    with pytest.raises(InvalidInput, match="already waiting"):
        bill_runs.stop_service(
            session,
            account,
            date(2026, 11, 20),
            {meter.id: last + 5},
            specialist,
            date(2026, 11, 21),
            now=system_clock(),
        )
    # A specialist corrects the read (a reason is required); only a supervisor approves and posts.
    with pytest.raises(InvalidInput, match="say why"):
        bill_runs.correct_final_read(
            session, review, meter.id, last + 5, " ", specialist, date(2026, 11, 21), now=system_clock()
        )
    with pytest.raises(InvalidInput, match="at most 999999"):
        bill_runs.correct_final_read(
            session, review, meter.id, Decimal(10**6), "typo", specialist, date(2026, 11, 21), now=system_clock()
        )
    bill_runs.correct_final_read(
        session, review, meter.id, last + 5, "keyed an extra 0", specialist, date(2026, 11, 21), now=system_clock()
    )
    assert review.status == "held" and review.reasons == "" and "keyed an extra 0" in review.note
    with pytest.raises(bill_runs.NotAllowed):
        bill_runs.approve_final(session, review, specialist, date(2026, 11, 22), now=system_clock())
    bill = bill_runs.approve_final(session, review, supervisor, date(2026, 11, 22), now=system_clock())
    assert bill.status == "posted" and review.status == "posted" and review.bill_id == bill.id
    assert (bill.period_end, bill.bill_date, bill.due_date) == (
        date(2026, 11, 21),
        date(2026, 11, 21),
        date(2026, 12, 13),
    )
    assert any(ln.quantity == Decimal(5) for ln in lines_of(session, bill))
    final_read = session.scalar(
        select(MeterRead).where(MeterRead.meter_id == meter.id, MeterRead.read_on == date(2026, 11, 21))
    )
    assert final_read.status == "approved" and final_read.reviewed_by_id == supervisor.id
    assert account.status == "final" and bill_runs.held_for_account(session, account.id) is None


def test_a_stop_in_the_future_is_held_until_its_last_day(session: Session) -> None:
    accts, supervisor, specialist = billed_through_november(session)
    account = accts[0]
    meter, last = meter_and_last_read(session, account)
    bills = session.scalar(select(func.count(Bill.id)))
    today = date(2026, 11, 21)
    assert (
        bill_runs.final_bill(
            session, account, date(2026, 12, 2), {meter.id: last + 9}, specialist, today, now=system_clock()
        )
        is None
    )
    review = bill_runs.held_for_account(session, account.id)
    assert review.reasons == "future_stop" and session.scalar(select(func.count(Bill.id))) == bills
    with pytest.raises(InvalidInput, match="still ahead"):
        bill_runs.approve_final(session, review, supervisor, today + timedelta(days=5), now=system_clock())
    assert review.status == "held" and account.status == "active"
    # On the day, the reader's real read goes in and the bill posts, dated for the stop.
    bill_runs.correct_final_read(
        session, review, meter.id, last + 10, "read on the day", specialist, date(2026, 12, 2), now=system_clock()
    )
    bill = bill_runs.approve_final(session, review, supervisor, date(2026, 12, 2), now=system_clock())
    assert (bill.period_start, bill.period_end, bill.bill_date) == (
        date(2026, 11, 5),
        date(2026, 12, 3),
        date(2026, 12, 3),
    )
    assert account.closed_on == date(2026, 12, 2)


def test_void_and_rebill_of_a_final_bill_keeps_the_proration_and_takes_the_corrected_read(session: Session) -> None:
    accts, supervisor, specialist = billed_through_november(session)
    account = accts[0]
    meter, last = meter_and_last_read(session, account)
    old = bill_runs.final_bill(
        session, account, date(2026, 11, 20), {meter.id: last + 5}, specialist, date(2026, 11, 21), now=system_clock()
    )
    with pytest.raises(InvalidInput, match="at most 999999"):
        with session.begin_nested():
            bill_runs.void_and_rebill(
                session,
                old,
                supervisor,
                "misread",
                date(2026, 11, 25),
                corrected_reads={meter.id: Decimal(10**6)},
                now=system_clock(),
            )
    session.expire_all()
    assert session.get(Bill, old.id).status == "posted"
    new = bill_runs.void_and_rebill(
        session,
        old,
        supervisor,
        "final read misread",
        date(2026, 11, 25),
        corrected_reads={meter.id: last + 3},
        now=system_clock(),
    )
    assert (new.period_start, new.period_end) == (old.period_start, old.period_end)
    lines = lines_of(session, new)
    assert any(ln.service_type == "water" and ln.amount_cents in (1312, 1313) for ln in lines)  # still 16 of 30 days
    assert any(ln.service_type == "sewer" and ln.amount_cents == 2054 for ln in lines)
    assert any(ln.quantity == Decimal(3) for ln in lines)
    assert session.scalar(select(FinalBillReview.bill_id).where(FinalBillReview.account_id == account.id)) == new.id
    read = session.scalar(
        select(MeterRead).where(MeterRead.meter_id == meter.id, MeterRead.read_on == date(2026, 11, 21))
    )
    assert read.value == last + 3 and "misread" in read.note


def test_stopping_service_completes_a_stop_but_only_schedules_a_move_that_starts_later(session: Session) -> None:
    from datetime import UTC, datetime

    from portal.billing_core import service_requests
    from portal.billing_core.models import ServiceRequest

    accts, supervisor, specialist = billed_through_november(session)
    now = datetime(2026, 11, 21, 18, tzinfo=UTC)
    common = dict(user_id=specialist.id, contact_name="Pat", contact_email="p@x.org", created_at=now, updated_at=now)
    stop = ServiceRequest(kind="stop", status="submitted", account_id=accts[0].id, stop_on=date(2026, 11, 20), **common)
    move = ServiceRequest(
        kind="transfer",
        status="submitted",
        account_id=accts[1].id,
        stop_on=date(2026, 11, 20),
        start_on=date(2026, 12, 10),
        **common,
    )
    session.add_all([stop, move])
    session.flush()
    assert service_requests.complete_stops_for(session, accts[0], supervisor, now, date(2026, 11, 21)) == [stop.id]
    assert stop.status == "completed"
    service_requests.complete_stops_for(session, accts[1], supervisor, now, date(2026, 11, 21))
    assert move.status == "scheduled"  # the new service starts December 10: not done yet
    service_requests.complete_stops_for(session, accts[1], supervisor, now, date(2026, 12, 10))
    assert move.status == "completed"
