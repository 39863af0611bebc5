"""The collection reports for staff (``billing_core/collection_reports.py``): the aging report
(page with a chart, CSV, XLSX), the delinquency call list (page, CSV) and the annual shutoff
report (page, CSV). Every one is permission-checked (``Action.COLLECTIONS_REPORTS``)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import UTC, date, tzinfo
from html import escape
from typing import Any

import xlsxwriter  # type: ignore[import-untyped]
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..billing_core import collection_reports as reports
from ..billing_core import csv_safe, permissions
from ..billing_core.errors import FieldErrors, InvalidInput
from ..billing_core.models import Account, BillingCycle, Route, User
from ..billing_core.money import format_money, parse_money
from ..billing_core.permissions import Action

BUCKETS = reports.BUCKETS
CALL_LIMIT = 500


def _dollars(cents: int | None) -> str:
    if cents is None:
        return ""
    sign = "-" if cents < 0 else ""
    return f"{sign}{abs(cents) // 100}.{abs(cents) % 100:02d}"


def parse_day(text: str, default: date, field: str = "as_of") -> date:
    text = (text or "").strip()
    if not text:
        return default
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidInput("Enter the date as YYYY-MM-DD.", field) from None


# --- Aging -------------------------------------------------------------------------------------


def aging(session: Session, user: User, as_of: date) -> reports.AgingReport:
    permissions.require(user, Action.COLLECTIONS_REPORTS)
    return reports.aging_report(session, as_of)


def aging_chart(report: reports.AgingReport) -> str:
    """The total open receivable per bucket as an SVG bar chart drawn on the server (the
    table beside it carries the same figures)."""
    values = [report.total.buckets[b] for b in BUCKETS]
    width, height, pad, foot, top_pad = 640, 260, 28, 40, 36
    top = max(max(values), 1)
    slot = (width - pad * 2) // len(values)
    base = height - foot
    bars, labels, amounts = [], [], []
    for i, (name, cents) in enumerate(zip(BUCKETS, values, strict=True)):
        x = pad + i * slot + 10
        middle = x + (slot - 20) // 2
        h = int((base - top_pad) * cents / top) if cents > 0 else 0
        if h:
            bars.append(f"M{x} {base - h}h{slot - 20}v{h}h-{slot - 20}z")
        labels.append(f'<tspan x="{middle}">{escape(name)}</tspan>')
        amounts.append(f'<tspan x="{middle}" y="{base - h - 6}">{escape(format_money(cents))}</tspan>')
    title = f"Open receivables by days past due, {report.as_of.isoformat()}"
    return (
        f'<svg viewBox="0 0 {width} {height}" role="img" aria-labelledby="aging-chart-title" class="chart">'
        f'<title id="aging-chart-title">{escape(title)}</title>'
        f'<line x1="{pad}" y1="{base}" x2="{width - pad}" y2="{base}" stroke="#4a5560"/>'
        f'<path d="{"".join(bars)}" fill="#0b5394"/>'
        f'<text y="{base + 24}" font-size="20" text-anchor="middle">{"".join(labels)}</text>'
        f'<text font-size="18" text-anchor="middle">{"".join(amounts)}</text>'
        "</svg>"
    )


def _aging_rows(report: reports.AgingReport) -> list[list[Any]]:
    """Every table's rows: by, name, each bucket, open, credit, net (cents)."""
    out: list[list[Any]] = []
    for by, rows in (("service", report.by_service), ("class", report.by_class), ("cycle", report.by_cycle)):
        for row in [*rows, report.total]:
            out.append(
                [by, row.label, *(row.buckets[b] for b in BUCKETS), row.open_cents, row.credit_cents, row.net_cents]
            )
    return out


AGING_HEADER = ["as_of", "by", "name", *BUCKETS, "open", "credit", "net"]


def aging_csv(report: reports.AgingReport) -> str:
    out = io.StringIO()
    w = csv_safe.writer(out)
    w.writerow(AGING_HEADER)
    for row in _aging_rows(report):
        w.writerow([report.as_of.isoformat(), row[0], row[1], *(_dollars(c) for c in row[2:])])
    return out.getvalue()


def aging_xlsx(report: reports.AgingReport) -> bytes:
    """The same tables as a workbook: one sheet per grouping, amounts as numbers in dollars.
    Strings are written as strings (``strings_to_formulas`` off), never as formulas."""
    buf = io.BytesIO()
    book = xlsxwriter.Workbook(
        buf, {"in_memory": True, "strings_to_formulas": False, "strings_to_urls": False, "strings_to_numbers": False}
    )
    bold = book.add_format({"bold": True})
    money = book.add_format({"num_format": "#,##0.00"})
    total_money = book.add_format({"num_format": "#,##0.00", "bold": True})
    for title, rows in (
        ("By service", report.by_service),
        ("By class", report.by_class),
        ("By cycle", report.by_cycle),
    ):
        sheet = book.add_worksheet(title)
        sheet.write_string(0, 0, f"Receivables aging as of {report.as_of.isoformat()}", bold)
        header = [title[3:].capitalize(), *BUCKETS, "Open", "Credit", "Net"]
        for c, name in enumerate(header):
            sheet.write_string(2, c, name, bold)
        r = 3
        for row in [*rows, report.total]:
            fmt = total_money if row is report.total else money
            sheet.write_string(r, 0, row.label, bold if row is report.total else None)
            values = [*(row.buckets[b] for b in BUCKETS), row.open_cents, row.credit_cents, row.net_cents]
            for c, cents in enumerate(values, start=1):
                sheet.write_number(r, c, cents / 100, fmt)
            r += 1
        sheet.set_column(0, 0, 28)
        sheet.set_column(1, len(header), 14)
    book.close()
    return buf.getvalue()


