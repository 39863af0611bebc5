"""Field orders: the field staff's phone page (their orders, their crew's and nobody's, by
route, each with a done form fitted to its kind, a photo included, and a not-done form), the
printable door-tag route sheet, and the account page's Field orders panel (cancel an order,
queue a reconnection). Each route calls one service and renders."""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response

from .. import jobs
from ..billing_core import field_orders as rules
from ..billing_core import permissions
from ..billing_core.errors import FieldErrors
from ..billing_core.models import Notice
from ..billing_core.permissions import Action
from ..services import field_orders as service
from ..web import FormState, PageNotFound, db, error_text, flash, now, pop_flash, redirect, require_staff, today

DONE_FIELDS = (
    "time", "meter_read", "lock_or_tag", "day", "serial", "new_read", "result", "low_flow", "mid_flow", "high_flow",
    "open_case",
)  # fmt: skip
NOT_DONE_FIELDS = ("reason", "detail")


def _render(request: Request, template: str, context: dict, status: int = 200) -> Response:
    response = request.app.state.templates.TemplateResponse(request, template, context, status_code=status)
    response.headers["Vary"] = "HX-Request"
    return response


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise PageNotFound() from None


def _field_page(
    request: Request, forms: dict[int, FormState] | None = None, status: int = 200, crew: str | None = None
) -> Response:
    crew = request.query_params.get("crew", "")[:60] if crew is None else crew
    everyone = request.query_params.get("all", "") == "1"
    with db(request) as session:
        user = require_staff(request, session)
        listing = service.field_list(session, user, today(request), crew, everyone)
        return _render(
            request,
            "staff/field/list.html",
            {
                "listing": listing,
                "forms": forms or {},
                "kinds": rules.KINDS,
                "rules": rules,
                "can_open_case": permissions.can(user.role, Action.CASES_OPEN),
                "flash": pop_flash(request),
            },
            status,
        )


def field_list(request: Request) -> Response:
    return _field_page(request)


def _back(crew: str) -> str:
    return "/staff/field" + (f"?{urlencode({'crew': crew})}" if crew else "")


def _send(request: Request, notice_rows: list[Notice]) -> None:
    for n in notice_rows:
        if n.email_outbox_id:
            jobs.send_outbox_soon(request.app.state.settings, request.app.state.sessions, n.email_outbox_id)


async def mark_done(request: Request) -> Response:
    data = await request.form()
    order_id = _int(request.path_params["order"])
    form = FormState({k: str(data.get(k, "")).strip()[:100] for k in DONE_FIELDS})
    form.values["notes"] = str(data.get("notes", "")).strip()[:2000]
    form.values["form"] = "done"
    crew = str(data.get("crew", "")).strip()[:60]
    upload = data.get("photo")
    photo: service.Photo | None = None
    if isinstance(upload, UploadFile) and upload.filename:
        content = await upload.read(rules.PHOTO_MAX_BYTES + 1)
        photo = service.Photo(upload.content_type or "", content)
    await data.close()

    def act() -> Response:
        settings = request.app.state.settings
        try:
            with db(request) as session:
                user = require_staff(request, session)
                order, issued = service.mark_done(
                    session, user, order_id, form.values, today(request), now(request), settings.tz,
                    photo, settings.files_dir,
                )  # fmt: skip
                label = rules.KINDS.get(order.kind, order.kind)
        except FieldErrors as exc:
            form.errors.update({k: error_text(e) for k, e in exc.errors.items()})
            return _field_page(request, {order_id: form}, 400, crew)
        _send(request, issued)
        flash(request, f"{label} order {order_id} is done.")
        return redirect(_back(crew))

    return await run_in_threadpool(act)


async def mark_not_done(request: Request) -> Response:
    data = await request.form()
    order_id = _int(request.path_params["order"])
    form = FormState({k: str(data.get(k, "")).strip()[:500] for k in NOT_DONE_FIELDS})
    form.values["form"] = "not_done"
    crew = str(data.get("crew", "")).strip()[:60]

    def act() -> Response:
        try:
            with db(request) as session:
                user = require_staff(request, session)
                order = service.mark_not_done(session, user, order_id, form.values, now(request))
                label = rules.KINDS.get(order.kind, order.kind)
        except FieldErrors as exc:
            form.errors.update({k: error_text(e) for k, e in exc.errors.items()})
            return _field_page(request, {order_id: form}, 400, crew)
        flash(request, f"{label} order {order_id} is marked not done.")
        return redirect(_back(crew))

    return await run_in_threadpool(act)


def door_tags(request: Request) -> Response:
    with db(request) as session:
        user = require_staff(request, session)
        sheet = service.door_tag_sheet(session, user, today(request))
        return _render(request, "staff/field/door_tags.html", {"sheet": sheet})


# --- The account page's panel ------------------------------------------------------------------


def _panel(request: Request, number: str, cancel_form: FormState | None = None, status: int = 200) -> Response:
    with db(request) as session:
        user = require_staff(request, session)
        panel = service.panel(session, user, number, today(request))
        fragment = bool(request.headers.get("HX-Request"))
        template = "staff/field/panel.html" if fragment else "staff/field/panel_page.html"
        return _render(
            request,
            template,
            {
                "panel": panel,
                "kinds": rules.KINDS,
                "origins": rules.ORIGINS,
                "cancel_form": cancel_form or FormState(),
                "flash": pop_flash(request),
            },
            status,
        )


def orders_panel(request: Request) -> Response:
    return _panel(request, request.path_params["number"])


async def cancel_order(request: Request) -> Response:
    data = await request.form()
    number = request.path_params["number"]
    order_id = _int(request.path_params["order"])
    reason = str(data.get("cancel_reason", "")).strip()[:500]

    def act() -> Response:
        try:
            with db(request) as session:
                user = require_staff(request, session)
                service.cancel(session, user, number, order_id, reason, now(request))
        except FieldErrors as exc:
            form = FormState({"cancel_reason": reason, "order": str(order_id)})
            form.errors["cancel_reason"] = error_text(next(iter(exc.errors.values())))
            return _panel(request, number, form, 400)
        flash(request, f"Order {order_id} cancelled.")
        return redirect(f"/staff/accounts/{number}/field-orders")

    return await run_in_threadpool(act)


async def queue_reconnection(request: Request) -> Response:
    data = await request.form()
    number = request.path_params["number"]
    when = str(data.get("when", ""))[:20]

    def act() -> Response:
        try:
            with db(request) as session:
                user = require_staff(request, session)
                order = service.queue_reconnection(session, user, number, today(request), now(request), when)
                fee = order.amount_cents or 0
                order_id = order.id
        except FieldErrors as exc:
            flash(request, error_text(next(iter(exc.errors.values()))))
            return redirect(f"/staff/accounts/{number}/field-orders")
        flash(request, f"Reconnection order {order_id} queued (fee ${fee / 100:,.2f}).")
        return redirect(f"/staff/accounts/{number}/field-orders")

    return await run_in_threadpool(act)
