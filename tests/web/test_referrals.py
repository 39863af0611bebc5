"""Final-account referrals through the web: a specialist prepares on the account panel, a
supervisor approves on /staff/referrals and exports once (the file's sha256 in its header
and on the referral), a recovery is recorded on the panel; bad input is named by field."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from portal.app import create_app
from portal.billing_core import posting
from portal.billing_core.models import Account, CollectionReferral
from portal.settings import Settings
from tests.db.adjust_helpers import staff
from tests.db.test_referrals import final_account

from .conftest import CLOCK, csrf_from, sign_in

PASSWORD = "a long password"


@pytest.fixture
def office(engine: Engine) -> tuple[Engine, str]:
    with Session(engine) as s, s.begin():
        account = final_account(s)
        staff(s)
        number = account.number
    return engine, number


@pytest.fixture
def client(office: tuple[Engine, str], tmp_path: Path) -> TestClient:
    settings = dataclasses.replace(Settings(secret_key="t"), files_dir=str(tmp_path))
    return TestClient(create_app(settings, engine=office[0], clock=CLOCK), base_url="https://testserver")


def _post(client: TestClient, url: str, data: dict, page: str):  # type: ignore[no-untyped-def]
    token = csrf_from(client.get(page).text)
    return client.post(url, data={"csrf_token": token, **data}, follow_redirects=False)


def _switch(client: TestClient, email: str) -> None:
    client.cookies.clear()
    sign_in(client, email, PASSWORD)


def test_prepare_approve_export_once_and_recover(client: TestClient, office) -> None:  # type: ignore[no-untyped-def]
    engine, number = office
    panel = f"/staff/accounts/{number}/referrals"
    sign_in(client, "specialist@x.org", PASSWORD)
    fragment = client.get(panel, headers={"HX-Request": "true"})
    assert fragment.status_code == 200 and fragment.text.lstrip().startswith("<section")
    assert "Parcel 1011-221-05" in fragment.text
    account_page = client.get(f"/staff/accounts/{number}")
    assert f'hx-get="/staff/accounts/{number}/referrals"' in account_page.text
    bad = _post(client, panel, {"kind": "agency", "amount": "999"}, panel)
    assert bad.status_code == 400 and "At most $135.00 may be referred" in bad.text
    done = _post(client, panel, {"kind": "agency", "amount": ""}, panel)
    assert done.status_code == 303
    with Session(engine) as s:
        item = s.scalars(select(CollectionReferral)).one()
        rid = item.id
    # The preparer cannot decide it; the list says so.
    listing = client.get("/staff/referrals")
    assert "You prepared it: someone else decides." in listing.text
    _switch(client, "supervisor@x.org")
    listing = client.get("/staff/referrals")
    assert f"Approve referral {rid}" in listing.text
    queue = client.get("/staff/approvals?kind=referral")
    assert queue.status_code == 200 and f"Approve referral {rid}" in queue.text and "Collection agency" in queue.text
    refused = _post(client, f"/staff/referrals/{rid}", {"decision": "reject", "decision_note": ""}, "/staff/referrals")
    assert refused.status_code == 400 and "Say why the referral is rejected." in refused.text
    ok = _post(client, f"/staff/referrals/{rid}", {"decision": "approve"}, "/staff/referrals")
    assert ok.status_code == 303
    exported = _post(client, "/staff/referrals/export", {"kind": "agency"}, "/staff/referrals?status=approved")
    assert exported.status_code == 200 and exported.headers["x-referrals"] == "1"
    sha = hashlib.sha256(exported.content).hexdigest()
    assert exported.headers["x-sha256"] == sha
    rows = list(csv.reader(io.StringIO(exported.text)))
    assert rows[1][1] == number and rows[1][8] == "135.00"
    again = _post(client, "/staff/referrals/export", {"kind": "agency"}, "/staff/referrals?status=approved")
    assert again.status_code == 303  # nothing left to export: exported once
    with Session(engine) as s:
        assert s.get(CollectionReferral, rid).export_ref == sha  # type: ignore[union-attr]
    kept = client.get(f"/staff/referrals/exports/{sha}.csv")
    assert kept.status_code == 200 and kept.content == exported.content
    assert client.get(f"/staff/referrals/exports/{'0' * 64}.csv").status_code == 404
    # A recovery: bad input named by field, then recorded and posted once.
    _switch(client, "specialist@x.org")
    url = f"{panel}/{rid}/recoveries"
    bad = _post(client, url, {"source": "received", "amount": "500"}, panel)
    assert bad.status_code == 400 and "At most $135.00 is left to recover" in bad.text
    assert 'name="key"' in client.get(panel).text
    sent = {"source": "received", "amount": "35.00", "note": "remit 12", "key": "web-1"}
    ok = _post(client, url, sent, panel)
    assert ok.status_code == 303
    assert _post(client, url, sent, panel).status_code == 303  # sent twice: recorded once
    text = client.get(panel).text
    assert "Recovered $35.00" in text and "remit 12" in text
    with Session(engine) as s:
        account_id = s.scalar(select(Account.id).where(Account.number == number))
        assert posting.account_balance(s, account_id) == 10_000  # type: ignore[arg-type]
        assert s.get(CollectionReferral, rid).recovered_cents == 3_500  # type: ignore[union-attr]


def test_a_cashier_sees_the_panel_without_forms(client: TestClient, office) -> None:  # type: ignore[no-untyped-def]
    _engine, number = office
    sign_in(client, "cashier@x.org", PASSWORD)
    text = client.get(f"/staff/accounts/{number}/referrals").text
    assert "Collection referrals" in text and "Prepare the referral" not in text
    assert "approved to the collection agency (CSV)" not in client.get("/staff/referrals").text
    token = csrf_from(client.get("/staff/referrals").text)
    refused = client.post(
        "/staff/referrals/export", data={"csrf_token": token, "kind": "agency"}, follow_redirects=False
    )
    assert refused.status_code == 403
