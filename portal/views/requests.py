"""The customer's service requests: start, stop, or move (transfer) service, and their status."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from ..billing_core import service_requests
from ..billing_core.errors import FieldErrors, InvalidInput
from ..i18n import gettext, language
from ..services import requests
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
        page = requests.my_requests(session, user)
        return render(request, "customer/requests.html", {**vars(page), "flash": pop_flash(request)})


def _form_context(kind: str, page: requests.RequestForm, form: FormState) -> dict:
    return {"kind": kind, "form": form, "accounts": page.accounts, "max_days": page.max_days}


def new_request_page(request: Request) -> Response:
    kind = _kind(request)
    with db(request) as session:
        user = require_customer(request, session)
        page = requests.request_form(session, user, request.query_params.get("account"))
        return render(request, "customer/request_form.html", _form_context(kind, page, FormState(page.defaults)))


async def new_request(request: Request) -> Response:
    kind = _kind(request)
    data = await request.form()
    form = FormState({k: str(data.get(k, ""))[:200] for k in FIELDS})

    def submit() -> Response:
        with db(request) as session:
            user = require_customer(request, session)
            try:
                made = requests.submit(
                    session, user, kind, form.values, language(), today(request), now(request), remote_addr(request)
                )
            except FieldErrors as exc:
                form.errors.update({name: error_text(err) for name, err in exc.errors.items()})
                context = _form_context(kind, requests.request_form(session, user), form)
                return render(request, "customer/request_form.html", context, 400)
            flash(request, gettext("We received your request. We will email you when it is scheduled."))
            return redirect(f"/my/requests/{made.id}")

    return await run_in_threadpool(submit)


def request_detail(request: Request) -> Response:
    with db(request) as session:
        user = require_customer(request, session)
        page = requests.my_request(session, user, request.path_params["request"])
        return render(
            request,
            "customer/request.html",
            {
                "item": page.item,
                "number": page.number,
                "flash": pop_flash(request),
                "error": None,
                "may_cancel": service_requests.may_cancel(page.item),
            },
        )


async def request_cancel(request: Request) -> Response:
    def cancel() -> str:
        with db(request) as session:
            user = require_customer(request, session)
            try:
                requests.cancel(session, user, request.path_params["request"], now(request))
            except InvalidInput as exc:
                return error_text(exc)
            return gettext("Your request is cancelled.")

    flash(request, await run_in_threadpool(cancel))
    return redirect(f"/my/requests/{request.path_params['request']}")
