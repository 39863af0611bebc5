from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from portal.app import create_app
from portal.billing_core.models import (
    Account,
    Bill,
    BillLine,
    BillUsage,
    Customer,
    FinalBillReview,
    Meter,
    MeterRead,
    Premise,
    Service,
    ServiceRequest,
)
from portal.demo import build_demo
from tests.db.test_demo import TODAY

from .conftest import CLOCK, SETTINGS, csrf_from, sign_in


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


# --- Final bills held for review, and void-and-rebill with a corrected read ------------------


@pytest.fixture
def district(engine: Engine) -> Engine:
    build_demo(engine, accounts=6, seed=5, progress=False, today=TODAY)
    return engine


@pytest.fixture
def office(district: Engine, smtp) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    import dataclasses

    config = dataclasses.replace(SETTINGS, smtp_host="127.0.0.1", smtp_port=smtp[0])
    with TestClient(create_app(config, engine=district, clock=CLOCK), base_url="https://testserver") as c:
        yield c


def an_account_with_one_meter(engine: Engine) -> tuple[str, int, Decimal]:
    with Session(engine) as s:
        for account in s.scalars(select(Account).where(Account.status == "active").order_by(Account.id)):
            meters = set(
                s.scalars(
                    select(Service.meter_id).where(Service.account_id == account.id, Service.meter_id.is_not(None))
                )
            )
            if len(meters) == 1:
                (meter_id,) = meters
                last = s.scalar(
                    select(MeterRead.value).where(MeterRead.meter_id == meter_id).order_by(MeterRead.read_on.desc())
                )
                return account.number, meter_id, last
    raise AssertionError("no account with one meter")


def post_form(client: TestClient, url: str, page: str, data: dict):  # type: ignore[no-untyped-def]
    token = csrf_from(client.get(page).text)
    return client.post(url, data={"csrf_token": token, **data}, follow_redirects=False)


def test_an_absurd_final_read_is_held_on_the_account_page_and_in_the_list(office: TestClient, district: Engine) -> None:
    number, meter_id, last = an_account_with_one_meter(district)
    page, url = f"/staff/accounts/{number}", f"/staff/accounts/{number}/stop"
    with Session(district) as s:
        bills = s.scalar(select(func.count(Bill.id)))
    sign_in(office, "specialist@demo.example")
    held = post_form(office, url, page, {"stop_on": TODAY.isoformat(), f"read-{meter_id}": str(last + 40000)})
    assert held.status_code == 303 and held.headers["location"].endswith("#held-heading")
    account_page = office.get(page)
    assert (
        "Final bill held for review" in account_page.text and "held for review (use is much higher" in account_page.text
    )
    assert "Use is much higher than this account&#39;s average" in account_page.text
    assert "Stop service and send the final bill" not in account_page.text  # one stop at a time
    assert "Approve and post the final bill" not in account_page.text  # a supervisor's step
    assert f'href="/staff/accounts/{number}#held-heading"' in office.get("/staff/requests").text
    with Session(district) as s:
        assert s.scalar(select(func.count(Bill.id))) == bills
        assert s.scalar(select(Account.status).where(Account.number == number)) == "active"
    assert post_form(office, url, page, {"action": "approve"}).status_code == 403
    # The specialist corrects the read; a reason is required.
    no_reason = post_form(office, url, page, {"action": "correct", f"correct-{meter_id}": str(last + 4)})
    assert no_reason.status_code == 400 and "Say why" in no_reason.context["review_form"].errors["reason"]
    too_big = post_form(office, url, page, {"action": "correct", f"correct-{meter_id}": "1E+1000000", "reason": "x"})
    assert too_big.status_code == 400 and f"correct-{meter_id}" in too_big.context["review_form"].errors
    fixed = post_form(
        office, url, page, {"action": "correct", f"correct-{meter_id}": str(last + 4), "reason": "an extra digit"}
    )
    assert fixed.status_code == 303 and "an extra digit" in office.get(page).text
    office.cookies.clear()
    sign_in(office, "supervisor@demo.example")
    posted = post_form(office, url, page, {"action": "approve"})
    assert posted.status_code == 303, posted.text
    bill = office.get(posted.headers["location"]).context["bill"]
    # Through the last day of service (today), dated the day after it.
    assert (bill.period_end, bill.bill_date) == (TODAY + timedelta(days=1), TODAY + timedelta(days=1))
    with Session(district) as s:
        assert s.scalar(select(FinalBillReview.status)) == "posted"
        assert s.scalar(select(Account.status).where(Account.number == number)) == "final"
    assert "No final bills are held." in office.get("/staff/requests").text


