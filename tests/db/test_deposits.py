"""Deposits against the database (SQLite and PostgreSQL): billed at the policy's amount,
held as a liability (never owed for water, never a credit), credited back once after the
months of on-time payment, cancelled by a reversal, applied at the final bill."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from portal.adapters.database import transaction
from portal.billing_core import deposits, ledger_check, posting
from portal.billing_core.errors import FieldErrors, NotAllowed
from portal.billing_core.models import Deposit, LedgerTransaction, Refund
from portal.billing_core.money_policy import DEFAULT
from portal.billing_core.status import DepositStatus, RefundStatus
from portal.services import deposits as service

from .deposit_helpers import NOW, account, months_of_bills, office, pay

START = date(2025, 1, 10)


def _count(session: Session, model: type) -> int:
    return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_billed_at_twice_the_average_and_never_owed_for_water(sessions: sessionmaker[Session]) -> None:
    (number, _), staff = office(sessions)
    months_of_bills(sessions, number, START, 12, 4_000)
    on = date(2026, 1, 20)
    with sessions() as session:
        panel = service.panel(session, DEFAULT, staff["csr"], number, on)
        assert panel.suggestion.amount_cents == 8_000
        assert panel.suggestion.average_cents == 4_000
        assert panel.held_cents == 0
    deposit_id = service.bill(
        sessions, DEFAULT, staff["csr"], number, amount="", reason="returned_payments", note="", on=on, now=NOW
    )
    with sessions() as session:
        acct = account(session, number)
        deposit = session.get(Deposit, deposit_id)
        assert deposit is not None and deposit.amount_cents == 8_000 and deposit.status == DepositStatus.BILLED
        # Billed: a receivable under "deposit"; what is owed for service is unchanged.
        assert posting.account_balance(session, acct.id) == 8_000
        panel = service.panel(session, DEFAULT, staff["csr"], number, on)
        assert panel.held_cents == 8_000
        assert panel.owed_for_service_cents == 0
        assert panel.open_deposit_cents == 8_000
        assert ledger_check.run(session) == []
    with transaction(sessions) as session:
        pay(session, account(session, number).id, on + timedelta(days=3), 8_000)
    with sessions() as session:
        # Paid: the account owes nothing and holds no credit; the deposit is held.
        assert posting.account_balance(session, account(session, number).id) == 0
        assert service.panel(session, DEFAULT, staff["csr"], number, on).held_cents == 8_000
        assert ledger_check.run(session) == []


def test_new_account_uses_its_class_average_and_the_minimum(sessions: sessionmaker[Session]) -> None:
    (first, second), staff = office(sessions)
    with sessions() as session:
        # No bills anywhere: the policy's minimum.
        suggestion = service.panel(session, DEFAULT, staff["csr"], second, START).suggestion
        assert suggestion.amount_cents == DEFAULT.deposit_minimum_cents
        assert suggestion.reasons == ["new_customer"] or suggestion.reasons == []
    months_of_bills(sessions, first, START, 3, 6_000)
    with sessions() as session:
        assert service.panel(session, DEFAULT, staff["csr"], second, START).suggestion.amount_cents == 12_000
    assert deposits.amount_cents(DEFAULT, 1_000) == DEFAULT.deposit_minimum_cents


@pytest.mark.parametrize("amount", ["12.345", "0", "-5", "abc"])
def test_bad_amount_writes_nothing(sessions: sessionmaker[Session], amount: str) -> None:
    (number, _), staff = office(sessions)
    with pytest.raises(FieldErrors) as caught:
        service.bill(sessions, DEFAULT, staff["csr"], number, amount=amount, reason="", note="", on=START, now=NOW)
    assert set(caught.value.errors) == {"amount", "reason"}
    with sessions() as session:
        assert _count(session, Deposit) == 0
        assert _count(session, LedgerTransaction) == 0


def test_only_staff_who_manage_deposits(sessions: sessionmaker[Session]) -> None:
    (number, _), staff = office(sessions)
    with pytest.raises(NotAllowed):
        service.bill(
            sessions, DEFAULT, staff["cashier"], number, amount="50", reason="other", note="x", on=START, now=NOW
        )


def _deposit_paid(sessions: sessionmaker[Session], number: str, staff, on: date) -> int:  # type: ignore[no-untyped-def]
    deposit_id = service.bill(
        sessions, DEFAULT, staff["csr"], number, amount="100.00", reason="new_customer", note="", on=on, now=NOW
    )
    with transaction(sessions) as session:
        pay(session, account(session, number).id, on + timedelta(days=2), 10_000)
    return deposit_id


def test_credited_back_once_after_twelve_months_on_time(sessions: sessionmaker[Session]) -> None:
    (number, _), staff = office(sessions)
    deposit_id = _deposit_paid(sessions, number, staff, date(2025, 1, 2))
    months_of_bills(sessions, number, START, 13, 4_000)
    # Eleven months after billing: too soon.
    assert service.run(sessions, DEFAULT, date(2025, 12, 20), NOW) == []
    assert service.run(sessions, DEFAULT, date(2026, 1, 20), NOW) == [deposit_id]
    assert service.run(sessions, DEFAULT, date(2026, 1, 20), NOW) == []
    with sessions() as session:
        deposit = session.get(Deposit, deposit_id)
        assert deposit is not None
        assert deposit.status == DepositStatus.CREDITED and deposit.released_on == date(2026, 1, 20)
        assert deposit.release_transaction_id is not None
        # The deposit came back as credit: the account is 100.00 in credit (all bills paid).
        assert posting.account_balance(session, account(session, number).id) == -10_000
        assert ledger_check.run(session) == []


def test_a_late_bill_keeps_the_deposit(sessions: sessionmaker[Session]) -> None:
    (number, _), staff = office(sessions)
    _deposit_paid(sessions, number, staff, date(2025, 1, 2))
    months_of_bills(sessions, number, START, 13, 4_000, late={6})
    assert service.run(sessions, DEFAULT, date(2026, 1, 20), NOW) == []
    with sessions() as session:
        assert deposits.held_cents(session, account(session, number).id) == 10_000


def test_cancelled_by_a_reversal(sessions: sessionmaker[Session]) -> None:
    (number, _), staff = office(sessions)
    deposit_id = service.bill(
        sessions, DEFAULT, staff["csr"], number, amount="75", reason="other", note="test", on=START, now=NOW
    )
    with pytest.raises(FieldErrors):
        service.cancel(sessions, staff["csr"], deposit_id, "", START, NOW)
    service.cancel(sessions, staff["csr"], deposit_id, "billed to the wrong account", START, NOW)
    with pytest.raises(FieldErrors):
        service.cancel(sessions, staff["csr"], deposit_id, "again", START, NOW)
    with sessions() as session:
        deposit = session.get(Deposit, deposit_id)
        assert deposit is not None and deposit.status == DepositStatus.CANCELLED
        reversal = session.get(LedgerTransaction, deposit.release_transaction_id)
        assert reversal is not None and reversal.reverses_id == deposit.billed_transaction_id
        assert posting.account_balance(session, account(session, number).id) == 0
        assert ledger_check.run(session) == []


def test_applied_at_the_final_bill_and_the_rest_asked_as_refund(sessions: sessionmaker[Session]) -> None:
    (number, _), staff = office(sessions)
    deposit_id = _deposit_paid(sessions, number, staff, date(2025, 1, 2))
    months_of_bills(sessions, number, START, 2, 4_000)
    with transaction(sessions) as session:
        acct = account(session, number)
        # The final bill: 30.00 owed; the 100.00 deposit pays it and 70.00 is left.
        from .deposit_helpers import post_bill

        post_bill(session, acct.id, date(2025, 3, 15), 3_000, 99)
        refund_id = service.apply_at_final(session, acct, staff["specialist"], date(2025, 3, 15), NOW)
    with sessions() as session:
        acct = account(session, number)
        deposit = session.get(Deposit, deposit_id)
        assert deposit is not None and deposit.status == DepositStatus.APPLIED
        assert posting.account_balance(session, acct.id) == -7_000
        refund = session.get(Refund, refund_id)
        assert refund is not None
        assert refund.status == RefundStatus.REQUESTED and refund.amount_cents == 7_000 and refund.method == "check"
        assert ledger_check.run(session) == []


def test_the_customer_is_told_in_their_language(sessions: sessionmaker[Session]) -> None:
    from portal import emails
    from portal.billing_core.models import Customer, EmailOutbox
    from portal.settings import Settings

    (number, _), staff = office(sessions)
    deposit_id = service.bill(
        sessions, DEFAULT, staff["csr"], number, amount="80", reason="other", note="x", on=START, now=NOW
    )
    with sessions() as session:
        row = session.scalar(select(EmailOutbox).where(EmailOutbox.kind == service.NOTICE))
        assert row is not None and row.args == {"what": "deposit_billed", "id": deposit_id}
        deposit = session.get(Deposit, deposit_id)
        acct = account(session, number)
        customer = session.get(Customer, acct.customer_id)
        assert customer is not None and customer.email
        settings = Settings.from_env()
        english = emails.build(
            settings, customer.email, "en", "money_notice", what="deposit_billed", thing=deposit, account=acct
        )
        spanish = emails.build(
            settings, customer.email, "es", "money_notice", what="deposit_billed", thing=deposit, account=acct
        )
    assert english["Subject"] == "A deposit was added to your account"
    assert "$80.00" in english.get_content()
    assert spanish["Subject"] == "Se agregó un depósito a su cuenta"
    assert "depósito de garantía" in spanish.get_content()


def test_posting_a_final_bill_applies_the_deposit(session: Session) -> None:
    """Through the real final bill: the deposit pays it and the rest is asked back."""
    from portal.adapters.clock import system_clock
    from portal.billing_core import bill_runs

    from .test_final_bills import billed_through_november, meter_and_last_read

    accts, _supervisor, specialist = billed_through_november(session)
    acct = accts[0]
    on = date(2026, 11, 10)
    row = posting.post(session, deposits.billing_transaction(acct.id, on, 50_000, "Deposit"), acct.id, specialist.id)
    session.add(
        Deposit(
            account_id=acct.id,
            amount_cents=50_000,
            reason="other",
            status="billed",
            billed_on=on,
            billed_transaction_id=row.id,
            created_by_id=specialist.id,
        )
    )
    pay(session, acct.id, on, posting.account_balance(session, acct.id))
    session.flush()
    meter, last = meter_and_last_read(session, acct)
    bill = bill_runs.final_bill(
        session, acct, date(2026, 11, 20), {meter.id: last + 5}, specialist, date(2026, 11, 21), now=system_clock()
    )
    assert bill is not None
    deposit = session.scalar(select(Deposit).where(Deposit.account_id == acct.id))
    assert deposit is not None and deposit.status == DepositStatus.APPLIED
    left = 50_000 - bill.current_charges_cents
    assert posting.account_balance(session, acct.id) == -left
    refund = session.scalar(select(Refund).where(Refund.account_id == acct.id))
    assert refund is not None and refund.amount_cents == left and refund.requested_by_id == specialist.id
    assert ledger_check.run(session) == []
