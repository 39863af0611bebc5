"""A new resident, as a new user would: sign up, confirm, link the account, pay by card
(also a 3-D Secure card), see it pending and then paid; and Spanish."""

from __future__ import annotations

import re
import time
import uuid
from decimal import Decimal

from playwright.sync_api import Page, expect
from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.adapters.database import make_engine
from portal.billing_core import posting
from portal.billing_core.models import Account, Bill, Premise, UserAccountLink

from .conftest import LiveServer

PASSWORD = "river stone garden"


def _unlinked_account(server: LiveServer, skip: int = 0) -> tuple[str, str, str]:
    """An account nobody has linked yet that has something to pay."""
    engine = make_engine(server.database_url)
    with Session(engine) as s:
        candidates = s.execute(
            select(Account.id, Account.number, Premise.zip)
            .join(Premise, Premise.id == Account.premise_id)
            .where(Account.id.not_in(select(UserAccountLink.account_id)), Account.status == "active")
            .order_by(Account.number.desc())
        ).all()
        owing = [(n, z) for account_id, n, z in candidates if posting.account_balance(s, account_id) > 0]
        number, zip_code = owing[skip]
        total = s.scalar(
            select(Bill.total_due_cents)
            .join(Account, Account.id == Bill.account_id)
            .where(Account.number == number, Bill.status == "posted")
            .order_by(Bill.bill_date.desc(), Bill.id.desc())
            .limit(1)
        )
    engine.dispose()
    return number, zip_code, f"{Decimal(total) / 100:.2f}"


def _email_link(server: LiveServer, to: str, path: str, wait: float = 15) -> str:
    """The link in the newest email to ``to``. Emails go out after the page has answered
    (sign-up and reset send theirs in the background), so wait for it a little."""
    deadline = time.monotonic() + wait
    while True:
        for message in reversed(server.inbox):
            if message["To"] == to:
                body = message.get_payload(decode=True).decode()
                match = re.search(r"https?://[^/\s]+(" + re.escape(path) + r"\S*)", body)
                if match:
                    return server.url + match.group(1)
        if time.monotonic() > deadline:
            raise AssertionError(f"no email to {to} with a link to {path}")
        time.sleep(0.1)


def sign_up_and_link(page: Page, server: LiveServer, skip: int = 0) -> str:
    email = f"resident-{uuid.uuid4().hex[:8]}@example.net"
    page.goto(server.url + "/sign-in")
    page.get_by_role("link", name="Sign up").click()
    page.get_by_label("Your name").fill("Robin Newcomer")
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Choose a password").fill(PASSWORD)
    page.get_by_label("Type the password again").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    expect(page.get_by_role("heading", name="Check your email")).to_be_visible()
    page.goto(_email_link(server, email, "/confirm-email"))
    page.get_by_role("button", name="Confirm my email").click()
    expect(page.get_by_role("heading", name="Link an account")).to_be_visible()
    number, zip_code, amount = _unlinked_account(server, skip)
    page.get_by_label("Account number").fill(number)
    page.get_by_label("ZIP code of the service address").fill(zip_code)
    page.get_by_label("Amount due on your latest bill").fill(amount)
    page.get_by_role("button", name="Link this account").click()
    expect(page.get_by_role("heading", name=f"Account {number}")).to_be_visible()
    return number


def pay_by_card(page: Page, card_number: str) -> None:
    page.get_by_role("link", name="Pay now").click()
    expect(page.get_by_role("heading", name="Pay your bill")).to_be_visible()
    page.get_by_label("Debit or credit card").check()
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", name=re.compile(r"^Pay \$[\d,.]+ by card$"))).to_be_visible()
    fill_card(page, card_number)
    page.get_by_role("button", name=re.compile(r"^Pay \$")).click()


def fill_card(page: Page, card_number: str) -> None:
    # localstripe's stand-in card Element: plain inputs named by placeholder.
    card = page.locator("#card-element")
    card.get_by_placeholder("number").fill(card_number)
    card.get_by_placeholder("exp_month").fill("12")
    card.get_by_placeholder("exp_year").fill("30")
    card.get_by_placeholder("cvc").fill("123")
    card.get_by_placeholder("postal_code").fill("91710")


def test_a_new_resident_signs_up_links_and_pays_by_card(page: Page, live_server: LiveServer) -> None:
    sign_up_and_link(page, live_server)
    pay_by_card(page, "4242424242424242")
    expect(page.get_by_role("heading", name="Your payment")).to_be_visible()
    # Pending until Stripe's webhook arrives; the page refreshes itself and then says paid.
    expect(page.get_by_text("Paid.")).to_be_visible(timeout=15_000)
    page.get_by_role("link", name=re.compile(r"^← Account")).click()
    expect(page.get_by_text("Nothing past due")).to_be_visible()


def test_a_3d_secure_card_is_confirmed_by_the_card_holder(page: Page, live_server: LiveServer) -> None:
    sign_up_and_link(page, live_server, skip=1)
    pay_by_card(page, "4000002760003184")
    # The bank asks twice: once to save the card, once for the payment.
    page.get_by_role("button", name="Complete authentication").click()
    page.get_by_role("button", name="Complete authentication").click()
    expect(page.get_by_role("heading", name="Your payment")).to_be_visible()
    expect(page.get_by_text("Paid.")).to_be_visible(timeout=15_000)


def test_a_visitor_reads_the_portal_in_spanish(page: Page, live_server: LiveServer) -> None:
    page.goto(live_server.url + "/sign-in")
    page.get_by_role("button", name="Español").click()
    expect(page.get_by_role("heading", name="Iniciar sesión")).to_be_visible()
    expect(page.get_by_label("Correo electrónico")).to_be_visible()
    expect(page.locator("html")).to_have_attribute("lang", "es")
    page.get_by_role("button", name="English").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
