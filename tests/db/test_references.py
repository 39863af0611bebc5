"""Bill lines, usage and ledger entries must refer to rows that exist, on both databases
(PostgreSQL checks them a statement at a time: billing_core/references.py)."""

from datetime import date

import pytest
from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portal.adapters.clock import system_clock
from portal.billing_core import bill_runs
from portal.billing_core.models import (
    Account,
    Bill,
    BillLine,
    BillRun,
    BillUsage,
    LedgerEntry,
    LedgerTransaction,
    MeterRead,
)

from .test_bill_runs import office


def posted(session: Session) -> Bill:
    _accts, supervisor, specialist = office(session, 2)
    run = bill_runs.create_run(session, "C1", date(2026, 10, 5), date(2026, 11, 5), actor=specialist)
    bill_runs.calculate(session, run, now=system_clock())
    bill_runs.approve(session, run, supervisor, now=system_clock())
    bill_runs.post(session, run, supervisor, now=system_clock())
    session.flush()
    return session.scalars(select(Bill).where(Bill.status == "posted")).first()


def refused(session: Session, statement) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(IntegrityError, match="(?i)foreign key"), session.begin_nested():
        session.execute(statement)


def test_rows_that_refer_to_nothing_are_refused(session: Session) -> None:
    bill = posted(session)
    line = session.scalars(select(BillLine).where(BillLine.bill_id == bill.id)).first()
    values = {c.key: getattr(line, c.key) for c in BillLine.__table__.columns if c.key not in ("id", "bill_id")}
    refused(session, insert(BillLine).values(bill_id=10**9, **values))
    refused(session, insert(BillLine).values(bill_id=bill.id, **{**values, "rate_version_id": 10**9}))
    refused(session, update(BillLine).where(BillLine.id == line.id).values(bill_id=10**9))
    usage = session.scalars(select(BillUsage).where(BillUsage.bill_id == bill.id)).first()
    refused(session, update(BillUsage).where(BillUsage.id == usage.id).values(current_read_id=10**9))
    entry = session.scalars(select(LedgerEntry).where(LedgerEntry.transaction_id == bill.ledger_transaction_id)).first()
    fields = {c.key: getattr(entry, c.key) for c in LedgerEntry.__table__.columns if c.key != "id"}
    refused(session, insert(LedgerEntry).values({**fields, "transaction_id": 10**9}))
    refused(session, insert(LedgerEntry).values({**fields, "account_id": 10**9}))
    # A statement of many good rows and one bad one is refused whole.
    rows = [{"bill_id": bill.id, **values}] * 3 + [{"bill_id": 10**9, **values}]
    before = session.scalar(select(BillLine.id).order_by(BillLine.id.desc()))
    refused(session, insert(BillLine).values(rows))
    assert session.scalar(select(BillLine.id).order_by(BillLine.id.desc())) == before
    # Good rows still go in.
    session.execute(insert(BillLine).values(bill_id=bill.id, **values))
    # Bills and ledger transactions too (issue 17: checked a statement at a time on PostgreSQL).
    refused(session, update(Bill).where(Bill.id == bill.id).values(bill_run_id=10**9))
    refused(session, update(Bill).where(Bill.id == bill.id).values(ledger_transaction_id=10**9))
    txn = session.get(LedgerTransaction, bill.ledger_transaction_id)
    txn_fields = {c.key: getattr(txn, c.key) for c in LedgerTransaction.__table__.columns if c.key != "id"}
    refused(session, insert(LedgerTransaction).values({**txn_fields, "account_id": 10**9}))
    refused(session, insert(LedgerTransaction).values({**txn_fields, "posted_by_id": 10**9}))


def test_rows_still_referred_to_cannot_be_deleted(session: Session) -> None:
    bill = posted(session)
    usage = session.scalars(select(BillUsage).where(BillUsage.bill_id == bill.id)).first()
    refused(session, delete(Bill).where(Bill.id == bill.id))
    refused(session, delete(MeterRead).where(MeterRead.id == usage.current_read_id))
    refused(session, delete(BillRun).where(BillRun.id == bill.bill_run_id))
    refused(session, delete(Account).where(Account.id == bill.account_id))


def test_on_postgresql_triggers_check_them_instead_of_foreign_keys(session: Session) -> None:
    from sqlalchemy import text

    from portal.billing_core.references import SET_CHECKED, constraint_name

    if session.get_bind().dialect.name != "postgresql":
        pytest.skip("SQLite keeps ordinary foreign keys")
    names = {constraint_name(child, col, parent) for child, refs in SET_CHECKED.items() for col, parent in refs}
    found = set(session.scalars(text("SELECT conname FROM pg_constraint WHERE contype = 'f'")))
    assert not names & found and "fk_account_customer_id_customer" in found
    triggers = set(session.scalars(text("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")))
    assert {f"check_refs_{child}_insert" for child in SET_CHECKED} <= triggers
