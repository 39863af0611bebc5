"""A cycle from a read file to a bill the customer sees, in a real browser."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
import uvicorn
from playwright.sync_api import Page, expect
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from portal.adapters.database import make_engine
from portal.app import create_app
from portal.billing_core.models import Account, Meter, MeterRead, Service, User, UserAccountLink
from portal.demo import build_demo
from portal.settings import Settings
from tests.smtp import smtp_server

from .conftest import LiveServer, _free_port
from .test_first_slice import sign_in


@pytest.fixture(scope="module")
def district(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A district whose last bills are for October: November's reads are due."""
    url = f"sqlite:///{tmp_path_factory.mktemp('run') / 'portal.sqlite3'}"
    engine = make_engine(url)
    build_demo(engine, accounts=40, seed=11, progress=False, today="2026-10-20")
    smtp = smtp_server()
    smtp_port, inbox = smtp.__enter__()
    settings = replace(
        Settings(),
        database_url=url,
        secret_key="e2e",
        development=True,
        files_dir=str(tmp_path_factory.mktemp("files")),
        smtp_host="127.0.0.1",
        smtp_port=smtp_port,
    )
    app = create_app(
        settings,
        engine=engine,
        clock=lambda: datetime(2026, 11, 22, 18, tzinfo=UTC),
    )
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    yield LiveServer(f"http://127.0.0.1:{port}", url, inbox)
    server.should_exit = True
    thread.join(timeout=10)
    engine.dispose()
    smtp.__exit__(None, None, None)


def read_file(server: LiveServer, tmp_path: Path) -> tuple[Path, str, str]:
    """November reads for cycle 1: normal use everywhere, except one meter read far too high."""
    engine = make_engine(server.database_url)
    with Session(engine) as s:
        rows = s.execute(
            select(Meter.serial, func.max(MeterRead.value), Account.number)
            .join(MeterRead, MeterRead.meter_id == Meter.id)
            .join(Service, Service.meter_id == Meter.id)
            .join(Account, Account.id == Service.account_id)
            .where(Account.cycle_id == 1)
            .group_by(Meter.serial, Account.number)
            .order_by(Account.number)
        ).all()
        resident = s.scalar(
            select(Account.number)
            .join(UserAccountLink, UserAccountLink.account_id == Account.id)
            .join(User, User.id == UserAccountLink.user_id)
            .where(User.email == "resident@demo.example")
        )
    engine.dispose()
    lines = ["meter_serial,read_value,read_time,source"]
    high = rows[-1][0]
    for serial, value, _number in rows:
        use = 400 if serial == high else 11
        lines.append(f"{serial},{Decimal(value) + use:f},2026-11-05,amr")
    path = tmp_path / "cycle1-november.csv"
    path.write_text("\n".join(lines) + "\n")
    return path, high, resident


def sign_out(page: Page) -> None:
    page.get_by_role("button", name="Sign out").click()


def test_from_read_file_to_the_customers_new_bill(page: Page, district: LiveServer, tmp_path: Path) -> None:
    path, high_meter, resident = read_file(district, tmp_path)
    # A specialist loads the read file; one read waits for review.
    sign_in(page, district, "specialist@demo.example")
    page.get_by_role("link", name="Reads", exact=True).click()
    page.get_by_role("link", name="Load a read file").click()
    page.get_by_label("Read file").set_input_files(str(path))
    page.get_by_role("button", name="Load reads").click()
    expect(page.get_by_role("status")).to_contain_text("wait for review")
    page.get_by_role("link", name="← Reads to review").click()
    expect(page.get_by_text("Use is much higher than this account's average").first).to_be_visible()
    # The specialist finds the far-too-high meter was misread and corrects it.
    engine = make_engine(district.database_url)
    with Session(engine) as s:
        meter_id = s.scalar(select(Meter.id).where(Meter.serial == high_meter))
        before = s.scalar(
            select(MeterRead.value)
            .where(MeterRead.meter_id == meter_id, MeterRead.read_on < date(2026, 11, 5))
            .order_by(MeterRead.read_on.desc())
            .limit(1)
        )
    engine.dispose()
    page.get_by_label(f"Corrected read for {high_meter}").fill(f"{before + 12:f}")
    page.get_by_label(f"Reason for correcting {high_meter}").fill("Handheld keyed an extra digit")
    page.get_by_role("button", name=f"Correct read {high_meter}").click()
    expect(page.get_by_role("status")).to_contain_text("Read corrected")
    # The others are real (a filled pool, a new tenant): approved as read.
    approve = page.get_by_role("button", name=re.compile("^Approve read "))
    while approve.count():
        approve.first.click()
        expect(page.get_by_role("status")).to_contain_text("Read approved")
    expect(page.get_by_text("No reads are waiting for review.")).to_be_visible()
    # The specialist starts the run and calculates it.
    page.get_by_role("link", name="Bill runs").click()
    page.get_by_label("Cycle").select_option("C1")
    page.get_by_label("First day billed").fill("2026-10-05")
    page.get_by_label("Read date ending the period").fill("2026-11-05")
    page.get_by_role("button", name="Start a bill run").click()
    page.get_by_role("button", name="Calculate drafts").click()
    expect(page.get_by_role("heading", name="Billing register")).to_be_visible()
    expect(page.get_by_role("definition").filter(has_text=re.compile("^Calculated$"))).to_be_visible()
    expect(page.get_by_role("button", name=re.compile("Approve run"))).to_have_count(0)  # a specialist cannot
    run_url = page.url
    sign_out(page)
    # The supervisor approves and posts.
    sign_in(page, district, "supervisor@demo.example")
    page.goto(run_url)
    page.get_by_role("button", name=re.compile("Approve run")).click()
    expect(page.get_by_role("status")).to_contain_text("Run approved")
    page.get_by_role("button", name=re.compile("Post run")).click()
    expect(page.get_by_role("definition").filter(has_text=re.compile("^Posted$"))).to_be_visible()
    # Delivery: the print file for paper bills, an email for paperless accounts.
    page.get_by_role("button", name=re.compile("Deliver bills")).click()
    expect(page.get_by_role("status")).to_contain_text("Delivery started")
    with page.expect_download() as got:
        page.get_by_role("link", name=re.compile("Download the print file")).click()
    assert got.value.suggested_filename.endswith(".pdf")
    assert Path(got.value.path()).read_bytes().startswith(b"%PDF")
    with page.expect_download() as got:
        page.get_by_role("link", name=re.compile("mail-house extract")).click()
    assert Path(got.value.path()).read_text().startswith("sequence,account_number")
    assert any("bill is ready" in m["Subject"] for m in district.inbox)
    sign_out(page)
    # The customer sees the new bill and opens the printable bill with its stub.
    sign_in(page, district, "resident@demo.example")
    page.get_by_role("link", name=re.compile("View account")).click()
    page.get_by_role("link", name="Bill of November 7, 2026").click()
    expect(page.get_by_role("cell", name=re.compile(r"Water usage: \d+ CCF × \$2\.78"))).to_be_visible()
    page.get_by_role("link", name="Printable bill with payment stub").click()
    expect(page.get_by_role("heading", name="Return this part with your payment")).to_be_visible()
    expect(page.get_by_label("Scan line")).to_contain_text(resident)
    with page.expect_download() as got:
        page.get_by_role("link", name="Download this bill (PDF)").click()
    assert Path(got.value.path()).read_bytes().startswith(b"%PDF")
