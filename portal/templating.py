"""Jinja2 templates with the filters and globals every page uses."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

from babel.dates import format_date
from babel.numbers import format_currency
from starlette.requests import Request
from starlette.templating import Jinja2Templates

from . import csrf, i18n
from .billing_core.arrangements import schedule as arrangement_schedule
from .billing_core.autopay import draft_date as autopay_draft_date
from .billing_core.money import cents_to_decimal, format_money
from .billing_core.reads import format_quantity
from .billing_core.status import (
    ArrangementStatus,
    BillRunStatus,
    BillStatus,
    PaymentStatus,
    ProcessorStatus,
    RequestStatus,
)
from .charts import LABEL_WIDTH, usage_bars, usage_chart, usage_labels

TEMPLATES = Path(__file__).resolve().parent / "templates"

HTMX_FILE = "vendor/htmx-2.0.11.min.js"


#: Locales that write dollars exactly as ``format_money`` does ("-$1,234.56"): it is 50
#: times faster than Babel, which matters on a print file (tests/web/test_i18n.py checks
#: that Babel agrees).
PLAIN_DOLLARS = frozenset({"en_US", "es_US"})


def _money(cents: int | None) -> str:
    """Dollars as the reader's language writes them: "-$1,234.56" (en_US and es_US agree)."""
    if cents is None:
        return ""
    locale = i18n.babel_locale()
    if locale in PLAIN_DOLLARS:
        return format_money(int(cents))
    return format_currency(cents_to_decimal(int(cents)), "USD", locale=locale)


@lru_cache(maxsize=8192)
def _format_date(value: date, pattern: str, locale: str) -> str:
    """Babel's date formatting, remembered: a page writes the same few dozen dates many
    times over (a bill's dates on every row), at some 30 µs each."""
    return format_date(value, pattern, locale=locale)


def _date(value: date | datetime | None) -> str:
    """ "November 22, 2026" in English, "22 de noviembre de 2026" in Spanish."""
    if value is None:
        return ""
    day = value.date() if isinstance(value, datetime) else value
    return _format_date(day, "long", i18n.babel_locale())


def _short_date(value: date | None) -> str:
    """ "Oct 5, 2026" in English, "5 oct 2026" in Spanish: short, and never 10/05/2026,
    which a Spanish reader takes for the 10th of May."""
    if value is None:
        return ""
    day = value.date() if isinstance(value, datetime) else value
    return _format_date(day, "medium", i18n.babel_locale())


def _month_year(value: date) -> str:
    """ "October 2026", "octubre de 2026"."""
    return _format_date(value, "LLLL y", i18n.babel_locale())


def _short_month(value: date) -> str:
    """ "Oct 26", "oct 26": a period's label under a bar or over a figure."""
    return _format_date(value, "MMM yy", i18n.babel_locale())


def _usage_labels(uses: list[tuple[date, Decimal | None]]) -> str:
    """``charts.usage_labels`` with the months in the reader's language."""
    months = "".join(_short_month(day).center(LABEL_WIDTH) for day, _q in uses)
    values = usage_labels(uses).split("\n", 1)[1] if uses else ""
    return f"{months.rstrip()}\n{values}"


def _quantity(value: Decimal | None) -> str:
    """Any stored quantity renders, never raises (``reads.format_quantity``)."""
    return format_quantity(value)


def make_templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(TEMPLATES), context_processors=[_context])
    env = templates.env
    env.add_extension("jinja2.ext.i18n")
    env.install_gettext_callables(  # type: ignore[attr-defined]
        lambda message: i18n.translations(i18n.language()).gettext(message),
        lambda singular, plural, n: i18n.translations(i18n.language()).ngettext(singular, plural, n),
        newstyle=True,
    )
    env.globals["current_language"] = i18n.language
    env.globals["languages"] = i18n.LANGUAGES
    env.globals["service_name"] = i18n.service_name
    env.filters["money"] = _money
    env.filters["longdate"] = _date
    env.filters["shortdate"] = _short_date
    env.filters["qty"] = _quantity
    env.globals["htmx_file"] = HTMX_FILE
    # Root-relative, as the Mount serves them: request.url_for would walk every route per link.
    env.globals["static_url"] = lambda path: f"/static/{path}"
    env.globals["month_year"] = _month_year
    env.filters["shortmonth"] = _short_month
    env.globals["describe_line"] = i18n.describe_line
    env.globals["current_plan"] = lambda r: arrangement_schedule(
        r.total_cents, r.down_payment_cents, r.installments, r.first_due_on
    )
    env.globals["autopay_draft_on"] = lambda bill: autopay_draft_date(bill.bill_date, bill.due_date)
    env.globals["usage_chart"] = usage_chart
    env.globals["usage_bars"] = usage_bars
    env.globals["usage_labels"] = _usage_labels
    env.globals["label_width"] = LABEL_WIDTH
    # Templates compare states with the enums (billing_core/status.py), never with words.
    for enum_type in (BillRunStatus, BillStatus, PaymentStatus, ProcessorStatus, RequestStatus, ArrangementStatus):
        env.globals[enum_type.__name__] = enum_type
    return templates


def _context(request: Request) -> dict[str, object]:
    settings = request.app.state.settings
    return {
        "csrf_token": csrf.token_for(request),
        "agency_name": settings.agency_name,
        "agency_phone": settings.agency_phone,
        "current_user": getattr(request.state, "user", None),
        "outside_sign_in": (settings.oidc_name or "your sign-in provider") if settings.oidc_enabled else None,
    }
