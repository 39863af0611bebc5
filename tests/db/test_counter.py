"""Counter payments: found by number or scan line, every tender, one receipt across
accounts, change due, overpayment as credit, cash only, bad input writes nothing."""

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from portal.billing_core import ledger, ledger_check, numbers, posting, users
from portal.billing_core.errors import FieldErrors, NotAllowed
from portal.billing_core.models import CounterReceipt, Payment, WriteOff
from portal.services import counter

from .factories import district

D = date(2026, 11, 20)
NOW = datetime(2026, 11, 20, 17, tzinfo=UTC)


@pytest.fixture
def day(session: Session):  # type: ignore[no-untyped-def]
    cashier = users.create_user(session, "till@example.org", "long enough password", "cashier", now=NOW)
    accts = district(session, 3)
    for a in accts:
        posting.post(
            session, ledger.bill_transaction(a.id, D, D + timedelta(days=21), {"water": 5000, "sewer": 2000}), a.id
        )
    counter.open_drawer(session, cashier, "Counter 1", "100", D, NOW)
    return cashier, accts


def _count(session: Session, model) -> int:  # type: ignore[no-untyped-def]
    return session.scalar(select(func.count()).select_from(model)) or 0


def test_cash_with_change_split_across_two_accounts(session: Session, day) -> None:  # type: ignore[no-untyped-def]
    cashier, (a, b, _c) = day
    receipt = counter.take_payment(
        session,
        cashier,
        [counter.Line(a.number, "70.00"), counter.Line(b.number, "20.00")],
        counter.Tender("cash", tendered="100.00"),
        NOW,
    )
    assert (receipt.total_cents, receipt.tendered_cents, receipt.change_cents) == (9000, 10000, 1000)
    pays = session.scalars(select(Payment).where(Payment.receipt_id == receipt.id).order_by(Payment.id)).all()
    assert [(p.account_id, p.amount_cents, p.channel, p.method, p.status) for p in pays] == [
        (a.id, 7000, "counter", "cash", "posted"),
        (b.id, 2000, "counter", "cash", "posted"),
    ]
    assert all(p.drawer_id == receipt.drawer_id and p.user_id == cashier.id for p in pays)
    assert posting.account_balance(session, a.id) == 0
    assert posting.account_balance(session, b.id) == 5000
    # Oldest first in service order: water before sewer.
    assert posting.open_by_service(session, b.id) == {"water": 3000, "sewer": 2000}
    assert ledger_check.run(session) == []


def test_scan_line_gives_account_and_amount(session: Session, day) -> None:  # type: ignore[no-untyped-def]
    cashier, (a, _b, _c) = day
    line = numbers.scan_line(a.number, 7000)
    receipt = counter.take_payment(session, cashier, [counter.Line(line, "")], counter.Tender("cash"), NOW)
    assert receipt.total_cents == 7000 and receipt.change_cents == 0
    scanned = line.replace(" ", "")
    receipt = counter.take_payment(session, cashier, [counter.Line(scanned, "1.00")], counter.Tender("cash"), NOW)
    assert receipt.total_cents == 100


def test_overpaying_by_check_becomes_credit(session: Session, day) -> None:  # type: ignore[no-untyped-def]
    cashier, (a, _b, _c) = day
    receipt = counter.take_payment(
        session,
        cashier,
        [counter.Line(a.number, "100.00")],
        counter.Tender("check", check_number="2002", check_bank="Chino Bank"),
        NOW,
    )
    (p,) = session.scalars(select(Payment).where(Payment.receipt_id == receipt.id)).all()
    assert (p.overpaid_cents, p.check_number, p.method) == (3000, "2002", "check")
    assert posting.account_balance(session, a.id) == -3000


def test_card_keeps_the_approval_code_only(session: Session, day) -> None:  # type: ignore[no-untyped-def]
    cashier, (a, _b, _c) = day
    receipt = counter.take_payment(
        session, cashier, [counter.Line(a.number, "10.00")], counter.Tender("card", approval_code="OK1234"), NOW
    )
    assert receipt.approval_code == "OK1234"
    with pytest.raises(FieldErrors) as err:
        counter.take_payment(
            session,
            cashier,
            [counter.Line(a.number, "10.00")],
            counter.Tender("card", approval_code="4242424242424242"),
            NOW,
        )
    assert "approval_code" in err.value.errors


