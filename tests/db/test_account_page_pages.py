"""The staff account page shows bills and the ledger a page at a time on both databases: the
newest first, the running balance carried across pages, the last page's older rows there, a
page past the end shown as the last one; and the latest three reads of each meter."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from sqlalchemy.orm import Session

from portal.billing_core import ledger, posting
from portal.billing_core.models import MeterRead
from portal.services import accounts as service

from .deposit_helpers import post_bill
from .factories import district


def test_bills_and_ledger_by_page_with_the_running_balance(session: Session) -> None:
    (account,) = district(session, 1)
    first = date(2020, 1, 5)
    for n in range(30):  # 30 bills, 30 bill postings and 30 payments: 60 ledger rows
        day = first + timedelta(days=31 * n)
        post_bill(session, account.id, day, 1000 + n, n)
        payment = ledger.payment_transaction(
            account.id, day + timedelta(days=10), 1000 + n, "counter", posting.open_by_service(session, account.id)
        )
        posting.post(session, payment, account.id)
    for n, value in enumerate((10, 20, 30, 40)):
        session.add(
            MeterRead(
                meter_id=account.services[0].meter_id, read_on=date(2026, 1 + n, 5), value=Decimal(value), source="amr"
            )
        )
    session.flush()
    page = service.account_page(session, account.number, as_of=date(2026, 11, 22))
    assert len(page.bills) == service.BILLS_PAGE and page.older_bills
    assert page.bills[0].bill_date > page.bills[-1].bill_date
    assert (page.ledger_page, page.ledger_pages, len(page.ledger)) == (1, 2, service.LEDGER_PAGE)
    assert page.ledger[0].running_balance_cents == page.summary.balance_cents == 0
    older = service.account_page(session, account.number, as_of=date(2026, 11, 22), bills_page=2, ledger_page=2)
    assert len(older.bills) == 30 - service.BILLS_PAGE and not older.older_bills
    assert len(older.ledger) == 60 - service.LEDGER_PAGE
    rows = page.ledger + older.ledger
    for newer, before in zip(rows, rows[1:], strict=False):
        assert newer.running_balance_cents == before.running_balance_cents + newer.amount_cents
        assert (newer.transaction.effective_on, newer.transaction.id) > (
            before.transaction.effective_on,
            before.transaction.id,
        )
    assert rows[-1].running_balance_cents == rows[-1].amount_cents == 1000
    past = service.account_page(session, account.number, as_of=date(2026, 11, 22), ledger_page=9)
    assert past.ledger_page == 2 and [r.transaction.id for r in past.ledger] == [r.transaction.id for r in older.ledger]
    (meter,) = page.meters
    assert [r.value for r in page.last_reads[meter.id]] == [Decimal(40), Decimal(30), Decimal(20)]


def test_the_residents_account_page_shows_bills_a_page_at_a_time(session: Session) -> None:
    """The resident's account page: 24 bills a page, newest first, and the figures read from
    one ledger query (aging, bill states, past due) are those each read on its own gives."""
    from zoneinfo import ZoneInfo

    from portal.billing_core import accounts, bill_status, users
    from portal.services import customers

    (account,) = district(session, 1)
    first = date(2023, 1, 5)
    for n in range(30):  # 30 bills; the last three unpaid
        day = first + timedelta(days=31 * n)
        post_bill(session, account.id, day, 1000 + n, n)
        if n < 27:
            payment = ledger.payment_transaction(
                account.id, day + timedelta(days=10), 1000 + n, "counter", posting.open_by_service(session, account.id)
            )
            posting.post(session, payment, account.id)
    user = users.create_user(session, "pages@example.com", "a long enough password 1", "customer", account.number)
    session.flush()
    as_of, tz = date(2026, 11, 22), ZoneInfo("America/Los_Angeles")
    page = customers.account_page(session, user, account.number, as_of, tz)
    assert len(page.bills) == customers.BILLS_PAGE and page.older_bills and page.bills_page == 1
    assert page.bills[0].bill_date > page.bills[-1].bill_date
    assert set(page.statuses) == {b.id for b in page.bills}
    older = customers.account_page(session, user, account.number, as_of, tz, bills_page=2)
    assert len(older.bills) == 30 - customers.BILLS_PAGE and not older.older_bills
    assert {b.id for b in page.bills}.isdisjoint(b.id for b in older.bills)
    past = customers.account_page(session, user, account.number, as_of, tz, bills_page=99)
    assert past.bills_page == 2 and [b.id for b in past.bills] == [b.id for b in older.bills]
    # The shared ledger read gives what the separate reads give.
    alone = accounts.summarise(session, account, as_of)
    assert (page.summary.balance_cents, page.summary.past_due_cents, page.summary.aging) == (
        alone.balance_cents,
        alone.past_due_cents,
        alone.aging,
    )
    assert page.summary.balance_cents == posting.account_balance(session, account.id) > 0
    assert page.past_due == bill_status.past_due(session, account.id, as_of)
    assert page.statuses == bill_status.for_bills(session, account.id, page.bills, as_of)
    assert page.outlook == customers.outlook_for(session, alone, as_of)