# --- The call list -----------------------------------------------------------------------------

CALL_FIELDS = (
    "as_of",
    "minimum",
    "days",
    "cycle",
    "customer_class",
    "route",
    "has_phone",
    "include_held",
    "include_plans",
    "include_disputed",
)


@dataclass(frozen=True)
class CallPage:
    as_of: date
    filters: reports.CallFilters
    rows: list[reports.CallRow]
    count: int
    cycles: list[BillingCycle]
    routes: list[Route]
    classes: list[str]


def call_filters(session: Session, values: dict[str, str], today: date) -> tuple[date, reports.CallFilters]:
    """The form checked whole (``FieldErrors``)."""
    errors: dict[str, InvalidInput] = {}
    as_of = today
    try:
        as_of = parse_day(values.get("as_of", ""), today)
    except InvalidInput as exc:
        errors["as_of"] = exc
    minimum = 1
    text = (values.get("minimum") or "").strip()
    if text:
        try:
            minimum = parse_money(text, "minimum")
            if minimum < 0:
                raise InvalidInput("Enter an amount of zero or more.", "minimum")
        except InvalidInput as exc:
            errors["minimum"] = exc
    days = 1
    text = (values.get("days") or "").strip()
    if text:
        if not text.isdigit() or not 1 <= int(text) <= 3650:
            errors["days"] = InvalidInput("Enter a whole number of days from 1 to 3650.", "days")
        else:
            days = int(text)

    def pick(name: str, model: Any) -> int | None:
        raw = (values.get(name) or "").strip()
        if not raw:
            return None
        if not raw.isdigit() or session.get(model, int(raw)) is None:
            errors[name] = InvalidInput("Choose one from the list.", name)
            return None
        return int(raw)

    cycle_id = pick("cycle", BillingCycle)
    route_id = pick("route", Route)
    klass = (values.get("customer_class") or "").strip() or None
    if errors:
        raise FieldErrors(errors)
    return as_of, reports.CallFilters(
        minimum_cents=max(minimum, 1),
        min_days=days,
        cycle_id=cycle_id,
        customer_class=klass,
        route_id=route_id,
        has_phone=bool(values.get("has_phone")),
        exclude_held=not values.get("include_held"),
        exclude_plans=not values.get("include_plans"),
        exclude_disputed=not values.get("include_disputed"),
    )


def choices(session: Session) -> tuple[list[BillingCycle], list[Route], list[str]]:
    cycles = list(session.scalars(select(BillingCycle).order_by(BillingCycle.code)))
    routes = list(session.scalars(select(Route).order_by(Route.code)))
    classes = sorted(c for c in session.scalars(select(Account.customer_class).distinct()) if c)
    return cycles, routes, classes


def call_page(
    session: Session, user: User, values: dict[str, str], today: date, limit: int | None = CALL_LIMIT
) -> CallPage:
    permissions.require(user, Action.COLLECTIONS_REPORTS)
    as_of, filters = call_filters(session, values, today)
    rows, count = reports.call_list(session, as_of, filters, limit=limit)
    cycles, routes, classes = choices(session)
    return CallPage(as_of, filters, rows, count, cycles, routes, classes)


CALL_HEADER = [
    "account",
    "name",
    "phone",
    "class",
    "cycle",
    "route",
    "service_address",
    "balance",
    "past_due",
    "oldest_due",
    "days_past_due",
    "last_payment_on",
    "last_payment",
]


def call_csv(page: CallPage) -> str:
    out = io.StringIO()
    w = csv_safe.writer(out)
    w.writerow(CALL_HEADER)
    for r in page.rows:
        w.writerow(
            [
                r.number,
                r.name,
                r.phone,
                r.customer_class,
                r.cycle,
                r.route,
                r.address,
                _dollars(r.balance_cents),
                _dollars(r.past_due_cents),
                r.oldest_due.isoformat(),
                r.days_past_due,
                r.last_payment_on.isoformat() if r.last_payment_on else "",
                _dollars(r.last_payment_cents),
            ]
        )
    return out.getvalue()


# --- The annual shutoff report ----------------------------------------------------------------


def shutoffs(session: Session, user: User, tz: tzinfo = UTC) -> list[reports.ShutoffYear]:
    permissions.require(user, Action.COLLECTIONS_REPORTS)
    return reports.shutoff_report(session, tz)


def shutoff_csv(rows: list[reports.ShutoffYear], agency: str) -> str:
    out = io.StringIO()
    w = csv_safe.writer(out)
    w.writerow(["agency", "year", "residential_shutoffs_for_nonpayment", "other_shutoffs_for_nonpayment", "total"])
    for r in rows:
        w.writerow([agency, r.year, r.residential, r.other, r.total])
    return out.getvalue()
