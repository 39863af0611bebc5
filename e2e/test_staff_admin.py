"""An administrator invites a field worker, who chooses a password from the emailed link and
is signed in; the administrator turns the sign-in off and the worker's next click is
refused; the audit trail shows both."""

from __future__ import annotations

from playwright.sync_api import Browser, Page, expect

from .conftest import LiveServer
from .test_accessibility import check
from .test_first_slice import sign_in
from .test_self_service import _email_link


def test_invite_set_password_turn_off_and_audit(page: Page, browser: Browser, live_server: LiveServer) -> None:
    sign_in(page, live_server, "admin@demo.example")
    page.get_by_role("link", name="Staff sign-ins").click()
    expect(page.get_by_role("heading", name="Staff sign-ins")).to_be_visible()
    check(page, "the staff list")
    page.get_by_label("Email address").fill("new.field@demo.example")
    page.get_by_label("Name (optional)").fill("Robin Field")
    page.get_by_label("Role").select_option(label="Field staff")
    page.get_by_role("button", name="Send the invitation").click()
    expect(page.get_by_role("status")).to_contain_text("Invited new.field@demo.example")
    check(page, "a staff member's page")

    worker = browser.new_context(viewport={"width": 390, "height": 844}).new_page()
    worker.goto(_email_link(live_server, "new.field@demo.example", "/set-password"))
    check(worker, "the set-password page")
    worker.get_by_label("Password", exact=True).fill("field work all day")
    worker.get_by_label("Type the password again").fill("field work all day")
    worker.get_by_role("button", name="Save my password").click()
    expect(worker.get_by_role("heading", name="Find an account")).to_be_visible()  # signed in

    page.reload()
    page.get_by_role("button", name="Turn off this sign-in").click()
    expect(page.get_by_role("status")).to_contain_text("Turned off new.field@demo.example; 1 session ended")
    worker.reload()
    expect(worker.get_by_role("button", name="Sign in")).to_be_visible()

    page.get_by_role("link", name="Audit trail").first.click()
    page.get_by_label("Person").fill("admin@demo.example")
    page.get_by_label("Kind").fill("user")
    page.get_by_role("button", name="Search").click()
    for what in ("Sign-in turned off", "Staff member invited"):
        expect(page.get_by_role("row").filter(has_text=what).first).to_be_visible()
    check(page, "the audit trail")
    worker.context.close()
