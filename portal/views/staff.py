"""The office's pages: account search and the account view."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from .. import jobs
from ..billing_core import bill_runs, ledger, permissions, service_requests
from ..billing_core.errors import FieldErrors, InvalidInput
from ..billing_core.models import User
from ..billing_core.permissions import Action
from ..billing_core.status import BillStatus
from ..services import accounts as service
from ..web import FormState, db, flash, now, page_number, pop_flash, redirect, remote_addr, require_staff, today


def search(request: Request) -> Response:
    query = request.query_params.get("q", "").strip()[:200]
    with db(request) as session:
        require_staff(request, session)
        results = service.search(session, query)
        template = "staff/_results.html" if request.headers.get("HX-Request") else "staff/search.html"
        response = request.app.state.templates.TemplateResponse(request, template, {"query": query, "results": results})
        response.headers["Vary"] = "HX-Request"
        return response


def account_view(request: Request) -> Response:
    with db(request) as session:
        user = require_staff(request, session)
        page = service.account_page(
            session,
            request.path_params["number"],
            as_of=today(request),
            bills_page=page_number(request, "bills"),
            ledger_page=page_number(request, "ledger"),
        )
        return _account_page(request, user, page)


def _account_page(
    request: Request,
    user: User,
    page: service.AccountPage,
    stop_form: FormState | None = None,
    review_form: FormState | None = None,
) -> Response:
    as_of = page.as_of
    if page.held_error is not None:  # the meter's reads changed since: the reviewer corrects the read
        review_form = review_form or FormState()
        review_form.errors.setdefault(page.held_error.field or "review", _sentence(page.held_error.message))
    errors = bool(stop_form and stop_form.errors) or bool(review_form and review_form.errors)
    context = dict(vars(page))  # the service's page as template variables, but for these two:
    del context["held_error"], context["stoppable"]
    return request.app.state.templates.TemplateResponse(
        request,
        "staff/account.html",
        {
            **context,
            "status_label": service_requests.status_label,
            "money_panels": MONEY_PANELS,
            "ledger_kind": ledger_kind,
            "can_stop": permissions.can(user.role, Action.BILLS_FINAL) and page.stoppable,
            "can_change": permissions.can(user.role, Action.ACCOUNTS_CHANGE),  # issue 16: maint
            "stop_form": stop_form or FormState({"stop_on": as_of.isoformat()}),
            "final_bill_date": bill_runs.final_bill_date,
            "reason_labels": bill_runs.FINAL_REASONS,
            "can_correct": permissions.can(user.role, Action.BILLS_FINAL_CORRECT),
            "can_approve": permissions.can(user.role, Action.BILLS_FINAL_APPROVE),
            "review_form": review_form or FormState(),
            "flash": pop_flash(request),
        },
        status_code=400 if errors else 200,
    )


#: The account page's money panels: (path under /staff/accounts/N/, link text). Each is a
#: fragment its own view renders (payments and returns, adjustments, deposits, refunds,
#: write-offs), loaded with htmx, and a page of its own without it.
MONEY_PANELS = (
    ("payments", "Payments and returns"),
    ("adjustments", "Adjustments"),
    ("deposits", "Deposits"),
    ("refunds", "Refunds"),
    ("write-off", "Write-off"),
    ("protections", "Shutoff protections"),  # issue 15, the gate: views/collections_policy.py
    ("field-orders", "Field orders"),  # issue 15, notices and field orders (views/field.py)
    ("plans", "Payment plans and extensions"),
    ("disputes", "Disputes and appeals"),
    ("referrals", "Collection referrals"),
    ("collections", "Collections"),
)


def ledger_kind(kind: str) -> str:
    """A ledger transaction's kind in plain words."""
    try:
        return ledger.KIND_LABELS[ledger.Kind(kind)]
    except ValueError:
        return kind.replace("_", " ").capitalize()


def _sentence(message: str) -> str:
    return message[:1].upper() + message[1:] + ("" if message.endswith(".") else ".")


async def stop_service(request: Request) -> Response:
    """Stop an account's service and post its final bill, from the final reads entered here;
    a forwarding address, when given, is where the final bill goes. The same address takes
    the actions on a final bill held for review (``action``: ``approve`` or ``correct``)."""
    form = await request.form()
    values = {
        k: str(v).strip()[:200]
        for k, v in form.items()
        if k in service.STOP_FIELDS or k in ("action", "reason") or k.startswith(("read-", "correct-"))
    }
    if values.get("action") in service.REVIEW_ACTIONS:
        response = await run_in_threadpool(_review_action, request, values)
    else:
        response = await run_in_threadpool(_stop_service, request, values)
    for request_id in getattr(request.state, "completed_requests", []):
        await run_in_threadpool(
            jobs.defer,
            request.app.state.settings,
            "email.request_update",
            request.app.state.sessions,
            request_id=request_id,
        )
    return response


