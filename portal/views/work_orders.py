"""The office's work orders: the list with its filters (kind, status, who, due) where
overdue orders stand out and each open order is assigned or reassigned with a due date, the
new-order form (from the account's orders panel or the list), and the read review's
"re-read" button, which sends a re-read order to the field. Each route calls one service
and renders."""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from ..billing_core import field_orders as rules
from ..billing_core.errors import FieldErrors
from ..services import field_orders as service
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
    require_staff,
    today,
)

NEW_FIELDS = ("kind", "account", "meter", "due_on", "assigned_to", "crew")
ASSIGN_FIELDS = ("assigned_to", "crew", "due_on")
FILTERS = ("kind", "status", "assignee", "due")


def _render(request: Request, template: str, context: dict, status: int = 200) -> Response:
    return request.app.state.templates.TemplateResponse(request, template, context, status_code=status)


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise PageNotFound() from None


def _filters_query(values: dict[str, str]) -> str:
    kept = {k: v for k, v in values.items() if k in FILTERS and v}
    return f"?{urlencode(kept)}" if kept else ""


def _list_page(
    request: Request, query: dict[str, str], forms: dict[int, FormState] | None = None, status: int = 200
) -> Response:
    filters = service.parse_filters(query)
    with db(request) as session:
        user = require_staff(request, session)
        listing = service.work_order_list(session, user, filters, today(request))
        return _render(
            request,
            "staff/work_orders/list.html",
            {
                "listing": listing,
                "forms": forms or {},
                "kinds": rules.KINDS,
                "statuses": service.STATUSES,
                "dues": service.DUE,
                "origins": rules.ORIGINS,
                "back": _filters_query(query),
                "flash": pop_flash(request),
            },
            status,
        )


def work_order_list(request: Request) -> Response:
    return _list_page(request, {k: str(v)[:70] for k, v in request.query_params.items()})


async def assign(request: Request) -> Response:
    data = await request.form()
    order_id = _int(request.path_params["order"])
    form = FormState({k: str(data.get(k, "")).strip()[:70] for k in ASSIGN_FIELDS})
    query = {k: str(data.get(f"filter_{k}", ""))[:70] for k in FILTERS}

    def act() -> Response:
        try:
            with db(request) as session:
                user = require_staff(request, session)
                service.assign_order(session, user, order_id, form.values, today(request), now(request))
        except FieldErrors as exc:
            form.errors.update({k: error_text(e) for k, e in exc.errors.items()})
            return _list_page(request, query, {order_id: form}, 400)
        flash(request, f"Order {order_id} assigned.")
        return redirect("/staff/work-orders" + _filters_query(query))

    return await run_in_threadpool(act)


def _new_page(request: Request, form: FormState, status: int = 200) -> Response:
    with db(request) as session:
        user = require_staff(request, session)
        page = service.new_order_page(session, user, form.get("account"))
        if page.account is not None and not form.get("meter") and page.meter is not None:
            form.values.setdefault("meter_hint", page.meter.serial)
        return _render(request, "staff/work_orders/new.html", {"page": page, "form": form}, status)


def new_order(request: Request) -> Response:
    form = FormState({"account": request.query_params.get("account", "")[:20], "due_on": today(request).isoformat()})
    if request.query_params.get("kind", "") in rules.HAND_KINDS:
        form.values["kind"] = request.query_params["kind"]
    return _new_page(request, form)


async def create(request: Request) -> Response:
    data = await request.form()
    form = FormState({k: str(data.get(k, "")).strip()[:70] for k in NEW_FIELDS})
    form.values["notes"] = str(data.get("notes", "")).strip()[:2000]

    def act() -> Response:
        try:
            with db(request) as session:
                user = require_staff(request, session)
                order = service.create_order(session, user, form.values, today(request), now(request))
                label, order_id = rules.KINDS[order.kind], order.id
        except FieldErrors as exc:
            form.errors.update({k: error_text(e) for k, e in exc.errors.items()})
            return _new_page(request, form, 400)
        flash(request, f"{label} order {order_id} opened for account {form.get('account')}.")
        return redirect(f"/staff/accounts/{form.get('account')}/field-orders")

    return await run_in_threadpool(act)


async def reread(request: Request) -> Response:
    """The read review's "order a re-read": the read stays held, a re-read order goes out."""
    data = await request.form()
    read_id = _int(request.path_params["read"])
    note = str(data.get("reason", "")).strip()[:250]

    def act() -> Response:
        try:
            with db(request) as session:
                user = require_staff(request, session)
                order = service.reread_order(
                    session, user, read_id, note, today=today(request), now=now(request),
                    remote_addr=remote_addr(request),
                )  # fmt: skip
                order_id = order.id
        except FieldErrors as exc:
            return _render(
                request,
                "staff/_read_error.html",
                {"message": error_text(next(iter(exc.errors.values()))), "read_id": read_id},
                400,
            )
        return redirect(f"/staff/reads?done=reread&order={order_id}")

    return await run_in_threadpool(act)


def photo(request: Request) -> Response:
    """The photo field staff took with an order."""
    order_id = _int(request.path_params["order"])
    with db(request) as session:
        user = require_staff(request, session)
        data, kind = service.photo(session, user, order_id, request.app.state.settings.files_dir)
    return Response(data, media_type=kind, headers={"Content-Disposition": "inline", "Cache-Control": "private"})
