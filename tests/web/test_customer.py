import re
from datetime import date

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from portal.billing_core import accounts as accounts_core
from portal.billing_core.models import Account, Bill
from tests.db.test_demo import TODAY

from .conftest import linked_numbers, other_account, sign_in


def test_anonymous_visitors_are_sent_to_sign_in(client: TestClient) -> None:
    response = client.get("/my/accounts/00000018", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/sign-in?next=/my/accounts/00000018"


def test_dashboard_shows_each_linked_account_with_its_figures(client: TestClient, demo_engine: Engine) -> None:
    sign_in(client, "pastdue@demo.example")
    response = client.get("/my")
    assert response.status_code == 200
    (summary,) = response.context["summaries"]
    with Session(demo_engine) as s:
        account = s.scalar(
            select(Account).where(Account.number == linked_numbers(demo_engine, "pastdue@demo.example")[0])
        )
        expected = accounts_core.summarise(s, account, TODAY)
    assert summary.balance_cents == expected.balance_cents > 0
    assert summary.past_due_cents == expected.past_due_cents > 0
    assert summary.days_past_due == expected.days_past_due > 0
    assert summary.due_date == expected.last_bill.due_date
    text = response.text
    assert f"{expected.days_past_due} days late" in text
    assert "Amount due" in text and "Past due" in text and "Due date" in text


def test_landlord_sees_every_linked_account(client: TestClient, demo_engine: Engine) -> None:
    numbers = linked_numbers(demo_engine, "landlord@demo.example")
    assert len(numbers) >= 2
    sign_in(client, "landlord@demo.example")
    response = client.get("/my")
    assert [s.account.number for s in response.context["summaries"]] == numbers


def test_account_page_lists_bills_and_a_bill_shows_its_lines(client: TestClient, demo_engine: Engine) -> None:
    sign_in(client, "resident@demo.example")
    number = linked_numbers(demo_engine, "resident@demo.example")[0]
    page = client.get(f"/my/accounts/{number}")
    assert page.status_code == 200
    bills = page.context["bills"]
    assert len(bills) == 24 and bills[0].bill_date > bills[-1].bill_date
    bill = client.get(f"/my/accounts/{number}/bills/{bills[0].number}")
    assert bill.status_code == 200
    assert bill.template.name == "customer/bill.html"
    groups = bill.context["groups"]
    assert [g[0] for g in groups][:1] == ["water"]
    assert sum(g[2] for g in groups) == bills[0].current_charges_cents
    assert "Service charge (" in bill.text and "CCF × $2.78" in bill.text


def test_another_customers_account_and_bills_are_404(client: TestClient, demo_engine: Engine) -> None:
    sign_in(client, "resident@demo.example")
    theirs = other_account(demo_engine, "resident@demo.example")
    with Session(demo_engine) as s:
        their_bill = s.scalar(select(Bill.number).join(Account).where(Account.number == theirs).limit(1))
    mine = linked_numbers(demo_engine, "resident@demo.example")[0]
    for url in (
        f"/my/accounts/{theirs}",
        f"/my/accounts/{theirs}/bills/{their_bill}",
        f"/my/accounts/{mine}/bills/{their_bill}",
        "/my/accounts/nonsense",
    ):
        response = client.get(url)
        assert response.status_code == 404, url
        assert "Page not found" in response.text


def test_customers_cannot_open_staff_pages(client: TestClient) -> None:
    sign_in(client, "resident@demo.example")
    assert client.get("/staff?q=Oak").status_code == 404
    assert client.get("/staff/accounts/00000018").status_code == 404


def test_the_printable_bill_has_a_stub_with_a_checked_scan_line(client: TestClient, demo_engine: Engine) -> None:
    from portal.billing_core.numbers import scan_line_valid

    sign_in(client, "resident@demo.example")
    number = linked_numbers(demo_engine, "resident@demo.example")[0]
    bills = client.get(f"/my/accounts/{number}").context["bills"]
    page = client.get(f"/my/accounts/{number}/bills/{bills[0].number}/document")
    assert page.status_code == 200 and page.template.name == "bill_document.html"
    doc = page.context["doc"]
    assert doc.scan_line.startswith(f"{number} {bills[0].total_due_cents:010d} ") and scan_line_valid(doc.scan_line)
    assert len(doc.history) == 13 and all(q >= 0 for _d, q in doc.history)
    assert "Return this part with your payment" in page.text and "<svg" in page.text
    theirs = other_account(demo_engine, "resident@demo.example")
    with Session(demo_engine) as s:
        their_bill = s.scalar(select(Bill.number).join(Account).where(Account.number == theirs).limit(1))
    assert client.get(f"/my/accounts/{theirs}/bills/{their_bill}/document").status_code == 404
    assert client.get(f"/my/accounts/{number}/bills/{their_bill}/document").status_code == 404


def test_the_dashboard_says_what_happens_next(client: TestClient, demo_engine: Engine) -> None:
    sign_in(client, "pastdue@demo.example")
    home = client.get("/my")
    (summary,) = home.context["summaries"]
    outlook = home.context["outlooks"][summary.account.number]
    assert outlook.state == "past_due" and outlook.earliest_shutoff.weekday() < 5
    assert (outlook.earliest_shutoff - summary.aging.oldest_past_due).days >= 60
    assert "cannot be shut off for nonpayment before" in home.text
    assert "payment plan of up to 12 months" in home.text
    sign_in(client, "resident@demo.example")
    home = client.get("/my")
    assert "shut off" not in home.text
    assert "Paperless billing is" in home.text and "Autopay is" in home.text


def test_paperless_on_and_off_is_audited(client: TestClient, demo_engine: Engine) -> None:
    from portal.billing_core.models import AuditEvent

    from .conftest import csrf_from

    sign_in(client, "resident@demo.example")
    number = linked_numbers(demo_engine, "resident@demo.example")[0]
    with Session(demo_engine) as s:
        was = s.scalar(select(Account.paperless).where(Account.number == number))
    page = client.get(f"/my/accounts/{number}")
    for value in ("off" if was else "on", "on" if was else "off"):
        response = client.post(
            f"/my/accounts/{number}/paperless", data={"csrf_token": csrf_from(page.text), "paperless": value}
        )
        assert response.status_code == 200 and "Paperless billing is " + value in response.text
        with Session(demo_engine) as s:
            assert s.scalar(select(Account.paperless).where(Account.number == number)) is (value == "on")
    with Session(demo_engine) as s:
        assert s.scalar(select(AuditEvent.id).where(AuditEvent.action == "account.paperless")) is not None
    other = other_account(demo_engine, "resident@demo.example")
    assert (
        client.post(
            f"/my/accounts/{other}/paperless", data={"csrf_token": csrf_from(page.text), "paperless": "on"}
        ).status_code
        == 404
    )


def test_each_bill_says_whether_it_is_paid_from_the_ledger(client: TestClient, demo_engine: Engine) -> None:
    from portal.billing_core import bill_status

    sign_in(client, "pastdue@demo.example")
    (number,) = linked_numbers(demo_engine, "pastdue@demo.example")
    page = client.get(f"/my/accounts/{number}")
    bills, statuses = page.context["bills"], page.context["statuses"]
    states = [statuses[b.id].state for b in bills]
    # Months behind: the newest bills are open, the oldest were paid.
    assert states[0] == "open" and states[-1] == "paid", states
    assert {statuses[b.id].bill.id for b in bills} == {b.id for b in bills}
    # What is open on the bills is the balance (every charge in the demo is a bill).
    summary = page.context["summary"]
    assert sum(s.open_cents for s in statuses.values()) == summary.balance_cents > 0
    cells = re.findall(r'<td data-label="[^"]*">(.*?)</td>\s*</tr>', page.text, re.S)
    assert len(cells) == len(bills)
    for bill, cell in zip(bills, cells, strict=True):
        word = {"paid": ">Paid<", "partly_paid": ">Partly paid<", "open": ">Open<"}[statuses[bill.id].state]
        assert word in cell, (bill.number, cell)
    # Each bill's page says it too.
    latest = client.get(f"/my/accounts/{number}/bills/{bills[0].number}")
    assert latest.context["status"].state == "open" and ">Open<" in latest.text
    oldest = client.get(f"/my/accounts/{number}/bills/{bills[-1].number}")
    assert oldest.context["status"].state == "paid" and ">Paid<" in oldest.text
    with Session(demo_engine) as s:
        account = s.scalar(select(Account).where(Account.number == number))
        assert bill_status.past_due(s, account.id, TODAY).total_cents == summary.past_due_cents


def test_the_past_due_amount_lists_the_bills_it_is_made_of(client: TestClient, demo_engine: Engine) -> None:
    sign_in(client, "pastdue@demo.example")
    home = client.get("/my")
    (summary,) = home.context["summaries"]
    past_due = home.context["past_dues"][summary.account.number]
    assert past_due.bills and past_due.other_cents == 0
    assert sum(s.open_cents for s in past_due.bills) == summary.past_due_cents
    assert all(s.bill.due_date < TODAY for s in past_due.bills)
    for s in past_due.bills:
        assert f'href="/my/accounts/{summary.account.number}/bills/{s.bill.number}"' in home.text
    page = client.get(f"/my/accounts/{summary.account.number}")
    assert [s.bill.id for s in page.context["past_due"].bills] == [s.bill.id for s in past_due.bills]
    assert "past due is from:" in page.text
    # Nothing past due: no list.
    sign_in(client, "resident@demo.example")
    home = client.get("/my")
    assert "past due is from:" not in home.text


def _next_steps(**context: object) -> str:
    """The dashboard's "What happens next" for a made-up account."""
    from portal import i18n
    from portal.templating import make_templates

    with i18n.use(context.pop("language", "en")):  # type: ignore[arg-type]
        return make_templates().env.get_template("customer/_next.html").render(agency_phone="(555) 010-2000", **context)


def _account(autopay: bool = False):  # type: ignore[no-untyped-def]
    from types import SimpleNamespace

    return SimpleNamespace(number="00000018", autopay=autopay, paperless=False)


def test_ask_for_a_payment_plan_is_hidden_while_one_is_pending() -> None:
    from types import SimpleNamespace

    from portal.billing_core import delinquency

    outlook = delinquency.outlook(50_000, 30_000, date(2026, 8, 1), date(2026, 12, 10), date(2026, 11, 22))
    summary = SimpleNamespace(account=_account(), amount_due_cents=50_000, past_due_cents=30_000)
    none = _next_steps(summary=summary, outlook=outlook, plan=None, autopay_outlook=None)
    assert "Ask for a payment plan</a>" in none
    pending = _next_steps(summary=summary, outlook=outlook, plan=SimpleNamespace(status="submitted"))
    assert "Your payment plan request is waiting for our staff." in pending
    assert "Ask for a payment plan" not in pending
    approved = _next_steps(summary=summary, outlook=outlook, plan=SimpleNamespace(status="approved"))
    assert "You have a payment plan." in approved and "Ask for a payment plan" not in approved


def test_a_bill_from_before_autopay_is_still_the_residents_to_pay() -> None:
    from datetime import UTC, datetime
    from types import SimpleNamespace
    from zoneinfo import ZoneInfo

    from portal.billing_core import autopay, delinquency
    from portal.services.customers import bill_before_autopay

    tz = ZoneInfo("America/Los_Angeles")
    bill = SimpleNamespace(bill_date=date(2026, 11, 7), due_date=date(2026, 11, 28))
    enrolled = SimpleNamespace(authorized_at=datetime(2026, 11, 15, 18, tzinfo=UTC))
    summary = SimpleNamespace(
        account=_account(autopay=True), amount_due_cents=8_000, past_due_cents=0, balance_cents=8_000
    )
    summary.last_bill = bill
    outlook = autopay.Outlook(enrolled)  # type: ignore[arg-type]
    assert bill_before_autopay(summary, outlook, tz)  # type: ignore[arg-type]
    # Enrolled before the bill went out: autopay takes it.
    earlier = autopay.Outlook(SimpleNamespace(authorized_at=datetime(2026, 11, 1, 18, tzinfo=UTC)))  # type: ignore[arg-type]
    assert not bill_before_autopay(summary, earlier, tz)  # type: ignore[arg-type]
    assert not bill_before_autopay(summary, autopay.Outlook(None), tz)  # type: ignore[arg-type]
    due = delinquency.outlook(8_000, 0, None, bill.due_date, date(2026, 11, 22))
    text = _next_steps(summary=summary, outlook=due, autopay_outlook=outlook, bill_before_autopay=True)
    assert "This bill is still yours to pay: it came before you turned on autopay. Pay $80.00 by" in text
    assert "Autopay is on from your next bill" in text and "Nothing to do" not in text
    spanish = _next_steps(
        summary=summary, outlook=due, autopay_outlook=outlook, bill_before_autopay=True, language="es"
    )
    assert "Todavía le toca pagar esta factura" in spanish


def test_the_favicon_is_served(client: TestClient) -> None:
    icon = client.get("/favicon.ico")
    assert icon.status_code == 200 and icon.headers["content-type"] == "image/x-icon"
    assert icon.content[:4] == b"\x00\x00\x01\x00"  # an ICO file
    page = client.get("/sign-in")
    assert '<link rel="icon" href="/static/favicon.svg"' in page.text.replace("https://testserver", "")
    assert client.get("/static/favicon.svg").status_code == 200
