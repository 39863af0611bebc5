"""A resident asks to stop service from a phone, without help, and sees where it stands."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from .conftest import LiveServer
from .test_self_service import sign_up_and_link


def test_a_resident_asks_to_stop_service_and_follows_the_request(page: Page, live_server: LiveServer) -> None:
    number = sign_up_and_link(page, live_server, skip=3)
    page.get_by_role("link", name="Requests").click()
    page.get_by_role("link", name="Stop service").click()
    expect(page.get_by_role("heading", name="Stop service")).to_be_visible()
    page.get_by_label("Account").select_option(number)
    page.get_by_label("Last day of service").fill("2026-12-10")
    page.get_by_label("Street address").fill("77 Harbor Way")
    page.get_by_label("City").fill("Oakland")
    page.get_by_label("State").fill("C")  # a slip
    page.get_by_label("ZIP code").fill("94607")
    page.get_by_label("Phone number").fill("(555) 010-4455")
    page.get_by_role("button", name="Send the request").click()
    expect(page.get_by_text("Please fix the fields marked below. Nothing was sent.")).to_be_visible()
    state = page.get_by_label("State")
    expect(state).to_have_attribute("aria-invalid", "true")
    state.fill("CA")
    page.get_by_role("button", name="Send the request").click()
    expect(page.get_by_text("We received your request.")).to_be_visible()
    expect(page.get_by_role("heading", name="Status: Received")).to_be_visible()
    expect(page.get_by_text("77 Harbor Way, Oakland, CA 94607")).to_be_visible()
