"""Paying online against localstripe (cards) and Stripe's documented bank-account behaviour
(the fake bank gateway): pending until the signed webhook, idempotent, never wrong."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from portal.adapters.gateway import BANK
from portal.app import create_app
from portal.billing_core import accounts as accounts_core
from portal.billing_core import payments as payments_core
from portal.billing_core import posting
from portal.billing_core.models import Account, AuditEvent, LedgerTransaction, Payment, ProcessorEvent
from portal.billing_core.money_policy import DEFAULT as MONEY_POLICY
from portal.demo import build_demo
from tests.bank_gateway import FakeBankGateway
from tests.db.test_demo import TODAY
from tests.localstripe import PUBLISHABLE_KEY, SECRET_KEY, WEBHOOK_SECRET, LocalStripe, localstripe, signed

from .conftest import CLOCK, SETTINGS, body_of, csrf_from, linked_numbers, mail_to, sign_in

RETURN_FEE = MONEY_POLICY.returned_payment_fee_cents


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
    assert balance(district, number) == owed + RETURN_FEE  # and the returned-payment fee (returns.py)
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


# --- No overpayment: the amount is checked again when the charge is made ----------------


def intents_at(server: LocalStripe) -> list[dict]:
    response = httpx.get(f"{server.url}/v1/payment_intents", params={"limit": 100}, auth=(SECRET_KEY, ""))
    return response.json()["data"]


def test_two_forms_for_the_whole_balance_charge_once(
    client: TestClient, district: Engine, stripe_server: LocalStripe
) -> None:
    sign_in(client, "pastdue@demo.example")
    (number,) = linked_numbers(district, "pastdue@demo.example")
    owed = balance(district, number)
    # Two tabs: both forms show the whole balance before either is charged.
    paths = []
    for _ in range(2):
        _page, response = start_payment(client, number)
        assert response.status_code == 303
        paths.append(response.headers["location"])
    for path in paths:
        secret = client.get(path).context["setup_secret"]
        assert stripe_server.confirm_card_setup(secret.split("_secret_")[0], secret, "4242424242424242")["status"] == (
            "succeeded"
        )
    intents_before = len(intents_at(stripe_server))
    _page, first = charge(client, paths[0])
    assert first.status_code == 200, first.text
    _page, second = charge(client, paths[1])
    assert second.status_code == 400
    assert "already on its way" in second.json()["error"] and "Nothing was charged" in second.json()["error"]
    assert len(intents_at(stripe_server)) == intents_before + 1  # the second was never sent to Stripe
    with Session(district) as s:
        (payment,) = s.scalars(select(Payment).where(Payment.idempotency_key.like("pay-%")))
        assert payment.amount_cents == owed and payment.status == "pending"
    # In Spanish, the same refusal in Spanish.
    page = client.get(f"/my/accounts/{number}")
    client.post("/language", data={"csrf_token": csrf_from(page.text), "lang": "es", "next": "/my"})
    _page, again = charge(client, paths[1])
    assert again.status_code == 400 and "No se cobró nada" in again.json()["error"]
    # Without JavaScript the refusal goes back to the form, next to the amount.
    page = client.get(paths[1])
    plain = client.post(paths[1], data={"csrf_token": csrf_from(page.text)}, follow_redirects=False)
    assert plain.status_code == 303 and plain.headers["location"] == f"/my/accounts/{number}/pay"
    assert "No se cobró nada" in client.get(plain.headers["location"]).text
    assert len(intents_at(stripe_server)) == intents_before + 1


class SlowBank(FakeBankGateway):
    """A bank gateway whose charge takes a while, the time a real processor takes; says
    when a charge has started so a test can start a second one meanwhile."""

    def __init__(self) -> None:
        super().__init__()
        self.charging = threading.Event()

    def charge(self, **kwargs):  # type: ignore[no-untyped-def, override]
        self.charging.set()
        time.sleep(0.6)
        return super().charge(**kwargs)


@pytest.fixture
def slow_bank(district: Engine, smtp) -> Iterator[tuple[TestClient, SlowBank]]:  # type: ignore[no-untyped-def]
    fake = SlowBank()
    config = dataclasses.replace(SETTINGS, smtp_host="127.0.0.1", smtp_port=smtp[0], stripe_secret_key="sk_fake")
    with TestClient(create_app(config, engine=district, clock=CLOCK, gateway=fake), base_url="https://testserver") as c:
        yield c, fake


def started_bank_payment(client: TestClient, fake: FakeBankGateway, number: str) -> tuple[str, str]:
    """A payment form for the whole balance, its bank account saved: (path, CSRF token)."""
    _page, response = start_payment(client, number, method=BANK)
    assert response.status_code == 303
    path = response.headers["location"]
    page = client.get(path)
    fake.attach_bank_account(page.context["setup_secret"].split("_secret_")[0], "000123456789")
    return path, csrf_from(page.text)


def test_two_charges_at_the_same_moment_charge_once(slow_bank, district: Engine) -> None:  # type: ignore[no-untyped-def]
    client, fake = slow_bank
    sign_in(client, "pastdue@demo.example")
    (number,) = linked_numbers(district, "pastdue@demo.example")
    owed = balance(district, number)
    forms = [started_bank_payment(client, fake, number) for _ in range(2)]
    answers: dict[int, object] = {}

    def pay(i: int) -> None:
        path, token = forms[i]
        answers[i] = client.post(path, headers={"X-CSRF-Token": token, "Accept": "application/json"})

    first = threading.Thread(target=pay, args=(0,))
    first.start()
    assert fake.charging.wait(10)  # the first is at the processor, its payment not yet committed
    second = threading.Thread(target=pay, args=(1,))
    second.start()
    first.join(30)
    second.join(30)
    assert sorted(a.status_code for a in answers.values()) == [200, 400]  # type: ignore[attr-defined]
    assert "already on its way" in answers[1].json()["error"]  # type: ignore[attr-defined]
    assert len(fake.payments) == 1
    with Session(district) as s:
        (payment,) = s.scalars(select(Payment).where(Payment.idempotency_key.like("pay-%")))
        assert payment.amount_cents == owed
    assert balance(district, number) == owed


def post_counter_payment(engine: Engine, number: str, cents: int) -> None:
    """The customer also paid at the counter, while the online payment was on its way."""
    from portal.billing_core import ledger

    with Session(engine) as s, s.begin():
        account_id = s.scalar(select(Account.id).where(Account.number == number))
        txn = ledger.payment_transaction(
            account_id, TODAY, cents, "counter", posting.open_by_service(s, account_id), memo="Counter payment"
        )
        row = posting.post(s, txn, account_id)
        s.add(
            Payment(
                account_id=account_id,
                amount_cents=cents,
                channel="counter",
                method="cash",
                received_on=TODAY,
                status="posted",
                ledger_transaction_id=row.id,
            )
        )


def test_a_webhook_that_overpays_posts_as_credit_flagged_for_refund(bank, district: Engine, inbox: list) -> None:  # type: ignore[no-untyped-def]
    client, fake = bank
    number, receipt = pay_by_bank(client, fake, district, "000123456789")
    owed = balance(district, number)
    post_counter_payment(district, number, owed)
    (intent_id,) = fake.payments
    fake.settle(intent_id)
    # The money is real: it posts, and what was beyond the balance is a credit to review.
    assert send(client, fake, fake.events[-1]).endswith("posted, overpaid")
    assert balance(district, number) == -owed
    with Session(district) as s:
        payment = s.scalar(select(Payment).where(Payment.processor_id == intent_id))
        assert payment.status == "posted" and payment.overpaid_cents == owed
    page = client.get(receipt)
    assert "credit on your account" in page.text
    deadline = time.monotonic() + 5
    while not [m for m in mail_to(inbox, "pastdue@demo.example") if "credit on your account" in body_of(m)]:
        assert time.monotonic() < deadline, "no receipt saying the extra is a credit"
        time.sleep(0.05)
    # Staff see it on the account and in the list of payments to review for a refund.
    client.post("/sign-out", data={"csrf_token": csrf_from(page.text)})
    sign_in(client, "cashier@demo.example")
    staff_page = client.get(f"/staff/accounts/{number}")
    assert "To review for a refund" in staff_page.text and f"payment {payment.id}" in staff_page.text.lower()
    listing = client.get("/staff/payments/refunds")
    assert listing.status_code == 200
    assert number in listing.text and "Payments to review for refund" in listing.text
    # The cashier records what was done: a note is needed, then it leaves the list.
    review = f"/staff/payments/refunds/{payment.id}"
    token = csrf_from(listing.text)
    refused = client.post(review, data={"csrf_token": token, "note": "  "})
    assert refused.status_code == 400 and "Say what was done" in refused.text and 'aria-invalid="true"' in refused.text
    done = client.post(review, data={"csrf_token": token, "note": "Refunded to the card"}, follow_redirects=False)
    assert done.status_code == 303
    listing = client.get("/staff/payments/refunds")
    assert "No payment is waiting for a refund review" in listing.text and "Reviewed lately" in listing.text
    assert "To review for a refund" not in client.get(f"/staff/accounts/{number}").text
    again = client.post(review, data={"csrf_token": token, "note": "again"})
    assert "was already reviewed" in again.text
    with Session(district) as s:
        assert s.scalar(select(Payment.refund_reviewed_at).where(Payment.id == payment.id)) is not None
        assert s.scalar(select(func.count(AuditEvent.id)).where(AuditEvent.action == "payment.refund_reviewed")) == 1
    # Customer service sees the list but does not record refunds.
    client.post("/sign-out", data={"csrf_token": token})
    sign_in(client, "csr@demo.example")
    assert client.get("/staff/payments/refunds").status_code == 200
    token = csrf_from(client.get("/staff/payments/refunds").text)
    assert client.post(review, data={"csrf_token": token, "note": "x"}).status_code == 403
    # A customer does not see the staff list.
    client.post("/sign-out", data={"csrf_token": csrf_from(listing.text)})
    sign_in(client, "pastdue@demo.example")
    assert client.get("/staff/payments/refunds").status_code in (403, 404)


def test_an_overpayment_the_bank_takes_back_leaves_nothing_to_refund(bank, district: Engine) -> None:  # type: ignore[no-untyped-def]
    client, fake = bank
    number, _receipt = pay_by_bank(client, fake, district, "000123456789")
    owed = balance(district, number)
    post_counter_payment(district, number, owed)
    (intent_id,) = fake.payments
    fake.settle(intent_id)
    assert send(client, fake, fake.events[-1]).endswith("posted, overpaid")
    fake.dispute(intent_id, "R10")
    assert send(client, fake, fake.events[-1]).endswith("returned")
    assert balance(district, number) == RETURN_FEE  # the returned-payment fee (returns.py)
    with Session(district) as s:
        assert payments_core.to_review(s) == []


def test_a_webhook_within_the_balance_is_not_flagged(bank, district: Engine) -> None:  # type: ignore[no-untyped-def]
    client, fake = bank
    number, _receipt = pay_by_bank(client, fake, district, "000123456789")
    (intent_id,) = fake.payments
    fake.settle(intent_id)
    assert send(client, fake, fake.events[-1]).endswith("posted")
    with Session(district) as s:
        assert s.scalar(select(Payment.overpaid_cents).where(Payment.processor_id == intent_id)) is None
    assert balance(district, number) == 0


# --- The webhook takes only small, well-formed, recent events ----------------------------


def post_streamed(app, path: str, headers: dict[str, str], chunks) -> tuple[int, int, float]:  # type: ignore[no-untyped-def]
    """POST a body chunk by chunk straight to the ASGI app (the test client would join it
    in memory first). Returns the status, how many bytes the app read, and the seconds it took."""
    import anyio

    read = 0
    status = 0
    chunks = iter(chunks)

    async def receive():  # type: ignore[no-untyped-def]
        nonlocal read
        chunk = next(chunks, None)
        if chunk is None:
            return {"type": "http.request", "body": b"", "more_body": False}
        read += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message):  # type: ignore[no-untyped-def]
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "https",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("203.0.113.9", 5000),
        "server": ("testserver", 443),
    }
    started = time.monotonic()
    anyio.run(app, scope, receive, send)
    return status, read, time.monotonic() - started


def three_hundred_megabytes():  # type: ignore[no-untyped-def]
    chunk = b"x" * 65536
    for _ in range(300 * 16):
        yield chunk


def test_an_unsigned_300_mb_webhook_is_refused_quickly(bank, district: Engine) -> None:  # type: ignore[no-untyped-def]
    client, _fake = bank
    app = client.app
    # Streamed without a length: the portal stops reading a little past 1 MB.
    status, read, seconds = post_streamed(
        app, "/webhooks/stripe", {"Stripe-Signature": "t=1,v1=x"}, three_hundred_megabytes()
    )
    assert status == 413 and read <= 1024 * 1024 + 65536 and seconds < 5
    # Announced as 300 MB: refused before reading any of it.
    headers = {"Stripe-Signature": "t=1,v1=x", "Content-Length": str(300 * 1024 * 1024)}
    status, read, _seconds = post_streamed(app, "/webhooks/stripe", headers, three_hundred_megabytes())
    assert status == 413 and read == 0
    with Session(district) as s:
        assert s.scalar(select(func.count(ProcessorEvent.id))) == 0


def malformed_events(pi: str) -> list:
    """Signed events Stripe would never send, about a real payment that a well-formed
    "succeeded" event would post."""
    return [
        [],
        "just a string",
        {"type": "payment_intent.succeeded", "data": {"object": {"id": pi}}},
        {"id": "evt_1", "data": {"object": {"id": pi}}},
        {"id": 12, "type": "payment_intent.succeeded", "data": {"object": {"id": pi}}},
        {"id": "evt_1", "type": "payment_intent.succeeded"},
        {"id": "evt_1", "type": "payment_intent.succeeded", "data": []},
        {"id": "evt_1", "type": "payment_intent.succeeded", "data": {"object": pi}},
        {"id": "evt_1", "type": "payment_intent.succeeded", "data": {"object": {}}},
        {"id": "evt_1", "type": "payment_intent.succeeded", "data": {"object": {"id": [pi]}}},
        {"id": "evt_1", "type": "payment_intent.succeeded", "data": {"object": {"id": pi + "1" * 200}}},
        {"id": "evt_\u0000", "type": "payment_intent.succeeded", "data": {"object": {"id": pi}}},
        {"id": "e" * 300, "type": "payment_intent.succeeded", "data": {"object": {"id": pi}}},
        {"id": "evt_1", "type": "payment_intent.succeeded" + "x" * 100, "data": {"object": {"id": pi}}},
        {"id": "evt_1", "type": "charge.dispute.created", "data": {"object": {"id": "du_1", "payment_intent": 5}}},
        {"id": "evt_1", "type": "charge.dispute.created", "data": {"object": {"id": "du_1", "reason": {"a": 1}}}},
    ]


def test_a_signed_but_malformed_event_is_a_400_and_changes_nothing(bank, district: Engine) -> None:  # type: ignore[no-untyped-def]
    client, fake = bank
    number, _receipt = pay_by_bank(client, fake, district, "000123456789")
    owed = balance(district, number)
    (intent_id,) = fake.payments
    fake.settle(intent_id)
    for event in malformed_events(intent_id):
        payload, signature = fake.signed(event, int(time.time()))
        response = client.post("/webhooks/stripe", content=payload, headers={"Stripe-Signature": signature})
        assert response.status_code == 400, event
    with Session(district) as s:
        assert s.scalar(select(func.count(ProcessorEvent.id))) == 0
    assert balance(district, number) == owed
    # The well-formed event about the same payment is taken.
    assert send(client, fake, fake.events[-1]).endswith("posted")


def test_signed_bodies_that_are_not_json_are_a_400(bank, district: Engine) -> None:  # type: ignore[no-untyped-def]
    client, fake = bank
    for body in (
        b"\xff\xfe not utf-8",
        b"{not json",
        b"1e999999",
        b'{"id": "evt_1", "type": "charge.refunded", "data": {"object": {"id": "ch_1"}}, "id": "evt_2"}',
        b"[" * 200000 + b"]" * 200000,
        b'{"id": NaN}',
    ):
        timestamp = int(time.time())
        digest = hmac.new(fake.webhook_secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
        response = client.post(
            "/webhooks/stripe", content=body, headers={"Stripe-Signature": f"t={timestamp},v1={digest}"}
        )
        assert response.status_code == 400, body[:60]
    with Session(district) as s:
        assert s.scalar(select(func.count(ProcessorEvent.id))) == 0


def test_a_signed_event_from_the_future_is_refused(bank, district: Engine) -> None:  # type: ignore[no-untyped-def]
    client, fake = bank
    number, _receipt = pay_by_bank(client, fake, district, "000123456789")
    (intent_id,) = fake.payments
    fake.settle(intent_id)
    succeeded = fake.events[-1]
    for skew in (301 + 60, 3600, 10**7):
        payload, signature = fake.signed(succeeded, int(time.time()) + skew)
        response = client.post("/webhooks/stripe", content=payload, headers={"Stripe-Signature": signature})
        assert response.status_code == 400, skew
    payload, signature = fake.signed(succeeded, int(time.time()) - 400)  # and from too long ago
    assert client.post("/webhooks/stripe", content=payload, headers={"Stripe-Signature": signature}).status_code == 400
    with Session(district) as s:
        assert s.scalar(select(func.count(ProcessorEvent.id))) == 0
    # Within Stripe's tolerance (a clock a little ahead) it is taken.
    assert send_at(client, fake, succeeded, int(time.time()) + 60).endswith("posted")
    assert balance(district, number) == 0


def send_at(client: TestClient, fake: FakeBankGateway, event: dict, timestamp: int) -> str:
    payload, signature = fake.signed(event, timestamp)
    response = client.post("/webhooks/stripe", content=payload, headers={"Stripe-Signature": signature})
    assert response.status_code == 200, response.text
    return response.text


def test_the_real_gateway_refuses_events_from_the_future() -> None:
    from portal.adapters.gateway import BadEvent, BadSignature, StripeGateway

    gateway = StripeGateway(SECRET_KEY, PUBLISHABLE_KEY, WEBHOOK_SECRET)
    event = {"id": "evt_1", "type": "payment_intent.succeeded", "data": {"object": {"id": "pi_1"}}}
    payload, signature = signed(event, int(time.time()) + 3600)
    with pytest.raises(BadSignature):
        gateway.parse_event(payload, signature)
    payload, signature = signed(event, int(time.time()))
    assert gateway.parse_event(payload, signature).object_id == "pi_1"
    payload, signature = signed(
        {"id": "evt_1", "type": "payment_intent.succeeded", "data": {"object": {"id": 5}}}, int(time.time())
    )
    with pytest.raises(BadEvent):
        gateway.parse_event(payload, signature)
