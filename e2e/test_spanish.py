"""The whole "done when" path in Spanish, on a phone: sign up, confirm, link the account,
pay it, set up autopay and ask to stop service. Every name the test looks for is the
Spanish catalog's own translation, so it reads the pages as a Spanish speaker does."""

from __future__ import annotations

import re
import uuid
from email.header import decode_header, make_header

from playwright.sync_api import Page, expect

from portal.i18n import translations

from .conftest import LiveServer
from .test_self_service import PASSWORD, _email_link, _unlinked_account, fill_card


def es(message: str, **params: object) -> str:
    text = translations("es").gettext(message)
    assert text != message, f"no Spanish for {message!r}"
    return text % params if params else text


def test_a_spanish_speaker_does_it_all_in_spanish(page: Page, live_server: LiveServer) -> None:
    page.goto(live_server.url + "/sign-in")
    page.get_by_role("button", name="Español").click()
    expect(page.locator("html")).to_have_attribute("lang", "es")
    page.get_by_role("link", name=es("Sign up"), exact=True).click()
    email = f"vecina-{uuid.uuid4().hex[:8]}@example.net"
    page.get_by_label(es("Your name")).fill("Rosa Vecina")
    page.get_by_label(es("Email address")).fill(email)
    page.get_by_label(es("Choose a password")).fill(PASSWORD)
    page.get_by_label(es("Type the password again")).fill(PASSWORD)
    page.get_by_role("button", name=es("Sign up"), exact=True).click()
    expect(page.get_by_role("heading", name=es("Check your email"))).to_be_visible()
    confirm = _email_link(live_server, email, "/confirm-email")
    page.goto(confirm)
    page.get_by_role("button", name=es("Confirm my email")).click()
    number, zip_code, amount = _unlinked_account(live_server, skip=4)
    page.get_by_label(es("Account number")).fill(number)
    page.get_by_label(es("ZIP code of the service address")).fill(zip_code)
    page.get_by_label(es("Amount due on your latest bill")).fill(amount)
    page.get_by_role("button", name=es("Link this account")).click()
    expect(page.get_by_role("heading", name=es("Account %(number)s", number=number))).to_be_visible()

    # Pay by card.
    page.get_by_role("link", name=es("Pay now")).click()
    page.get_by_label(es("Debit or credit card")).check()
    page.get_by_role("button", name=es("Continue")).click()
    fill_card(page, "4242424242424242")
    page.get_by_role("button", name=re.compile("^" + re.escape(es("Pay %(amount)s", amount="")))).click()
    expect(page.get_by_role("heading", name=es("Your payment"))).to_be_visible()
    expect(page.get_by_text(es("Paid."))).to_be_visible(timeout=15_000)

    # Autopay.
    page.goto(f"{live_server.url}/my/accounts/{number}/autopay")
    page.get_by_label(es("I agree to this authorization")).check()
    page.get_by_role("button", name=es("Continue")).click()
    fill_card(page, "4242424242424242")
    page.get_by_role("button", name=es("Save and turn on autopay")).click()
    expect(page.get_by_text(es("Autopay is on. We emailed you a copy of what you agreed to."))).to_be_visible()

    # Stop service.
    page.get_by_role("link", name=es("Requests")).click()
    page.get_by_role("link", name=es("Stop service")).click()
    page.get_by_label(es("Last day of service")).fill("2026-12-12")
    page.get_by_label(es("Street address")).fill("5 Calle Luna")
    page.get_by_label(es("City")).fill("Pomona")
    page.get_by_label(es("State"), exact=True).fill("CA")
    page.get_by_label(es("ZIP code"), exact=True).fill("91766")
    page.get_by_label(es("Phone number")).fill("(555) 010-3344")
    page.get_by_role("button", name=es("Send the request")).click()
    expect(page.get_by_text(es("We received your request. We will email you when it is scheduled."))).to_be_visible()
    subjects = {
        " ".join(str(make_header(decode_header(m["Subject"]))).split()) for m in live_server.inbox if m["To"] == email
    }
    assert {es("Payment received: thank you"), es("Autopay is on")} <= subjects, subjects
