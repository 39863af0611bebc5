"""Staff pages for mail batches and bank files, on a fresh database of their own (they post
payments, which the shared demo district must not see)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import date, timedelta

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from portal.app import create_app
from portal.billing_core import ledger, posting, users
from portal.billing_core.models import AuditEvent, Payment, PaymentBatchItem
from portal.billing_core.numbers import scan_line
from tests.db.factories import district

from .conftest import CLOCK, SETTINGS, csrf_from, sign_in

PASSWORD = "long enough password"


@pytest.fixture
def office(engine: Engine) -> Iterator[tuple[TestClient, list[str]]]:
    with Session(engine) as s, s.begin():
        accts = district(s, 2)
        d = date(2026, 10, 1)
        for a in accts:
            posting.post(s, ledger.bill_transaction(a.id, d, d + timedelta(days=21), {"water": 4000}), a.id)
        for role in ("specialist", "csr"):
            users.create_user(s, f"{role}@office.example", PASSWORD, role, display_name=f"Office {role}")
        numbers = [a.number for a in accts]
    app = create_app(dataclasses.replace(SETTINGS), engine=engine, clock=CLOCK)
    with TestClient(app, base_url="https://testserver") as c:
        yield c, numbers


def _count(engine: Engine, model) -> int:  # type: ignore[no-untyped-def]
    with Session(engine) as s:
        return s.scalar(select(func.count()).select_from(model)) or 0


def test_a_specialist_keys_a_batch_and_posts_it_when_it_matches(office, engine: Engine) -> None:  # type: ignore[no-untyped-def]
    client, (a, b) = office
    sign_in(client, "specialist@office.example", PASSWORD)
    page = client.get("/staff/payments/batches")
    token = csrf_from(page.text)
    made = client.post(
        "/staff/payments/batches",
        data={"csrf_token": token, "deposit_date": "2026-11-22", "control_total": "80.00", "control_count": "2"},
        follow_redirects=False,
    )
    assert made.status_code == 303
    url = made.headers["location"]
    bad = client.post(url + "/items", data={"csrf_token": token, "scan_line": "1234 0000001000 1", "amount": "12.345"})
    assert bad.status_code == 400
    assert 'id="scan_line-error"' in bad.text and 'id="amount-error"' in bad.text
    assert _count(engine, PaymentBatchItem) == 0
    client.post(url + "/items", data={"csrf_token": token, "scan_line": scan_line(a, 4000), "amount": "40.00"})
    short = client.post(url + "/post", data={"csrf_token": token})
    assert short.status_code == 400 and "$40.00 less than the control total" in short.text
    assert _count(engine, Payment) == 0
    client.post(url + "/items", data={"csrf_token": token, "account_number": b, "amount": "40.00", "check_number": "7"})
    assert "matches the control" in client.get(url).text
    done = client.post(url + "/post", data={"csrf_token": token}, follow_redirects=True)
    assert done.status_code == 200 and "posted: 2 payments" in done.text and "Office specialist" in done.text
    assert _count(engine, Payment) == 2
    with Session(engine) as s:
        actions = set(s.scalars(select(AuditEvent.action).where(AuditEvent.entity_type == "payment_batch")))
    assert {"batch.created", "batch.item_keyed", "batch.posted"} <= actions


CSV = (
    "Reference,Account,ScanLine,Amount,CheckNumber,DepositDate\n"
    "W1,{a},,40.00,1,2026-11-21\nW2,00000000,,5.00,2,2026-11-21\nW3,{b},,0,3,2026-11-21\n"
)


def test_a_file_uploaded_twice_adds_nothing_the_second_time_and_the_queue_resolves(office, engine: Engine) -> None:  # type: ignore[no-untyped-def]
    client, (a, b) = office
    sign_in(client, "specialist@office.example", PASSWORD)
    token = csrf_from(client.get("/staff/payments/imports").text)
    body = CSV.format(a=a, b=b).encode()
    first = client.post(
        "/staff/payments/imports",
        data={"csrf_token": token, "format": "csv", "layout": "standard"},
        files={"bank_file": ("box.csv", body, "text/csv")},
    )
    assert first.status_code == 200 and "1 matched / 0 duplicate / 1 unmatched / 1 rejected" in first.text
    assert "the amount" in first.text  # the rejected row's reason, on the row report
    report = client.get(first.url.path + "/report.csv")
    assert report.headers["content-type"].startswith("text/csv") and report.text.count("\n") == 4
    second = client.post(
        "/staff/payments/imports",
        data={"csrf_token": token, "format": "csv", "layout": "standard"},
        files={"bank_file": ("box-again.csv", body, "text/csv")},
    )
    assert "already imported" in second.text and "nothing was added" in second.text
    assert _count(engine, Payment) == 1
    queue = client.get("/staff/payments/imports/queue")
    assert "W2" in queue.text
    with Session(engine) as s:
        from portal.billing_core.models import PaymentImportRow

        row_id = s.scalar(select(PaymentImportRow.id).where(PaymentImportRow.bank_reference == "W2"))
    wrong = client.post(
        f"/staff/payments/imports/rows/{row_id}", data={"csrf_token": token, "action": "assign", "account_number": "1"}
    )
    assert wrong.status_code == 400 and f'id="account-{row_id}-error"' in wrong.text
    client.post(
        f"/staff/payments/imports/rows/{row_id}", data={"csrf_token": token, "action": "assign", "account_number": b}
    )
    assert _count(engine, Payment) == 2
    assert "No unmatched payments" in client.get("/staff/payments/imports/queue").text


def test_a_malformed_bai2_upload_says_why_and_writes_nothing(office, engine: Engine) -> None:  # type: ignore[no-untyped-def]
    client, _numbers = office
    sign_in(client, "specialist@office.example", PASSWORD)
    token = csrf_from(client.get("/staff/payments/imports").text)
    bad = client.post(
        "/staff/payments/imports",
        data={"csrf_token": token, "format": "bai2"},
        files={"bank_file": ("x.bai", b"01,BANK,X,261120,0800,1,80,,2/\n99,1,1,2/\n", "text/plain")},
    )
    assert bad.status_code == 400 and 'id="bank_file-error"' in bad.text and "Nothing was imported" in bad.text
    assert _count(engine, Payment) == 0


def test_a_csr_sees_but_may_not_import_or_batch(office) -> None:  # type: ignore[no-untyped-def]
    client, _numbers = office
    sign_in(client, "csr@office.example", PASSWORD)
    page = client.get("/staff/payments/imports")
    assert page.status_code == 200 and "Import a file" not in page.text
    token = csrf_from(client.get("/staff").text)
    refused = client.post(
        "/staff/payments/batches", data={"csrf_token": token, "deposit_date": "2026-11-22", "control_total": "1"}
    )
    assert refused.status_code == 403
