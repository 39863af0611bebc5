"""Jinja2 templates with the filters and globals every page uses."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

from babel.dates import format_date
from starlette.requests import Request
from starlette.templating import Jinja2Templates

from . import csrf, i18n
from .billing_core.arrangements import schedule as arrangement_schedule
from .billing_core.autopay import draft_date as autopay_draft_date
from .billing_core.money import format_money
from .billing_core.reads import format_quantity
from .charts import LABEL_WIDTH, usage_bars, usage_chart, usage_labels

TEMPLATES = Path(__file__).resolve().parent / "templates"

HTMX_FILE = "vendor/htmx-2.0.11.min.js"


def _money(cents: int | None) -> str:
    return "" if cents is None else format_money(int(cents))


def _date(value: date | datetime | None) -> str:
    """ "November 22, 2026" in English, "22 de noviembre de 2026" in Spanish."""
    if value is None:
        return ""
    return format_date(value, "long", locale=i18n.language())


def _short_date(value: date | None) -> str:
    return "" if value is None else f"{value:%m/%d/%Y}"


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
    env.globals["month_year"] = lambda d: format_date(d, "LLLL y", locale=i18n.language())
    env.globals["current_plan"] = lambda r: arrangement_schedule(
        r.total_cents, r.down_payment_cents, r.installments, r.first_due_on
    )
    env.globals["autopay_draft_on"] = lambda bill: autopay_draft_date(bill.bill_date, bill.due_date)
    env.globals["usage_chart"] = usage_chart
    env.globals["usage_bars"] = usage_bars
    env.globals["usage_labels"] = usage_labels
    env.globals["label_width"] = LABEL_WIDTH
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
