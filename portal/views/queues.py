"""Staff queues of what customers asked for online: service requests and payment
arrangement requests. Every staff role may read them; acting needs a role the permission
table allows (``Action.REQUESTS_HANDLE``, ``Action.ARRANGEMENTS_DECIDE``)."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from .. import jobs
from ..billing_core import bill_runs, service_requests
from ..billing_core.errors import InvalidInput
from ..billing_core.permissions import Field
from ..billing_core.status import ArrangementStatus
from ..services import arrangements, requests
from ..web import FormState, db, flash, now, pop_flash, redirect, remote_addr, require_staff, today

#: The payment plan queue's filters, in the order the page offers them.
PLAN_FILTERS = (
    (ArrangementStatus.SUBMITTED, "Waiting for a decision"),
    (ArrangementStatus.APPROVED, "Approved"),
    (ArrangementStatus.DECLINED, "Declined"),
    (ArrangementStatus.WITHDRAWN, "Withdrawn"),
)


def _render(request: Request, template: str, context: dict, status: int = 200) -> Response:
    return request.app.state.templates.TemplateResponse(request, template, context, status_code=status)


def request_queue(request: Request) -> Response:
    show = request.query_params.get("show", "open")
    kind = request.query_params.get("kind", "")
    with db(request) as session:
        require_staff(request, session)
        page = requests.queue(session, show, kind or None)
        return _render(
            request,
            "staff/requests.html",
            {
                **vars(page),
                "show": show,
                "kind": kind,
                "today": today(request),
                "status_label": service_requests.status_label,
                "reason_labels": bill_runs.FINAL_REASONS,
                "OPEN": service_requests.OPEN,
                "DONE": service_requests.DONE,
            },
        )


def _request_page(request: Request, page: requests.StaffRequest, form: FormState | None = None) -> Response:
    return _render(
        request,
        "staff/request.html",
        {
            **vars(page),
            "status_label": service_requests.status_label,
            "today": today(request),
            "open_statuses": service_requests.OPEN,
            "show_birth_date": Field.BIRTH_DATE in page.shown,
            "show_id_last4": Field.ID_LAST4 in page.shown,
            "form": form or FormState(),
            "flash": pop_flash(request),
        },
        400 if form and form.errors else 200,
    )


def request_view(request: Request) -> Response:
    with db(request) as session:
        user = require_staff(request, session)
        page = requests.staff_request(session, user, request.path_params["request"], remote_addr(request))
        return _request_page(request, page)


async def request_action(request: Request) -> Response:
    data = await request.form()
    form = FormState({k: str(data.get(k, ""))[:2000] for k in ("action", "message", "note")})

    def act() -> Response:
        with db(request) as session:
            user = require_staff(request, session)
            request_id = request.path_params["request"]
            try:
                item = requests.handle(
                    session,
                    user,
                    request_id,
                    form.get("action"),
                    form.get("message"),
                    form.get("note"),
                    now(request),
                    today(request),
                )
            except InvalidInput as exc:
                form.errors[exc.field if exc.field in ("message", "action") else "action"] = exc.message
                page = requests.staff_request(session, user, request_id, remote_addr(request))
                return _request_page(request, page, form)
            label = service_requests.status_label(item)
            flash(request, f"Request {item.id} is now {label}.")
            return redirect(f"/staff/requests/{item.id}")

    response = await run_in_threadpool(act)
    if response.status_code == 303:
        await _email(request, "email.request_update", int(request.path_params["request"]))
    return response


async def _email(request: Request, job: str, request_id: int) -> None:
    queued = await run_in_threadpool(
        jobs.defer, request.app.state.settings, job, request.app.state.sessions, request_id=request_id
    )
    # Said only as it is: the page below shows whether it was sent, is retrying or failed.
    note = (
        " An email to the customer is queued (see below)."
        if queued
        else " The email to the customer could not be queued."
    )
    cookie = request.session
    flash(request, cookie.get("flash", "") + note)


# --- Payment arrangement requests ----------------------------------------------------------


def arrangement_queue(request: Request) -> Response:
    show = request.query_params.get("show", ArrangementStatus.SUBMITTED.value)
    status = next((s for s, _label in PLAN_FILTERS if s.value == show), ArrangementStatus.SUBMITTED)
    with db(request) as session:
        require_staff(request, session)
        page = arrangements.queue(session, status)
        return _render(
            request,
            "staff/arrangements.html",
            {**vars(page), "show": status.value, "filters": [(s.value, label) for s, label in PLAN_FILTERS]},
        )


def _arrangement_page(request: Request, page: arrangements.StaffPlan, form: FormState | None = None) -> Response:
    return _render(
        request,
        "staff/arrangement.html",
        {**vars(page), "form": form or FormState(), "flash": pop_flash(request)},
        400 if form and form.errors else 200,
    )


def arrangement_view(request: Request) -> Response:
    with db(request) as session:
        user = require_staff(request, session)
        page = arrangements.staff_plan(session, user, request.path_params["request"], today(request))
        return _arrangement_page(request, page)


async def arrangement_action(request: Request) -> Response:
    data = await request.form()
    form = FormState({k: str(data.get(k, ""))[:600] for k in ("decision", "message")})

    def act() -> Response:
        with db(request) as session:
            user = require_staff(request, session)
            request_id = request.path_params["request"]
            try:
                item = arrangements.decide(
                    session, user, request_id, form.get("decision"), form.get("message"), now(request), today(request)
                )
            except InvalidInput as exc:
                form.errors[exc.field if exc.field in ("message", "decision") else "decision"] = exc.message
                page = arrangements.staff_plan(session, user, request_id, today(request))
                return _arrangement_page(request, page, form)
            flash(request, f"Payment plan request {item.id} is {item.status}.")
            return redirect(f"/staff/arrangements/{item.id}")

    response = await run_in_threadpool(act)
    if response.status_code == 303:
        await _email(request, "email.arrangement_decision", int(request.path_params["request"]))
    return response
