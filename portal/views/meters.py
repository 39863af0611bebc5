"""The meter inventory's staff pages (``services/meters.py``): the stock list, receiving meters
(one, or a CSV file of serials), and one meter's page with its forms (a read by hand, an
exchange, install, test, retire, a move). Staff pages: English."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response

from ..billing_core import meter_inventory, permissions
from ..billing_core.errors import FieldErrors, InvalidInput
from ..billing_core.models import MeterStatus, User
from ..billing_core.permissions import Action
from ..charts import usage_chart
from ..services import meters as service
from ..web import db, flash, now, pop_flash, redirect, require_staff, today

MAX_METER_FILE = 2 * 1024 * 1024
#: The meter page's form fields (each kept as typed when the form comes back).
METER_FIELDS = (
    "action",
    "to",
    "new_serial",
    "on",
    "final_read",
    "first_read",
    "read_on",
    "read_value",
    "premise",
    "install_on",
    "install_read",
    "service_type",
    "tested_on",
    "result",
    "low_flow_pct",
    "mid_flow_pct",
    "high_flow_pct",
    "tested_by",
    "then",
    "retired_on",
)
RECEIVE_FIELDS = ("serial", "size", "make", "model", "dials", "multiplier", "received_on")


def _templates(request: Request):  # type: ignore[no-untyped-def]
    return request.app.state.templates


def _rights(user: User) -> dict[str, bool]:
    return {
        "can_change": permissions.can(user.role, Action.METERS_CHANGE),
        "can_inventory": permissions.can(user.role, Action.METERS_INVENTORY),
        "can_test": permissions.can(user.role, Action.METERS_TEST),
    }


# --------------------------------------------------------------------------- the stock list


def stock_list(request: Request) -> Response:
    params = request.query_params
    try:
        page = int(params.get("page", "1"))
    except ValueError:
        page = 1
    with db(request) as session:
        user = require_staff(request, session)
        stock = service.stock_list(
            session,
            size=params.get("size", "")[:10],
            status=params.get("status", "")[:20],
            q=params.get("q", ""),
            page=page,
        )
        return _templates(request).TemplateResponse(
            request,
            "staff/meters/list.html",
            {
                **vars(stock),
                **_rights(user),
                "sizes": meter_inventory.SIZES,
                "state_label": meter_inventory.state_label,
                "flash": pop_flash(request),
            },
        )


# --------------------------------------------------------------------------- receiving


def receive_page(request: Request) -> Response:
    with db(request) as session:
        user = require_staff(request, session)
        permissions.require(user, Action.METERS_INVENTORY)
        return _receive_page(request, flash_message=pop_flash(request))


def _receive_page(
    request: Request,
    *,
    form: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    problems: list[meter_inventory.RowProblem] | None = None,
    flash_message: str | None = None,
    status_code: int = 200,
) -> Response:
    day = today(request).isoformat()
    return _templates(request).TemplateResponse(
        request,
        "staff/meters/receive.html",
        {
            "form": form or {"received_on": day, "file_received_on": day, "dials": "6", "file_dials": "6"},
            "errors": errors or {},
            "problems": problems or [],
            "sizes": meter_inventory.SIZES,
            "columns": meter_inventory.FILE_COLUMNS,
            "flash": flash_message,
        },
        status_code=status_code,
    )


async def receive_one(request: Request) -> Response:
    form = await request.form()
    values = {k: str(form.get(k, "")).strip()[:80] for k in RECEIVE_FIELDS}
    return await run_in_threadpool(_receive_one, request, values)


def _receive_one(request: Request, values: dict[str, str]) -> Response:
    with db(request) as session:
        user = require_staff(request, session)
        try:
            meter = service.receive_one(session, user, values, today=today(request), now=now(request))
        except FieldErrors as exc:
            errors = {field: e.message for field, e in exc.errors.items()}
            return _receive_page(request, form=values, errors=errors, status_code=400)
        flash(request, f"Meter {meter.serial} received into stock.")
        return redirect(f"/staff/meters/{meter.serial}")


async def receive_file(request: Request) -> Response:
    form = await request.form()
    upload = form.get("meter_file")
    defaults = {
        k.removeprefix("file_"): str(form.get(k, "")).strip()[:80]
        for k in ("file_size", "file_make", "file_model", "file_dials", "file_multiplier", "file_received_on")
    }
    content, error = b"", ""
    if not isinstance(upload, UploadFile) or not upload.filename:
        error = "Choose a CSV file of serials to upload."
    else:
        content = await upload.read(MAX_METER_FILE + 1)
        if len(content) > MAX_METER_FILE:
            error = "That file is over 2 MB; split it."
    await form.close()
    return await run_in_threadpool(_receive_file, request, content, defaults, error)


def _receive_file(request: Request, content: bytes, defaults: dict[str, str], error: str) -> Response:
    form = {f"file_{k}": v for k, v in defaults.items()}
    with db(request) as session:
        user = require_staff(request, session)
        permissions.require(user, Action.METERS_INVENTORY)
        if error:
            return _receive_page(request, form=form, errors={"meter_file": error}, status_code=400)
        try:
            received = service.receive_file(session, user, content, defaults, today=today(request), now=now(request))
        except meter_inventory.FileRefused as exc:
            return _receive_page(
                request, form=form, errors={"meter_file": exc.message}, problems=exc.problems, status_code=400
            )
        except FieldErrors as exc:
            errors = {("meter_file" if f == "file" else f): e.message for f, e in exc.errors.items()}
            return _receive_page(request, form=form, errors=errors, status_code=400)
        flash(request, f"{len(received)} meters received into stock.")
        return redirect("/staff/meters?status=in_stock")


# --------------------------------------------------------------------------- one meter


def meter_view(request: Request) -> Response:
    with db(request) as session:
        user = require_staff(request, session)
        page = service.meter_page(session, request.path_params["serial"])
        return _meter_page(request, user, page, message=pop_flash(request))


def _meter_page(
    request: Request,
    user: User,
    page: service.MeterPage,
    *,
    message: str | None = None,
    errors: dict[str, str] | None = None,
    form: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    return _templates(request).TemplateResponse(
        request,
        "staff/meter.html",
        {
            **vars(page),
            **_rights(user),
            "chart": usage_chart(page.uses, page.meter.unit),
            "MeterStatus": MeterStatus,
            "state_label": meter_inventory.state_label,
            "after_test": meter_inventory.AFTER_TEST,
            "message": message,
            "errors": errors or {},
            "form": form or {},
            "today": today(request).isoformat(),
        },
        status_code=status_code,
    )


async def meter_action(request: Request) -> Response:
    form = await request.form()
    values = {k: str(form.get(k, "")).strip()[:40] for k in METER_FIELDS}
    values["read_note"] = str(form.get("read_note", "")).strip()[:200]
    values["premise"] = str(form.get("premise", "")).strip()[:200]
    values["reason"] = str(form.get("reason", "")).strip()[:300]
    values["notes"] = str(form.get("notes", "")).strip()[:2000]
    values["tested_by"] = str(form.get("tested_by", "")).strip()[:100]
    return await run_in_threadpool(_meter_action, request, request.path_params["serial"], values)


def _meter_action(request: Request, serial: str, values: dict[str, str]) -> Response:
    with db(request) as session:
        user = require_staff(request, session)
        try:
            done = service.change_meter(session, user, serial, values, today=today(request), now=now(request))
        except FieldErrors as exc:
            errors = {field: e.message for field, e in exc.errors.items()}
            return _meter_page(
                request,
                user,
                service.meter_page(session, serial),
                message=f"Nothing was changed: {next(iter(errors.values()))}",
                errors=errors,
                form=values,
                status_code=400,
            )
        except InvalidInput as exc:
            flash(request, f"Nothing was changed: {exc.message}")
            return redirect(f"/staff/meters/{serial}")
    flash(request, done)
    return redirect(f"/staff/meters/{serial}")
