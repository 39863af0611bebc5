"""Staff queues of what customers asked for online: service requests and payment
arrangement requests. Every staff role may read them; acting needs a role that may."""

from __future__ import annotations

from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from .. import jobs
from ..billing_core import accounts, arrangements, bill_runs, outbox, service_requests
from ..billing_core.errors import InvalidInput
from ..billing_core.models import Account, ArrangementRequest, Role, ServiceRequest, User
from ..web import Forbidden, FormState, PageNotFound, db, flash, now, pop_flash, redirect, require_staff, today

#: Who works customer requests: customer service and the billing office, not cashiers.
REQUEST_HANDLERS = frozenset({Role.CSR.value, Role.SPECIALIST.value, Role.SUPERVISOR.value, Role.ADMIN.value})
STATUS_FILTERS = {"open": service_requests.OPEN, "done": ("completed", "declined", "cancelled")}


def _render(request: Request, template: str, context: dict, status: int = 200) -> Response:
    return request.app.state.templates.TemplateResponse(request, template, context, status_code=status)


def _int(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise PageNotFound() from None


def request_queue(request: Request) -> Response:
    show = request.query_params.get("show", "open")
    kind = request.query_params.get("kind", "")
    with db(request) as session:
        require_staff(request, session)
        items = service_requests.queue(session, STATUS_FILTERS.get(show, service_requests.OPEN), kind or None)
        held = bill_runs.held_final_bills(session)
        numbers = dict(
            session.execute(
                select(Account.id, Account.number).where(Account.id.in_({i.account_id for i in items if i.account_id}))
            ).all()
        )
        return _render(
            request,
            "staff/requests.html",
            {
                "items": items,
                "numbers": numbers,
                "show": show,
                "kind": kind,
                "today": today(request),
                "status_label": service_requests.status_label,
                "held": held,
                "reason_labels": bill_runs.FINAL_REASONS,
                "held_numbers": dict(
                    session.execute(
                        select(Account.id, Account.number).where(Account.id.in_({h.account_id for h in held}))
                    ).all()
                ),
            },
        )


def _request_page(
    request: Request, session, user: User, item: ServiceRequest, form: FormState | None = None
) -> Response:  # type: ignore[no-untyped-def]
    account = session.get(Account, item.account_id) if item.account_id else None
    requester = session.get(User, item.user_id)
    return _render(
        request,
        "staff/request.html",
        {
            "item": item,
            "account": account,
            "requester": requester,
            "actions": service_requests.TRANSITIONS.get(item.status, ()),
            "status_label": service_requests.status_label,
            "today": today(request),
            "can_act": user.role in REQUEST_HANDLERS,
            "emails": outbox.about(session, "service_request", item.id),
            "form": form or FormState(),
            "flash": pop_flash(request),
        },
        400 if form and form.errors else 200,
    )


def request_view(request: Request) -> Response:
    with db(request) as session:
        user = require_staff(request, session)
        item = session.get(ServiceRequest, _int(request.path_params["request"]))
        if item is None:
            raise PageNotFound()
        return _request_page(request, session, user, item)


async def request_action(request: Request) -> Response:
    data = await request.form()
    form = FormState({k: str(data.get(k, ""))[:2000] for k in ("action", "message", "note")})

    def act() -> Response:
        with db(request) as session:
            user = require_staff(request, session)
            if user.role not in REQUEST_HANDLERS:
                raise Forbidden("Only customer service and billing staff work customer requests.")
            item = session.get(ServiceRequest, _int(request.path_params["request"]), with_for_update=True)
            if item is None:
                raise PageNotFound()
            try:
                service_requests.handle(
                    session,
                    item,
                    form.get("action"),
                    user,
                    now(request),
                    form.get("message"),
                    form.get("note"),
                    today(request),
                )
            except InvalidInput as exc:
                form.errors[exc.field if exc.field in ("message", "action") else "action"] = exc.message
                return _request_page(request, session, user, item, form)
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
    flash(request, request.session.get("flash", "") + note)


# --- Payment arrangement requests ----------------------------------------------------------


def arrangement_queue(request: Request) -> Response:
    show = request.query_params.get("show", "submitted")
    if show not in ("submitted", "approved", "declined", "withdrawn"):
        show = "submitted"
    with db(request) as session:
        require_staff(request, session)
        items = arrangements.queue(session, show)
        numbers = dict(
            session.execute(
                select(Account.id, Account.number).where(Account.id.in_({i.account_id for i in items}))
            ).all()
        )
        return _render(request, "staff/arrangements.html", {"items": items, "numbers": numbers, "show": show})


def _arrangement_page(
    request: Request,
    session,  # type: ignore[no-untyped-def]
    user: User,
    item: ArrangementRequest,
    form: FormState | None = None,
) -> Response:
    account = session.get(Account, item.account_id)
    return _render(
        request,
        "staff/arrangement.html",
        {
            "item": item,
            "account": account,
            "summary": accounts.summarise(session, account, today(request)),
            "plan": arrangements.schedule(
                item.total_cents, item.down_payment_cents, item.installments, item.first_due_on
            ),
            "requester": session.get(User, item.user_id),
            "can_act": user.role in REQUEST_HANDLERS and item.status == "submitted",
            "emails": outbox.about(session, "arrangement_request", item.id),
            "form": form or FormState(),
            "flash": pop_flash(request),
        },
        400 if form and form.errors else 200,
    )


def arrangement_view(request: Request) -> Response:
    with db(request) as session:
        user = require_staff(request, session)
        item = session.get(ArrangementRequest, _int(request.path_params["request"]))
        if item is None:
            raise PageNotFound()
        return _arrangement_page(request, session, user, item)


async def arrangement_action(request: Request) -> Response:
    data = await request.form()
    form = FormState({k: str(data.get(k, ""))[:600] for k in ("decision", "message")})

    def act() -> Response:
        with db(request) as session:
            user = require_staff(request, session)
            if user.role not in REQUEST_HANDLERS:
                raise Forbidden("Only customer service and billing staff decide payment plans.")
            item = session.get(ArrangementRequest, _int(request.path_params["request"]), with_for_update=True)
            if item is None:
                raise PageNotFound()
            try:
                if form.get("decision") not in ("approve", "decline"):
                    raise InvalidInput("Choose approve or decline.", "decision")
                arrangements.decide(
                    session, item, user, form.get("decision") == "approve", form.get("message"), now(request)
                )
            except InvalidInput as exc:
                form.errors[exc.field if exc.field in ("message", "decision") else "decision"] = exc.message
                return _arrangement_page(request, session, user, item, form)
            flash(request, f"Payment plan request {item.id} is {item.status}.")
            return redirect(f"/staff/arrangements/{item.id}")

    response = await run_in_threadpool(act)
    if response.status_code == 303:
        await _email(request, "email.arrangement_decision", int(request.path_params["request"]))
    return response
