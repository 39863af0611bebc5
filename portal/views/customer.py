"""The resident's pages. Every lookup is scoped to the accounts linked to the sign-in
(``services/customers.py``)."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from .. import documents, i18n
from ..billing_core.accounts import BillDocument
from ..billing_core.status import PaymentStatus
from ..i18n import gettext
from ..services import customers
from ..web import db, flash, page_number, pop_flash, redirect, remote_addr, require_customer, today


def my_accounts(request: Request) -> Response:
    with db(request) as session:
        user = require_customer(request, session)
        page = customers.home(session, user, today(request), request.app.state.settings.tz)
        return request.app.state.templates.TemplateResponse(
            request, "customer/home.html", {**vars(page), "flash": pop_flash(request)}
        )


def account_detail(request: Request) -> Response:
    with db(request) as session:
        user = require_customer(request, session)
        page = customers.account_page(
            session,
            user,
            request.path_params["number"],
            today(request),
            request.app.state.settings.tz,
            bills_page=page_number(request, "bills"),
        )
        return request.app.state.templates.TemplateResponse(
            request,
            "customer/account.html",
            {**vars(page), "flash": pop_flash(request), "PaymentStatus": PaymentStatus},
        )


def bill_detail(request: Request) -> Response:
    with db(request) as session:
        user = require_customer(request, session)
        page = customers.bill_page(
            session, user, request.path_params["number"], request.path_params["bill"], today(request)
        )
        return request.app.state.templates.TemplateResponse(request, "customer/bill.html", vars(page))


def bill_document(request: Request) -> Response:
    """The printable bill, for a bill on one of this customer's accounts."""
    with db(request) as session:
        user = require_customer(request, session)
        doc = customers.bill_document(session, user, request.path_params["number"], request.path_params["bill"])
        return render_bill_document(
            request, doc, f"/my/accounts/{doc.account.number}/bills/{doc.bill.number}/pdf", i18n.language()
        )


async def bill_pdf(request: Request) -> Response:
    """The same bill as a PDF file to keep or print."""

    def build() -> tuple[str, str]:
        with db(request) as session:
            user = require_customer(request, session)
            doc = customers.bill_document(session, user, request.path_params["number"], request.path_params["bill"])
            return bill_pdf_html(request, doc, i18n.language())

    return await pdf_response(request, *await run_in_threadpool(build))


def render_bill_document(request: Request, doc: BillDocument, pdf_url: str, language: str | None = None) -> Response:
    """The printable bill, in ``language`` (a customer reads it in the language of their
    pages) or else the customer's own (staff see the bill as the customer gets it). It
    links back to the bill's page (``pdf_url`` without its ``/pdf``), on screen only."""
    with i18n.use(language or documents.language_of(doc)):
        response = request.app.state.templates.TemplateResponse(
            request,
            "bill_document.html",
            {"doc": doc, "pdf_url": pdf_url, "back_url": pdf_url.removesuffix("/pdf")},
        )
    response.headers["Content-Language"] = language or documents.language_of(doc)
    return response


def bill_pdf_html(request: Request, doc: BillDocument, language: str | None = None) -> tuple[str, str]:
    """The bill's self-contained HTML for printing, and the PDF's file name (inside the session)."""
    html = documents.bill_html(request.app.state.templates.env, request.app.state.settings, doc, language)
    return html, f"bill-{doc.account.number}-{doc.bill.number or doc.bill.id}.pdf"


async def pdf_response(request: Request, html: str, name: str) -> Response:
    pdf = await request.app.state.printer.pdf(html, tagged=True)
    return Response(
        pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "private, no-store"},
    )


async def paperless(request: Request) -> Response:
    """Turn paperless billing on or off (``services.customers.set_paperless``)."""
    on = str((await request.form()).get("paperless", "")) == "on"

    def change() -> str:
        with db(request) as session:
            user = require_customer(request, session)
            email = customers.set_paperless(session, user, request.path_params["number"], on, remote_addr(request))
            if on:
                return gettext(
                    "Paperless billing is on. We will email %(email)s when a bill is ready.",
                    email=email,
                )
            return gettext("Paperless billing is off. Your next bills will come by mail.")

    flash(request, await run_in_threadpool(change))
    return redirect(f"/my/accounts/{request.path_params['number']}")


def usage(request: Request) -> Response:
    """Water use by month: the last 12 months beside the same months a year before."""
    from babel.dates import format_date

    from .. import charts

    with db(request) as session:
        user = require_customer(request, session)
        page = customers.usage(session, user, request.path_params["number"])
    locale = i18n.babel_locale()
    rows = [(format_date(m.month, "MMM", locale=locale), m.this_year, m.last_year) for m in page.history]
    chart = charts.compare_chart(
        rows,
        gettext("Water use by month, in %(unit)s: the last 12 months and the year before", unit=page.unit),
        (gettext("Last 12 months"), gettext("The year before")),
    )
    return request.app.state.templates.TemplateResponse(request, "customer/usage.html", {**vars(page), "chart": chart})
