"""Staff pages for rates: schedules and versions, the bill calculator, OWRS upload."""

from __future__ import annotations

from datetime import date

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response

from ..billing_core import owrs, permissions
from ..billing_core.errors import NotFound
from ..billing_core.permissions import Action
from ..services import rates
from ..web import PageNotFound, db, redirect, remote_addr, require_staff, today

# Eight times the largest file of the OWRS corpus (32 KB).
MAX_UPLOAD_BYTES = 256 * 1024


def schedule_list(request: Request) -> Response:
    with db(request) as session:
        user = require_staff(request, session)
        listing = rates.schedule_list(session, today(request))
        return request.app.state.templates.TemplateResponse(
            request,
            "staff/rates.html",
            {
                "groups": listing.groups,
                "in_force": listing.in_force,
                "can_edit": permissions.can(user.role, Action.RATES_EDIT),
                "imported": request.query_params.get("imported"),
            },
        )


def version_view(request: Request) -> Response:
    with db(request) as session:
        require_staff(request, session)
        try:
            page = rates.version_page(session, request.path_params["version"])
        except NotFound as exc:
            raise PageNotFound() from exc
        return request.app.state.templates.TemplateResponse(
            request,
            "staff/rate_version.html",
            {
                "version": page.version,
                "schedule": page.schedule,
                "tables": page.tables,
                "needs": page.needs,
                "siblings": page.siblings,
                "people": page.people,
            },
        )


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None


def calculator(request: Request) -> Response:
    q = request.query_params
    form = rates.CalculatorForm(
        schedule_id=_int(q.get("schedule")),
        current_id=_int(q.get("current")),
        proposed_id=_int(q.get("proposed")),
        account=q.get("account", "").strip()[:20],
        usage=q.get("usage", "18").strip()[:20],
        meter_size=q.get("meter_size", "").strip()[:10],
        days=q.get("days", "30").strip()[:4],
        extra={name: q.get(name, "").strip()[:20] for name in rates.CALCULATOR_INPUTS},
    )
    with db(request) as session:
        require_staff(request, session)
        result = rates.calculate(session, form, today(request), compute="usage" in q)
        template = "staff/_calculation.html" if request.headers.get("HX-Request") else "staff/rate_calculator.html"
        response = request.app.state.templates.TemplateResponse(
            request,
            template,
            {
                "form": result.form,
                "schedules": result.schedules,
                "schedule": result.schedule,
                "account": result.account,
                "current": result.current,
                "proposed": result.proposed,
                "comparison": result.comparison,
                "inputs": rates.CALCULATOR_INPUTS,
                "needs": result.needs,
            },
            status_code=400 if result.form.errors else 200,
        )
        response.headers["Vary"] = "HX-Request"
        return response


def upload_page(request: Request) -> Response:
    with db(request) as session:
        user = require_staff(request, session)
        permissions.require(user, Action.RATES_EDIT)
    return request.app.state.templates.TemplateResponse(
        request, "staff/rate_upload.html", {"errors": {}, "problems": [], "effective": ""}
    )


async def upload(request: Request) -> Response:
    form = await request.form()
    upload_file = form.get("owrs_file")
    effective_text = str(form.get("effective", "")).strip()[:10]
    errors: dict[str, str] = {}
    content = b""
    name = ""
    if not isinstance(upload_file, UploadFile) or not upload_file.filename:
        errors["owrs_file"] = "Choose an OWRS file (.owrs or .yaml) to upload."
    else:
        name = upload_file.filename.rsplit("/", 1)[-1][:200]
        content = await upload_file.read(MAX_UPLOAD_BYTES + 1)
        if len(content) > MAX_UPLOAD_BYTES:
            errors["owrs_file"] = "That file is over 256 KB; an OWRS file is a few kilobytes."
    effective = None
    if effective_text:
        try:
            effective = date.fromisoformat(effective_text)
        except ValueError:
            errors["effective"] = "Enter the date as YYYY-MM-DD, for example 2026-07-01."
    await form.close()
    outcome = await run_in_threadpool(_import_upload, request, name, content, effective, errors)
    if isinstance(outcome, Response):
        return outcome
    problems = outcome
    if problems and "owrs_file" not in errors:
        first = problems[0]
        where = ", ".join(
            part
            for part in (
                f"class {first.cust_class}" if first.cust_class else "",
                f"field {first.field_name}" if first.field_name else "",
            )
            if part
        )
        more = f" (and {len(problems) - 1} more, listed above)" if len(problems) > 1 else ""
        errors["owrs_file"] = f"Nothing was imported. {where + ': ' if where else ''}{first.reason}{more}"
    return request.app.state.templates.TemplateResponse(
        request,
        "staff/rate_upload.html",
        {"errors": errors, "problems": problems, "effective": effective_text},
        status_code=400,
    )


def _import_upload(
    request: Request, name: str, content: bytes, effective: date | None, errors: dict[str, str]
) -> Response | list[owrs.OwrsError]:
    with db(request) as session:
        user = require_staff(request, session)
        permissions.require(user, Action.RATES_EDIT)
        if errors:
            return []
        outcome = rates.import_upload(session, user, name, content, effective, remote_addr(request))
        if not outcome.ok:
            return outcome.problems
    return redirect(f"/staff/rates?imported={outcome.created_versions}")
