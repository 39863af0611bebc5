"""The staff's deposit and refund pages: the account page's panels (fragment for htmx,
page otherwise), billing a deposit, asking for, approving and exporting a refund."""

from __future__ import annotations

import csv
import io

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from portal.billing_core import ledger, posting
from portal.billing_core.models import Account, Deposit, Refund

from .conftest import csrf_from, sign_in


def _account(engine: Engine, offset: int) -> str:
    with Session(engine) as s:
        return s.scalars(
            select(Account.number).where(Account.status == "active").order_by(Account.id).offset(offset)
        ).first()  # type: ignore[return-value]


def _credit(engine: Engine, number: str, cents: int) -> None:
    """Pay the balance and ``cents`` more: the account then holds that credit."""
    with Session(engine) as s, s.begin():
        acct = s.scalar(select(Account).where(Account.number == number))
        assert acct is not None
        amount = max(posting.account_balance(s, acct.id), 0) + cents
        txn = ledger.payment_transaction(
            acct.id, acct.opened_on, amount, "counter", posting.open_by_service(s, acct.id)
        )
        posting.post(s, txn, acct.id)


def _deposits(engine: Engine, number: str) -> int:
    with Session(engine) as s:
        return int(
            s.scalar(select(func.count()).select_from(Deposit).join(Account).where(Account.number == number)) or 0
        )


def test_deposit_panel_is_a_fragment_for_htmx_and_a_page_otherwise(client: TestClient, demo_engine: Engine) -> None:
    number = _account(demo_engine, 3)
    sign_in(client, "csr@demo.example")
    fragment = client.get(f"/staff/accounts/{number}/deposits", headers={"HX-Request": "true"})
    assert fragment.status_code == 200
    assert fragment.text.lstrip().startswith("<section") and "Deposits held" in fragment.text
    assert "<html" not in fragment.text
    page = client.get(f"/staff/accounts/{number}/deposits")
    assert page.status_code == 200 and "<html" in page.text and "What the policy asks" in page.text


def test_billing_a_deposit_checks_the_form_whole(client: TestClient, demo_engine: Engine) -> None:
    number = _account(demo_engine, 4)
    sign_in(client, "csr@demo.example")
    page = client.get(f"/staff/accounts/{number}/deposits")
    token = csrf_from(page.text)
    for bad in ("12.345", "0", "-3", "ten"):
        response = client.post(
            f"/staff/accounts/{number}/deposits",
            data={"amount": bad, "reason": "other", "note": "x", "csrf_token": token},
        )
        assert response.status_code == 400
        assert 'id="amount-error"' in response.text
    assert _deposits(demo_engine, number) == 0
    response = client.post(
        f"/staff/accounts/{number}/deposits",
        data={"amount": "150.00", "reason": "after_shutoff", "note": "", "csrf_token": token},
        follow_redirects=True,
    )
    assert response.status_code == 200
    assert "billed" in response.text and "$150.00" in response.text
    assert _deposits(demo_engine, number) == 1


def test_a_cashier_cannot_bill_a_deposit(client: TestClient, demo_engine: Engine) -> None:
    number = _account(demo_engine, 5)
    sign_in(client, "cashier@demo.example")
    token = csrf_from(client.get(f"/staff/accounts/{number}/deposits").text)
    response = client.post(
        f"/staff/accounts/{number}/deposits", data={"amount": "50", "reason": "other", "note": "x", "csrf_token": token}
    )
    assert response.status_code == 403
    assert _deposits(demo_engine, number) == 0


def test_refund_asked_approved_by_another_and_exported_once(client: TestClient, demo_engine: Engine) -> None:
    number = _account(demo_engine, 6)
    _credit(demo_engine, number, 2_500)
    sign_in(client, "csr@demo.example")
    token = csrf_from(client.get(f"/staff/accounts/{number}/refunds").text)
    too_much = client.post(
        f"/staff/accounts/{number}/refunds",
        data={"amount": "25.01", "method": "check", "reason": "overpaid", "csrf_token": token},
    )
    assert too_much.status_code == 400 and 'id="amount-error"' in too_much.text
    asked = client.post(
        f"/staff/accounts/{number}/refunds",
        data={"amount": "25.00", "method": "check", "reason": "overpaid", "csrf_token": token},
        follow_redirects=False,
    )
    assert asked.status_code == 303
    url = asked.headers["location"]
    # The person who asked cannot approve it.
    assert client.post(url, data={"action": "approve", "csrf_token": token}).status_code == 403
    client.post("/sign-out", data={"csrf_token": token})
    sign_in(client, "supervisor@demo.example")
    page = client.get(url)
    assert "csr@demo.example" in page.text
    token = csrf_from(page.text)
    approved = client.post(url, data={"action": "approve", "csrf_token": token}, follow_redirects=True)
    assert approved.status_code == 200 and "Approved" in approved.text
    export = client.post("/staff/refunds/export", data={"csrf_token": token})
    assert export.status_code == 200 and export.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(export.text)))
    assert [(r["account"], r["amount"]) for r in rows if r["account"] == number] == [(number, "25.00")]
    again = client.post("/staff/refunds/export", data={"csrf_token": token})
    assert all(r["account"] != number for r in csv.DictReader(io.StringIO(again.text)))
    with Session(demo_engine) as s:
        refund = s.scalar(select(Refund).join(Account).where(Account.number == number))
        assert refund is not None and refund.status == "paid"
    listing = client.get("/staff/refunds")
    assert listing.status_code == 200 and f"Refund {refund.id}" in listing.text
