"""The collection reports through the web, on the shared demo district (read only): the
aging page with its chart, CSV and XLSX; the call list with filters and bad input; the
annual shutoff report; who may see them."""

from __future__ import annotations

import csv
import io
import zipfile
from datetime import date

from sqlalchemy import Engine
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from portal.billing_core import collection_reports as reports

from .conftest import sign_in


def test_aging_page_csv_and_xlsx_agree_with_the_balances(client: TestClient, demo_engine: Engine) -> None:
    sign_in(client, "csr@demo.example")
    page = client.get("/staff/reports/aging?as_of=2026-11-22")
    assert page.status_code == 200
    assert "<svg" in page.text and 'role="img"' in page.text and "<caption>By service</caption>" in page.text
    with Session(demo_engine) as s:
        total = reports.balances_total(s, date(2026, 11, 22))
        report = reports.aging_report(s, date(2026, 11, 22))
    assert report.total.net_cents == total and total > 0
    got = client.get("/staff/reports/aging.csv?as_of=2026-11-22")
    assert got.status_code == 200 and got.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(got.text)))
    nets = [r[-1] for r in rows if r[2] == "Total"]
    assert nets == [f"{total // 100}.{total % 100:02d}"] * 3
    book = client.get("/staff/reports/aging.xlsx?as_of=2026-11-22")
    assert book.status_code == 200 and "spreadsheetml" in book.headers["content-type"]
    with zipfile.ZipFile(io.BytesIO(book.content)) as z:
        assert {"xl/worksheets/sheet1.xml", "xl/worksheets/sheet2.xml", "xl/worksheets/sheet3.xml"} <= set(z.namelist())
    bad = client.get("/staff/reports/aging?as_of=yesterday")
    assert bad.status_code == 400 and "YYYY-MM-DD" in bad.text and 'aria-invalid="true"' in bad.text


def test_call_list_filters_and_says_what_was_wrong(client: TestClient) -> None:
    sign_in(client, "specialist@demo.example")
    page = client.get("/staff/reports/call-list")
    assert (
        page.status_code == 200 and 'for="minimum"' in page.text and "Include accounts held out of the run" in page.text
    )
    everyone = list(csv.reader(io.StringIO(client.get("/staff/reports/call-list.csv").text)))
    assert everyone[0][0] == "account" and len(everyone) > 1  # the demo has past-due accounts
    past = [int(r[8].replace(".", "")) for r in everyone[1:]]
    assert past == sorted(past, reverse=True)
    bigger = list(csv.reader(io.StringIO(client.get("/staff/reports/call-list.csv?minimum=100&days=31").text)))
    assert all(int(r[8].replace(".", "")) >= 10_000 and int(r[10]) >= 31 for r in bigger[1:])
    assert len(bigger) <= len(everyone)
    phones = list(csv.reader(io.StringIO(client.get("/staff/reports/call-list.csv?has_phone=1").text)))
    assert all(r[2] for r in phones[1:])
    bad = client.get("/staff/reports/call-list?minimum=lots&days=-3")
    assert bad.status_code == 400
    assert "Enter an amount in dollars and cents" in bad.text and "whole number of days" in bad.text
    assert client.get("/staff/reports/call-list.csv?days=x").status_code == 400


def test_shutoff_report_page_and_csv(client: TestClient) -> None:
    sign_in(client, "cashier@demo.example")
    page = client.get("/staff/reports/shutoffs")
    assert page.status_code == 200 and "Water Shutoff Protection Act" in page.text
    got = client.get("/staff/reports/shutoffs.csv")
    assert got.status_code == 200
    header = next(csv.reader(io.StringIO(got.text)))
    assert header == ["agency", "year", "residential_shutoffs_for_nonpayment", "other_shutoffs_for_nonpayment", "total"]


def test_only_office_staff_see_the_reports(client: TestClient) -> None:
    sign_in(client, "field@demo.example")
    assert client.get("/staff/reports/aging").status_code == 403
    assert client.get("/staff/reports/call-list.csv").status_code == 403
    client.post("/sign-out", data={}, follow_redirects=False)
    client.cookies.clear()
    sign_in(client, "resident@demo.example")
    assert client.get("/staff/reports/shutoffs").status_code == 404
