"""Staff pages for rates: schedules and versions, the bill calculator, OWRS upload."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import selectinload
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response

from ..billing_core import owrs, rate_schedules, rating
from ..billing_core.errors import InvalidInput, NotFound
from ..billing_core.models import Account, RateSchedule, RateScheduleVersion, Service
from ..web import PageNotFound, db, redirect, remote_addr, require_rate_editor, require_staff, today

# Eight times the largest file of the OWRS corpus (32 KB).
MAX_UPLOAD_BYTES = 256 * 1024
CALCULATOR_INPUTS = {
    # name: (label, hint)
    "household_size": ("Household size (people)", "For budget-based rates."),
    "irrigated_area": ("Irrigated area (square feet)", "For budget-based rates."),
    "et_amount": ("Evapotranspiration this period (inches)", "For budget-based rates."),
    "dwelling_units": ("Dwelling units", "For multi-family rates."),
}


def schedule_list(request: Request) -> Response:
    with db(request) as session:
        user = require_staff(request, session)
        all_schedules = rate_schedules.schedules(session)
        as_of = today(request)
        groups: dict[tuple[str, str], list[RateSchedule]] = {}
        for schedule in all_schedules:
            groups.setdefault((schedule.service_type, schedule.customer_class), []).append(schedule)
        return request.app.state.templates.TemplateResponse(
            request,
            "staff/rates.html",
            {
                "groups": sorted(groups.items()),
                "in_force": {s.id: rate_schedules.version_in_force(s, as_of) for s in all_schedules},
                "can_edit": user.role in ("supervisor", "admin"),
                "imported": request.query_params.get("imported"),
            },
        )


def version_view(request: Request) -> Response:
    with db(request) as session:
        require_staff(request, session)
        try:
            version = rate_schedules.version(session, request.path_params["version"])
        except NotFound as exc:
            raise PageNotFound() from exc
        siblings = session.scalars(
            select(RateScheduleVersion)
            .where(RateScheduleVersion.schedule_id == version.schedule_id)
            .order_by(RateScheduleVersion.effective_on)
        ).all()
        return request.app.state.templates.TemplateResponse(
            request,
            "staff/rate_version.html",
            {
                "version": version,
                "schedule": version.schedule,
                "tables": rate_schedules.describe(version.definition),
                "needs": rating.required_inputs(version.definition),
                "siblings": siblings,
            },
        )


@dataclass
class CalculatorForm:
    schedule_id: int | None = None
    current_id: int | None = None
    proposed_id: int | None = None
    account: str = ""
    usage: str = "18"
    meter_size: str = ""
    days: str = "30"
    extra: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None


# The largest figure the calculator takes for any input (usage, people, square feet, ...);
# days in a period at most a year.
CALCULATOR_MAXIMUM = Decimal(10_000_000)
_PLAIN_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+")


def _decimal(
    form: CalculatorForm,
    name: str,
    text: str,
    label: str,
    minimum: Decimal = Decimal(0),
    maximum: Decimal = CALCULATOR_MAXIMUM,
) -> Decimal | None:
    if text.strip() == "":
        return None
    # Plain digits only: not "1E+1000000", "Infinity" or "NaN", which Decimal would read.
    if not _PLAIN_NUMBER.fullmatch(text.strip()):
        form.errors[name] = f"Enter {label} as a number, like 18 or 18.5."
        return None
    value = Decimal(text.strip())
    if value < minimum:
        form.errors[name] = f"{label.capitalize()} cannot be below {minimum}."
        return None
    if value > maximum:
        form.errors[name] = f"{label.capitalize()} cannot be over {maximum:,}."
        return None
    return value


def calculator(request: Request) -> Response:
    q = request.query_params
    form = CalculatorForm(
        schedule_id=_int(q.get("schedule")),
        current_id=_int(q.get("current")),
        proposed_id=_int(q.get("proposed")),
        account=q.get("account", "").strip()[:20],
        usage=q.get("usage", "18").strip()[:20],
        meter_size=q.get("meter_size", "").strip()[:10],
        days=q.get("days", "30").strip()[:4],
        extra={name: q.get(name, "").strip()[:20] for name in CALCULATOR_INPUTS},
    )
    with db(request) as session:
        require_staff(request, session)
        as_of = today(request)
        account = None
        if form.account:
            account = session.scalar(
                select(Account)
                .where(Account.number == form.account)
                .options(selectinload(Account.services).selectinload(Service.meter))
            )
            if account is None:
                form.errors["account"] = f"No account numbered {form.account}."
            else:
                water = next((s for s in account.services if s.service_type == "water"), account.services[0])
                form.schedule_id = form.schedule_id or water.rate_schedule_id
                if water.meter and not form.meter_size:
                    form.meter_size = water.meter.size
                form.extra["dwelling_units"] = form.extra.get("dwelling_units") or str(account.premise.dwelling_units)
        all_schedules = rate_schedules.schedules(session)
        schedule = next((s for s in all_schedules if s.id == form.schedule_id), None)
        comparison = None
        current = proposed = None
        if schedule is not None:
            by_id = {v.id: v for v in schedule.versions}
            current = by_id.get(form.current_id) or rate_schedules.version_in_force(schedule, as_of)
            proposed = by_id.get(form.proposed_id)
            if current is None:
                current = schedule.versions[-1] if schedule.versions else None
            form.current_id = current.id if current else None
            usage_qty = _decimal(form, "usage", form.usage, "the usage")
            days = _decimal(form, "days", form.days, "the days in the period", Decimal(1), Decimal(366))
            extras = {k: _decimal(form, k, v, CALCULATOR_INPUTS[k][0].lower()) for k, v in form.extra.items()}
            if "usage" in request.query_params and current is not None and not form.errors and usage_qty is not None:
                usage = rating.Usage(
                    quantity=usage_qty,
                    meter_size=form.meter_size or None,
                    dwelling_units=int(extras.get("dwelling_units") or 1),
                    household_size=extras.get("household_size"),
                    irrigated_area=extras.get("irrigated_area"),
                    et_amount=extras.get("et_amount"),
                    water_quantity=usage_qty,
                )
                try:
                    comparison = rate_schedules.calculate(
                        schedule.service_type, current, proposed, usage, int(days or 30)
                    )
                except owrs.OwrsError as exc:
                    form.errors["calculation"] = exc.reason
                except InvalidInput as exc:
                    form.errors["calculation"] = exc.message
        elif form.schedule_id is not None:
            form.errors["schedule"] = "Choose a rate schedule."
        template = "staff/_calculation.html" if request.headers.get("HX-Request") else "staff/rate_calculator.html"
        response = request.app.state.templates.TemplateResponse(
            request,
            template,
            {
                "form": form,
                "schedules": all_schedules,
                "schedule": schedule,
                "account": account,
                "current": current,
                "proposed": proposed,
                "comparison": comparison,
                "inputs": CALCULATOR_INPUTS,
                "needs": rating.required_inputs(current.definition) if current else [],
            },
            status_code=400 if form.errors else 200,
        )
        response.headers["Vary"] = "HX-Request"
        return response


def upload_page(request: Request) -> Response:
    with db(request) as session:
        user = require_staff(request, session)
        require_rate_editor(user)
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
        require_rate_editor(user)
        if errors:
            return []
        try:
            file = owrs.load_text(content.decode("utf-8", errors="replace"), name)
        except owrs.OwrsError as exc:
            return [exc]
        problems = rate_schedules.validate_owrs(file)
        if problems:
            return problems
        result = rate_schedules.import_owrs(
            session, file, effective_on=effective, actor=user, remote_addr=remote_addr(request)
        )
        if not result.ok:
            assert result.error is not None
            return [result.error]
    return redirect(f"/staff/rates?imported={result.created_versions}")
