"""Refunds against the database (SQLite and PostgreSQL): never above the credit, approved
by someone else, paid to the card once (a retry does not refund twice; a refusal puts the
credit back) or by check in one check register export only."""

from __future__ import annotations

import csv
import io
from datetime import date

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from portal.adapters.database import transaction
from portal.billing_core import ledger, ledger_check, posting
from portal.billing_core.errors import FieldErrors, NotAllowed
from portal.billing_core.models import LedgerTransaction, Payment, Refund
from portal.billing_core.status import RefundStatus
from portal.services import refunds as service
from tests.bank_gateway import FakeBankGateway

from .deposit_helpers import NOW, account, office, pay

ON = date(2026, 5, 1)


def _credit(sessions: sessionmaker[Session], number: str, cents: int) -> None:
    with transaction(sessions) as session:
        pay(session, account(session, number).id, ON, cents)


def _refunds(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(Refund)) or 0)


def test_never_above_the_credit_and_approved_by_someone_else(sessions: sessionmaker[Session]) -> None:
    (number, _), staff = office(sessions)
    _credit(sessions, number, 5_000)
    with pytest.raises(FieldErrors) as caught:
        service.request(sessions, staff["csr"], number, amount="50.01", method="check", reason="overpaid", now=NOW)
    assert set(caught.value.errors) == {"amount"}
    for bad in ("12.345", "0", "-1", "abc"):
        with pytest.raises(FieldErrors):
            service.request(sessions, staff["csr"], number, amount=bad, method="check", reason="x", now=NOW)
    first = service.request(sessions, staff["csr"], number, amount="30", method="check", reason="overpaid", now=NOW)
    # The first request already asks 30.00 of the 50.00: at most 20.00 more.
    with pytest.raises(FieldErrors):
        service.request(sessions, staff["csr"], number, amount="20.01", method="check", reason="again", now=NOW)
    with sessions() as session:
        assert _refunds(session) == 1
    sup_request = service.request(
        sessions, staff["supervisor"], number, amount="20", method="check", reason="rest", now=NOW
    )
    with pytest.raises(NotAllowed):
        service.approve(sessions, staff["supervisor"], sup_request, ON, NOW)  # asked by the same person
    with pytest.raises(NotAllowed):
        service.approve(sessions, staff["specialist"], first, ON, NOW)  # role may not approve
    with pytest.raises(FieldErrors):
        service.reject(sessions, staff["admin"], sup_request, "", NOW)
    service.reject(sessions, staff["admin"], sup_request, "customer keeps the credit", NOW)
    service.approve(sessions, staff["supervisor"], first, ON, NOW)
    with pytest.raises(FieldErrors):
        service.approve(sessions, staff["supervisor"], first, ON, NOW)
    with sessions() as session:
        acct = account(session, number)
        assert posting.account_balance(session, acct.id) == -2_000
        refund = session.get(Refund, first)
        assert refund is not None and refund.status == RefundStatus.APPROVED
        assert refund.decided_by_id == staff["supervisor"].id
        assert ledger_check.run(session) == []


def test_approval_checks_the_credit_again(sessions: sessionmaker[Session]) -> None:
    (number, _), staff = office(sessions)
    _credit(sessions, number, 5_000)
    refund_id = service.request(sessions, staff["csr"], number, amount="50", method="check", reason="x", now=NOW)
    with transaction(sessions) as session:
        acct = account(session, number)
        posting.post(session, ledger.bill_transaction(acct.id, ON, ON, {"water": 1_000}), acct.id)
    with pytest.raises(FieldErrors):
        service.approve(sessions, staff["supervisor"], refund_id, ON, NOW)
    with sessions() as session:
        assert session.scalar(select(func.count()).where(LedgerTransaction.kind == "refund")) == 0


