"""A CSR opens a high-bill case from the account page and assigns it to a billing
specialist; the specialist finds it in the cases list, resolves it, writes the high-bill
findings letter from its template (edited before sending), and the letter is listed on the
case with a PDF that opens."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect
from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.adapters.database import make_engine
from portal.billing_core.models import Account, Bill, UserAccountLink

from .conftest import LiveServer
from .test_first_slice import sign_in


def test_a_high_bill_case_is_opened_and_resolved_with_a_letter(page: Page, live_server: LiveServer) -> None:
    engine = make_engine(live_server.database_url)
    with Session(engine) as s:
        linked = select(UserAccountLink.user_id).where(UserAccountLink.account_id == Account.id).exists()
        account = s.scalars(select(Account).where(~linked).order_by(Account.number)).first()
        assert account is not None
        number = account.number
        bill = s.scalars(
            select(Bill).where(Bill.account_id == account.id, Bill.status == "posted").order_by(Bill.bill_date.desc())
        ).first()
        assert bill is not None and bill.number
        bill_number = bill.number
    engine.dispose()

    sign_in(page, live_server, "csr@demo.example")
    page.goto(f"{live_server.url}/staff/accounts/{number}")
    panel = page.locator("#panel-cases")
    expect(panel.get_by_role("heading", name="Cases")).to_be_visible()  # loaded by htmx
    panel.get_by_role("link", name="Open a case on this account").click()
    expect(page.get_by_role("heading", name="Open a case")).to_be_visible()
    page.get_by_label("High-bill investigation (due in 10 business days)").check()
    page.get_by_label("Bill (optional; needed for a bill dispute)").select_option(bill_number)
    page.get_by_label("How the customer reached us").select_option("phone")
    page.get_by_label("Subject").fill("Bill doubled")
    page.get_by_label("What the customer told us").fill("The bill is twice the usual; nobody is home on weekdays.")
    page.get_by_label("Assign to").select_option(label="specialist@demo.example (specialist)")
    page.get_by_role("button", name="Open the case").click()
    expect(page.get_by_role("status")).to_contain_text("opened; due")
    heading = page.get_by_role("heading", level=1)
    expect(heading).to_contain_text("Bill doubled")
    case_number = re.search(r"C-\d{6}", heading.inner_text())
    assert case_number
    page.get_by_role("button", name="Sign out").click()

    sign_in(page, live_server, "specialist@demo.example")
    page.get_by_role("link", name="Cases", exact=True).first.click()
    page.get_by_label("Assigned to").select_option("me")
    page.get_by_role("button", name="Show").click()
    row = page.get_by_role("row").filter(has_text="Bill doubled")
    expect(row).to_contain_text("On time")
    row.get_by_role("link", name=case_number.group(0)).click()
    page.get_by_label("Resolution").fill("The meter is accurate; a toilet leak ran for three weeks.")
    page.get_by_role("button", name="Resolve the case").click()
    expect(page.get_by_role("status")).to_contain_text("Case resolved.")
    page.get_by_label("Letter", exact=True).select_option("high_bill_findings")
    page.get_by_role("button", name="Write the letter").click()
    text = page.get_by_label("Letter text")
    expect(text).to_have_value(re.compile("a toilet leak ran for three weeks"))
    text.fill(text.input_value() + "\nWe enclose a leak repair checklist.")
    page.get_by_role("button", name="Send the letter").click()
    expect(page.get_by_role("status")).to_contain_text("stored")
    letters = page.locator("section", has=page.get_by_role("heading", name="Letters"))
    link = letters.get_by_role("link", name=re.compile(r"Letter \d+ \(PDF\)"))
    expect(link).to_be_visible()
    expect(letters).to_contain_text("High-bill findings")
    pdf = page.request.get(live_server.url + (link.get_attribute("href") or ""))
    assert pdf.ok and pdf.headers["content-type"] == "application/pdf" and pdf.body().startswith(b"%PDF")
