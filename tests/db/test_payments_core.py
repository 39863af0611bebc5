"""The core of online payments (``billing_core/payments.py``) on both databases, without the
web or a processor: what may be paid, the pending payment, each processor state and what it
does to the ledger, overpayments and their review, returns."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from portal.billing_core import accounts, ledger, payments, posting
from portal.billing_core.errors import InvalidInput
from portal.billing_core.models import Account, AuditEvent, LedgerTransaction, Payment, User
from portal.billing_core.status import PAYMENT_TRANSITIONS, IllegalTransition, PaymentStatus, move

from .factories import district

D = date(2026, 3, 1)
NOW = datetime(2026, 3, 20, 17, 0, tzinfo=UTC)
WATER, SEWER = 6909, 3852
OWED = WATER + SEWER


def billed(session: Session, accounts_in_district: int = 1) -> Account:
    """An account with one bill on it, owing ``OWED`` (the first of the district's)."""
    account = district(session, accounts_in_district)[0]
    posting.post(
        session,
        ledger.bill_transaction(account.id, D, D + timedelta(days=21), {"water": WATER, "sewer": SEWER}),
        account.id,
    )
    return account


def started(session: Session, account: Account, cents: int, key: str = "pay-1", method: str = "card") -> Payment:
    payment, new = payments.start(session, account, None, cents, method, key, D)
    assert new
    return payment


def counter_payment(session: Session, account: Account, cents: int) -> None:
    posting.post(
        session,
        ledger.payment_transaction(account.id, D, cents, "counter", posting.open_by_service(session, account.id)),
        account.id,
    )


def cashier(session: Session) -> User:
    user = User(email="cashier@example.net", role="cashier")
    session.add(user)
    session.flush()
    return user


def audited(session: Session, action: str) -> int:
    return session.scalar(select(func.count(AuditEvent.id)).where(AuditEvent.action == action)) or 0


# --- What may be paid ------------------------------------------------------------------------


def test_what_may_be_paid_is_the_balance_less_what_is_on_its_way(session: Session) -> None:
    account = billed(session)
    summary = accounts.summarise(session, account, D + timedelta(days=5))
    allowed = payments.limits(summary, 0)
    assert (allowed.minimum_cents, allowed.maximum_cents, allowed.can_pay) == (payments.MINIMUM_CENTS, OWED, True)
    assert payments.choose_amount(summary, allowed, "balance", "") == OWED
    assert payments.choose_amount(summary, allowed, "other", "25.00") == 2500
    # A remainder under the processor's minimum may still be paid, all of it.
    small = payments.limits(summary, OWED - 30)
    assert (small.minimum_cents, small.maximum_cents, small.can_pay) == (30, 30, True)
    with_pending = payments.limits(summary, OWED)
    assert (with_pending.maximum_cents, with_pending.can_pay) == (0, False)
    for choice, other, field, words in [
        ("other", "abc", "other_amount", "Enter the amount"),
        ("other", "0.10", "other_amount", "smallest"),
        ("other", f"{OWED / 100 + 1:.2f}", "other_amount", "at most"),
        ("past_due", "", "choice", "Nothing is past due"),
        ("everything", "", "choice", "Choose how much"),
    ]:
        with pytest.raises(InvalidInput) as refused:
            payments.choose_amount(summary, allowed, choice, other)
        assert refused.value.field == field and words in refused.value.message
    with pytest.raises(InvalidInput, match="nothing to pay"):
        payments.choose_amount(summary, with_pending, "balance", "")


def test_the_past_due_part_counts_what_is_on_its_way(session: Session) -> None:
    account = billed(session)
    summary = accounts.summarise(session, account, D + timedelta(days=40))  # the bill is past due
    assert summary.past_due_cents == OWED
    allowed = payments.limits(summary, 1000)
    assert payments.choose_amount(summary, allowed, "past_due", "") == OWED - 1000


# --- The pending payment -------------------------------------------------------------------


def test_a_started_payment_is_pending_once_per_key_and_not_in_the_ledger(session: Session) -> None:
    account = billed(session, 2)
    other = session.scalars(select(Account).where(Account.id != account.id)).one()
    payment = started(session, account, 5000, method="us_bank_account")
    assert (payment.status, payment.processor_status, payment.method) == ("pending", "created", "bank")
    again, new = payments.start(session, account, None, 5000, "us_bank_account", "pay-1", D)
    assert again.id == payment.id and not new
    assert payments.pending(session, account.id) == [payment]
    assert payments.pending_cents(session, account.id) == 5000
    assert posting.account_balance(session, account.id) == OWED
    with pytest.raises(InvalidInput, match="already used"):
        payments.start(session, other, None, 5000, "card", "pay-1", D)


def test_a_new_payment_beyond_what_is_owed_less_what_is_on_its_way_is_refused(session: Session) -> None:
    account = billed(session)
    started(session, account, OWED - 1000, key="pay-1")
    with pytest.raises(InvalidInput) as refused:
        payments.start(session, account, None, 2000, "card", "pay-2", D)
    assert "already on its way" in refused.value.message and "at most $10.00" in refused.value.message
    assert refused.value.field == "choice"
    assert started(session, account, 1000, key="pay-3").amount_cents == 1000
    with pytest.raises(InvalidInput, match="covers what is owed"):
        payments.start(session, account, None, 100, "card", "pay-4", D)
    assert session.scalar(select(func.count(Payment.id))) == 2


def test_nothing_owed_nothing_to_pay(session: Session) -> None:
    (account,) = district(session, 1)
    with pytest.raises(InvalidInput, match="nothing to pay"):
        payments.start(session, account, None, 100, "card", "pay-1", D)
    posting.post(session, ledger.bill_transaction(account.id, D, D, {"water": 10_000}), account.id)
    counter_payment(session, account, 9000)
    with pytest.raises(InvalidInput, match="balance of this account is now \\$10.00"):
        payments.start(session, account, None, 5000, "card", "pay-2", D)


# --- The processor's states ----------------------------------------------------------------


def test_succeeded_posts_once_applied_in_service_order(session: Session) -> None:
    account = billed(session)
    payment = started(session, account, 8000)
    payment.processor_id = "pi_1"
    assert payments.apply(session, payment, "processing", D, NOW).change == "processing"
    assert payment.status == "pending" and payment.processor_status == "processing"
    assert payments.apply(session, payment, "processing", D, NOW).change == ""
    assert posting.account_balance(session, account.id) == OWED
    later = D + timedelta(days=3)
    applied = payments.apply(session, payment, "succeeded", later, NOW, method_label="Visa •••• 4242")
    assert applied.change == "posted" and applied.payment is payment
    assert (payment.status, payment.processor_status, payment.received_on, payment.settled_at) == (
        "posted",
        "succeeded",
        later,
        NOW,
    )
    assert payment.method_label == "Visa •••• 4242" and payment.overpaid_cents is None
    assert posting.account_balance(session, account.id) == OWED - 8000
    assert posting.open_by_service(session, account.id) == {"water": 0, "sewer": OWED - 8000}
    txn = session.get(LedgerTransaction, payment.ledger_transaction_id)
    assert txn is not None and txn.kind == "payment" and "pi_1" in (txn.memo or "")
    # Repeated, late, or out of order: nothing changes, nothing is posted twice.
    for late in ("succeeded", "processing", "requires_payment_method", "canceled"):
        assert payments.apply(session, payment, late, later, NOW).change == ""
    assert payment.status == "posted"
    assert session.scalar(select(func.count(LedgerTransaction.id)).where(LedgerTransaction.kind == "payment")) == 1
    assert audited(session, "payment.posted") == 1


def test_a_decline_fails_the_payment_for_good(session: Session) -> None:
    account = billed(session)
    payment = started(session, account, 5000)
    applied = payments.apply(session, payment, "requires_payment_method", D, NOW, failure="Your card was declined.")
    assert applied.change == "failed"
    assert (payment.status, payment.processor_status, payment.failure_message) == (
        "failed",
        "requires_payment_method",
        "Your card was declined.",
    )
    assert payments.apply(session, payment, "succeeded", D, NOW).change == ""  # never posted after failing
    assert payment.status == "failed" and payment.ledger_transaction_id is None
    assert posting.account_balance(session, account.id) == OWED
    assert payments.pending(session, account.id) == []
    cancelled = started(session, account, 5000, key="pay-2")
    assert payments.apply(session, cancelled, "canceled", D, NOW).change == "failed"
    assert cancelled.failure_message == "The payment did not go through."
    assert audited(session, "payment.failed") == 2


def test_a_payment_that_posts_beyond_the_balance_is_a_credit_to_review(session: Session) -> None:
    account = billed(session)
    payment = started(session, account, OWED)
    counter_payment(session, account, 4000)  # paid at the counter while it was on its way
    assert payments.apply(session, payment, "succeeded", D, NOW).change == "posted"
    assert payment.overpaid_cents == 4000
    assert posting.account_balance(session, account.id) == -4000
    assert audited(session, "payment.overpaid") == 1
    assert payments.to_review(session) == [payment]
    assert payments.to_review(session, account.id) == [payment]
    assert payments.to_review(session, reviewed=True) == []
    summary = accounts.summarise(session, account, D)
    assert summary.has_credit and not payments.limits(summary, 0).can_pay
    user = cashier(session)
    payments.mark_reviewed(session, payment, user, NOW, "Refunded to the card on 3/21")
    assert payment.refund_reviewed_at == NOW and payment.refund_reviewed_by_id == user.id
    assert payments.to_review(session) == [] and payments.to_review(session, reviewed=True) == [payment]
    with pytest.raises(InvalidInput, match="no overpayment left"):
        payments.mark_reviewed(session, payment, user, NOW, "again")
    assert audited(session, "payment.refund_reviewed") == 1


def test_a_payment_within_the_balance_has_nothing_to_review(session: Session) -> None:
    account = billed(session)
    payment = started(session, account, OWED)
    payments.apply(session, payment, "succeeded", D, NOW)
    assert payment.overpaid_cents is None and payments.to_review(session) == []
    with pytest.raises(InvalidInput):
        payments.mark_reviewed(session, payment, cashier(session), NOW, "nothing")


def test_a_returned_payment_is_reversed_once_and_owed_again(session: Session) -> None:
    account = billed(session)
    payment = started(session, account, 5000)
    assert payments.return_payment(session, payment, D, "R10").change == ""  # pending: nothing to return
    payments.apply(session, payment, "succeeded", D, NOW)
    assert posting.account_balance(session, account.id) == OWED - 5000
    returned = payments.return_payment(session, payment, D + timedelta(days=30), "not_authorized")
    assert returned.change == "returned"
    assert (payment.status, payment.failure_message) == ("returned", "not_authorized")
    assert posting.account_balance(session, account.id) == OWED
    reversal = session.scalar(
        select(LedgerTransaction).where(LedgerTransaction.reverses_id == payment.ledger_transaction_id)
    )
    assert reversal is not None and "returned" in (reversal.memo or "")
    assert payments.return_payment(session, payment, D, "again").change == ""
    assert payments.apply(session, payment, "succeeded", D, NOW).change == ""  # never posted again
    assert audited(session, "payment.returned") == 1


def test_an_overpayment_taken_back_leaves_nothing_to_refund(session: Session) -> None:
    account = billed(session)
    payment = started(session, account, OWED)
    counter_payment(session, account, OWED)
    payments.apply(session, payment, "succeeded", D, NOW)
    assert payments.to_review(session) == [payment]
    payments.return_payment(session, payment, D, "R10")
    assert payments.to_review(session) == []
    assert posting.account_balance(session, account.id) == 0
    with pytest.raises(InvalidInput):
        payments.mark_reviewed(session, payment, cashier(session), NOW, "refund")


def test_recent_lists_online_and_autopay_payments_newest_first(session: Session) -> None:
    account = billed(session)
    first = started(session, account, 1000, key="pay-1")
    second = started(session, account, 1000, key="pay-2")
    counter_payment(session, account, 500)
    session.add(Payment(account_id=account.id, amount_cents=500, channel="counter", method="cash", received_on=D))
    session.flush()
    assert [p.id for p in payments.recent(session, account.id)] == [second.id, first.id]
    assert payments.recent(session, account.id, limit=1) == [second]


def test_the_payment_table_refuses_moves_backwards() -> None:
    payment = Payment(status="failed")
    with pytest.raises(IllegalTransition):
        move(PAYMENT_TRANSITIONS, payment, PaymentStatus.POSTED)
    payment = Payment(status="returned")
    with pytest.raises(IllegalTransition):
        move(PAYMENT_TRANSITIONS, payment, PaymentStatus.POSTED)
    payment = Payment(status="pending")
    move(PAYMENT_TRANSITIONS, payment, PaymentStatus.POSTED)
    move(PAYMENT_TRANSITIONS, payment, PaymentStatus.RETURNED)
    assert payment.status == "returned"
