"""The bill as a PDF: the same template printed by Chromium, for the customer and staff."""

import io
import time

import pikepdf
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from portal.billing_core.models import Account, Bill

from .conftest import linked_numbers, other_account, sign_in


def test_a_customer_downloads_a_bill_as_pdf_and_only_their_own(client: TestClient, demo_engine: Engine) -> None:
    sign_in(client, "resident@demo.example")
    number = linked_numbers(demo_engine, "resident@demo.example")[0]
    bills = client.get(f"/my/accounts/{number}").context["bills"]
    page = client.get(f"/my/accounts/{number}/bills/{bills[0].number}/document")
    assert f'href="/my/accounts/{number}/bills/{bills[0].number}/pdf"' in page.text
    response = client.get(f"/my/accounts/{number}/bills/{bills[0].number}/pdf")
    assert response.status_code == 200 and response.headers["content-type"] == "application/pdf"
    assert f'filename="bill-{number}-{bills[0].number}.pdf"' in response.headers["content-disposition"]
    assert response.headers["cache-control"] == "private, no-store"
    with pikepdf.open(io.BytesIO(response.content)) as pdf:
        assert 1 <= len(pdf.pages) <= 2
    # Warm: the browser is already running, as it is after the first PDF a portal prints.
    started = time.monotonic()
    assert client.get(f"/my/accounts/{number}/bills/{bills[1].number}/pdf").status_code == 200
    assert time.monotonic() - started < 5  # a generous bound; bench/bill_pdf.py measures it
    theirs = other_account(demo_engine, "resident@demo.example")
    with Session(demo_engine) as s:
        their_bill = s.scalar(select(Bill.number).join(Account).where(Account.number == theirs).limit(1))
    assert client.get(f"/my/accounts/{theirs}/bills/{their_bill}/pdf").status_code == 404
    assert client.get(f"/my/accounts/{number}/bills/{their_bill}/pdf").status_code == 404


def test_staff_download_any_bill_as_pdf(client: TestClient, demo_engine: Engine) -> None:
    with Session(demo_engine) as s:
        number, bill = s.execute(select(Account.number, Bill.number).join(Bill).limit(1)).one()
    assert client.get(f"/staff/accounts/{number}/bills/{bill}/pdf", follow_redirects=False).status_code == 303
    sign_in(client, "csr@demo.example")
    response = client.get(f"/staff/accounts/{number}/bills/{bill}/pdf")
    assert response.status_code == 200 and response.content.startswith(b"%PDF")
