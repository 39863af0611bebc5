"""Paying online against localstripe (cards) and Stripe's documented bank-account behaviour
(the fake bank gateway): pending until the signed webhook, idempotent, never wrong."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from portal.app import create_app
from portal.billing_core import accounts as accounts_core
from portal.billing_core import posting
from portal.billing_core.models import Account, LedgerTransaction, Payment, ProcessorEvent
from portal.demo import build_demo
from portal.gateway import BANK, FakeBankGateway
from tests.db.test_demo import TODAY
from tests.localstripe import PUBLISHABLE_KEY, SECRET_KEY, WEBHOOK_SECRET, LocalStripe, localstripe, signed

from .conftest import CLOCK, SETTINGS, csrf_from, linked_numbers, mail_to, sign_in


@pytest.fixture(scope="module")
def stripe_server() -> Iterator[LocalStripe]:
    with localstripe() as server:
        yield server


@pytest.fixture
def district(engine: Engine) -> Engine:
    """A small district of its own: these tests move money."""
    build_demo(engine, accounts=6, seed=5, progress=False, today=TODAY)
    return engine


def _client(district: Engine, smtp, **settings) -> TestClient:  # type: ignore[no-untyped-def]
    config = dataclasses.replace(SETTINGS, smtp_host="127.0.0.1", smtp_port=smtp[0], **settings)
    gateway = settings.pop("gateway", None) if "gateway" in settings else None
    return TestClient(create_app(config, engine=district, clock=CLOCK, gateway=gateway), base_url="https://testserver")


@pytest.fixture
def client(district: Engine, smtp, stripe_server: LocalStripe) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    config = dataclasses.replace(
        SETTINGS,
        smtp_host="127.0.0.1",
        smtp_port=smtp[0],
        stripe_secret_key=SECRET_KEY,
        stripe_publishable_key=PUBLISHABLE_KEY,
        stripe_webhook_secret=WEBHOOK_SECRET,
        stripe_api_base=stripe_server.url,
        stripe_js_url=stripe_server.js_url,
    )
    with TestClient(create_app(config, engine=district, clock=CLOCK), base_url="https://testserver") as c:
        yield c


def balance(engine: Engine, number: str) -> int:
    with Session(engine) as s:
        return posting.account_balance(s, s.scalar(select(Account.id).where(Account.number == number)))


def start_payment(client: TestClient, number: str, **fields: str):  # type: ignore[no-untyped-def]
    page = client.get(f"/my/accounts/{number}/pay")
    assert page.status_code == 200
    data = {
        "csrf_token": csrf_from(page.text),
        "attempt": page.context["form"].get("attempt"),
        "choice": "balance",
        "method": "card",
        **fields,
    }
    return page, client.post(f"/my/accounts/{number}/pay", data=data, follow_redirects=False)


def charge(client: TestClient, path: str):  # type: ignore[no-untyped-def]
    page = client.get(path)
    return page, client.post(path, headers={"X-CSRF-Token": csrf_from(page.text), "Accept": "application/json"})


def deliver(client: TestClient, server: LocalStripe, kind: str, intent_id: str) -> str:
    """Deliver localstripe's own event for the intent, signed as Stripe signs webhooks."""
    for _ in range(50):
        events = [e for e in server.events(kind) if e["data"]["object"]["id"] == intent_id]
        if events:
            break
        time.sleep(0.05)
    (event,) = events
    payload, signature = signed(event, int(time.time()))
    response = client.post("/webhooks/stripe", content=payload, headers={"Stripe-Signature": signature})
    assert response.status_code == 200
    return response.text


