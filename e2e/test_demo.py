"""The demo as a newcomer runs it: ``scripts/run-demo`` with nothing configured, then in
the browser sign up, confirm from the demo outbox, link an account and pay it by test card
through the Stripe stand-in, and see it posted."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from .test_self_service import PASSWORD, fill_card, pay_by_card

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def open_outbox_until(page: Page, url: str, email: str, *texts: str, count: int = 1, wait: float = 20) -> None:
    """Open the outbox until ``count`` emails to ``email`` (with ``texts``) are there: emails
    go out after the page that asked for them has answered, so one may be a moment late."""
    deadline = time.monotonic() + wait
    while True:
        page.goto(url + "/dev/outbox")
        rows = page.get_by_role("row").filter(has_text=email)
        for text in texts:
            rows = rows.filter(has_text=text)
        if rows.count() >= count or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    expect(page.get_by_role("heading", name="Demo outbox")).to_be_visible()
    expect(rows).to_have_count(count)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """``scripts/run-demo`` on a free port, in a folder of its own. Yields the portal's URL
    and what it printed (the banner)."""
    where = tmp_path_factory.mktemp("run-demo")
    port = _free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("STRIPE_", "SMTP_", "PORTAL_", "PUBLIC_URL", "DATABASE_URL", "FILES_DIR"))
    }
    env.update(
        {
            "PORT": str(port),
            "DATABASE_URL": f"sqlite:///{where / 'demo.sqlite3'}",
            "FILES_DIR": str(where / "files"),
            "SECRET_KEY": "e2e-demo",
            "CHROMIUM": os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"),
        }
    )
    log = where / "run-demo.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(ROOT / "scripts" / "run-demo"), "--accounts", "30", "--seed", "3"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the portal and its stand-ins stop together
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("scripts/run-demo did not start:\n" + log.read_text(errors="replace")[-3000:])
            time.sleep(0.2)
        yield url, log.read_text(errors="replace")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def test_the_banner_says_where_everything_is(demo: tuple[str, str]) -> None:
    url, banner = demo
    assert f"Portal      {url}" in banner
    assert f"Outbox      {url}/dev/outbox" in banner
    assert "4242 4242 4242 4242" in banner
    assert "resident@demo.example" in banner and "admin@demo.example" in banner
    assert "demo-password-2026" in banner


def test_a_newcomer_signs_up_confirms_from_the_outbox_links_and_pays(page: Page, demo: tuple[str, str]) -> None:
    url, banner = demo
    number, zip_code, amount = re.search(
        r"link account (\S+) \(service ZIP (\d{5}), amount due \$([\d,.]+)\)", banner
    ).groups()
    email = f"newcomer-{uuid.uuid4().hex[:8]}@example.net"
    page.goto(url + "/sign-in")
    page.get_by_role("link", name="Sign up").click()
    page.get_by_label("Your name").fill("Robin Newcomer")
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Choose a password").fill(PASSWORD)
    page.get_by_label("Type the password again").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    expect(page.get_by_role("heading", name="Check your email")).to_be_visible()

    open_outbox_until(page, url, email)
    page.get_by_role("row").filter(has_text=email).get_by_role("link").click()
    page.get_by_role("link", name=re.compile(r"confirm-email\?token=")).click()
    page.get_by_role("button", name="Confirm my email").click()

    expect(page.get_by_role("heading", name="Link an account")).to_be_visible()
    page.get_by_label("Account number").fill(number)
    page.get_by_label("ZIP code of the service address").fill(zip_code)
    page.get_by_label("Amount due on your latest bill").fill(amount)
    page.get_by_role("button", name="Link this account").click()
    expect(page.get_by_role("heading", name=f"Account {number}")).to_be_visible()

    pay_by_card(page, "4242424242424242")
    expect(page.get_by_role("heading", name="Your payment")).to_be_visible()
    # Posted when the Stripe stand-in's webhook arrives; the page refreshes itself.
    expect(page.get_by_text("Paid.")).to_be_visible(timeout=20_000)
    # And the receipt arrived in the outbox.
    open_outbox_until(page, url, email, "Payment received")

    # Autopay with the same test card, through the Stripe stand-in.
    page.goto(f"{url}/my/accounts/{number}")
    page.get_by_role("link", name=re.compile("^(Set up|Manage) autopay$")).first.click()
    page.get_by_label("Debit or credit card").check()
    page.get_by_label("I agree to this authorization").check()
    page.get_by_role("button", name="Continue").click()
    fill_card(page, "4242424242424242")
    page.get_by_role("button", name="Save and turn on autopay").click()
    expect(page.get_by_text("Autopay is on. We emailed you a copy")).to_be_visible()
    open_outbox_until(page, url, email, count=3)  # confirm, receipt, autopay copy
