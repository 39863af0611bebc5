# ruff: noqa: F811  (the fixtures below come from test_requests: a district of its own)
"""A payment plan the customer proposes: checked against the policy (each problem next to
its field, nothing sent), previewed, sent to staff, decided, and shown with its payments."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from portal.billing_core.models import ArrangementRequest
from tests.db.test_demo import TODAY

from .conftest import body_of, csrf_from, linked_numbers, mail_to, sign_in
from .test_requests import client, district  # noqa: F401  (fixtures: a district of its own)

EMAIL = "pastdue@demo.example"


def propose(client: TestClient, number: str, **fields: str):  # type: ignore[no-untyped-def]
    page = client.get(f"/my/accounts/{number}/arrangement")
    assert page.status_code == 200
    data = {"csrf_token": csrf_from(page.text), "installments": "6", "down_payment": "", **fields}
    data.setdefault("first_due", (TODAY + timedelta(days=10)).isoformat())
    return client.post(f"/my/accounts/{number}/arrangement", data=data, follow_redirects=False)


def requests_in(engine: Engine) -> int:
    with Session(engine) as s:
        return s.scalar(select(func.count(ArrangementRequest.id)))


def test_a_plan_is_checked_previewed_sent_and_decided(client: TestClient, district: Engine, inbox: list) -> None:
    sign_in(client, EMAIL)
    (number,) = linked_numbers(district, EMAIL)
    bad = propose(client, number, installments="24", first_due="yesterday")
    assert bad.status_code == 400 and set(bad.context["form"].errors) == {"installments", "first_due"}
    preview = propose(client, number, installments="4", preview="1")
    assert preview.status_code == 200 and "Your payments under this plan" in preview.text
    assert requests_in(district) == 0  # a preview sends nothing
    sent = propose(client, number, installments="4", down_payment="20", reason="Hours cut at work")
    assert sent.status_code == 303
    page = client.get(f"/my/accounts/{number}/arrangement")
    assert "Waiting for our staff" in page.text and "Withdraw this request" in page.text
    again = propose(client, number)  # one request at a time
    assert again.status_code == 400 and "already has a payment plan or a request waiting" in again.text
    assert requests_in(district) == 1
    with Session(district) as s:
        (item,) = s.scalars(select(ArrangementRequest))
        assert item.installments == 4 and item.down_payment_cents == 2_000 and item.reason == "Hours cut at work"

    client.cookies.clear()
    sign_in(client, "specialist@demo.example")
    assert f'href="/staff/arrangements/{item.id}"' in client.get("/staff/arrangements").text
    page = client.get(f"/staff/arrangements/{item.id}")
    token = csrf_from(page.text)
    refused = client.post(f"/staff/arrangements/{item.id}", data={"csrf_token": token, "decision": "decline"})
    assert refused.status_code == 400 and "why" in refused.context["form"].errors["message"]
    before = len(mail_to(inbox, EMAIL))
    client.post(f"/staff/arrangements/{item.id}", data={"csrf_token": token, "decision": "approve"})
    (answer,) = mail_to(inbox, EMAIL)[before:]
    assert answer["Subject"] == "Your payment plan is approved" and "$20.00" not in body_of(answer).split("-")[0]

    client.cookies.clear()
    sign_in(client, EMAIL)
    page = client.get(f"/my/accounts/{number}/arrangement")
    assert "Your payment plan" in page.text and "Approved" in page.text and "not shut off" in page.text


def test_withdrawing_and_other_peoples_plans(client: TestClient, district: Engine) -> None:
    sign_in(client, EMAIL)
    (number,) = linked_numbers(district, EMAIL)
    assert propose(client, number, installments="3").status_code == 303
    with Session(district) as s:
        item_id = s.scalar(select(ArrangementRequest.id))
    client.cookies.clear()
    sign_in(client, "resident@demo.example")
    token = csrf_from(client.get("/my").text)
    assert client.get(f"/my/accounts/{number}/arrangement").status_code == 404
    assert client.post(f"/my/accounts/{number}/arrangement", data={"csrf_token": token}).status_code == 404
    mine = linked_numbers(district, "resident@demo.example")[0]
    # Another account's request id under one's own account number: not found either.
    assert (
        client.post(f"/my/accounts/{mine}/arrangement/{item_id}/withdraw", data={"csrf_token": token}).status_code
        == 404
    )
    client.cookies.clear()
    sign_in(client, EMAIL)
    page = client.get(f"/my/accounts/{number}/arrangement")
    after = client.post(
        f"/my/accounts/{number}/arrangement/{item_id}/withdraw", data={"csrf_token": csrf_from(page.text)}
    )
    assert "You withdrew the request." in after.text and "Ask for a payment plan" in after.text
