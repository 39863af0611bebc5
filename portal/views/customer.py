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
