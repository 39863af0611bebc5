"""The meter inventory's pages: the stock list, receiving a file (a wrong one lists its lines
and receives nothing), a meter's page with its install, test and retire forms, each refusal
next to its field, and who may see which form."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from portal.app import create_app
from portal.billing_core import users
from portal.billing_core.models import Account, Meter
from portal.settings import Settings
from tests.db.factories import district

from .conftest import CLOCK, csrf_from, sign_in

PASSWORD = "a long password"


@pytest.fixture
def client(engine: Engine) -> TestClient:
    with Session(engine) as s, s.begin():
        district(s, 1)
        for role in ("field", "csr"):
            users.create_user(s, f"{role}@x.org", PASSWORD, role)
    return TestClient(create_app(Settings(secret_key="t"), engine=engine, clock=CLOCK), base_url="https://testserver")


def post(client: TestClient, url: str, data: dict, page: str, **kw):  # type: ignore[no-untyped-def]
    token = csrf_from(client.get(page).text)
    return client.post(url, data={"csrf_token": token, **data}, follow_redirects=False, **kw)


def field_error(html: str, name: str) -> str:
    start = html.index(f'<p class="field-error" id="{name}-error">') + len(f'<p class="field-error" id="{name}-error">')
    return html[start : html.index("</p>", start)]


def test_receive_a_file_then_test_and_retire_a_meter(client: TestClient, engine: Engine) -> None:
    sign_in(client, "field@x.org", PASSWORD)
    bad = post(
        client,
        "/staff/meters/receive/file",
        {"file_size": '1"', "file_dials": "6"},
        "/staff/meters/receive",
        files={"meter_file": ("new.csv", b"F1\nF2\nF1\nT000001\n", "text/csv")},
    )
    assert bad.status_code == 400
    assert [(p.line, p.serial, p.reason) for p in bad.context["problems"]] == [
        (3, "F1", "serial F1 is also on line 1"),
        (4, "T000001", "meter T000001 is already on file"),
    ]
    assert '<th scope="row">3</th><td data-label="Serial">F1</td><td data-label="Why">serial F1 is also on' in bad.text
    assert field_error(bad.text, "meter_file").startswith("Nothing was received: 2 of 4 lines are wrong")
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(Meter)) == 1
    good = post(
        client,
        "/staff/meters/receive/file",
        {"file_size": '1"', "file_dials": "6", "file_received_on": "2026-11-20"},
        "/staff/meters/receive",
        files={"meter_file": ("new.csv", b"F1\nF2\n", "text/csv")},
    )
    assert good.status_code == 303
    stock = client.get("/staff/meters")
    assert "2 meters received into stock." in stock.text
    assert 'aria-label="2 1&#34; meters in stock"' in stock.text
    assert stock.context["counts"] == {'5/8"': {"installed": 1}, '1"': {"in_stock": 2}}
    page = client.get("/staff/meters/F1")
    assert "Install meter F1" in page.text and "Record test of F1" in page.text and "Retire meter F1" in page.text
    assert "Record read of" not in page.text  # reads by hand and exchanges are for billing staff
    with Session(engine) as s:
        number = s.scalar(select(Account.number))
    refused = post(
        client, "/staff/meters/F1", {"action": "install", "premise": number, "install_read": "0"}, "/staff/meters/F1"
    )
    assert refused.status_code == 400
    assert "already has meter T000001 installed for water" in field_error(refused.text, "premise")
    wrong = post(client, "/staff/meters/F1", {"action": "test", "result": "", "mid_flow_pct": "x"}, "/staff/meters/F1")
    assert field_error(wrong.text, "result") == "Choose pass or fail."
    assert field_error(wrong.text, "mid_flow_pct").startswith("Enter the accuracy as a percent")
    tested = post(
        client,
        "/staff/meters/F1",
        {"action": "test", "result": "fail", "low_flow_pct": "90", "tested_by": "R. Diaz", "then": "in_test"},
        "/staff/meters/F1",
    )
    assert tested.status_code == 303
    after = client.get("/staff/meters/F1").text
    assert "Test recorded (fail); it is in test or repair now." in after
    assert "Fail (low 90.00%); then in test or repair" in after
    retired = post(client, "/staff/meters/F1", {"action": "retire", "reason": "Beyond repair"}, "/staff/meters/F1")
    assert retired.status_code == 303
    assert "Retired</strong> Nov 22, 2026: Beyond repair" in client.get("/staff/meters/F1").text
    installed = post(client, "/staff/meters/T000001", {"action": "retire", "reason": "old"}, "/staff/meters/T000001")
    assert installed.status_code == 400  # no retire form for an installed meter: the page says why
    assert "Nothing was changed: Meter T000001 is installed: exchange it" in installed.text


def test_a_csr_sees_the_stock_but_changes_nothing(client: TestClient) -> None:
    sign_in(client, "csr@x.org", PASSWORD)
    assert "Receive meters into stock" not in client.get("/staff/meters").text
    assert client.get("/staff/meters/receive").status_code == 403
    page = client.get("/staff/meters/T000001")
    assert page.status_code == 200 and "Change this meter" not in page.text
    token = csrf_from(page.text)
    denied = client.post("/staff/meters/T000001", data={"csrf_token": token, "action": "retire", "reason": "x"})
    assert denied.status_code == 403
