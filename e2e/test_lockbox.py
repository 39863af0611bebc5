"""A lockbox file imported twice through the upload page: the second import adds nothing."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from portal.adapters.database import make_engine
from portal.billing_core.models import Account, Payment

from .conftest import LiveServer
from .test_first_slice import sign_in


def _payments(url: str) -> int:
    engine = make_engine(url)
    with Session(engine) as s:
        n = s.scalar(select(func.count()).select_from(Payment).where(Payment.channel == "lockbox")) or 0
    engine.dispose()
    return n


def test_a_lockbox_file_imported_twice_adds_nothing_the_second_time(
    page: Page, live_server: LiveServer, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    engine = make_engine(live_server.database_url)
    with Session(engine) as s:  # accounts far from the ones other journeys sign in to
        numbers = list(s.scalars(select(Account.number).order_by(Account.id.desc()).limit(2)))
    engine.dispose()
    path = tmp_path / "lockbox-2026-11-21.csv"
    path.write_text(
        "Reference,Account,ScanLine,Amount,CheckNumber,DepositDate\n"
        f"E2E-1,{numbers[0]},,25.00,501,2026-11-21\n"
        f"E2E-2,{numbers[1]},,30.00,502,2026-11-21\n"
        "E2E-3,00000000,,5.00,503,2026-11-21\n"
    )
    before = _payments(live_server.database_url)
    sign_in(page, live_server, "specialist@demo.example")
    page.goto(live_server.url + "/staff/payments/imports")
    expect(page.get_by_role("heading", name="Bank and lockbox files")).to_be_visible()

    def upload() -> None:
        page.get_by_label("Bank file").set_input_files(str(path))
        page.get_by_label("Format").select_option("csv")
        page.get_by_label("CSV layout").select_option("standard")
        page.get_by_role("button", name="Import file").click()

    upload()
    expect(page.get_by_role("status")).to_contain_text("2 matched / 0 duplicate / 1 unmatched / 0 rejected")
    expect(page.get_by_role("table", name="Every row of the file")).to_contain_text("no account 00000000")
    assert _payments(live_server.database_url) == before + 2

    page.goto(live_server.url + "/staff/payments/imports")
    upload()
    expect(page.get_by_role("status")).to_contain_text(re.compile("already imported .* nothing was added"))
    assert _payments(live_server.database_url) == before + 2
    page.goto(live_server.url + "/staff/payments/imports/queue")
    expect(page.get_by_role("heading", name=re.compile("E2E-3"))).to_be_visible()