def test_a_card_payment_is_pending_until_the_webhook_then_posted_once(
    client: TestClient, district: Engine, stripe_server: LocalStripe, inbox: list
) -> None:
    sign_in(client, "pastdue@demo.example")
    (number,) = linked_numbers(district, "pastdue@demo.example")
    owed = balance(district, number)
    assert owed > 0
    _page, response = start_payment(client, number)
    assert response.status_code == 303
    method_path = response.headers["location"]
    page = client.get(method_path)
    assert page.status_code == 200 and page.context["setup_secret"].startswith("seti_")
    assert stripe_server.js_url in page.text and 'id="card-element"' in page.text
    setup_id = page.context["setup_secret"].split("_secret_")[0]
    assert stripe_server.confirm_card_setup(setup_id, page.context["setup_secret"], "4242424242424242")["status"] == (
        "succeeded"
    )
    _page, answer = charge(client, method_path)
    assert answer.status_code == 200, answer.text
    receipt_path = answer.json()["next"]
    # Sent twice (a double click, a retry): one payment, one charge.
    _page, again = charge(client, method_path)
    assert again.json()["next"] == receipt_path
    with Session(district) as s:
        (payment,) = s.scalars(select(Payment).where(Payment.processor_id.is_not(None)))
        assert payment.status == "pending" and payment.amount_cents == owed
        assert payment.method_label == "Visa •••• 4242"
        intent_id = payment.processor_id
    receipt = client.get(receipt_path)
    assert "Pending." in receipt.text and 'hx-trigger="every 3s"' in receipt.text
    assert balance(district, number) == owed  # not in the ledger until Stripe confirms

    assert deliver(client, stripe_server, "payment_intent.succeeded", intent_id) == f"payment {payment.id}: posted"
    assert balance(district, number) == 0
    assert "Paid." in client.get(receipt_path).text
    # The same event again, and a late "processing": nothing changes.
    assert deliver(client, stripe_server, "payment_intent.succeeded", intent_id) == "already handled"
    with Session(district) as s:
        assert (
            s.scalar(
                select(func.count(LedgerTransaction.id)).where(
                    LedgerTransaction.kind == "payment", LedgerTransaction.memo.contains(intent_id)
                )
            )
            == 1
        )
    (receipt_mail,) = mail_to(inbox, "pastdue@demo.example")[-1:]
    assert "Payment received" in receipt_mail["Subject"]


def test_a_forged_webhook_is_refused(client: TestClient, district: Engine) -> None:
    response = client.post(
        "/webhooks/stripe",
        content=b'{"id": "evt_1", "type": "payment_intent.succeeded"}',
        headers={"Stripe-Signature": "t=1,v1=forged"},
    )
    assert response.status_code == 400
    with Session(district) as s:
        assert s.scalar(select(func.count(ProcessorEvent.id))) == 0


def test_a_declined_card_fails_and_changes_nothing(
    client: TestClient, district: Engine, stripe_server: LocalStripe
) -> None:
    sign_in(client, "pastdue@demo.example")
    (number,) = linked_numbers(district, "pastdue@demo.example")
    owed = balance(district, number)
    _page, response = start_payment(client, number)
    page = client.get(response.headers["location"])
    setup_id = page.context["setup_secret"].split("_secret_")[0]
    stripe_server.confirm_card_setup(setup_id, page.context["setup_secret"], "4000000000000341")
    _page, answer = charge(client, response.headers["location"])
    # The decline is told on the payment page, where the resident can try another card.
    assert answer.status_code == 400 and "declined" in answer.json()["error"]
    assert balance(district, number) == owed
    with Session(district) as s:
        assert (
            s.scalar(
                select(func.count(Payment.id)).where(Payment.status == "posted", Payment.processor_id.is_not(None))
            )
            == 0
        )


def test_amounts_are_checked_next_to_the_field(client: TestClient, district: Engine) -> None:
    sign_in(client, "pastdue@demo.example")
    (number,) = linked_numbers(district, "pastdue@demo.example")
    owed = balance(district, number)
    for other, message in [("abc", "Enter the amount"), ("0.10", "smallest"), (f"{owed / 100 + 1:.2f}", "at most")]:
        _page, response = start_payment(client, number, choice="other", other_amount=other)
        assert response.status_code == 400
        assert message in response.context["form"].errors["other_amount"]
    with Session(district) as s:
        assert s.scalar(select(func.count(Payment.id)).where(Payment.processor_id.is_not(None))) == 0


