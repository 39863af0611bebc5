"""Cash drawers: open with a float, close with a count by tender, over/short with a reason,
sign-off by someone other than the cashier, the over/short posted, and the ledger check."""

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portal.billing_core import ledger, ledger_check, posting, users
from portal.billing_core.errors import FieldErrors, NotAllowed
from portal.billing_core.models import CashDrawer, LedgerEntry
from portal.services import counter

from .factories import district

D = date(2026, 11, 20)
NOW = datetime(2026, 11, 20, 17, tzinfo=UTC)


def _people(session: Session):  # type: ignore[no-untyped-def]
    cashier = users.create_user(session, "till@example.org", "long enough password", "cashier", now=NOW)
    boss = users.create_user(session, "boss@example.org", "long enough password", "supervisor", now=NOW)
    return cashier, boss


def _billed(session: Session, n: int = 2):  # type: ignore[no-untyped-def]
    accts = district(session, n)
    for a in accts:
        posting.post(session, ledger.bill_transaction(a.id, D, D + timedelta(days=21), {"water": 5000}), a.id)
    return accts


def test_a_cashier_opens_one_drawer_at_a_time(session: Session) -> None:
    cashier, _boss = _people(session)
    drawer = counter.open_drawer(session, cashier, "Counter 1", "150.00", D, NOW)
    assert (drawer.float_cents, drawer.status) == (15000, "open")
    with pytest.raises(FieldErrors) as err:
        counter.open_drawer(session, cashier, "Counter 2", "100", D, NOW)
    assert "name" in err.value.errors
    # The unique index holds it even past the check.
    session.add(CashDrawer(name="X", cashier_id=cashier.id, business_date=D, float_cents=0, status="open"))
    with pytest.raises(IntegrityError):
        session.flush()


@pytest.mark.parametrize("bad", ["12.345", "abc", "-5", "", "9000"])
def test_a_bad_float_is_refused_and_nothing_written(session: Session, bad: str) -> None:
    cashier, _boss = _people(session)
    with pytest.raises(FieldErrors) as err:
        counter.open_drawer(session, cashier, "Counter 1", bad, D, NOW)
    assert "float" in err.value.errors
    assert session.scalars(select(CashDrawer)).all() == []


def test_a_csr_may_not_open_a_drawer(session: Session) -> None:
    csr = users.create_user(session, "csr@example.org", "long enough password", "csr", now=NOW)
    with pytest.raises(NotAllowed):
        counter.open_drawer(session, csr, "Counter 1", "150", D, NOW)


def _day(session: Session):  # type: ignore[no-untyped-def]
    cashier, boss = _people(session)
    a, b = _billed(session)
    drawer = counter.open_drawer(session, cashier, "Counter 1", "150.00", D, NOW)
    counter.take_payment(
        session, cashier, [counter.Line(a.number, "30.00")], counter.Tender("cash", tendered="40.00"), NOW
    )
    counter.take_payment(
        session,
        cashier,
        [counter.Line(b.number, "25.00")],
        counter.Tender("check", check_number="1001", check_bank="First Bank"),
        NOW,
    )
    counter.take_payment(
        session, cashier, [counter.Line(b.number, "5.00")], counter.Tender("card", approval_code="A1B2C3"), NOW
    )
    return cashier, boss, drawer


def test_expected_by_tender_and_a_short_needs_a_reason(session: Session) -> None:
    cashier, _boss, drawer = _day(session)
    page = counter.drawer_page(session, cashier)
    assert page.expected is not None
    assert (page.expected["cash_cents"], page.expected["checks_cents"], page.expected["card_cents"]) == (
        18000,
        2500,
        500,
    )
    # $179 counted: one dollar short.
    pieces = {"bill-10000": "1", "bill-2000": "3", "bill-1000": "1", "bill-500": "1", "bill-100": "4"}
    with pytest.raises(FieldErrors) as err:
        counter.close_drawer(session, cashier, drawer.id, pieces, [("1001", "25.00")], "5.00", "", NOW)
    assert "reason" in err.value.errors
    assert drawer.status == "open"
    diff = counter.close_drawer(
        session, cashier, drawer.id, pieces, [("1001", "25.00")], "5.00", "miscounted change", NOW
    )
    assert diff == {"cash_cents": -100, "checks_cents": 0, "card_cents": 0}
    assert drawer.status == "closed"


