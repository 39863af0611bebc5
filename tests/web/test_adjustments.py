"""The adjustments and write-off panels and the approvals queue, through the web."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from portal.app import create_app
from portal.billing_core import ledger_check, posting
from portal.billing_core.models import Account, Adjustment, WriteOff
from portal.settings import Settings
from tests.db.adjust_helpers import history, staff, tiered_account

from .conftest import CLOCK, csrf_from, sign_in

PASSWORD = "a long password"


@pytest.fixture
def office(engine: Engine) -> tuple[Engine, str]:
    with Session(engine) as s, s.begin():
        account = tiered_account(s)
        staff(s)
        history(s, account, ["10"] * 11 + ["40"])
        number = account.number
    return engine, number


@pytest.fixture
def client(office: tuple[Engine, str]) -> TestClient:
    return TestClient(
        create_app(Settings(secret_key="t"), engine=office[0], clock=CLOCK), base_url="https://testserver"
    )


def _post(client: TestClient, url: str, data: dict, page: str):  # type: ignore[no-untyped-def]
    token = csrf_from(client.get(page).text)
    return client.post(url, data={"csrf_token": token, **data}, follow_redirects=False)


def test_the_panel_is_a_fragment_with_htmx_and_a_page_without(client: TestClient, office) -> None:  # type: ignore[no-untyped-def]
    _engine, number = office
    sign_in(client, "specialist@x.org", PASSWORD)
    fragment = client.get(f"/staff/accounts/{number}/adjustments", headers={"HX-Request": "true"})
    assert fragment.status_code == 200 and "<html" not in fragment.text
    assert fragment.text.lstrip().startswith("<section") and "Adjustments" in fragment.text
    page = client.get(f"/staff/accounts/{number}/adjustments")
    assert "<html" in page.text and 'name="csrf_token"' in page.text
    assert "<html" not in client.get(f"/staff/accounts/{number}/write-off", headers={"HX-Request": "1"}).text


def test_a_specialist_prepares_250_and_a_supervisor_approves_it(client: TestClient, office) -> None:  # type: ignore[no-untyped-def]
    engine, number = office
    panel = f"/staff/accounts/{number}/adjustments"
    sign_in(client, "specialist@x.org", PASSWORD)
    with Session(engine) as s:
        account_id = s.scalar(select(Account.id).where(Account.number == number))
        before = posting.account_balance(s, account_id)
    done = _post(
        client, panel, {"service": "water", "direction": "credit", "amount": "250.00", "reason": "leak"}, panel
    )
    assert done.status_code == 303
    assert "waiting for a supervisor" in client.get(panel).text
    with Session(engine) as s:
        item = s.scalar(select(Adjustment))
        assert (item.status, item.amount_cents) == ("pending", -25000)
    queue = client.get("/staff/approvals")
    assert "You prepared it" in queue.text
    refused = _post(client, f"/staff/approvals/adjustment/{item.id}", {"decision": "approve"}, "/staff/approvals")
    assert refused.status_code == 403
    client.post("/sign-out", data={"csrf_token": csrf_from(client.get("/staff").text)})
    sign_in(client, "supervisor@x.org", PASSWORD)
    queue = client.get("/staff/approvals?kind=adjustment")
    assert f"Approve adjustment {item.id}" in queue.text and "specialist@x.org" in queue.text
    ok = _post(client, f"/staff/approvals/adjustment/{item.id}", {"decision": "approve"}, "/staff/approvals")
    assert ok.status_code == 303
    with Session(engine) as s:
        assert s.get(Adjustment, item.id).status == "posted"
        assert posting.account_balance(s, account_id) == before - 25000
        assert ledger_check.run(s) == []
    account_page = client.get(f"/staff/accounts/{number}")
    assert "Adjustment" in account_page.text and f"Adjustment {item.id}: leak" in account_page.text
    assert "supervisor@x.org" in client.get(panel).text


def test_a_bad_form_is_shown_again_with_each_error_and_nothing_written(client: TestClient, office) -> None:  # type: ignore[no-untyped-def]
    engine, number = office
    panel = f"/staff/accounts/{number}/adjustments"
    sign_in(client, "specialist@x.org", PASSWORD)
    bad = _post(
        client, panel, {"service": "water", "direction": "credit", "amount": "12.345", "reason": "other"}, panel
    )
    assert bad.status_code == 400
    assert 'id="amount-error"' in bad.text and 'id="note-error"' in bad.text
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(Adjustment)) == 0


def test_a_reject_needs_a_reason(client: TestClient, office) -> None:  # type: ignore[no-untyped-def]
    engine, number = office
    panel = f"/staff/accounts/{number}/adjustments"
    sign_in(client, "csr@x.org", PASSWORD)
    _post(client, panel, {"service": "water", "direction": "debit", "amount": "40", "reason": "billing_error"}, panel)
    client.post("/sign-out", data={"csrf_token": csrf_from(client.get("/staff").text)})
    sign_in(client, "supervisor@x.org", PASSWORD)
    with Session(engine) as s:
        item_id = s.scalar(select(Adjustment.id))
    url = f"/staff/approvals/adjustment/{item_id}"
    bad = _post(client, url, {"decision": "reject", "decision_note": ""}, "/staff/approvals")
    assert bad.status_code == 400 and f'id="note-adjustment-{item_id}-error"' in bad.text
    ok = _post(client, url, {"decision": "reject", "decision_note": "not a billing error"}, "/staff/approvals")
    assert ok.status_code == 303
    assert "not a billing error" in client.get(panel).text


def test_the_leak_helper_shows_its_working(client: TestClient, office) -> None:  # type: ignore[no-untyped-def]
    engine, number = office
    panel = f"/staff/accounts/{number}/adjustments"
    sign_in(client, "specialist@x.org", PASSWORD)
    missing = _post(client, panel + "/leak", {"proof": ""}, panel)
    assert missing.status_code == 400 and 'id="proof-error"' in missing.text
    preview = _post(client, panel + "/leak", {"proof": "", "preview": "1"}, panel)
    assert preview.status_code == 200 and "The working" in preview.text and "$80.00" in preview.text
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(Adjustment)) == 0
    done = _post(client, panel + "/leak", {"proof": "Invoice 12"}, panel)
    assert done.status_code == 303
    with Session(engine) as s:
        item = s.scalar(select(Adjustment))
        assert (item.status, item.amount_cents, item.working["excess"]) == ("posted", -8000, "30.000")
    again = _post(client, panel + "/leak", {"proof": "Invoice 13"}, panel)
    assert again.status_code == 400 and "had a leak adjustment on" in again.text


def test_a_write_off_through_the_approvals_queue(client: TestClient, office) -> None:  # type: ignore[no-untyped-def]
    engine, number = office
    panel = f"/staff/accounts/{number}/write-off"
    sign_in(client, "specialist@x.org", PASSWORD)
    assert "this account is active" in client.get(panel).text
    refused = _post(client, panel, {"amount": "10", "reason": "gone"}, panel)
    assert refused.status_code == 400
    with Session(engine) as s, s.begin():
        account = s.scalar(select(Account).where(Account.number == number))
        account.status = "final"
        account_id = account.id
        owed = posting.account_balance(s, account.id)
    too_much = _post(client, panel, {"amount": f"{owed / 100 + 1:.2f}", "reason": "gone"}, panel)
    assert too_much.status_code == 400 and 'id="amount-error"' in too_much.text
    ok = _post(client, panel, {"amount": f"{owed / 100:.2f}", "reason": "agency returned it"}, panel)
    assert ok.status_code == 303
    client.post("/sign-out", data={"csrf_token": csrf_from(client.get("/staff").text)})
    sign_in(client, "supervisor@x.org", PASSWORD)
    with Session(engine) as s:
        wid = s.scalar(select(WriteOff.id))
    assert f"Approve write-off {wid}" in client.get("/staff/approvals?kind=write_off").text
    done = _post(client, f"/staff/approvals/write_off/{wid}", {"decision": "approve"}, "/staff/approvals")
    assert done.status_code == 303
    with Session(engine) as s:
        assert s.get(WriteOff, wid).status == "posted"
        assert posting.account_balance(s, account_id) == 0
        assert ledger_check.run(s) == []


def test_a_credit_beyond_what_is_owed_says_it_becomes_credit(client: TestClient, office) -> None:  # type: ignore[no-untyped-def]
    engine, number = office
    panel = f"/staff/accounts/{number}/adjustments"
    sign_in(client, "admin@x.org", PASSWORD)
    form = client.get(panel).text
    assert "A credit larger than what the service owes is allowed" in form
    done = _post(
        client, panel, {"service": "water", "direction": "credit", "amount": "5000", "reason": "courtesy"}, panel
    )
    assert done.status_code == 303
    assert "becomes a credit on the account" in client.get(panel).text
    with Session(engine) as s:
        account_id = s.scalar(select(Account.id).where(Account.number == number))
        assert posting.account_balance(s, account_id) < 0


def test_requested_refunds_are_listed_linked_and_decided_in_the_queue(client: TestClient, office) -> None:  # type: ignore[no-untyped-def]
    from portal.billing_core.models import Refund, User

    engine, number = office
    with Session(engine) as s, s.begin():
        account_id = s.scalar(select(Account.id).where(Account.number == number))
        csr = s.scalar(select(User.id).where(User.email == "csr@x.org"))
        refund = Refund(
            account_id=account_id, amount_cents=1234, reason="overpaid", method="check", requested_by_id=csr
        )
        s.add(refund)
        s.flush()
        refund_id = refund.id
    sign_in(client, "supervisor@x.org", PASSWORD)
    queue = client.get("/staff/approvals?kind=refund")
    assert f'href="/staff/refunds/{refund_id}"' in queue.text and "$12.34" in queue.text and "csr@x.org" in queue.text
    assert f"Approve refund {refund_id}" in queue.text  # issue 16: decided in the queue too
    assert client.get("/staff/approvals?kind=adjustment").context["items"] == []
