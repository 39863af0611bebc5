"""The payment services (``portal/services/payments.py``) on both databases, without the web:
the webhook's deduplication and dispatch, and the staff's refund decisions."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from portal.adapters.gateway import Event, GatewayError, Intent
from portal.billing_core import ledger, money_policy, payments, posting
from portal.billing_core.errors import InvalidInput, NotAllowed, NotFound
from portal.billing_core.models import Account, EmailOutbox, Payment, ProcessorEvent, User
from portal.services import payments as service

from .factories import district

D = date(2026, 3, 1)
NOW = datetime(2026, 3, 20, 17, 0, tzinfo=UTC)
OWED = 10_000


class Processor:
    """Just enough of a processor for the webhook: the current state of each payment."""

    def __init__(self) -> None:
        self.states: dict[str, str] = {}
        self.asked: list[str] = []
        self.away = False

    def retrieve_payment(self, payment_id: str) -> Intent:
        self.asked.append(payment_id)
        if self.away:
            raise GatewayError("not answering")
        return Intent(payment_id, self.states[payment_id], method_label="Visa •••• 4242")


class ProcessorWithMetadata(Processor):
    """The processor's PaymentIntents carry the metadata the charge gave them."""

    def __init__(self, metadata: dict[str, dict[str, str]]) -> None:
        super().__init__()
        self.metadata = metadata

    def retrieve_payment(self, payment_id: str) -> Intent:
        if payment_id not in self.states:  # not a payment of ours: the processor knows it, we do not
            self.asked.append(payment_id)
            return Intent(payment_id, "succeeded")
        return replace(super().retrieve_payment(payment_id), metadata=self.metadata.get(payment_id, {}))


def pending_payment(sessions: sessionmaker[Session], channel: str = "online", overpay: int = 0) -> tuple[int, int]:
    """An account owing ``OWED`` with a pending online payment of it, known to the processor
    as ``pi_1``: (account id, payment id). ``overpay``: paid that much at the counter meanwhile."""
    with sessions() as session, session.begin():
        (account,) = district(session, 1)
        posting.post(
            session, ledger.bill_transaction(account.id, D, D + timedelta(days=21), {"water": OWED}), account.id
        )
        payment, _new = payments.start(session, account, None, OWED, "card", "pay-1", D, channel=channel)
        payment.processor_id = "pi_1"
        if overpay:
            posting.post(
                session,
                ledger.payment_transaction(
                    account.id, D, overpay, "counter", posting.open_by_service(session, account.id)
                ),
                account.id,
            )
        return account.id, payment.id


def event(event_id: str, kind: str = "payment_intent.succeeded", object_id: str = "pi_1", **extra: str) -> Event:
    return Event(event_id, kind, object_id, **extra)


def handle(sessions: sessionmaker[Session], processor: Processor, e: Event) -> service.Handled:
    return service.handle_event(sessions, processor, e, D + timedelta(days=2), NOW)  # type: ignore[arg-type]


def outcomes(sessions: sessionmaker[Session]) -> dict[str, str | None]:
    with sessions() as session:
        return {e: o for e, o in session.execute(select(ProcessorEvent.event_id, ProcessorEvent.outcome))}


def test_each_event_is_acted_on_once_and_recorded(sessions: sessionmaker[Session]) -> None:
    account_id, payment_id = pending_payment(sessions)
    processor = Processor()
    processor.states["pi_1"] = "processing"
    assert handle(sessions, processor, event("evt_1", "payment_intent.processing")) == service.Handled(
        f"payment {payment_id}: processing"
    )
    processor.states["pi_1"] = "succeeded"
    posted = handle(sessions, processor, event("evt_2"))
    assert posted == service.Handled(f"payment {payment_id}: posted", (service.RECEIPT_EMAIL, payment_id))
    assert handle(sessions, processor, event("evt_2")) == service.Handled("already handled")
    # A late event about the same payment: the processor's current state says nothing changed.
    assert handle(sessions, processor, event("evt_3", "payment_intent.processing")).outcome.endswith("no change")
    assert processor.asked == ["pi_1", "pi_1", "pi_1"]  # never for an event already handled
    with sessions() as session:
        assert posting.account_balance(session, account_id) == 0
        payment = session.get(Payment, payment_id)
        assert payment is not None and payment.status == "posted" and payment.method_label == "Visa •••• 4242"
    assert outcomes(sessions) == {
        "evt_1": f"payment {payment_id}: processing",
        "evt_2": f"payment {payment_id}: posted",
        "evt_3": f"payment {payment_id}: no change",
    }


def test_events_about_nothing_of_ours_are_recorded_and_ignored(sessions: sessionmaker[Session]) -> None:
    pending_payment(sessions)
    processor = ProcessorWithMetadata({})
    assert handle(sessions, processor, event("evt_1", object_id="pi_other")).outcome == "ignored: unknown payment"
    assert handle(sessions, processor, event("evt_2", "customer.created", "cus_1")).outcome == "ignored"
    dispute = event("evt_3", "charge.dispute.created", "du_1", payment_intent="pi_other", reason="fraudulent")
    assert handle(sessions, processor, dispute).outcome == "ignored: unknown payment"
    # An unknown PaymentIntent is asked for once, for the account a charge in progress would
    # have given it (test_a_webhook_before_the_charge_has_committed_waits_for_it): none.
    assert processor.asked == ["pi_other"]
    assert set(outcomes(sessions)) == {"evt_1", "evt_2", "evt_3"}


