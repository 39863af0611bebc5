"""The customer's service requests: start, stop, or move (transfer) service, and their status."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from ..billing_core import accounts, service_requests
from ..billing_core.errors import InvalidInput
from ..billing_core.models import AccountStatus
from ..i18n import gettext, language
from ..web import (
    FormState,
    PageNotFound,
    db,
    error_text,
    flash,
    now,
    pop_flash,
    redirect,
    remote_addr,
    require_customer,
    today,
)
from .payments import render

FIELDS = (
    "account",
    "stop_on",
    "start_on",
    "forward_line1",
    "forward_city",
    "forward_state",
    "forward_zip",
    "service_line1",
    "service_line2",
    "service_city",
    "service_state",
    "service_zip",
    "occupancy",
    "birth_date",
    "id_last4",
    "contact_name",
    "contact_phone",
)


def _kind(request: Request) -> str:
    kind = request.path_params["kind"]
    if kind not in service_requests.KINDS:
        raise PageNotFound()
    return kind


def requests_page(request: Request) -> Response:
    with db(request) as session:
        user = require_customer(request, session)
        mine = service_requests.for_user(session, user)
        numbers = {a.id: a.number for a in accounts.accounts_for_user(session, user)}
        return render(
            request,
            "customer/requests.html",
            {"requests": mine, "numbers": numbers, "flash": pop_flash(request)},
        )


def _form_context(request: Request, session, user, kind: str, form: FormState) -> dict:  # type: ignore[no-untyped-def]
    active = [a for a in accounts.accounts_for_user(session, user) if a.status == AccountStatus.ACTIVE.value]
    return {"kind": kind, "form": form, "accounts": active, "max_days": service_requests.MAX_DAYS_AHEAD}


def new_request_page(request: Request) -> Response:
    kind = _kind(request)
    with db(request) as session:
        user = require_customer(request, session)
        linked = accounts.accounts_for_user(session, user)
        first = linked[0] if linked else None
        form = FormState(
            {
                "account": request.query_params.get("account", first.number if first else ""),
                "contact_name": user.display_name or (first.customer.name if first else ""),
                "contact_phone": (first.customer.phone or "") if first else "",
            }
        )
        return render(request, "customer/request_form.html", _form_context(request, session, user, kind, form))


async def new_request(request: Request) -> Response:
    kind = _kind(request)
    data = await request.form()
    form = FormState({k: str(data.get(k, ""))[:200] for k in FIELDS})

    def submit() -> Response:
        with db(request) as session:
            user = require_customer(request, session)
            try:
                made = service_requests.submit(
                    session,
                    user,
                    kind,
                    service_requests.Form(form.values, language()),
                    today(request),
                    now(request),
                    remote_addr(request),
                )
            except service_requests.RequestErrors as exc:
                form.errors.update({name: error_text(err) for name, err in exc.errors.items()})
                context = _form_context(request, session, user, kind, form)
                return render(request, "customer/request_form.html", context, 400)
            flash(request, gettext("We received your request. We will email you when it is scheduled."))
            return redirect(f"/my/requests/{made.id}")

    return await run_in_threadpool(submit)


def request_detail(request: Request) -> Response:
    with db(request) as session:
        user = require_customer(request, session)
        item = service_requests.one_for_user(session, user, request.path_params["request"])
        if item is None:
            raise PageNotFound()
        numbers = {a.id: a.number for a in accounts.accounts_for_user(session, user)}
        return render(
            request,
            "customer/request.html",
            {"item": item, "number": numbers.get(item.account_id), "flash": pop_flash(request), "error": None},
        )


async def request_cancel(request: Request) -> Response:
    def cancel() -> str:
        with db(request) as session:
            user = require_customer(request, session)
            item = service_requests.one_for_user(session, user, request.path_params["request"])
            if item is None:
                raise PageNotFound()
            try:
                service_requests.cancel(session, item, user, now(request))
            except InvalidInput as exc:
                return error_text(exc)
            return gettext("Your request is cancelled.")

    flash(request, await run_in_threadpool(cancel))
    return redirect(f"/my/requests/{request.path_params['request']}")