@pytest.mark.parametrize(
    ("line", "tender", "field"),
    [
        (("00090012 0000001000 5", ""), counter.Tender("cash"), "account-1"),
        (("12345678", "10.00"), counter.Tender("cash"), "account-1"),
        (("ACCOUNT", "12.345"), counter.Tender("cash"), "amount-1"),
        (("ACCOUNT", "0"), counter.Tender("cash"), "amount-1"),
        (("ACCOUNT", "-3"), counter.Tender("cash"), "amount-1"),
        (("ACCOUNT", "ten"), counter.Tender("cash"), "amount-1"),
        (("ACCOUNT", "20.00"), counter.Tender("cash", tendered="10.00"), "tendered"),
        (("ACCOUNT", "20.00"), counter.Tender("check"), "check_number"),
        (("ACCOUNT", "20.00"), counter.Tender("card"), "approval_code"),
        (("ACCOUNT", "20.00"), counter.Tender("bitcoin"), "tender"),
        (("", ""), counter.Tender("cash"), "account-1"),
    ],
)
def test_bad_input_is_named_and_nothing_written(session: Session, day, line, tender, field) -> None:  # type: ignore[no-untyped-def]
    cashier, (a, _b, _c) = day
    before = (_count(session, Payment), _count(session, CounterReceipt))
    number = a.number if line[0] == "ACCOUNT" else line[0]
    with pytest.raises(FieldErrors) as err:
        counter.take_payment(session, cashier, [counter.Line(number, line[1])], tender, NOW)
    assert field in err.value.errors
    assert (_count(session, Payment), _count(session, CounterReceipt)) == before


def test_no_open_drawer(session: Session, day) -> None:  # type: ignore[no-untyped-def]
    _cashier, (a, _b, _c) = day
    other = users.create_user(session, "two@example.org", "long enough password", "cashier", now=NOW)
    with pytest.raises(FieldErrors) as err:
        counter.take_payment(session, other, [counter.Line(a.number, "1.00")], counter.Tender("cash"), NOW)
    assert "drawer" in err.value.errors


def test_only_cashiers_take_payments(session: Session, day) -> None:  # type: ignore[no-untyped-def]
    _cashier, (a, _b, _c) = day
    csr = users.create_user(session, "csr@example.org", "long enough password", "csr", now=NOW)
    with pytest.raises(NotAllowed):
        counter.take_payment(session, csr, [counter.Line(a.number, "1.00")], counter.Tender("cash"), NOW)


def test_a_cash_only_account_refuses_a_check(session: Session, day) -> None:  # type: ignore[no-untyped-def]
    cashier, (a, _b, _c) = day
    a.cash_only, a.cash_only_since = True, D
    with pytest.raises(FieldErrors) as err:
        counter.take_payment(
            session, cashier, [counter.Line(a.number, "5.00")], counter.Tender("check", check_number="1"), NOW
        )
    assert "cash or by money order" in err.value.errors["tender"].message
    counter.take_payment(
        session, cashier, [counter.Line(a.number, "5.00")], counter.Tender("money_order", check_number="MO7"), NOW
    )


def test_a_payment_on_a_written_off_account_is_a_recovery(session: Session, day) -> None:  # type: ignore[no-untyped-def]
    cashier, (_a, _b, c) = day
    txn = ledger.Transaction(
        ledger.Kind.WRITE_OFF,
        D,
        (
            ledger.Entry(ledger.BAD_DEBT, 7000),
            ledger.Entry(ledger.receivable("water"), -5000, c.id, "water"),
            ledger.Entry(ledger.receivable("sewer"), -2000, c.id, "sewer"),
        ),
    )
    row = posting.post(session, txn, c.id, cashier.id)
    session.add(
        WriteOff(
            account_id=c.id,
            amount_cents=7000,
            reason="uncollectible",
            status="posted",
            prepared_by_id=cashier.id,
            ledger_transaction_id=row.id,
        )
    )
    session.flush()
    receipt = counter.take_payment(session, cashier, [counter.Line(c.number, "30.00")], counter.Tender("cash"), NOW)
    (p,) = session.scalars(select(Payment).where(Payment.receipt_id == receipt.id)).all()
    assert p.recovery_cents == 3000
    assert posting.account_balance(session, c.id) == 0
    assert ledger_check.run(session) == []


def test_the_check_finds_a_receipt_that_does_not_match(session: Session, day) -> None:  # type: ignore[no-untyped-def]
    cashier, (a, _b, _c) = day
    receipt = counter.take_payment(session, cashier, [counter.Line(a.number, "5.00")], counter.Tender("cash"), NOW)
    receipt.total_cents = 600
    session.flush()
    assert any("receipt" in p and "600" in p for p in ledger_check.run(session))
