"""A supervisor works the one approvals queue: approves a rate version the administrator
proposed, and rejects a specialist's adjustment, which needs a reason (issue 16)."""

from __future__ import annotations

import re
from datetime import date

from playwright.sync_api import Page, expect
from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.adapters.database import make_engine
from portal.billing_core import posting
from portal.billing_core.models import Account, Adjustment, RateSchedule, RateScheduleVersion, User

from .conftest import LiveServer
from .test_first_slice import sign_in


def test_a_supervisor_approves_one_kind_and_rejects_another_with_a_reason(page: Page, live_server: LiveServer) -> None:
    engine = make_engine(live_server.database_url)
    with Session(engine) as s, s.begin():
        admin = s.scalar(select(User).where(User.email == "admin@demo.example"))
        specialist = s.scalar(select(User).where(User.email == "specialist@demo.example"))
        account = s.scalars(select(Account).order_by(Account.number)).all()[1]
        schedule = s.scalars(select(RateSchedule).where(RateSchedule.service_type == "water")).first()
        definition = s.scalar(
            select(RateScheduleVersion.definition).where(RateScheduleVersion.schedule_id == schedule.id)
        )
        version = RateScheduleVersion(
            schedule_id=schedule.id,
            effective_on=date(2031, 1, 1),  # far ahead: no bill of the other journeys uses it
            definition=definition,
            status="proposed",
            proposed_by_id=admin.id,
        )
        adjustment = Adjustment(
            account_id=account.id,
            service_type="water",
            amount_cents=-31_500,
            reason_code="courtesy",
            note="Courtesy for the broken main",
            prepared_by_id=specialist.id,
        )
        s.add_all([version, adjustment])
        s.flush()
        version_id, adjustment_id, number, account_id = version.id, adjustment.id, account.number, account.id
        before = posting.account_balance(s, account.id)

    sign_in(page, live_server, "supervisor@demo.example")
    page.get_by_role("link", name="Approvals").first.click()
    expect(page.get_by_role("heading", name="Approvals")).to_be_visible()
    page.get_by_label("Show").select_option("rate_version")
    page.get_by_role("button", name="Show").click()
    row = page.get_by_role("row").filter(has_text="effective 2031-01-01")
    expect(row).to_contain_text("admin@demo.example")
    row.get_by_role("button", name=f"Approve rate version {version_id}").click()
    expect(page.get_by_role("status")).to_contain_text(f"Rate version {version_id} is approved.")
    expect(page.get_by_label("Show")).to_have_value("rate_version")  # the filter is kept

    page.get_by_label("Show").select_option("")
    page.get_by_label("Prepared by").select_option("specialist@demo.example")
    page.get_by_role("button", name="Show").click()
    row = page.get_by_role("row").filter(has_text="Courtesy for the broken main")
    expect(row).to_contain_text("-$315.00")
    expect(row.get_by_role("link", name=number)).to_be_visible()
    row.get_by_role("button", name=f"Reject adjustment {adjustment_id}").click()
    field = page.get_by_label(f"Why, if rejected (adjustment {adjustment_id})")
    expect(field).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_text("Say why the adjustment is rejected.")).to_be_visible()
    field.fill("Not a courtesy case: the main was ours to fix, credit it as a billing error")
    page.get_by_role("button", name=f"Reject adjustment {adjustment_id}").click()
    expect(page.get_by_role("status")).to_contain_text(f"Adjustment {adjustment_id} is rejected.")
    expect(page.get_by_role("row").filter(has_text="Courtesy for the broken main")).to_have_count(0)

    page.goto(f"{live_server.url}/staff/rates/versions/{version_id}")
    expect(page.get_by_text(re.compile(r"Approved by supervisor@demo\.example"))).to_be_visible()
    with Session(engine) as s:
        assert s.get(Adjustment, adjustment_id).status == "rejected"
        assert posting.account_balance(s, account_id) == before
    engine.dispose()
