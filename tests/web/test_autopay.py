"""Autopay: enroll with the authorization recorded, the draft on the due date as a job,
posted only by the webhook, once; failures leave the bill open and tell the customer."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session, sessionmaker
from starlette.testclient import TestClient

from portal import jobs
from portal.adapters.gateway import BANK, StripeGateway
from portal.app import create_app
from portal.billing_core import autopay
from portal.billing_core.models import (
    Account,
    AuditEvent,
    AutopayEnrollment,
    Bill,
    BillDelivery,
    BillRun,
    Payment,
    PrintFile,
)
from portal.demo import build_demo
from tests.bank_gateway import FakeBankGateway
from tests.db.test_demo import TODAY
from tests.localstripe import PUBLISHABLE_KEY, SECRET_KEY, WEBHOOK_SECRET, LocalStripe, localstripe

from .conftest import CLOCK, SETTINGS, body_of, csrf_from, linked_numbers, mail_to, sign_in
from .test_payments import balance, deliver, send

EMAIL = "pastdue@demo.example"


@pytest.fixture(scope="module")
def stripe_server() -> Iterator[LocalStripe]:
    with localstripe() as server:
        yield server


@pytest.fixture
def district(engine: Engine) -> Engine:
    build_demo(engine, accounts=6, seed=5, progress=False, today=TODAY)
    return engine


def _settings(smtp, stripe_server: LocalStripe | None = None):  # type: ignore[no-untyped-def]
    extra = {}
    if stripe_server is not None:
        extra = dict(
            stripe_secret_key=SECRET_KEY,
            stripe_publishable_key=PUBLISHABLE_KEY,
            stripe_webhook_secret=WEBHOOK_SECRET,
            stripe_api_base=stripe_server.url,
            stripe_js_url=stripe_server.js_url,
        )
    return dataclasses.replace(SETTINGS, smtp_host="127.0.0.1", smtp_port=smtp[0], **extra)


@pytest.fixture
def client(district: Engine, smtp, stripe_server: LocalStripe) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    with TestClient(
        create_app(_settings(smtp, stripe_server), engine=district, clock=CLOCK), base_url="https://testserver"
    ) as c:
        yield c


def start_enrollment(client: TestClient, number: str, **fields: str):  # type: ignore[no-untyped-def]
    page = client.get(f"/my/accounts/{number}/autopay")
    assert page.status_code == 200
    data = {
        "csrf_token": csrf_from(page.text),
        "attempt": page.context["form"].get("attempt"),
        "method": "card",
        "agree": "yes",
        **fields,
    }
    return page, client.post(f"/my/accounts/{number}/autopay", data=data, follow_redirects=False)


def enroll_card(client: TestClient, server: LocalStripe, number: str, card: str) -> None:
    _page, response = start_enrollment(client, number)
    assert response.status_code == 303, response.text
    path = response.headers["location"]
    page = client.get(path)
    assert page.status_code == 200 and server.js_url in page.text
    secret = page.context["setup_secret"]
    assert server.confirm_card_setup(secret.split("_secret_")[0], secret, card)["status"] == "succeeded"
    answer = client.post(path, headers={"X-CSRF-Token": csrf_from(page.text), "Accept": "application/json"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["next"] == f"/my/accounts/{number}/autopay"


def enrolled_months_ago(engine: Engine, number: str) -> Bill:
    """As if the customer had enrolled before the latest bill went out: that bill said
    autopay would take it, so it is the one drafted."""
    with Session(engine) as s, s.begin():
        account_id = s.scalar(select(Account.id).where(Account.number == number))
        s.execute(
            update(AutopayEnrollment)
            .where(AutopayEnrollment.account_id == account_id)
            .values(authorized_at=datetime(2026, 1, 1, tzinfo=UTC))
        )
        bill = autopay.latest_bill(s, account_id)
        s.expunge(bill)
        return bill


def run_drafts(engine: Engine, smtp, gateway, as_of: date) -> int:  # type: ignore[no-untyped-def]
    return jobs.dispatch_autopay(
        _settings(smtp), as_of, gateway, sessions=sessionmaker(engine, expire_on_commit=False), in_process=True
    )


def notices(inbox: list) -> list:
    return [m for m in mail_to(inbox, EMAIL) if m["Subject"] == "Autopay could not pay your bill"]


def stripe_gateway(server: LocalStripe) -> StripeGateway:
    return StripeGateway(SECRET_KEY, PUBLISHABLE_KEY, WEBHOOK_SECRET, server.url)


def test_enrolling_records_the_authorization_and_emails_a_copy(
    client: TestClient, district: Engine, stripe_server: LocalStripe, inbox: list
) -> None:
    sign_in(client, EMAIL)
    (number,) = linked_numbers(district, EMAIL)
    page = client.get(f"/my/accounts/{number}/autopay")
    assert "Turn on autopay" in page.text and "I authorize Demo Water District" in page.text
    enroll_card(client, stripe_server, number, "4242424242424242")
    page = client.get(f"/my/accounts/{number}/autopay")
    assert "Autopay is on." in page.text and "Visa •••• 4242" in page.text
    with Session(district) as s:
        (enrollment,) = s.scalars(select(AutopayEnrollment).join(Account).where(Account.number == number))
        assert enrollment.status == "active" and enrollment.authorization_version == autopay.AUTHORIZATION_VERSION
        assert enrollment.authorization_text.startswith("I authorize Demo Water District")
        assert enrollment.authorized_from == "testclient" and enrollment.payment_method_id.startswith("pm_")
        assert s.scalar(select(Account.autopay).where(Account.number == number)) is True
        assert s.scalar(select(func.count(AuditEvent.id)).where(AuditEvent.action == "autopay.enrolled")) == 1
    (copy,) = [m for m in mail_to(inbox, EMAIL) if m["Subject"] == "Autopay is on"][-1:]
    assert "I authorize Demo Water District" in body_of(copy)
    # Switching to another card replaces the enrollment; there is never more than one.
    enroll_card(client, stripe_server, number, "5555555555554444")
    with Session(district) as s:
        statuses = s.scalars(
            select(AutopayEnrollment.status)
            .join(Account)
            .where(Account.number == number)
            .order_by(AutopayEnrollment.id)
        ).all()
        assert [st for st in statuses if st != "active"] == ["replaced"] and statuses.count("active") == 1


def test_the_box_must_be_checked_and_nothing_is_written_until_it_is(client: TestClient, district: Engine) -> None:
    sign_in(client, EMAIL)
    (number,) = linked_numbers(district, EMAIL)
    _page, response = start_enrollment(client, number, agree="")
    assert response.status_code == 400
    assert "check the box" in response.context["form"].errors["agree"]
    _page, response = start_enrollment(client, number, method="cash")
    assert response.status_code == 400 and "Choose a card" in response.context["form"].errors["method"]
    with Session(district) as s:
        assert s.scalar(select(func.count(AutopayEnrollment.id)).where(AutopayEnrollment.user_id.is_not(None))) == 0


def test_the_draft_is_taken_on_the_due_date_once_and_posted_by_the_webhook(
    client: TestClient, district: Engine, stripe_server: LocalStripe, smtp, inbox: list
) -> None:
    sign_in(client, EMAIL)
    (number,) = linked_numbers(district, EMAIL)
    enroll_card(client, stripe_server, number, "4242424242424242")
    bill = enrolled_months_ago(district, number)
    draft_on = autopay.draft_date(bill.bill_date, bill.due_date)
    owed = balance(district, number)
    gateway = stripe_gateway(stripe_server)
    # The day before: nothing. On the day: one draft, however often the job runs.
    assert run_drafts(district, smtp, gateway, date.fromordinal(draft_on.toordinal() - 1)) == 0
    assert run_drafts(district, smtp, gateway, draft_on) == 1
    assert run_drafts(district, smtp, gateway, draft_on) == 0
    with Session(district) as s:
        (payment,) = s.scalars(select(Payment).where(Payment.channel == "autopay", Payment.processor_id.is_not(None)))
        assert payment.status == "pending" and payment.reference == bill.number
        assert payment.amount_cents == min(bill.total_due_cents, owed)
        assert payment.idempotency_key == autopay.idempotency_key(bill.id)
    assert balance(district, number) == owed  # not in the ledger until Stripe confirms
    assert deliver(client, stripe_server, "payment_intent.succeeded", payment.processor_id).endswith("posted")
    assert balance(district, number) == owed - payment.amount_cents
    assert any("Payment received" in m["Subject"] for m in mail_to(inbox, EMAIL))


def test_a_declined_draft_leaves_the_bill_open_and_tells_the_customer(
    client: TestClient, district: Engine, stripe_server: LocalStripe, smtp, inbox: list
) -> None:
    sign_in(client, EMAIL)
    (number,) = linked_numbers(district, EMAIL)
    enroll_card(client, stripe_server, number, "4000000000000341")  # saves, then every charge is declined
    before = len(notices(inbox))
    bill = enrolled_months_ago(district, number)
    owed = balance(district, number)
    assert run_drafts(district, smtp, stripe_gateway(stripe_server), autopay.draft_date(bill.bill_date, bill.due_date))
    with Session(district) as s:
        (payment,) = s.scalars(select(Payment).where(Payment.channel == "autopay", Payment.status == "failed"))
        assert payment.failure_notice_sent_at is not None
    assert balance(district, number) == owed
    (notice,) = notices(inbox)[before:]
    assert "Your bill is still open" in body_of(notice)
    assert "Autopay could not take" in client.get(f"/my/accounts/{number}").text


def test_cancelling_before_the_draft_date_stops_the_draft(
    client: TestClient, district: Engine, stripe_server: LocalStripe, smtp
) -> None:
    sign_in(client, EMAIL)
    (number,) = linked_numbers(district, EMAIL)
    enroll_card(client, stripe_server, number, "4242424242424242")
    bill = enrolled_months_ago(district, number)
    page = client.get(f"/my/accounts/{number}/autopay")
    response = client.post(
        f"/my/accounts/{number}/autopay/cancel", data={"csrf_token": csrf_from(page.text)}, follow_redirects=False
    )
    assert response.status_code == 303
    assert "Autopay is off" in client.get(f"/my/accounts/{number}/autopay").text
    assert run_drafts(district, smtp, stripe_gateway(stripe_server), bill.due_date) == 0
    with Session(district) as s:
        assert s.scalar(select(Account.autopay).where(Account.number == number)) is False
        assert s.scalar(select(func.count(AuditEvent.id)).where(AuditEvent.action == "autopay.cancelled")) == 1


def test_nobody_sees_or_changes_autopay_on_someone_elses_account(client: TestClient, district: Engine) -> None:
    sign_in(client, "resident@demo.example")
    mine = set(linked_numbers(district, "resident@demo.example"))
    with Session(district) as s:
        other = next(n for n in s.scalars(select(Account.number)) if n not in mine)
    token = csrf_from(client.get("/my").text)
    assert client.get(f"/my/accounts/{other}/autopay").status_code == 404
    assert client.get(f"/my/accounts/{other}/autopay/{'x' * 24}").status_code == 404
    for path in ("", "/cancel", "/" + "x" * 24):
        data = {"csrf_token": token, "method": "card", "agree": "yes", "attempt": "x" * 24}
        assert client.post(f"/my/accounts/{other}/autopay{path}", data=data).status_code == 404


def test_a_bank_draft_returned_by_the_bank_tells_the_customer(district: Engine, smtp, inbox: list) -> None:  # type: ignore[no-untyped-def]
    fake = FakeBankGateway()
    config = dataclasses.replace(_settings(smtp), stripe_secret_key="sk_fake")
    with TestClient(
        create_app(config, engine=district, clock=CLOCK, gateway=fake), base_url="https://testserver"
    ) as client:
        sign_in(client, EMAIL)
        (number,) = linked_numbers(district, EMAIL)
        _page, response = start_enrollment(client, number, method=BANK)
        path = response.headers["location"]
        page = client.get(path)
        fake.attach_bank_account(page.context["setup_secret"].split("_secret_")[0], "000111111113")  # R01
        answer = client.post(path, headers={"X-CSRF-Token": csrf_from(page.text), "Accept": "application/json"})
        assert answer.status_code == 200
        bill = enrolled_months_ago(district, number)
        owed = balance(district, number)
        before = len(notices(inbox))
        assert run_drafts(district, smtp, fake, autopay.draft_date(bill.bill_date, bill.due_date)) == 1
        ((intent_id, intent),) = fake.payments.items()
        assert intent.status == "processing" and ("charge", autopay.idempotency_key(bill.id)) in fake.calls
        fake.settle(intent_id)  # days later: insufficient funds
        assert send(client, fake, fake.events[-1]).endswith("failed")
        assert balance(district, number) == owed
        deadline = time.monotonic() + 5
        while len(notices(inbox)) == before:
            assert time.monotonic() < deadline, "no failure notice"
            time.sleep(0.05)


def test_the_draft_date_leaves_ten_days_of_notice() -> None:
    assert autopay.draft_date(date(2026, 11, 1), date(2026, 11, 21)) == date(2026, 11, 21)
    assert autopay.draft_date(date(2026, 11, 15), date(2026, 11, 20)) == date(2026, 11, 25)


def test_a_run_bill_is_drafted_only_ten_days_after_it_was_sent(
    client: TestClient, district: Engine, stripe_server: LocalStripe, smtp
) -> None:
    sign_in(client, EMAIL)
    (number,) = linked_numbers(district, EMAIL)
    enroll_card(client, stripe_server, number, "4242424242424242")
    bill = enrolled_months_ago(district, number)
    with Session(district) as s, s.begin():
        account = s.scalar(select(Account).where(Account.number == number))
        run = BillRun(
            cycle_id=account.cycle_id,
            period_start=bill.period_start,
            period_end=bill.period_end,
            bill_date=bill.bill_date,
            due_date=bill.due_date,
            status="posted",
        )
        s.add(run)
        s.flush()
        s.execute(update(Bill).where(Bill.id == bill.id).values(bill_run_id=run.id))
        run_id = run.id
    gateway = stripe_gateway(stripe_server)
    # Posted but never sent: no notice went out, so nothing is taken, even on the due date.
    assert run_drafts(district, smtp, gateway, bill.due_date) == 0
    assert run_drafts(district, smtp, gateway, bill.due_date + timedelta(days=3)) == 0
    sent_on = bill.due_date - timedelta(days=2)  # mailed late: 2 days before the due date
    with Session(district) as s, s.begin():
        pf = PrintFile(bill_run_id=run_id, status="ready", part_size=200)
        s.add(pf)
        s.flush()
        s.add(
            BillDelivery(
                bill_id=bill.id,
                print_file_id=pf.id,
                channel="mail",
                sequence=1,
                sent_at=datetime(sent_on.year, sent_on.month, sent_on.day, 20, tzinfo=UTC),
            )
        )
    draft_on = sent_on + timedelta(days=autopay.NOTICE_DAYS)
    assert run_drafts(district, smtp, gateway, draft_on - timedelta(days=1)) == 0
    assert run_drafts(district, smtp, gateway, draft_on) == 1


def test_a_draft_counts_an_online_payment_being_made_at_that_moment(district: Engine, smtp) -> None:  # type: ignore[no-untyped-def]
    """The resident pays the whole balance online while the draft job runs: the draft waits
    for that payment, counts it as pending, and takes nothing."""
    import threading

    from .test_payments import SlowBank, started_bank_payment

    fake = SlowBank()
    config = dataclasses.replace(_settings(smtp), stripe_secret_key="sk_fake")
    with TestClient(
        create_app(config, engine=district, clock=CLOCK, gateway=fake), base_url="https://testserver"
    ) as client:
        sign_in(client, EMAIL)
        (number,) = linked_numbers(district, EMAIL)
        _page, response = start_enrollment(client, number, method=BANK)
        path = response.headers["location"]
        page = client.get(path)
        fake.attach_bank_account(page.context["setup_secret"].split("_secret_")[0], "000123456789")
        answer = client.post(path, headers={"X-CSRF-Token": csrf_from(page.text), "Accept": "application/json"})
        assert answer.status_code == 200
        bill = enrolled_months_ago(district, number)
        owed = balance(district, number)
        assert bill.total_due_cents >= autopay.MINIMUM_CENTS
        pay_path, token = started_bank_payment(client, fake, number)
        answers = []
        online = threading.Thread(
            target=lambda: answers.append(
                client.post(pay_path, headers={"X-CSRF-Token": token, "Accept": "application/json"})
            )
        )
        online.start()
        assert fake.charging.wait(10)  # the online charge is at the processor, not yet committed
        run_drafts(district, smtp, fake, autopay.draft_date(bill.bill_date, bill.due_date))
        online.join(30)
        assert answers and answers[0].status_code == 200
        assert len(fake.payments) == 1  # the online payment only
        with Session(district) as s:
            key = autopay.idempotency_key(bill.id)
            assert s.scalar(select(func.count(Payment.id)).where(Payment.idempotency_key == key)) == 0
            (pending,) = s.scalars(select(Payment).where(Payment.idempotency_key.like("pay-%")))
            assert pending.amount_cents == owed and pending.status == "pending"
            # The dashboard does not promise a draft the pending payment has made unneeded.
            account = s.scalar(select(Account).where(Account.number == number))
            assert (
                autopay.outlook(
                    s, account, owed, bill.bill_date, SETTINGS.tz, autopay.latest_bill(s, account.id)
                ).next_on
                is None
            )
