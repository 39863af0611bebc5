"""Browser journeys: a live portal on a free port, driven in Debian's Chromium."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
import uvicorn
from playwright.sync_api import Browser, Page, sync_playwright

from portal import observability
from portal.adapters.database import make_engine
from portal.app import create_app
from portal.demo import DEMO_PASSWORD, build_demo
from portal.settings import Settings
from tests.localstripe import PUBLISHABLE_KEY, SECRET_KEY, WEBHOOK_SECRET, localstripe
from tests.smtp import smtp_server

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TODAY = "2026-11-22"
#: What the journeys type that must never reach a log line (issue 17: ops): test cards
#: (localstripe's, in the test files) and passwords (demo, sign-up, set-password, the log test's).
LOG_SECRETS = (
    "4242424242424242",
    "4242 4242 4242 4242",
    "4000002760003184",
    DEMO_PASSWORD,
    "river stone garden",
    "field work all day",
    "log-grep kettle 93",
)


@dataclass(frozen=True)
class LiveServer:
    url: str
    #: Where the server keeps its data, for tests that look something up first.
    database_url: str
    #: What the portal's SMTP server has received.
    inbox: list = field(default_factory=list)
    #: The localstripe server standing in for Stripe (its Stripe.js and webhooks included).
    stripe_url: str = ""
    #: Every log line of the run (the portal's JSON lines), for tests that grep it.
    log_path: str = ""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    db = tmp_path_factory.mktemp("e2e") / "portal.sqlite3"
    url = f"sqlite:///{db}"
    engine = make_engine(url)
    build_demo(engine, accounts=60, seed=11, progress=False, today=TODAY)
    smtp = smtp_server()
    smtp_port, inbox = smtp.__enter__()
    stripe_cm = localstripe()
    stripe = stripe_cm.__enter__()
    port = _free_port()
    stripe.register_webhook("portal", f"http://127.0.0.1:{port}/webhooks/stripe")
    settings = Settings(
        database_url=url,
        secret_key="e2e",
        development=True,
        files_dir=str(tmp_path_factory.mktemp("files")),
        smtp_host="127.0.0.1",
        smtp_port=smtp_port,
        stripe_secret_key=SECRET_KEY,
        stripe_publishable_key=PUBLISHABLE_KEY,
        stripe_webhook_secret=WEBHOOK_SECRET,
        stripe_api_base=stripe.url,
        stripe_js_url=stripe.js_url,
    )
    app = create_app(settings, engine=engine, clock=lambda: datetime(2026, 11, 22, 18, tzinfo=UTC))
    # issue 17: ops: the run's log lines (the portal's JSON, uvicorn's through it) kept in a file
    log_path = tmp_path_factory.mktemp("logs") / "e2e.log"
    log_file = observability.log_to_file(str(log_path))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", log_config=None))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the portal did not start")
        time.sleep(0.05)
    yield LiveServer(f"http://127.0.0.1:{port}", url, inbox, stripe.url, str(log_path))
    server.should_exit = True
    thread.join(timeout=10)
    engine.dispose()
    smtp.__exit__(None, None, None)
    stripe_cm.__exit__(None, None, None)
    # issue 17: ops: not one card number or password the journeys typed is in the run's log.
    logging.getLogger().removeHandler(log_file)
    log_file.close()
    logged = log_path.read_text(encoding="utf-8")
    leaked = [secret for secret in LOG_SECRETS if secret in logged]
    assert not leaked, f"the e2e run's log {log_path} holds what must never be logged: {leaked}"
    assert '"logger": "portal.access"' in logged, "the e2e run wrote no request lines to its log"


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}; scripts/test installs Debian's chromium package")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 390, "height": 844})  # a phone
    pg = context.new_page()
    pg.set_default_timeout(10_000)
    yield pg
    context.close()
