"""Returned payments and cash only on both databases: NSF and each R-code, the windows, a
payment returned once, the fee from policy, cash only after the policy's returns within its
window, recoveries and the ledger, the processor's returns, and the notice in the customer's
language."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from portal.billing_core import ledger, ledger_check, payments, posting, returns, write_offs
from portal.billing_core.errors import FieldErrors, NotAllowed
from portal.billing_core.models import (
    Account,
    AuditEvent,
    Deposit,
    EmailOutbox,
    LedgerEntry,
    LedgerTransaction,
    Payment,
    User,
    WriteOff,
)
from portal.billing_core.money_policy import DEFAULT, MoneyPolicy
from portal.emails import Mailer
from portal.services import returns as service
from portal.settings import Settings

from .factories import district

D = date(2026, 3, 2)  # a Monday
NOW = datetime(2026, 3, 3, 17, 0, tzinfo=UTC)
OWED = 10_000
FEE = DEFAULT.returned_payment_fee_cents


def billed(session: Session, on: date = D) -> Account:
    (account,) = district(session, 1)
    bill(session, account, on)
    return account


def bill(session: Session, account: Account, on: date, cents: int = OWED) -> None:
    posting.post(
        session, ledger.bill_transaction(account.id, on, on + timedelta(days=21), {"water": cents}), account.id
    )


def staff(session: Session, role: str = "specialist") -> User:
    user = User(email=f"{role}@example.net", role=role)
    session.add(user)
    session.flush()
    return user


def paid(session: Session, account: Account, cents: int, method: str, on: date = D, channel: str = "") -> Payment:
    """A posted payment: a check or cash at the counter, a bank debit or card online."""
    channel = channel or ("counter" if method in ("check", "cash", "money_order") else "online")
    payment = Payment(
        account_id=account.id,
        amount_cents=cents,
        channel=channel,
        method=method,
        received_on=on,
        status="pending",
        check_number="1001" if method == "check" else None,
    )
    session.add(payment)
    session.flush()
    payments.apply(session, payment, "succeeded", on, NOW)
    assert payment.status == "posted"
    return payment


def record(session: Session, payment: Payment, code: str, on: date, actor: User, policy: MoneyPolicy = DEFAULT):
    return service.record_return(
        session, actor, payment.id, {"reason": code, "on": on.isoformat()}, policy=policy, now=NOW
    )


def transactions(session: Session) -> int:
    return session.scalar(select(func.count(LedgerTransaction.id))) or 0


def test_a_returned_check_nsf_is_reversed_with_the_fee_and_the_ledger_balances(session: Session) -> None:
    account = billed(session)
    check = paid(session, account, 6_000, "check")
    assert posting.account_balance(session, account.id) == OWED - 6_000
    recorded = record(session, check, "NSF", D + timedelta(days=3), staff(session))
    done = recorded.returned
    assert (check.status, check.return_code, check.returned_on) == ("returned", "NSF", D + timedelta(days=3))
    assert (done.fee_cents, done.balance_cents, done.made_cash_only) == (FEE, OWED + FEE, False)
    assert posting.account_balance(session, account.id) == OWED + FEE
    reversal = session.scalar(
        select(LedgerTransaction).where(LedgerTransaction.reverses_id == check.ledger_transaction_id)
    )
    assert reversal is not None and reversal.kind == "reversal"
    fee = session.get(LedgerTransaction, check.return_fee_transaction_id)
    assert fee is not None and fee.kind == "fee" and fee.account_id == account.id
    entries = {(e.gl_account, e.account_id, e.service_type, e.amount_cents) for e in fee.entries}
    assert entries == {("AR:FEES", account.id, "fees", FEE), ("REVENUE:FEES", None, "fees", -FEE)}
    assert ledger_check.run(session) == []
    actions = set(session.scalars(select(AuditEvent.action)))
    assert {"payment.returned", "payment.return_fee"} <= actions
    assert session.scalar(select(EmailOutbox.kind).where(EmailOutbox.id == recorded.outbox_id)) == service.RETURN_EMAIL


@pytest.mark.parametrize("code", returns.ACH_CODES)
def test_each_ach_return_code_returns_a_bank_payment(session: Session, code: str) -> None:
    account = billed(session)
    debit = paid(session, account, 4_000, "bank")
    done = record(session, debit, code, D + timedelta(days=1), staff(session)).returned
    assert (done.code, debit.return_code, debit.status) == (code, code, "returned")
    assert posting.account_balance(session, account.id) == OWED + FEE
    assert ledger_check.run(session) == []


def refused(session: Session, payment: Payment, code: str, on: date | str, actor: User) -> dict[str, str]:
    before = transactions(session)
    on_text = on if isinstance(on, str) else on.isoformat()
    with pytest.raises(FieldErrors) as caught:
        service.record_return(session, actor, payment.id, {"reason": code, "on": on_text}, policy=DEFAULT, now=NOW)
    assert transactions(session) == before  # nothing written
    return {field: e.message for field, e in caught.value.errors.items()}


def test_a_return_outside_its_window_or_before_the_payment_is_refused(session: Session) -> None:
    account = billed(session)
    actor = staff(session)
    debit = paid(session, account, 4_000, "bank")
    # R01: 2 banking days. Monday's payment may come back by Wednesday, not Thursday.
    assert returns.WINDOWS["R01"].last_day(D) == D + timedelta(days=2)
    errors = refused(session, debit, "R01", D + timedelta(days=3), actor)
    assert "2 banking days" in errors["on"] and "2026-03-04" in errors["on"]
    errors = refused(session, debit, "R10", D - timedelta(days=1), actor)
    assert "before the payment was received" in errors["on"]
    assert "R10" not in errors  # only the date was wrong
    errors = refused(session, debit, "R10", D + timedelta(days=61), actor)
    assert "60 calendar days" in errors["on"]
    assert "YYYY-MM-DD" in refused(session, debit, "R10", "3/9/2026", actor)["on"]
    assert "Choose the return reason" in refused(session, debit, "R99", D, actor)["reason"]
    assert "cannot be returned with NSF" in refused(session, debit, "NSF", D, actor)["reason"]
    # A consumer's "unauthorized" return may come 60 days later.
    assert record(session, debit, "R10", D + timedelta(days=60), actor).returned.code == "R10"


def test_a_payment_is_returned_once_and_cash_is_never_returned(session: Session) -> None:
    account = billed(session)
    actor = staff(session)
    check = paid(session, account, 3_000, "check")
    record(session, check, "NSF", D + timedelta(days=1), actor)
    assert "already returned" in refused(session, check, "NSF", D + timedelta(days=2), actor)["payment"]
    cash = paid(session, account, 2_000, "cash")
    assert "which no bank can return" in refused(session, cash, "NSF", D, actor)["payment"]
    card = paid(session, account, 2_000, "card")
    assert "use DISPUTE" in refused(session, card, "R10", D, actor)["reason"]
    assert posting.account_balance(session, account.id) == OWED - 4_000 + FEE


def test_cash_only_after_the_second_return_within_twelve_months(session: Session) -> None:
    account = billed(session)
    actor = staff(session)
    first = paid(session, account, 3_000, "check")
    assert not record(session, first, "NSF", D + timedelta(days=1), actor).returned.made_cash_only
    later = D + timedelta(days=200)
    bill(session, account, later)
    second = paid(session, account, 3_000, "bank", on=later)
    done = record(session, second, "R01", later + timedelta(days=1), actor).returned
    assert done.made_cash_only and done.returns_in_window == 2
    session.refresh(account)
    assert account.cash_only and account.cash_only_since == later + timedelta(days=1)
    assert f"payments {first.id}, {second.id}" in (account.cash_only_reason or "")
    assert session.scalar(select(AuditEvent.after).where(AuditEvent.action == "account.cash_only"))["cash_only"]
    assert returns.cash_only_until(session, account, DEFAULT) == returns.add_months(later + timedelta(days=1), 12)


def test_two_returns_thirteen_months_apart_do_not_make_cash_only(session: Session) -> None:
    account = billed(session)
    actor = staff(session)
    first = paid(session, account, 3_000, "check")
    record(session, first, "NSF", D + timedelta(days=1), actor)
    later = returns.add_months(D, 13)
    bill(session, account, later)
    second = paid(session, account, 3_000, "check", on=later)
    done = record(session, second, "NSF", later + timedelta(days=1), actor).returned
    assert not done.made_cash_only and done.returns_in_window == 1
    session.refresh(account)
    assert not account.cash_only


def test_the_fee_comes_from_the_policy(session: Session) -> None:
    account = billed(session)
    actor = staff(session)
    dearer = dataclasses.replace(DEFAULT, returned_payment_fee_cents=3_500, returns_before_cash_only=1)
    check = paid(session, account, 3_000, "check")
    done = record(session, check, "NSF", D, actor, dearer).returned
    assert done.fee_cents == 3_500 and done.made_cash_only  # one return is enough under this policy
    free = dataclasses.replace(DEFAULT, returned_payment_fee_cents=0)
    other = paid(session, account, 1_000, "bank")
    assert record(session, other, "R02", D, actor, free).returned.fee_cents == 0
    assert other.return_fee_transaction_id is None
    assert posting.account_balance(session, account.id) == OWED + 3_500


def test_only_staff_who_record_returns_may(session: Session) -> None:
    account = billed(session)
    check = paid(session, account, 3_000, "check")
    with pytest.raises(NotAllowed):
        record(session, check, "NSF", D, staff(session, "csr"))
    assert check.status == "posted"


def test_a_returned_payment_that_recovered_written_off_debt_undoes_the_recovery(session: Session) -> None:
    account = billed(session)
    boss = staff(session, "supervisor")
    off = ledger.Transaction(
        ledger.Kind.WRITE_OFF,
        D,
        (ledger.Entry(ledger.BAD_DEBT, OWED), ledger.Entry(ledger.receivable("water"), -OWED, account.id, "water")),
    )
    row = posting.post(session, off, account.id, boss.id)
    session.add(
        WriteOff(
            account_id=account.id,
            amount_cents=OWED,
            reason="gone",
            status="posted",
            prepared_by_id=boss.id,
            ledger_transaction_id=row.id,
        )
    )
    session.flush()
    check = paid(session, account, 4_000, "check")
    assert check.recovery_cents == 4_000 and write_offs.written_off_unrecovered(session, account.id) == OWED - 4_000
    record(session, check, "NSF", D + timedelta(days=1), boss)
    assert check.recovery_cents is None
    assert write_offs.written_off_unrecovered(session, account.id) == OWED
    assert posting.account_balance(session, account.id) == FEE  # only the fee is owed: the rest stays written off
    recoveries = session.scalar(
        select(func.coalesce(func.sum(LedgerEntry.amount_cents), 0)).where(LedgerEntry.gl_account == ledger.RECOVERIES)
    )
    assert recoveries == 0
    assert ledger_check.run(session) == []


def test_a_payment_that_paid_a_deposit_is_returned_exactly(session: Session) -> None:
    account = billed(session)
    deposit = ledger.Transaction(
        ledger.Kind.DEPOSIT,
        D,
        (
            ledger.Entry(ledger.receivable(ledger.DEPOSIT), 5_000, account.id, ledger.DEPOSIT),
            ledger.Entry(ledger.DEPOSITS_HELD, -5_000),
        ),
        due_date=D,
    )
    row = posting.post(session, deposit, account.id)
    session.add(
        Deposit(account_id=account.id, amount_cents=5_000, reason="other", billed_on=D, billed_transaction_id=row.id)
    )
    check = paid(session, account, OWED + 5_000, "check")
    assert posting.open_by_service(session, account.id) == {"water": 0, "deposit": 0}
    record(session, check, "NSF", D, staff(session))
    assert posting.open_by_service(session, account.id) == {"water": OWED, "deposit": 5_000, "fees": FEE}
    assert ledger_check.run(session) == []


def test_the_processor_return_goes_through_the_same_rule_once(session: Session) -> None:
    account = billed(session)
    card = paid(session, account, 3_000, "card")
    card.processor_id = "pi_1"
    late = D + timedelta(days=200)  # the money is already gone: not refused for its date
    recorded = service.processor_return(session, card, "fraudulent", late, NOW, DEFAULT)
    assert recorded is not None and recorded.returned.code == "DISPUTE" and recorded.returned.fee_cents == FEE
    assert recorded.outbox_id is not None
    assert service.processor_return(session, card, "fraudulent", late, NOW, DEFAULT) is None  # once
    debit = paid(session, account, 2_000, "bank")
    again = service.processor_return(session, debit, "insufficient_funds", late, NOW, DEFAULT)
    assert again is not None and again.returned.code == "R01" and again.returned.made_cash_only
    assert posting.account_balance(session, account.id) == OWED + 2 * FEE
    assert ledger_check.run(session) == []


def test_lifting_cash_only_takes_a_supervisor_and_a_reason(session: Session) -> None:
    account = billed(session)
    account.cash_only, account.cash_only_since, account.cash_only_reason = True, D, "2 payments returned"
    session.flush()
    with pytest.raises(NotAllowed):
        service.lift_cash_only(session, staff(session), account.number, "paid up", now=NOW)
    boss = staff(session, "supervisor")
    with pytest.raises(FieldErrors) as caught:
        service.lift_cash_only(session, boss, account.number, "  ", now=NOW)
    assert "reason" in caught.value.errors and account.cash_only
    service.lift_cash_only(session, boss, account.number, "Paid by money order for a year", now=NOW)
    assert not account.cash_only and account.cash_only_since is None
    event = session.scalar(select(AuditEvent).where(AuditEvent.action == "account.cash_only_lifted"))
    assert event is not None and event.before["cash_only"] and event.after["reason"].startswith("Paid by")
    with pytest.raises(FieldErrors):
        service.lift_cash_only(session, boss, account.number, "again", now=NOW)


def test_the_ledger_check_finds_a_return_without_its_reversal_or_with_a_wrong_fee(session: Session) -> None:
    account, other = district(session, 2)
    bill(session, account, D)
    check = paid(session, account, 3_000, "check")
    check.returned_on, check.return_code = D, "NSF"  # marked by hand: never reversed
    wrong = posting.post(session, ledger.bill_transaction(other.id, D, D, {"fees": 500}), other.id)
    check.return_fee_transaction_id = wrong.id
    session.flush()
    problems = returns.check(session)
    assert f"returned payment {check.id} has no reversal of its transaction" in problems
    assert f"payment {check.id} has a return date but is not returned" in problems
    assert any(
        f"returned payment {check.id} names transaction {wrong.id} as its fee, but it is a bill" in p for p in problems
    )


class Sent:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    def send(self, *messages: EmailMessage) -> None:
        self.messages.extend(messages)

    def batch(self):  # type: ignore[no-untyped-def]
        raise NotImplementedError


def test_the_notice_is_queued_and_written_in_the_customers_language(sessions: sessionmaker[Session]) -> None:
    with sessions() as session, session.begin():
        account = billed(session)
        account.customer.preferred_language = "es"
        account.customer.email = "cliente@example.net"
        actor = staff(session)
        first = paid(session, account, 3_000, "check")
        record(session, first, "NSF", D, actor)
        second = paid(session, account, 2_000, "bank")
        recorded = record(session, second, "R01", D, actor)
        payment_id = second.id
        assert session.scalar(select(EmailOutbox.args).where(EmailOutbox.id == recorded.outbox_id)) == {
            "payment_id": payment_id
        }
    transport = Sent()
    mailer = Mailer(Settings(agency_name="Demo Water District", agency_phone="555-0100"), transport)
    assert service.send_return_notice(mailer, sessions, lambda: NOW, payment_id, DEFAULT) == "cliente@example.net"
    (message,) = transport.messages
    body = message.get_content()
    assert message["Content-Language"] == "es"
    assert "devuelto" in message["Subject"].lower()
    assert "$20.00" in body and "$25.00" in body and "R01" in body  # the payment, the fee
    assert "Fondos insuficientes" in body
    assert "efectivo" in body  # cash only, in Spanish
    assert str(payment_id) in body


def test_the_command_line_records_a_return_and_lifts_cash_only(
    sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from portal.cli import main

    with sessions() as session, session.begin():
        account = billed(session)
        number = account.number
        first = paid(session, account, 3_000, "check").id
        second = paid(session, account, 2_000, "bank").id
        for email, role in (("clerk@example.net", "specialist"), ("boss@example.net", "supervisor")):
            session.add(User(email=email, role=role))
    engine = sessions.kw["bind"]
    monkeypatch.setenv("DATABASE_URL", engine.url.render_as_string(hide_password=False))
    on = D.isoformat()
    assert main(["payments", "return", str(first), "--reason", "NSF", "--on", on, "--as", "clerk@example.net"]) == 0
    out = capsys.readouterr().out
    assert f"Payment {first} of account {number} returned (NSF)" in out and "fee $25.00" in out
    assert main(["payments", "return", str(first), "--reason", "NSF", "--on", on, "--as", "clerk@example.net"]) == 2
    assert "already returned" in capsys.readouterr().err
    assert (
        main(["payments", "return", str(second), "--reason", "R01", "--on", "2026-04-30", "--as", "clerk@example.net"])
        == 2
    )
    assert "2 banking days" in capsys.readouterr().err
    assert main(["payments", "return", str(second), "--reason", "R01", "--on", on, "--as", "clerk@example.net"]) == 0
    assert f"Account {number} is now cash only" in capsys.readouterr().out
    lift = ["accounts", "cash-only", "lift", number, "--reason", "paid up"]
    assert main([*lift, "--as", "clerk@example.net"]) == 2  # not a supervisor
    assert main([*lift, "--as", "boss@example.net"]) == 0
    with sessions() as session:
        assert not session.scalar(select(Account.cash_only).where(Account.number == number))


def test_the_letter_says_it_in_the_customers_language(session: Session) -> None:
    from portal import documents
    from portal.templating import make_templates

    account = billed(session)
    account.customer.preferred_language = "es"
    actor = staff(session)
    record(session, paid(session, account, 3_000, "check"), "NSF", D, actor)
    payment = paid(session, account, 2_000, "bank")
    record(session, payment, "R02", D, actor)
    notice = service.return_notice(session, payment.id, DEFAULT)
    assert (notice.fee_cents, notice.balance_cents, notice.cash_only) == (FEE, OWED + 2 * FEE, True)
    html = documents.return_letter_html(make_templates().env, Settings(agency_name="Demo"), notice, D)
    assert 'lang="es"' in html and "Su pago fue devuelto" in html and "La cuenta bancaria está cerrada" in html
    assert "Solo efectivo" in html and "$20.00" in html and "$25.00" in html
    account.customer.preferred_language = "en"
    english_notice = service.return_notice(session, payment.id, DEFAULT)
    english = documents.return_letter_html(make_templates().env, Settings(agency_name="Demo"), english_notice, D)
    assert 'lang="en"' in english and "Your payment was returned" in english and "Cash only" in english
