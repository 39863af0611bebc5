"""A CSR records a business contact for an account: a wrong phone is shown next to its field,
the corrected form saves, and the account's history (loaded with htmx) shows before and after.
(Only the other phone and contact name change: nothing another journey reads.)"""

from __future__ import annotations

from playwright.sync_api import Page, expect
from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.adapters.database import make_engine
from portal.billing_core.models import Account

from .conftest import LiveServer
from .test_accessibility import AXE, RULES
from .test_first_slice import sign_in


def test_a_csr_changes_contacts_and_sees_them_in_the_history(page: Page, live_server: LiveServer) -> None:
    with Session(make_engine(live_server.database_url)) as s:
        number = s.scalars(select(Account.number).order_by(Account.number)).all()[3]
    sign_in(page, live_server, "csr@demo.example")
    page.goto(f"{live_server.url}/staff/accounts/{number}")
    page.get_by_role("link", name="Contacts and billing address").click()
    page.get_by_label("Other phone").fill("555")
    page.get_by_label("Contact name").fill("Dana Ortiz, office manager")
    page.get_by_role("button", name="Save the contacts").click()
    expect(page.get_by_role("alert")).to_contain_text("Nothing was changed")
    expect(page.get_by_label("Other phone")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#alt_phone-error")).to_have_text(
        "Enter a phone number with its area code, for example (555) 010-2000."
    )
    page.get_by_label("Other phone").fill("(909) 555-0142")
    page.get_by_role("button", name="Save the contacts").click()
    expect(page.get_by_role("status")).to_have_text("Changed the contacts.")
    page.get_by_role("link", name="Show who changed what on this account").click()
    row = page.locator("#panel-history tr", has_text="Contacts changed").first
    expect(row).to_contain_text("csr@demo.example")
    expect(row).to_contain_text("→ other phone: (909) 555-0142; contact name: Dana Ortiz, office manager")
    page.get_by_role("link", name="Account history").click()  # the tab: the history as a page of its own
    expect(page.get_by_role("heading", name=f"History of account {number}")).to_be_visible()
    assert not AXE.run(page, options=RULES).response["violations"]
