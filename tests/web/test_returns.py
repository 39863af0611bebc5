"""Returned payments in the browser: the account's payments panel and its "Record a return"
form, the notice, the letter, cash only refused on the resident's pay page and autopay (in
English and Spanish) and by the draft run, and a supervisor lifting it."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker
from starlette.testclient import TestClient

from portal import jobs
from portal.adapters.gateway import BANK
from portal.app import create_app
from portal.billing_core import autopay, payments, posting
from portal.billing_core.models import Account, AuditEvent, Customer, LedgerTransaction, Payment
from portal.billing_core.money_policy import DEFAULT
from portal.demo import build_demo
from tests.bank_gateway import FakeBankGateway
from tests.db.test_demo import TODAY

from .conftest import CLOCK, SETTINGS, csrf_from, linked_numbers, mail_to, sign_in

RESIDENT = "pastdue@demo.example"
FEE = DEFAULT.returned_payment_fee_cents
ON = CLOCK().date()


@pytest.fixture
def district(engine: Engine) -> Engine:
    """A small district of its own: these tests move money."""
    build_demo(engine, accounts=6, seed=5, progress=False, today=TODAY)
    return engine


@pytest.fixture
def fake() -> FakeBankGateway:
    return FakeBankGateway()


def settings(smtp):  # type: ignore[no-untyped-def]
    return dataclasses.replace(SETTINGS, smtp_host="127.0.0.1", smtp_port=smtp[0], stripe_secret_key="sk_fake")


@pytest.fixture
def client(district: Engine, smtp, fake: FakeBankGateway) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    app = create_app(settings(smtp), engine=district, clock=CLOCK, gateway=fake)
    with TestClient(app, base_url="https://testserver") as c:
        yield c


def resident_account(engine: Engine) -> str:
    (number,) = linked_numbers(engine, RESIDENT)
    return number


def posted_check(engine: Engine, number: str, cents: int = 3_000, method: str = "check") -> int:
    """A check taken at the counter today, posted."""
    with Session(engine) as s, s.begin():
        account_id = s.scalar(select(Account.id).where(Account.number == number))
        payment = Payment(
            account_id=account_id,
            amount_cents=cents,
            channel="counter",
            method=method,
            received_on=ON,
            status="pending",
            check_number="2044",
        )
        s.add(payment)
        s.flush()
        payments.apply(s, payment, "succeeded", ON, CLOCK())
        return payment.id


def balance(engine: Engine, number: str) -> int:
    with Session(engine) as s:
        return posting.account_balance(s, s.scalar(select(Account.id).where(Account.number == number)))


def post_form(client: TestClient, url: str, page: str, data: dict):  # type: ignore[no-untyped-def]
    token = csrf_from(client.get(page).text)
    return client.post(url, data={"csrf_token": token, **data}, follow_redirects=False)


def customer_email(engine: Engine, number: str) -> str:
    with Session(engine) as s:
        customer = s.scalar(
            select(Customer).join(Account, Account.customer_id == Customer.id).where(Account.number == number)
        )
        assert customer is not None
        if not customer.email:
            with Session(engine) as w, w.begin():
                w.get(Customer, customer.id).email = "customer-returns@example.net"  # type: ignore[union-attr]
            return "customer-returns@example.net"
        return customer.email


def test_staff_record_a_return_from_the_accounts_payments_panel(
    client: TestClient, district: Engine, inbox: list
) -> None:
    number = resident_account(district)
    to = customer_email(district, number)
    payment_id = posted_check(district, number)
    owed = balance(district, number)
    sign_in(client, "specialist@demo.example")
    panel_url = f"/staff/accounts/{number}/payments"
    fragment = client.get(panel_url, headers={"HX-Request": "true"})
    assert fragment.status_code == 200 and fragment.text.lstrip().startswith("{#") is False
    assert "<section" in fragment.text and "<html" not in fragment.text
    assert "Payments and returns" in fragment.text and "specialist@demo.example" not in fragment.text
    assert f"Record the return of payment {payment_id}" in fragment.text
    assert "Not cash only." in fragment.text
    page = client.get(panel_url)
    assert page.status_code == 200 and "<html" in page.text
    # A bad form: each problem next to its field, 400, nothing written.
    with Session(district) as s:
        before = s.scalar(select(func.count(LedgerTransaction.id)))
    bad = post_form(client, f"/staff/payments/{payment_id}/return", panel_url, {"reason": "R77", "on": "yesterday"})
    assert bad.status_code == 400
    assert f'id="reason-{payment_id}-error"' in bad.text and "Choose the return reason" in bad.text
    assert f'id="on-{payment_id}-error"' in bad.text and "YYYY-MM-DD" in bad.text
    late = post_form(client, f"/staff/payments/{payment_id}/return", panel_url, {"reason": "NSF", "on": "2027-01-30"})
    assert late.status_code == 400 and "10 banking days" in late.text
    with Session(district) as s:
        assert s.scalar(select(func.count(LedgerTransaction.id))) == before
    done = post_form(client, f"/staff/payments/{payment_id}/return", panel_url, {"reason": "NSF", "on": ON.isoformat()})
    assert done.status_code == 303 and done.headers["location"] == panel_url
    shown = client.get(panel_url).text
    assert f"Payment {payment_id} is returned (NSF)" in shown
    assert "Returned" in shown and "$25.00" in shown and f"/staff/payments/{payment_id}/return-letter" in shown
    assert balance(district, number) == owed + 3_000 + FEE
    again = post_form(
        client, f"/staff/payments/{payment_id}/return", panel_url, {"reason": "NSF", "on": ON.isoformat()}
    )
    assert again.status_code == 400 and "already returned" in again.text
    deadline = time.monotonic() + 5
    while not [m for m in mail_to(inbox, to) if "returned" in m["Subject"]]:
        assert time.monotonic() < deadline, "no returned-payment email"
        time.sleep(0.05)
    letter = client.get(f"/staff/payments/{payment_id}/return-letter")
    assert letter.status_code == 200 and letter.headers["content-type"] == "application/pdf"
    assert letter.content.startswith(b"%PDF")


def test_a_csr_cannot_record_a_return(client: TestClient, district: Engine) -> None:
    number = resident_account(district)
    payment_id = posted_check(district, number)
    sign_in(client, "csr@demo.example")
    panel_url = f"/staff/accounts/{number}/payments"
    assert "Record the return" not in client.get(panel_url).text
    refused = post_form(
        client, f"/staff/payments/{payment_id}/return", panel_url, {"reason": "NSF", "on": ON.isoformat()}
    )
    assert refused.status_code == 403


def make_cash_only(client: TestClient, district: Engine, number: str) -> None:
    """Two checks returned: the account becomes cash only."""
    sign_in(client, "specialist@demo.example")
    panel_url = f"/staff/accounts/{number}/payments"
    for _ in range(2):
        payment_id = posted_check(district, number)
        done = post_form(
            client, f"/staff/payments/{payment_id}/return", panel_url, {"reason": "NSF", "on": ON.isoformat()}
        )
        assert done.status_code == 303
    shown = client.get(panel_url).text
    assert "now cash only" in shown and 'id="cash-only-state"' in shown and "<strong>Cash only</strong>" in shown
    with Session(district) as s:
        account = s.scalar(select(Account).where(Account.number == number))
        assert account is not None and account.cash_only and account.cash_only_since == ON
    client.post("/sign-out", data={"csrf_token": csrf_from(client.get(panel_url).text)})


def test_a_cash_only_account_is_refused_on_the_pay_page_and_autopay_with_the_reason(
    client: TestClient, district: Engine
) -> None:
    number = resident_account(district)
    make_cash_only(client, district, number)
    sign_in(client, RESIDENT)
    home = client.get(f"/my/accounts/{number}")
    assert "Cash only since" in home.text
    assert "Cash only since" in client.get("/my").text
    page = client.get(f"/my/accounts/{number}/pay")
    assert page.status_code == 200 and 'id="cash-only"' in page.text
    assert "can be paid only in cash or by money order" in page.text
    data = {"csrf_token": csrf_from(page.text), "attempt": "a" * 24, "choice": "balance", "method": "card"}
    refused = client.post(f"/my/accounts/{number}/pay", data=data, follow_redirects=False)
    assert refused.status_code == 400 and "can be paid only in cash or by money order" in refused.text
    auto = client.get(f"/my/accounts/{number}/autopay")
    assert 'id="cash-only"' in auto.text
    data = {"csrf_token": csrf_from(auto.text), "attempt": "b" * 24, "method": BANK, "agree": "yes"}
    refused = client.post(f"/my/accounts/{number}/autopay", data=data, follow_redirects=False)
    assert refused.status_code == 400 and "can be paid only in cash or by money order" in refused.text
    # In Spanish too.
    client.post("/language", data={"csrf_token": csrf_from(auto.text), "lang": "es", "next": "/my"})
    spanish = client.get(f"/my/accounts/{number}/pay").text
    assert "solo se puede pagar en efectivo o con giro postal" in spanish
    assert "Solo efectivo desde" in client.get(f"/my/accounts/{number}").text


def test_the_autopay_draft_run_refuses_a_cash_only_account(
    client: TestClient, district: Engine, fake: FakeBankGateway, smtp
) -> None:  # type: ignore[no-untyped-def]
    number = resident_account(district)
    sign_in(client, RESIDENT)
    page = client.get(f"/my/accounts/{number}/autopay")
    data = {"csrf_token": csrf_from(page.text), "attempt": "c" * 24, "method": BANK, "agree": "yes"}
    response = client.post(f"/my/accounts/{number}/autopay", data=data, follow_redirects=False)
    assert response.status_code == 303
    path = response.headers["location"]
    method_page = client.get(path)
    fake.attach_bank_account(method_page.context["setup_secret"].split("_secret_")[0], "000123456789")
    answer = client.post(path, headers={"X-CSRF-Token": csrf_from(method_page.text), "Accept": "application/json"})
    assert answer.status_code == 200
    client.post("/sign-out", data={"csrf_token": csrf_from(client.get(f"/my/accounts/{number}").text)})
    with Session(district) as s, s.begin():
        account = s.scalar(select(Account).where(Account.number == number))
        assert account is not None
        from portal.billing_core.models import AutopayEnrollment

        s.query(AutopayEnrollment).filter(AutopayEnrollment.account_id == account.id).update(
            {"authorized_at": datetime(2026, 1, 1, tzinfo=UTC)}
        )
        bill = autopay.latest_bill(s, account.id)
        assert bill is not None
        draft_on: date = autopay.draft_date(bill.bill_date, bill.due_date)
        account.cash_only, account.cash_only_since, account.cash_only_reason = True, ON, "2 payments returned"
    drafted = jobs.dispatch_autopay(
        settings(smtp), draft_on, fake, sessions=sessionmaker(district, expire_on_commit=False), in_process=True
    )
    assert drafted in (0, 1)  # the job ran; it took nothing
    jobs.dispatch_autopay(  # the hourly run again: refused again, audited once
        settings(smtp), draft_on, fake, sessions=sessionmaker(district, expire_on_commit=False), in_process=True
    )
    assert not [c for c in fake.calls if c[0] == "charge"]
    with Session(district) as s:
        reasons = [
            e.after.get("reason") for e in s.scalars(select(AuditEvent).where(AuditEvent.action == "autopay.skipped"))
        ]
        assert reasons.count("cash only") == 1


def test_a_supervisor_lifts_cash_only_with_a_reason(client: TestClient, district: Engine) -> None:
    number = resident_account(district)
    make_cash_only(client, district, number)
    panel_url = f"/staff/accounts/{number}/payments"
    sign_in(client, "specialist@demo.example")
    assert "Lift cash only" not in client.get(panel_url).text
    assert post_form(client, f"/staff/accounts/{number}/cash-only/lift", panel_url, {"reason": "x"}).status_code == 403
    client.post("/sign-out", data={"csrf_token": csrf_from(client.get(panel_url).text)})
    sign_in(client, "supervisor@demo.example")
    blank = post_form(client, f"/staff/accounts/{number}/cash-only/lift", panel_url, {"reason": " "})
    assert blank.status_code == 400 and 'id="lift-reason-error"' in blank.text and "Say why" in blank.text
    done = post_form(
        client, f"/staff/accounts/{number}/cash-only/lift", panel_url, {"reason": "Paid in cash for a year"}
    )
    assert done.status_code == 303
    assert "Not cash only." in client.get(panel_url).text
    with Session(district) as s:
        event = s.scalar(select(AuditEvent).where(AuditEvent.action == "account.cash_only_lifted"))
        assert event is not None and event.after["reason"] == "Paid in cash for a year"