def test_nobody_pays_or_sees_a_payment_on_someone_elses_account(client: TestClient, district: Engine) -> None:
    sign_in(client, "resident@demo.example")
    mine = set(linked_numbers(district, "resident@demo.example"))
    with Session(district) as s:
        other = next(n for n in s.scalars(select(Account.number)) if n not in mine)
    assert client.get(f"/my/accounts/{other}/pay").status_code == 404
    token = csrf_from(client.get("/my").text)
    assert (
        client.post(
            f"/my/accounts/{other}/pay",
            data={"csrf_token": token, "choice": "balance", "method": "card", "attempt": "x" * 20},
        ).status_code
        == 404
    )
    assert client.get(f"/my/accounts/{other}/payments/1").status_code == 404


# --- Bank accounts: Stripe's documented states, through the same interface ---------------


@pytest.fixture
def bank(district: Engine, smtp) -> Iterator[tuple[TestClient, FakeBankGateway]]:  # type: ignore[no-untyped-def]
    fake = FakeBankGateway()
    config = dataclasses.replace(SETTINGS, smtp_host="127.0.0.1", smtp_port=smtp[0], stripe_secret_key="sk_fake")
    with TestClient(create_app(config, engine=district, clock=CLOCK, gateway=fake), base_url="https://testserver") as c:
        yield c, fake


def pay_by_bank(client: TestClient, fake: FakeBankGateway, district: Engine, account_number: str) -> tuple[str, str]:
    sign_in(client, "pastdue@demo.example")
    (number,) = linked_numbers(district, "pastdue@demo.example")
    _page, response = start_payment(client, number, method=BANK)
    page = client.get(response.headers["location"])
    fake.attach_bank_account(page.context["setup_secret"].split("_secret_")[0], account_number)
    _page, answer = charge(client, response.headers["location"])
    return number, answer.json()["next"]


def send(client: TestClient, fake: FakeBankGateway, event: dict) -> str:
    payload, signature = fake.signed(event, int(time.time()))
    return client.post("/webhooks/stripe", content=payload, headers={"Stripe-Signature": signature}).text


def test_a_bank_debit_is_processing_for_days_then_succeeds(bank, district: Engine) -> None:  # type: ignore[no-untyped-def]
    client, fake = bank
    number, receipt = pay_by_bank(client, fake, district, "000123456789")
    owed = balance(district, number)
    (processing,) = fake.events
    # The charge already said "processing"; the event agrees and changes nothing.
    assert send(client, fake, processing).endswith("no change")
    assert send(client, fake, processing) == "already handled"
    assert "Your bank is sending the payment" in client.get(receipt).text
    assert balance(district, number) == owed
    (intent_id,) = fake.payments
    fake.settle(intent_id)
    succeeded = fake.events[-1]
    assert send(client, fake, succeeded).endswith("posted")
    # Out of order: the old "processing" event arrives after the success. Nothing changes.
    processing_again = dict(processing, id="evt_late")
    assert send(client, fake, processing_again).endswith("no change")
    assert balance(district, number) == 0
    # Returned weeks later as unauthorised (a dispute): reversed, owed again, once.
    fake.dispute(intent_id, "R10")
    dispute = fake.events[-1]
    assert send(client, fake, dispute).endswith("returned")
    assert send(client, fake, dict(dispute, id="evt_again")).endswith("no change")
    assert balance(district, number) == owed
    assert "returned this payment" in client.get(receipt).text


def test_a_bank_debit_that_fails_never_reaches_the_ledger(bank, district: Engine) -> None:  # type: ignore[no-untyped-def]
    client, fake = bank
    number, receipt = pay_by_bank(client, fake, district, "000111111113")
    owed = balance(district, number)
    (intent_id,) = fake.payments
    fake.settle(intent_id)
    assert send(client, fake, fake.events[-1]).endswith("failed")
    assert balance(district, number) == owed
    assert "did not go through" in client.get(receipt).text
    with Session(district) as s:
        summary = accounts_core.summarise(s, s.scalar(select(Account).where(Account.number == number)), TODAY)
        assert summary.balance_cents == owed