def test_a_processor_that_does_not_answer_writes_nothing(sessions: sessionmaker[Session]) -> None:
    _account_id, payment_id = pending_payment(sessions)
    processor = Processor()
    processor.away = True
    with pytest.raises(GatewayError):
        handle(sessions, processor, event("evt_1"))
    assert outcomes(sessions) == {}  # delivered again later, and then acted on
    processor.away = False
    processor.states["pi_1"] = "succeeded"
    assert handle(sessions, processor, event("evt_1")).outcome == f"payment {payment_id}: posted"


def test_a_dispute_returns_the_payment_with_the_return_rule_and_its_notice(sessions: sessionmaker[Session]) -> None:
    account_id, payment_id = pending_payment(sessions, channel="autopay")
    processor = Processor()
    processor.states["pi_1"] = "succeeded"
    handle(sessions, processor, event("evt_1"))
    dispute = event("evt_2", "charge.dispute.created", "du_1", payment_intent="pi_1", reason="not_authorized")
    handled = handle(sessions, processor, dispute)
    # The returned-payment notice (services/returns.py) is written with the return, once.
    assert handled.outcome == f"payment {payment_id}: returned" and handled.outbox_id is not None
    again = event("evt_3", "charge.dispute.created", "du_1", payment_intent="pi_1")
    assert handle(sessions, processor, again) == service.Handled(f"payment {payment_id}: no change")
    with sessions() as session:
        fee = money_policy.DEFAULT.returned_payment_fee_cents
        assert posting.account_balance(session, account_id) == OWED + fee
        payment = session.get(Payment, payment_id)
        assert payment is not None and payment.return_code == "DISPUTE"  # a card payment
        assert session.scalar(select(EmailOutbox.kind).where(EmailOutbox.id == handled.outbox_id)) == (
            "email.payment_returned"
        )


def test_an_online_failure_sends_no_notice(sessions: sessionmaker[Session]) -> None:
    _account_id, payment_id = pending_payment(sessions)
    processor = Processor()
    processor.states["pi_1"] = "requires_payment_method"
    assert handle(sessions, processor, event("evt_1", "payment_intent.payment_failed")) == service.Handled(
        f"payment {payment_id}: failed"
    )


def staff(sessions: sessionmaker[Session], role: str) -> User:
    with sessions() as session, session.begin():
        user = User(email=f"{role}@example.net", role=role)
        session.add(user)
    return user


def test_an_overpayment_is_listed_and_reviewed_once_by_a_role_that_may(sessions: sessionmaker[Session]) -> None:
    account_id, payment_id = pending_payment(sessions, overpay=2500)
    processor = Processor()
    processor.states["pi_1"] = "succeeded"
    assert handle(sessions, processor, event("evt_1")).outcome == f"payment {payment_id}: posted, overpaid"
    csr, cashier = staff(sessions, "csr"), staff(sessions, "cashier")
    with sessions() as session:
        review = service.refund_review(session, csr)
        assert [p.id for p in review.items] == [payment_id] and review.reviewed == [] and not review.can_review
        assert review.numbers == {account_id: session.scalar(select(Account.number).where(Account.id == account_id))}
        assert service.refund_review(session, cashier).can_review
    with sessions() as session, session.begin(), pytest.raises(NotAllowed, match="Only cashiers"):
        service.record_refund_decision(session, csr, payment_id, "refunded", NOW)
    with sessions() as session, session.begin(), pytest.raises(NotFound):
        service.record_refund_decision(session, cashier, payment_id + 1000, "refunded", NOW)
    with sessions() as session, session.begin(), pytest.raises(InvalidInput, match="Say what was done"):
        service.record_refund_decision(session, cashier, payment_id, "", NOW)
    with sessions() as session, session.begin():
        assert service.record_refund_decision(session, cashier, payment_id, "Refunded to the card", NOW) is True
    with sessions() as session, session.begin():
        assert service.record_refund_decision(session, cashier, payment_id, "again", NOW) is False
    with sessions() as session:
        review = service.refund_review(session, cashier)
        assert review.items == [] and [p.id for p in review.reviewed] == [payment_id]
        assert session.scalar(select(func.count(Payment.id)).where(Payment.refund_reviewed_by_id == cashier.id)) == 1


def test_a_webhook_before_the_charge_has_committed_waits_for_it(sessions: sessionmaker[Session]) -> None:
    """Stripe may send ``payment_intent.succeeded`` before the portal has its answer to the
    create call (localstripe sends it a second later): the charge's transaction, holding the
    account, has not committed the payment's processor id yet. The webhook waits for the
    account and then posts the payment, instead of ignoring it as unknown for good."""
    with sessions() as session, session.begin():
        (account,) = district(session, 1)
        posting.post(
            session, ledger.bill_transaction(account.id, D, D + timedelta(days=21), {"water": OWED}), account.id
        )
        account_id, number = account.id, account.number
    charging = sessions()
    account = charging.get(Account, account_id)
    assert account is not None
    payment, _new = payments.start(charging, account, None, OWED, "card", "pay-1", D)
    payment.processor_id = "pi_1"
    charging.flush()
    payment_id = payment.id
    processor = ProcessorWithMetadata({"pi_1": {"account": number, "payment": str(payment_id)}})
    processor.states["pi_1"] = "succeeded"
    handled: list[service.Handled] = []
    webhook = threading.Thread(target=lambda: handled.append(handle(sessions, processor, event("evt_1"))))
    webhook.start()
    webhook.join(1.0)  # before the fix, it had already answered "ignored: unknown payment"
    charging.commit()
    charging.close()
    webhook.join(30)
    assert handled == [service.Handled(f"payment {payment_id}: posted", (service.RECEIPT_EMAIL, payment_id))]
    with sessions() as session:
        assert posting.account_balance(session, account_id) == 0
