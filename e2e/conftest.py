"""Browser journeys: a live portal on a free port, driven in Debian's Chromium."""

from __future__ import annotations

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

from portal.adapters.database import make_engine
from portal.app import create_app
from portal.demo import build_demo
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


@dataclass(frozen=True)
class LiveServer:
    url: str
    #: Where the server keeps its data, for tests that look something up first.
    database_url: str
    #: What the portal's SMTP server has received.
    inbox: list = field(default_factory=list)
    #: The localstripe server standing in for Stripe (its Stripe.js and webhooks included).
    stripe_url: str = ""


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
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the portal did not start")
        time.sleep(0.05)
    yield LiveServer(f"http://127.0.0.1:{port}", url, inbox, stripe.url)
    server.should_exit = True
    thread.join(timeout=10)
    engine.dispose()
    smtp.__exit__(None, None, None)
    stripe_cm.__exit__(None, None, None)


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
