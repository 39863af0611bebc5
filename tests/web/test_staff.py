import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from portal.billing_core.models import Account, Customer, Meter, Premise, Service

from .conftest import sign_in


def some_account(engine: Engine) -> tuple[str, str, str, str]:
    with Session(engine) as s:
        row = s.execute(
            select(Account.number, Customer.name, Premise.address_line1, Meter.serial)
            .join(Customer, Customer.id == Account.customer_id)
            .join(Premise, Premise.id == Account.premise_id)
            .join(Service, Service.account_id == Account.id)
            .join(Meter, Meter.id == Service.meter_id)
            .order_by(Account.id.desc())
            .limit(1)
        ).one()
    return tuple(row)  # type: ignore[return-value]


@pytest.mark.parametrize("by", ["number", "name", "address", "serial"])
def test_staff_find_accounts(client: TestClient, demo_engine: Engine, by: str) -> None:
    number, name, address, serial = some_account(demo_engine)
    query = {"number": number, "name": name.split()[-1].lower(), "address": address[-12:], "serial": serial}[by]
    sign_in(client, "csr@demo.example")
    response = client.get("/staff", params={"q": query})
    assert response.status_code == 200
    assert number in [a.number for a in response.context["results"]]


def test_search_answers_htmx_with_the_fragment(client: TestClient, demo_engine: Engine) -> None:
    number, *_ = some_account(demo_engine)
    sign_in(client, "specialist@demo.example")
    response = client.get("/staff", params={"q": number}, headers={"HX-Request": "true"})
    assert response.template.name == "staff/_results.html"
    assert "HX-Request" in response.headers["vary"]
    assert "<html" not in response.text and number in response.text


def test_search_with_no_match_says_so(client: TestClient) -> None:
    sign_in(client, "csr@demo.example")
    response = client.get("/staff", params={"q": "zzzz-no-such"})
    assert response.context["results"] == []
    assert "No accounts match" in response.text


def test_account_view_shows_everything_with_a_running_balance(client: TestClient, demo_engine: Engine) -> None:
    number, name, address, serial = some_account(demo_engine)
    sign_in(client, "supervisor@demo.example")
    response = client.get(f"/staff/accounts/{number}")
    assert response.status_code == 200
    ctx = response.context
    assert ctx["account"].number == number
    assert [m.serial for m in ctx["meters"]] == [serial]
    ledger = ctx["ledger"]
    assert ledger[0].running_balance_cents == ctx["summary"].balance_cents
    # Newest first; each row's balance is the one below it plus its amount.
    for newer, older in zip(ledger, ledger[1:]):
        assert newer.running_balance_cents == older.running_balance_cents + newer.amount_cents
    for text in (name, address, serial, "Ledger", "Water", "Sewer"):
        assert text in response.text
    bill = ctx["bills"][0]
    page = client.get(f"/staff/accounts/{number}/bills/{bill.number}")
    assert page.status_code == 200 and bill.number in page.text
    document = client.get(f"/staff/accounts/{number}/bills/{bill.number}/document")
    assert document.status_code == 200 and document.context["doc"].bill.number == bill.number


def test_unknown_account_is_404(client: TestClient) -> None:
    sign_in(client, "csr@demo.example")
    assert client.get("/staff/accounts/99999999").status_code == 404