def test_a_future_stop_is_held_and_its_request_is_not_done(office: TestClient, district: Engine) -> None:
    from .conftest import linked_numbers
    from .test_requests import CONTACT, EMAIL, FORWARD, ask

    sign_in(office, EMAIL)
    (number, *_) = linked_numbers(district, EMAIL)
    stop_on = (TODAY + timedelta(days=10)).isoformat()
    detail = ask(office, "stop", account=number, stop_on=stop_on, **FORWARD, **CONTACT).headers["location"]
    with Session(district) as s:
        account_id = s.scalar(select(Account.id).where(Account.number == number))
        reads = {
            f"read-{m}": str(
                s.scalar(select(MeterRead.value).where(MeterRead.meter_id == m).order_by(MeterRead.read_on.desc())) + 3
            )
            for m in s.scalars(
                select(Service.meter_id).where(Service.account_id == account_id, Service.meter_id.is_not(None))
            )
        }
    office.cookies.clear()
    sign_in(office, "supervisor@demo.example")
    page, url = f"/staff/accounts/{number}", f"/staff/accounts/{number}/stop"
    assert 'type="date"' in office.get(page).text and "Last day of service" in office.get(page).text
    held = post_form(office, url, page, {"stop_on": stop_on, **reads})
    assert held.status_code == 303
    assert "The last day of service is still ahead" in office.get(page).text
    early = post_form(office, url, page, {"action": "approve"})
    assert early.status_code == 400 and "still ahead" in early.context["review_form"].errors["review"]
    with Session(district) as s:
        request = s.get(ServiceRequest, int(detail.rsplit("/", 1)[1]))
        assert request.status != "completed"
        assert s.scalar(select(Account.status).where(Account.id == account_id)) == "active"


def test_void_and_rebill_takes_the_corrected_read_and_keeps_the_final_proration(
    office: TestClient, district: Engine
) -> None:
    number, meter_id, last = an_account_with_one_meter(district)
    page, url = f"/staff/accounts/{number}", f"/staff/accounts/{number}/stop"
    sign_in(office, "supervisor@demo.example")
    done = post_form(
        office, url, page, {"stop_on": (TODAY - timedelta(days=1)).isoformat(), f"read-{meter_id}": str(last + 3)}
    )
    assert done.status_code == 303, done.text
    bill_page = done.headers["location"]
    old = office.get(bill_page).context["bill"]
    assert f'<label for="read-{meter_id}">Corrected read of meter' in office.get(bill_page).text
    void = f"{bill_page}/void"
    wrong = post_form(office, void, bill_page, {"reason": "misread", f"read-{meter_id}": str(last - 500)})
    assert wrong.status_code == 400 and f'id="read-{meter_id}-error"' in wrong.text
    rebilled = post_form(office, void, bill_page, {"reason": "final read misread", f"read-{meter_id}": str(last + 1)})
    assert rebilled.status_code == 303, rebilled.text
    new = office.get(rebilled.headers["location"]).context["bill"]
    assert (new.period_start, new.period_end) == (old.period_start, old.period_end)
    with Session(district) as s:

        def fixed(bill_id: int) -> list[tuple[str, int]]:
            lines = s.scalars(select(BillLine).where(BillLine.bill_id == bill_id))
            return sorted((ln.description, ln.amount_cents) for ln in lines if "prorated" in ln.description)

        # Still prorated by the days of the final period (17 of 30 days: 56.7%).
        assert len(fixed(old.id)) >= 2 and fixed(new.id) == fixed(old.id)
        usage = s.scalar(select(BillUsage).where(BillUsage.bill_id == new.id))
        assert usage.current_value == last + 1 and usage.quantity < 3 * max(Decimal(1), usage.quantity)
        old_usage = s.scalar(select(BillUsage).where(BillUsage.bill_id == old.id))
        assert usage.quantity < old_usage.quantity


@pytest.mark.parametrize("digits", ["arabic-indic", "full-width", "exponent"])
def test_a_final_read_in_anything_but_plain_ascii_digits_is_refused(
    office: TestClient, district: Engine, digits: str
) -> None:
    number, meter_id, last = an_account_with_one_meter(district)
    plausible = str(int(last) + 3)  # a read that would post, written another way
    typed = {
        "arabic-indic": plausible.translate({ord(d): chr(0x0660 + int(d)) for d in "0123456789"}),
        "full-width": plausible.translate({ord(d): chr(0xFF10 + int(d)) for d in "0123456789"}),
        "exponent": f"{plausible}e0",
    }[digits]
    page, url = f"/staff/accounts/{number}", f"/staff/accounts/{number}/stop"
    sign_in(office, "specialist@demo.example")
    refused = post_form(office, url, page, {"stop_on": TODAY.isoformat(), f"read-{meter_id}": typed})
    assert refused.status_code == 400 and f'id="read-{meter_id}-error"' in refused.text
    with Session(district) as s:
        assert s.scalar(select(Account.status).where(Account.number == number)) == "active"