def test_check_register_exports_each_refund_once(sessions: sessionmaker[Session]) -> None:
    (number, other), staff = office(sessions)
    _credit(sessions, number, 4_250)
    refund_id = service.request(
        sessions, staff["csr"], number, amount="42.50", method="check", reason="closed", now=NOW
    )
    service.approve(sessions, staff["supervisor"], refund_id, ON, NOW)
    with pytest.raises(NotAllowed):
        service.export_checks(sessions, staff["cashier"], ON, NOW)
    text, ids = service.export_checks(sessions, staff["specialist"], ON, NOW)
    assert ids == [refund_id]
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows == [
        {
            "refund": str(refund_id),
            "payee": "Customer 1",
            "mailing_address": "101 Oak St, Chino, CA 91710",
            "amount": "42.50",
            "account": number,
            "reason": "closed",
        }
    ]
    again, ids_again = service.export_checks(sessions, staff["specialist"], ON, NOW)
    assert ids_again == [] and len(list(csv.DictReader(io.StringIO(again)))) == 0
    with sessions() as session:
        refund = session.get(Refund, refund_id)
        assert refund is not None and refund.status == RefundStatus.PAID and refund.exported_at is not None
        cash = session.scalar(
            select(func.sum(LedgerTransaction.id)).where(LedgerTransaction.id == refund.paid_transaction_id)
        )
        assert cash is not None
        assert posting.account_balance(session, account(session, number).id) == 0
        assert ledger_check.run(session) == []


def _card_payment(sessions: sessionmaker[Session], gateway: FakeBankGateway, number: str, cents: int) -> None:
    gateway.methods["pm_test"] = "000123456789"
    intent = gateway.charge(
        amount_cents=cents,
        customer="cus",
        payment_method="pm_test",
        kind="us_bank_account",
        idempotency_key="k1",
        metadata={},
    )
    with transaction(sessions) as session:
        acct = account(session, number)
        txn = ledger.payment_transaction(acct.id, ON, cents, "online", posting.open_by_service(session, acct.id))
        row = posting.post(session, txn, acct.id)
        session.add(
            Payment(
                account_id=acct.id,
                amount_cents=cents,
                channel="online",
                method="card",
                received_on=ON,
                status="posted",
                processor_id=intent.id,
                ledger_transaction_id=row.id,
            )
        )


def test_card_refund_through_the_gateway_once(sessions: sessionmaker[Session]) -> None:
    (number, _), staff = office(sessions)
    gateway = FakeBankGateway()
    _card_payment(sessions, gateway, number, 3_000)
    refund_id = service.request(sessions, staff["csr"], number, amount="30", method="card", reason="overpaid", now=NOW)
    service.approve(sessions, staff["supervisor"], refund_id, ON, NOW)
    assert service.pay_card(sessions, gateway, staff["supervisor"], refund_id, ON, NOW).ok
    with pytest.raises(FieldErrors):
        service.pay_card(sessions, gateway, staff["supervisor"], refund_id, ON, NOW)
    assert [c for c in gateway.calls if c[0] == "refund"] == [("refund", f"refund-{refund_id}")]
    with sessions() as session:
        refund = session.get(Refund, refund_id)
        assert refund is not None and refund.status == RefundStatus.PAID and refund.processor_refund_id
        assert posting.account_balance(session, account(session, number).id) == 0
        assert ledger_check.run(session) == []


def test_a_refused_card_refund_puts_the_credit_back(sessions: sessionmaker[Session]) -> None:
    (number, _), staff = office(sessions)
    gateway = FakeBankGateway()
    _card_payment(sessions, gateway, number, 3_000)
    refund_id = service.request(sessions, staff["csr"], number, amount="30", method="card", reason="overpaid", now=NOW)
    service.approve(sessions, staff["supervisor"], refund_id, ON, NOW)
    gateway.refuse_refunds = "The charge was already refunded."
    paid = service.pay_card(sessions, gateway, staff["supervisor"], refund_id, ON, NOW)
    assert not paid.ok and paid.message == "The charge was already refunded."
    with sessions() as session:
        refund = session.get(Refund, refund_id)
        assert refund is not None and refund.status == RefundStatus.FAILED
        assert refund.failure_message == "The charge was already refunded."
        assert posting.account_balance(session, account(session, number).id) == -3_000
        assert ledger_check.run(session) == []


def test_card_method_needs_a_card_payment(sessions: sessionmaker[Session]) -> None:
    (number, _), staff = office(sessions)
    _credit(sessions, number, 3_000)
    with pytest.raises(FieldErrors) as caught:
        service.request(sessions, staff["csr"], number, amount="30", method="card", reason="x", now=NOW)
    assert set(caught.value.errors) == {"method"}


