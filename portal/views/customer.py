"""The resident's pages. Every lookup is scoped to the accounts linked to the sign-in."""

from __future__ import annotations

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from .. import documents, i18n
from ..billing_core import accounts, arrangements, audit, autopay, bill_status, delinquency, payments
from ..billing_core.accounts import AccountSummary, BillDocument
from ..billing_core.models import Account, Bill
from ..i18n import gettext
from ..web import PageNotFound, db, flash, pop_flash, redirect, remote_addr, require_customer, today


def my_accounts(request: Request) -> Response:
    with db(request) as session:
        user = require_customer(request, session)
        as_of = today(request)
        summaries = [accounts.summarise(session, a, as_of) for a in accounts.accounts_for_user(session, user)]
        tz = request.app.state.settings.tz
        autopays = {
            s.account.number: autopay.outlook(session, s.account, s.balance_cents, as_of, tz) for s in summaries
        }
        return request.app.state.templates.TemplateResponse(
            request,
            "customer/home.html",
            {
                "summaries": summaries,
                "outlooks": {s.account.number: outlook_for(s, as_of) for s in summaries},
                "plans": {s.account.number: arrangements.open_for(session, s.account.id) for s in summaries},
                "autopays": autopays,
                "before_autopay": {
                    s.account.number: bill_before_autopay(s, autopays[s.account.number], tz) for s in summaries
                },
                "past_dues": {s.account.number: past_due_for(session, s, as_of) for s in summaries},
                "as_of": as_of,
                "flash": pop_flash(request),
            },
        )


def outlook_for(summary: AccountSummary, as_of) -> delinquency.Outlook:  # type: ignore[no-untyped-def]
    return delinquency.outlook(
        summary.balance_cents, summary.past_due_cents, summary.aging.oldest_past_due, summary.due_date, as_of
    )


def bill_before_autopay(summary: AccountSummary, outlook: autopay.Outlook, tz) -> bool:  # type: ignore[no-untyped-def]
    return bill_status.before_autopay(outlook.enrollment, summary.last_bill, summary.balance_cents, tz)


def past_due_for(session: Session, summary: AccountSummary, as_of) -> bill_status.PastDue | None:  # type: ignore[no-untyped-def]
    """The bills the past-due amount is made of (None when nothing is past due)."""
    if summary.past_due_cents <= 0:
        return None
    return bill_status.past_due(session, summary.account.id, as_of)


def account_detail(request: Request) -> Response:
    with db(request) as session:
        user = require_customer(request, session)
        account = accounts.account_for_user(session, user, request.path_params["number"])
        if account is None:
            raise PageNotFound()
        as_of = today(request)
        summary = accounts.summarise(session, account, as_of)
        tz = request.app.state.settings.tz
        autopay_outlook = autopay.outlook(session, account, summary.balance_cents, as_of, tz)
        bills = accounts.bills_for_account(session, account.id)
        return request.app.state.templates.TemplateResponse(
            request,
            "customer/account.html",
            {
                "summary": summary,
                "outlook": outlook_for(summary, as_of),
                "plan": arrangements.open_for(session, account.id),
                "autopay_outlook": autopay_outlook,
                "before_autopay": bill_before_autopay(summary, autopay_outlook, tz),
                "past_due": past_due_for(session, summary, as_of),
                "flash": pop_flash(request),
                "bills": bills,
                "statuses": bill_status.for_bills(session, account.id, bills, as_of),
                "payments": payments.recent(session, account.id),
                "as_of": as_of,
            },
        )


def bill_detail(request: Request) -> Response:
    with db(request) as session:
        user = require_customer(request, session)
        account = accounts.account_for_user(session, user, request.path_params["number"])
        if account is None:
            raise PageNotFound()
        bill = accounts.bill_with_lines(session, account.id, request.path_params["bill"])
        if bill is None:
            raise PageNotFound()
        status = bill_status.for_bills(session, account.id, [bill], today(request))[bill.id]
        return request.app.state.templates.TemplateResponse(
            request,
            "customer/bill.html",
            {"account": account, "bill": bill, "groups": accounts.lines_by_service(bill), "status": status},
        )


def bill_document(request: Request) -> Response:
    """The printable bill, for a bill on one of this customer's accounts."""
    with db(request) as session:
        account, bill = _my_bill(request, session)
        doc = accounts.bill_document(session, account, bill)
        return render_bill_document(
            request, doc, f"/my/accounts/{account.number}/bills/{bill.number}/pdf", i18n.language()
        )


async def bill_pdf(request: Request) -> Response:
    """The same bill as a PDF file to keep or print."""

    def build() -> tuple[str, str]:
        with db(request) as session:
            account, bill = _my_bill(request, session)
            return bill_pdf_html(request, accounts.bill_document(session, account, bill), i18n.language())

    return await pdf_response(request, *await run_in_threadpool(build))


def _my_bill(request: Request, session: Session) -> tuple[Account, Bill]:
    user = require_customer(request, session)
    account = accounts.account_for_user(session, user, request.path_params["number"])
    bill = accounts.bill_with_lines(session, account.id, request.path_params["bill"]) if account else None
    if account is None or bill is None:
        raise PageNotFound()
    return account, bill


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
    """Turn paperless billing on or off. Bill-ready emails go to the customer's email on
    file; when there is none, the sign-in's address becomes it."""
    on = str((await request.form()).get("paperless", "")) == "on"

    def change() -> str:
        with db(request) as session:
            user = require_customer(request, session)
            account = accounts.account_for_user(session, user, request.path_params["number"])
            if account is None:
                raise PageNotFound()
            before = {"paperless": account.paperless, "email": account.customer.email}
            account.paperless = on
            if on and not account.customer.email:
                account.customer.email = user.email
            audit.record(
                session,
                "account.paperless",
                actor=user,
                entity_type="account",
                entity_id=account.id,
                before=before,
                after={"paperless": on, "email": account.customer.email},
                remote_addr=remote_addr(request),
            )
            if on:
                return gettext(
                    "Paperless billing is on. We will email %(email)s when a bill is ready.",
                    email=account.customer.email,
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
        account = accounts.account_for_user(session, user, request.path_params["number"])
        if account is None:
            raise PageNotFound()
        history, unit = accounts.usage_history(session, account.id)
    locale = i18n.babel_locale()
    rows = [(format_date(m.month, "MMM", locale=locale), m.this_year, m.last_year) for m in history]
    this_total = sum((m.this_year or 0) for m in history)
    last_total = sum((m.last_year or 0) for m in history)
    compared = all(m.last_year is not None for m in history if m.this_year is not None) and last_total > 0
    change = round((this_total - last_total) * 100 / last_total) if compared else None
    chart = charts.compare_chart(
        rows,
        gettext("Water use by month, in %(unit)s: the last 12 months and the year before", unit=unit),
        (gettext("Last 12 months"), gettext("The year before")),
    )
    return request.app.state.templates.TemplateResponse(
        request,
        "customer/usage.html",
        {
            "account": account,
            "history": history,
            "unit": unit,
            "chart": chart,
            "this_total": this_total,
            "last_total": last_total,
            "change": change,
        },
    )