def _stop_service(request: Request, values: dict[str, str]) -> Response:
    number = request.path_params["number"]
    with db(request) as session:
        user = require_staff(request, session)
        try:
            stop = service.stop_service(
                session, user, number, values, now=now(request), today=today(request), remote_addr=remote_addr(request)
            )
        except FieldErrors as exc:
            state = FormState(values)
            state.errors.update({field: _sentence(e.message) for field, e in exc.errors.items()})
            return _account_page(request, user, service.account_page(session, number, as_of=today(request)), state)
        if stop.bill_number is None:
            reasons = "; ".join(bill_runs.FINAL_REASONS.get(r, r).lower() for r in stop.held_reasons)
            flash(request, f"The final bill is held for review ({reasons}). Nothing is posted until it is approved.")
            return redirect(f"/staff/accounts/{number}#held-heading")
    request.state.completed_requests = stop.completed_requests  # the customers who asked are told, once this is saved
    return redirect(f"/staff/accounts/{number}/bills/{stop.bill_number}")


def _review_action(request: Request, values: dict[str, str]) -> Response:
    """Approve and post a held final bill, or correct one of its reads."""
    number = request.path_params["number"]
    action = values.get("action", "")
    with db(request) as session:
        user = require_staff(request, session)
        try:
            done = service.review_final_bill(
                session,
                user,
                number,
                action,
                values,
                now=now(request),
                today=today(request),
                remote_addr=remote_addr(request),
            )
        except FieldErrors as exc:
            state = FormState(values)
            state.errors.update({field: _sentence(e.message) for field, e in exc.errors.items()})
            page = service.account_page(session, number, as_of=today(request))
            return _account_page(request, user, page, review_form=state)
        if done.bill_number is None:
            flash(request, "The final read is corrected. The final bill stays held until a supervisor approves it.")
            return redirect(f"/staff/accounts/{number}#held-heading")
    request.state.completed_requests = done.completed_requests
    return redirect(f"/staff/accounts/{number}/bills/{done.bill_number}")


def _bill_page(
    request: Request, page: service.BillPage, user: User, form: FormState | None = None, error: str | None = None
) -> Response:
    return request.app.state.templates.TemplateResponse(
        request,
        "staff/bill.html",
        {
            "account": page.account,
            "bill": page.bill,
            "groups": page.groups,
            "usages": page.usages,
            "can_void": permissions.can(user.role, Action.BILLS_VOID),
            "BillStatus": BillStatus,
            "void_error": error,
            "form": form or FormState(),
            "reason": (form or FormState()).get("reason"),
        },
        status_code=400 if error or (form and form.errors) else 200,
    )


def bill_view(request: Request) -> Response:
    with db(request) as session:
        user = require_staff(request, session)
        page = service.bill_page(session, request.path_params["number"], request.path_params["bill"])
        return _bill_page(request, page, user)


async def void_bill(request: Request) -> Response:
    form = await request.form()
    values = {k: str(v).strip()[:250] for k, v in form.items() if k == "reason" or k.startswith("read-")}
    return await run_in_threadpool(_void_bill, request, values)


def _void_bill(request: Request, values: dict[str, str]) -> Response:
    number, bill_number = request.path_params["number"], request.path_params["bill"]
    with db(request) as session:
        user = require_staff(request, session)
        try:
            new_number = service.void_and_rebill(
                session,
                user,
                number,
                bill_number,
                values,
                now=now(request),
                today=today(request),
                remote_addr=remote_addr(request),
            )
        except InvalidInput as exc:
            form = FormState(values)
            if (exc.field or "").startswith("read-"):
                form.errors[exc.field or ""] = _sentence(exc.message)
            return _bill_page(request, service.bill_page(session, number, bill_number), user, form, exc.message)
    return redirect(f"/staff/accounts/{number}/bills/{new_number}")


def bill_document(request: Request) -> Response:
    from .customer import render_bill_document

    with db(request) as session:
        require_staff(request, session)
        doc = service.bill_document(session, request.path_params["number"], request.path_params["bill"])
        return render_bill_document(request, doc, f"/staff/accounts/{doc.account.number}/bills/{doc.bill.number}/pdf")


async def bill_pdf(request: Request) -> Response:
    from .customer import bill_pdf_html, pdf_response

    def build() -> tuple[str, str]:
        with db(request) as session:
            require_staff(request, session)
            doc = service.bill_document(session, request.path_params["number"], request.path_params["bill"])
            return bill_pdf_html(request, doc)

    return await pdf_response(request, *await run_in_threadpool(build))
