"""Rates in a real browser: a supervisor uploads an OWRS file, reads it, and prices a bill."""

import re
from pathlib import Path

from playwright.sync_api import Page, expect

from .conftest import LiveServer
from .test_first_slice import sign_in

RATE_FILE = """
metadata: {effective_date: 2027-07-01, utility_name: Demo Water District, bill_unit: ccf}
rate_structure:
  RESIDENTIAL_SINGLE:
    service_charge:
      depends_on: meter_size
      values: {'5/8"': 26.10, '3/4"': 26.10, '1"': 40.45}
    tier_starts: [0, 11, 31]
    tier_prices: [2.65, 3.40, 4.95]
    commodity_charge: Tiered
    bill: service_charge+commodity_charge
"""


def test_a_supervisor_uploads_rates_and_prices_a_bill(page: Page, live_server: LiveServer, tmp_path: Path) -> None:
    rate_file = tmp_path / "demo-2027-07-01.owrs"
    rate_file.write_text(RATE_FILE)
    sign_in(page, live_server, "supervisor@demo.example")
    page.get_by_role("link", name="Rates", exact=True).click()
    expect(page.get_by_role("heading", name="Rate schedules")).to_be_visible()
    page.get_by_role("link", name="Upload an OWRS rate file").click()
    page.get_by_label("OWRS file").set_input_files(str(rate_file))
    page.get_by_role("button", name="Upload and import").click()
    expect(page.get_by_role("status")).to_contain_text("File imported: 1 new version")
    page.get_by_role("link", name="Jul 1, 2027").click()
    expect(page.get_by_role("heading", name=re.compile("Demo Water District: water"))).to_be_visible()
    expect(page.get_by_role("table", name="Service charge")).to_contain_text("$40.45")
    page.get_by_role("link", name="Try this version in the bill calculator").click()
    page.get_by_label("Usage this period").fill("18")
    page.get_by_label("Meter size").fill('1"')
    page.get_by_role("button", name="Calculate").click()
    # $40.45 + 10 x $2.65 + 8 x $3.40 = $94.15
    expect(page.get_by_role("table", name=re.compile("Current rates"))).to_contain_text("$94.15")
    expect(page.get_by_role("cell", name="Tier 2: 8 CCF × $3.4")).to_be_visible()


def test_a_csr_may_look_at_rates_but_not_upload(page: Page, live_server: LiveServer) -> None:
    sign_in(page, live_server, "csr@demo.example")
    page.get_by_role("link", name="Rates", exact=True).click()
    expect(page.get_by_role("link", name="Upload an OWRS rate file")).to_have_count(0)
    page.goto(live_server.url + "/staff/rates/upload")
    expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
