"""The staff's collection-policy pages over HTTP: the policy in plain words and a refused
new version (errors next to their fields, nothing saved), closure days, and the account
page's Shutoff protections panel (a fragment for htmx, a page otherwise)."""

from __future__ import annotations

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from portal.billing_core.models import Account, AgencyClosure, DelinquencyPolicyVersion

from .conftest import csrf_from, sign_in


def test_the_policy_page_and_a_refused_version(client: TestClient, demo_engine: Engine) -> None:
    sign_in(client, "csr@demo.example")
    page = client.get("/staff/collections/policy")
    assert page.status_code == 200
    assert "A late fee of 1.5% of the past-due amount, at most $10.00, 5 days after the due date" in page.text
    assert "Make a new version" not in page.text  # a CSR reads it, a supervisor changes it
    client.post("/sign-out", data={"csrf_token": csrf_from(page.text)})
    sign_in(client, "supervisor@demo.example")
    page = client.get("/staff/collections/policy")
    assert "Make a new version" in page.text
    refused = client.post(
        "/staff/collections/policy",
        data={
            "csrf_token": csrf_from(page.text),
            "effective_on": "2027-01-01",
            "late_fee_percent": "lots",
            "shutoff_day": "60",
            "days_delinquent_before_shutoff": "45",
            "notice_business_days": "7",
            "office_phone": "(555) 010-0100",
            "note": "",
        },
    )
    assert refused.status_code == 400
    assert 'id="late_fee_percent-error"' in refused.text and 'id="note-error"' in refused.text
    assert 'value="lots"' in refused.text  # what was typed stays
    with Session(demo_engine) as s:
        assert s.scalar(select(func.count()).select_from(DelinquencyPolicyVersion)) == 0


def test_closure_days_page(client: TestClient, demo_engine: Engine) -> None:
    sign_in(client, "supervisor@demo.example")
    page = client.get("/staff/collections/closures?year=2027")
    assert "Day After Thanksgiving" in page.text and "Cesar Chavez Day" in page.text
    token = csrf_from(page.text)
    bad = client.post("/staff/collections/closures", data={"csrf_token": token, "day": "2027-03-13", "name": "x"})
    assert bad.status_code == 400 and 'id="day-error"' in bad.text
    done = client.post(
        "/staff/collections/closures",
        data={"csrf_token": token, "day": "2027-03-15", "name": "Staff training"},
        follow_redirects=False,
    )
    assert done.status_code in (302, 303)
    page = client.get("/staff/collections/closures?year=2027")
    assert "Staff training" in page.text
    with Session(demo_engine) as s:
        closure_id = s.scalar(select(AgencyClosure.id).where(AgencyClosure.name == "Staff training"))
    client.post(f"/staff/collections/closures/{closure_id}/remove", data={"csrf_token": csrf_from(page.text)})
    with Session(demo_engine) as s:
        assert s.scalar(select(func.count()).select_from(AgencyClosure)) == 0


def test_the_protections_panel(client: TestClient, demo_engine: Engine) -> None:
    with Session(demo_engine) as s:
        number = s.scalars(select(Account.number).order_by(Account.id)).first()
    sign_in(client, "csr@demo.example")
    fragment = client.get(f"/staff/accounts/{number}/protections", headers={"HX-Request": "true"})
    assert fragment.status_code == 200 and "<html" not in fragment.text
    assert "Record the protection" in fragment.text and "Issue shutoff order" not in fragment.text
    page = client.get(f"/staff/accounts/{number}/protections")
    assert "<html" in page.text and "Shutoff protections" in page.text
    refused = client.post(
        f"/staff/accounts/{number}/protections",
        data={"csrf_token": csrf_from(page.text), "kind": "financial_inability", "detail": "", "starts_on": ""},
    )
    assert refused.status_code == 400 and 'id="detail-error"' in refused.text
    # A CSR may not issue a shutoff order.
    forbidden = client.post(f"/staff/accounts/{number}/shutoff-order", data={"csrf_token": csrf_from(page.text)})
    assert forbidden.status_code == 403
