"""The resident's pages. Every lookup is scoped to the accounts linked to the sign-in."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ..billing_core import accounts
from ..web import PageNotFound, db, require_customer, today


def my_accounts(request: Request) -> Response:
    with db(request) as session:
        user = require_customer(request, session)
        as_of = today(request)
        summaries = [accounts.summarise(session, a, as_of) for a in accounts.accounts_for_user(session, user)]
        return request.app.state.templates.TemplateResponse(
            request, "customer/home.html", {"summaries": summaries, "as_of": as_of}
        )


def account_detail(request: Request) -> Response:
    with db(request) as session:
        user = require_customer(request, session)
        account = accounts.account_for_user(session, user, request.path_params["number"])
        if account is None:
            raise PageNotFound()
        as_of = today(request)
        return request.app.state.templates.TemplateResponse(
            request,
            "customer/account.html",
            {
                "summary": accounts.summarise(session, account, as_of),
                "bills": accounts.bills_for_account(session, account.id),
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
        return request.app.state.templates.TemplateResponse(
            request, "customer/bill.html", {"account": account, "bill": bill, "groups": accounts.lines_by_service(bill)}
        )


def bill_document(request: Request) -> Response:
    """The printable bill, for a bill on one of this customer's accounts."""
    with db(request) as session:
        user = require_customer(request, session)
        account = accounts.account_for_user(session, user, request.path_params["number"])
        bill = accounts.bill_with_lines(session, account.id, request.path_params["bill"]) if account else None
        if bill is None:
            raise PageNotFound()
        return render_bill_document(request, session, account, bill)


def render_bill_document(request: Request, session, account, bill) -> Response:  # type: ignore[no-untyped-def]
    from ..charts import usage_chart

    doc = accounts.bill_document(session, account, bill, today(request))
    return request.app.state.templates.TemplateResponse(
        request, "bill_document.html", {"doc": doc, "chart": usage_chart(doc.history, "CCF")}
    )