def test_bad_count_fields_are_named(session: Session) -> None:
    cashier, _boss, drawer = _day(session)
    with pytest.raises(FieldErrors) as err:
        counter.close_drawer(session, cashier, drawer.id, {"coin-25": "x"}, [("", "2.345")], "ab", "", NOW)
    assert set(err.value.errors) == {"coin-25", "check-amount-1", "check-number-1", "card_total"}
    assert drawer.status == "open"


def test_no_payment_into_a_closed_drawer(session: Session) -> None:
    cashier, _boss, drawer = _day(session)
    counter.close_drawer_from_file(
        session,
        cashier,
        drawer.id,
        {"cash": {"10000": 1, "2000": 4}, "checks": [{"number": "1001", "amount": "25.00"}], "card": "5.00"},
        "",
        NOW,
    )
    with pytest.raises(FieldErrors) as err:
        counter.take_payment(
            session, cashier, [counter.Line("00090012", "1.00")], counter.Tender("cash"), NOW, drawer_id=drawer.id
        )
    assert "drawer" in err.value.errors


def test_sign_off_posts_the_short_and_never_by_the_cashier(session: Session) -> None:
    cashier, boss, drawer = _day(session)
    pieces = {"bill-10000": "1", "bill-2000": "3", "bill-1000": "1", "bill-500": "1", "bill-100": "4"}
    counter.close_drawer(session, cashier, drawer.id, pieces, [("1001", "25.00")], "5.00", "short a dollar", NOW)
    with pytest.raises(NotAllowed):
        counter.sign_off(session, cashier, drawer.id, "", D, NOW)
    # A supervisor's own drawer is not theirs to sign off either.
    with pytest.raises(NotAllowed):
        from portal.billing_core import permissions
        from portal.billing_core.permissions import Action

        permissions.require_approver(boss, Action.DRAWERS_SIGN_OFF, prepared_by_id=boss.id)
    counter.sign_off(session, boss, drawer.id, "counted again: short", D, NOW)
    assert drawer.status == "signed_off" and drawer.signed_off_by_id == boss.id
    entries = {
        e.gl_account: e.amount_cents
        for e in session.scalars(select(LedgerEntry).where(LedgerEntry.transaction_id == drawer.ledger_transaction_id))
    }
    assert entries == {ledger.CASH_OVER_SHORT: 100, ledger.cash("counter"): -100}
    assert ledger_check.run(session) == []
    with pytest.raises(FieldErrors):
        counter.sign_off(session, boss, drawer.id, "", D, NOW)


def test_the_ledger_check_finds_a_drawer_that_does_not_agree(session: Session) -> None:
    cashier, boss, drawer = _day(session)
    counter.close_drawer_from_file(
        session,
        cashier,
        drawer.id,
        {"cash": {"10000": 1, "2000": 4}, "checks": [{"number": "1001", "amount": "25.00"}], "card": "5.00"},
        "",
        NOW,
    )
    assert ledger_check.run(session) == []
    drawer.expected = {**(drawer.expected or {}), "cash_cents": 1}
    drawer.over_short = {"cash_cents": 500, "checks_cents": 0, "card_cents": 0}
    drawer.status = "signed_off"
    session.flush()
    problems = ledger_check.run(session)
    assert any("expected 1 cents of cash" in p for p in problems)
    assert any("500 cents over/short but 0 cents were posted" in p for p in problems)


def test_the_check_finds_a_payment_in_a_drawer_without_a_receipt(session: Session) -> None:
    _cashier, _boss, drawer = _day(session)
    from portal.billing_core.models import Payment

    p = session.scalars(select(Payment).where(Payment.drawer_id == drawer.id)).first()
    assert p is not None
    p.receipt_id = None
    session.flush()
    assert any(f"payment {p.id} is in a drawer without a receipt" in x for x in ledger_check.run(session))
