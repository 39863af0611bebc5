"""Every customer page passes axe-core's WCAG 2.1 A and AA rules with no violations, in
English and Spanish, and fits a 360-pixel-wide phone without scrolling sideways."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.adapters.database import make_engine
from portal.billing_core.models import Account, Bill, User, UserAccountLink
from portal.demo import DEMO_PASSWORD

from .conftest import LiveServer

RULES = {"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}}
AXE = Axe()


@pytest.fixture
def narrow(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 360, "height": 740})
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()


def check(page: Page, what: str) -> None:
    results = AXE.run(page, options=RULES)
    problems = [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in results.response["violations"]
    ]
    assert not problems, f"{what} at {page.url}:\n" + "\n".join(problems)
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"{what} at {page.url} is {overflow}px too wide for a 360px phone"
    hidden = cells_outside(page)
    assert not hidden, f"{what} at {page.url} has table cells off the screen: {hidden[:5]}"


def sign_in(page: Page, server: LiveServer, email: str) -> None:
    page.goto(server.url + "/sign-in")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="My accounts")).to_be_visible()


def first_account_and_bill(server: LiveServer, email: str) -> tuple[str, str]:
    engine = make_engine(server.database_url)
    with Session(engine) as s:
        number = s.scalar(
            select(Account.number)
            .join(UserAccountLink, UserAccountLink.account_id == Account.id)
            .join(User, User.id == UserAccountLink.user_id)
            .where(User.email == email)
            .order_by(Account.number)
        )
        bill = s.scalar(
            select(Bill.number)
            .join(Account, Account.id == Bill.account_id)
            .where(Account.number == number, Bill.status == "posted")
            .order_by(Bill.bill_date.desc())
        )
    engine.dispose()
    return number, bill


def test_public_pages_pass_axe(narrow: Page, live_server: LiveServer) -> None:
    for path in ("/sign-in", "/sign-up", "/forgot-password"):
        narrow.goto(live_server.url + path)
        check(narrow, path)
    narrow.goto(live_server.url + "/sign-in")
    narrow.get_by_role("button", name="Sign in").click()  # empty: the error state
    check(narrow, "sign-in with an error")


@pytest.mark.parametrize("language", ["English", "Español"])
def test_every_customer_page_passes_axe(narrow: Page, live_server: LiveServer, language: str) -> None:
    email = "pastdue@demo.example"
    sign_in(narrow, live_server, email)
    if language != "English":
        narrow.get_by_role("button", name=language).click()
        expect(narrow.locator("html")).to_have_attribute("lang", "es")
    number, bill = first_account_and_bill(live_server, email)
    pages = [
        "/my",
        "/my/link",
        f"/my/accounts/{number}",
        f"/my/accounts/{number}/bills/{bill}",
        f"/my/accounts/{number}/bills/{bill}/document",
        f"/my/accounts/{number}/usage",
        f"/my/accounts/{number}/pay",
        f"/my/accounts/{number}/autopay",
        f"/my/accounts/{number}/arrangement",
        "/my/requests",
        "/my/requests/new/start",
        "/my/requests/new/stop",
        "/my/requests/new/transfer",
        "/my/profile",
        "/my/cases",  # issue 16: questions and disputes
        "/my/cases/new",
    ]
    for path in pages:
        narrow.goto(live_server.url + path)
        check(narrow, path)
    # Forms sent back with mistakes: each message next to its field.
    narrow.goto(live_server.url + "/my/requests/new/start")
    narrow.locator("form[action='/my/requests/new/start'] button[type=submit]").click()
    expect(narrow.locator(".error-summary")).to_be_visible()
    check(narrow, "start request with errors")
    narrow.goto(live_server.url + f"/my/accounts/{number}/arrangement")
    narrow.locator("#installments").fill("99")
    narrow.locator("form[action$='/arrangement'] button.secondary").click()
    expect(narrow.locator(".error-summary")).to_be_visible()
    check(narrow, "payment plan with errors")
    narrow.goto(live_server.url + f"/my/accounts/{number}/pay")
    narrow.locator("#choice-other").check()
    narrow.locator("#other_amount").fill("abc")
    narrow.locator("form[action$='/pay'] button[type=submit]").click()
    expect(narrow.locator(".field-error").first).to_be_visible()
    check(narrow, "payment with errors")
    # The card page (Stripe.js fills in the card Element).
    narrow.locator("#choice-balance").check()
    narrow.locator("form[action$='/pay'] button[type=submit]").click()
    expect(narrow.get_by_role("heading", name=re.compile(r"\$"))).to_be_visible()
    expect(narrow.locator("#card-element input").first).to_be_visible()
    check(narrow, "card page")


def speak_in(page: Page, server: LiveServer, email: str, language: str) -> None:
    """Sign in and read the pages in ``language`` (a test before may have left the sign-in
    in the other one)."""
    page.goto(server.url + "/sign-in")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", level=1)).to_be_visible()
    code = "en" if language == "English" else "es"
    if page.locator("html").get_attribute("lang") != code:
        page.get_by_role("button", name=language).click()
    expect(page.locator("html")).to_have_attribute("lang", code)


def cells_outside(page: Page) -> list[str]:
    """Table cells that do not fit on the screen (a column hidden off to the side)."""
    return page.evaluate(
        """() => [...document.querySelectorAll('td, th')]
             .filter(c => c.getBoundingClientRect().right > document.documentElement.clientWidth + 1)
             .map(c => c.textContent.trim().slice(0, 40))"""
    )


@pytest.mark.parametrize("language", ["English", "Español"])
def test_tables_stack_on_a_phone_and_each_cell_says_what_it_is(
    narrow: Page, live_server: LiveServer, language: str
) -> None:
    email = "pastdue@demo.example"
    speak_in(narrow, live_server, email, language)
    number, bill = first_account_and_bill(live_server, email)
    for path in (
        f"/my/accounts/{number}",
        f"/my/accounts/{number}/usage",
        f"/my/accounts/{number}/bills/{bill}",
        f"/my/accounts/{number}/bills/{bill}/document",
    ):
        narrow.goto(live_server.url + path)
        assert narrow.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth") <= 0
        assert not cells_outside(narrow), (path, cells_outside(narrow))
        stacked = narrow.locator("table.stack")
        if path.endswith(("/usage", number, "/document")):
            assert stacked.count() >= 1, path
        for t in range(stacked.count()):
            table = stacked.nth(t)
            # Still a table for a screen reader: its role, and its column headers, are there.
            assert table.evaluate("t => t.tagName") == "TABLE"
            assert table.locator("thead th").count() >= 3
            cells = table.locator("tbody td, tbody th")
            assert cells.count() > 0
            labels = cells.evaluate_all(
                """cells => cells.map(c => {
                     const before = getComputedStyle(c, '::before');
                     const box = c.getBoundingClientRect();
                     return [c.dataset.label || '', before.content, before.display, box.left >= 0 &&
                             box.right <= document.documentElement.clientWidth, getComputedStyle(c).display];
                   })"""
            )
            for label, content, display, inside, cell_display in labels:
                assert label, (path, "a cell without data-label")
                assert content == f'"{label}"' and display == "block" and inside, (path, label, content)
                assert cell_display == "block", (path, label, "not stacked")
    # The bill list says which bills are paid, each under its label.
    narrow.goto(live_server.url + f"/my/accounts/{number}")
    paid_label = "Paid?" if language == "English" else "¿Pagada?"
    assert narrow.locator(f'td[data-label="{paid_label}"]').count() >= 1


def test_long_words_wrap_and_chart_labels_stay_readable(narrow: Page, live_server: LiveServer) -> None:
    email = "resident@demo.example"
    sign_in(narrow, live_server, email)
    number, bill = first_account_and_bill(live_server, email)
    long_email = "a.very.long.name.with.no.spaces.at.all.anywhere" + "@some-long-domain.example.org"
    for path, where in (
        ("/my", "main h2"),
        (f"/my/accounts/{number}", "main p"),
        (f"/my/accounts/{number}/bills/{bill}/document", ".addresses p"),
    ):
        narrow.goto(live_server.url + path)
        narrow.locator(where).first.evaluate("(el, text) => { el.textContent = text; }", long_email)
        overflow = narrow.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, f"{path}: a long email address widens the page by {overflow}px"
    narrow.goto(live_server.url + f"/my/accounts/{number}/usage")
    sizes = narrow.locator("svg.chart text").evaluate_all(
        "ts => ts.map(t => parseFloat(getComputedStyle(t).fontSize) * t.getScreenCTM().a)"
    )
    assert sizes and min(sizes) >= 12, sizes