def test_command_line_request_approve_export(
    sessions: sessionmaker[Session],
    engine,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path,
    capsys,  # type: ignore[no-untyped-def]
) -> None:
    from portal.cli import main

    monkeypatch.setenv("DATABASE_URL", engine.url.render_as_string(hide_password=False))
    (number, _), _staff = office(sessions)
    _credit(sessions, number, 2_500)
    args = ["refunds", "request", "--account", number, "--amount", "25.00", "--method", "check"]
    assert main([*args, "--as", "csr@example.org"]) == 0
    with sessions() as session:
        refund_id = session.scalar(select(Refund.id))
    assert main(["refunds", "approve", str(refund_id), "--as", "csr@example.org"]) == 2  # not an approver
    assert main(["refunds", "approve", str(refund_id), "--as", "supervisor@example.org"]) == 0
    out = tmp_path / "register.csv"
    assert main(["refunds", "export-checks", str(out), "--as", "specialist@example.org"]) == 0
    assert "1 check refunds" in capsys.readouterr().out
    assert f",25.00,{number}," in out.read_text()
    assert main(["refunds", "export-checks", str(out), "--as", "specialist@example.org"]) == 0
    assert out.read_text().count("\n") == 1
    assert main(["deposits", "bill", "--account", number, "--reason", "other", "--as", "csr@example.org"]) == 2
    assert (
        main(["deposits", "bill", "--account", number, "--reason", "other", "--note", "x", "--as", "csr@example.org"])
        == 0
    )
    assert main(["deposits", "run", "--on", "2026-06-01"]) == 0
    assert main(["ledger", "check"]) == 0


@pytest.fixture(scope="module")
def stripe_server():  # type: ignore[no-untyped-def]
    from tests.localstripe import localstripe

    with localstripe() as server:
        yield server


def test_card_refund_against_localstripe(sessions: sessionmaker[Session], stripe_server) -> None:  # type: ignore[no-untyped-def]
    import httpx

    from portal.adapters.gateway import StripeGateway
    from tests.localstripe import PUBLISHABLE_KEY, SECRET_KEY, WEBHOOK_SECRET

    gateway = StripeGateway(SECRET_KEY, PUBLISHABLE_KEY, WEBHOOK_SECRET, api_base=stripe_server.url)
    (number, _), staff = office(sessions)
    customer = gateway.ensure_customer(
        email="c1@example.net", name="Customer 1", account_number=number, idempotency_key="c1"
    )
    setup = gateway.create_setup(customer=customer, kind="card", idempotency_key="s1", metadata={})
    stripe_server.confirm_card_setup(setup.id, setup.client_secret or "", "4242424242424242")
    method = gateway.retrieve_setup(setup.id).payment_method
    assert method
    intent = gateway.charge(
        amount_cents=4_000, customer=customer, payment_method=method, kind="card", idempotency_key="p1", metadata={}
    )
    assert intent.status == "succeeded"
    with transaction(sessions) as session:
        acct = account(session, number)
        txn = ledger.payment_transaction(acct.id, ON, 4_000, "online", posting.open_by_service(session, acct.id))
        row = posting.post(session, txn, acct.id)
        session.add(
            Payment(
                account_id=acct.id,
                amount_cents=4_000,
                channel="online",
                method="card",
                received_on=ON,
                status="posted",
                processor_id=intent.id,
                ledger_transaction_id=row.id,
            )
        )
    refund_id = service.request(
        sessions, staff["csr"], number, amount="15.00", method="card", reason="overpaid", now=NOW
    )
    service.approve(sessions, staff["supervisor"], refund_id, ON, NOW)
    paid = service.pay_card(sessions, gateway, staff["supervisor"], refund_id, ON, NOW)
    assert paid.ok, paid.message
    with sessions() as session:
        refund = session.get(Refund, refund_id)
        assert refund is not None and refund.status == RefundStatus.PAID
        processor_refund = refund.processor_refund_id
        assert posting.account_balance(session, account(session, number).id) == -2_500
        assert ledger_check.run(session) == []
    found = httpx.get(f"{stripe_server.url}/v1/refunds/{processor_refund}", auth=(SECRET_KEY, "")).json()
    assert found["amount"] == 1_500 and found["payment_intent"] == intent.id
    # Paying again is refused before the gateway is asked, so the card is refunded once.
    # (localstripe ignores idempotency keys; Stripe itself answers a repeated key with the
    # first refund, which covers a retry after a crash between the refund and the commit.)
    with pytest.raises(FieldErrors):
        service.pay_card(sessions, gateway, staff["supervisor"], refund_id, ON, NOW)
    listed = httpx.get(f"{stripe_server.url}/v1/refunds", params={"limit": 100}, auth=(SECRET_KEY, "")).json()
    assert [r["id"] for r in listed["data"] if r.get("payment_intent") == intent.id] == [processor_refund]
