"""Bills as documents: the HTML view, the PDF and a run's print file come from one
template (``_bill_document.html``); the printer (``adapters/printer.py``) makes the
PDFs from this HTML.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from jinja2 import Environment

from . import i18n
from .billing_core.accounts import BillDocument
from .settings import Settings

STATIC = Path(__file__).resolve().parent / "static"


def bill_css() -> str:
    return (STATIC / "bill.css").read_text(encoding="utf-8")


def language_of(doc: BillDocument) -> str:
    """The language a customer's bill is printed in: the one they asked for."""
    return i18n.supported(doc.account.customer.preferred_language) or i18n.DEFAULT


def bill_html(env: Environment, settings: Settings, doc: BillDocument, language: str | None = None) -> str:
    """One bill as a self-contained page (styles inline, chart inline): nothing to fetch.
    In ``language``, or else the customer's."""
    with i18n.use(language or language_of(doc)):
        return env.get_template("bill_document.html").render(
            doc=doc, print_css=bill_css(), agency_name=settings.agency_name, agency_phone=settings.agency_phone
        )


def batch_html(env: Environment, settings: Settings, docs: Sequence[BillDocument]) -> str:
    """Many bills in one document, each starting a new sheet, each in its customer's language."""
    one = env.get_template("_bill_document.html")
    parts = []
    for doc in docs:
        with i18n.use(language_of(doc)):
            parts.append(one.render(doc=doc, agency_name=settings.agency_name, agency_phone=settings.agency_phone))
    return env.get_template("print_batch.html").render(parts=parts, print_css=bill_css())


# --- Returned payments (issue 14): the letter that tells the customer ----------------------


def return_letter_html(env: Environment, settings: Settings, notice: object, today: object) -> str:
    """The returned-payment letter (``services.returns.ReturnNotice``), self-contained, in
    the customer's language."""
    language = i18n.supported(getattr(notice, "language", None)) or i18n.DEFAULT
    with i18n.use(language):
        return env.get_template("return_letter.html").render(
            notice=notice,
            today=today,
            print_css=bill_css(),
            agency_name=settings.agency_name,
            agency_phone=settings.agency_phone,
        )
