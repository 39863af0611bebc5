"""The collection reports (``services/collection_reports.py``): the aging report (page with a
chart, CSV, XLSX), the delinquency call list (page, CSV) and the annual shutoff report (page,
CSV). Staff pages: English."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from ..billing_core.errors import FieldErrors, InvalidInput
from ..services import collection_reports as service
from ..web import FormState, db, require_staff, today


def _render(request: Request, template: str, context: dict, status: int = 200) -> Response:
    return request.app.state.templates.TemplateResponse(request, template, context, status_code=status)


def _sentence(message: str) -> str:
    return message[:1].upper() + message[1:] + ("" if message.endswith(".") else ".")


def _aging(request: Request, kind: str) -> Response:
    with db(request) as session:
        user = require_staff(request, session)
        form = FormState({"as_of": request.query_params.get("as_of", "")[:20]})
        try:
            as_of = service.parse_day(form.get("as_of"), today(request))
        except InvalidInput as exc:
            form.errors["as_of"] = _sentence(exc.message)
            as_of = today(request)
            if kind != "page":
                return Response(form.errors["as_of"], status_code=400, media_type="text/plain")
        report = service.aging(session, user, as_of)
        if not form.errors:
            form.values["as_of"] = as_of.isoformat()
    stamp = as_of.isoformat()
    if kind == "csv":
        return Response(
            service.aging_csv(report),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="aging-{stamp}.csv"'},
        )
    if kind == "xlsx":
        return Response(
            service.aging_xlsx(report),
            media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            headers={"Content-Disposition": f'attachment; filename="aging-{stamp}.xlsx"'},
        )
    return _render(
        request,
        "staff/collection_reports/aging.html",
        {"report": report, "form": form, "chart": service.aging_chart(report), "buckets": service.BUCKETS},
        400 if form.errors else 200,
    )


async def aging(request: Request) -> Response:
    return await run_in_threadpool(_aging, request, "page")


async def aging_csv(request: Request) -> Response:
    return await run_in_threadpool(_aging, request, "csv")


async def aging_xlsx(request: Request) -> Response:
    return await run_in_threadpool(_aging, request, "xlsx")


def _calls(request: Request, csv: bool) -> Response:
    values = {k: request.query_params.get(k, "").strip()[:40] for k in service.CALL_FIELDS}
    form = FormState(values)
    with db(request) as session:
        user = require_staff(request, session)
        try:
            page = service.call_page(session, user, values, today(request), limit=None if csv else service.CALL_LIMIT)
        except FieldErrors as exc:
            form.errors.update({k: _sentence(e.message) for k, e in exc.errors.items()})
            if csv:
                return Response(" ".join(form.errors.values()), status_code=400, media_type="text/plain")
            cycles, routes, classes = service.choices(session)
            return _render(
                request,
                "staff/collection_reports/calls.html",
                {"page": None, "form": form, "cycles": cycles, "routes": routes, "classes": classes, "query": ""},
                400,
            )
        form.values["as_of"] = page.as_of.isoformat()
        if csv:
            return Response(
                service.call_csv(page),
                media_type="text/csv; charset=utf-8",
                headers={"Content-Disposition": f'attachment; filename="call-list-{page.as_of.isoformat()}.csv"'},
            )
        return _render(
            request,
            "staff/collection_reports/calls.html",
            {
                "page": page,
                "form": form,
                "cycles": page.cycles,
                "routes": page.routes,
                "classes": page.classes,
                "query": str(request.url.query),
                "limit": service.CALL_LIMIT,
            },
        )


async def calls(request: Request) -> Response:
    return await run_in_threadpool(_calls, request, False)


async def calls_csv(request: Request) -> Response:
    return await run_in_threadpool(_calls, request, True)


def _shutoffs(request: Request, csv: bool) -> Response:
    settings = request.app.state.settings
    with db(request) as session:
        user = require_staff(request, session)
        rows = service.shutoffs(session, user, settings.tz)
    if csv:
        return Response(
            service.shutoff_csv(rows, settings.agency_name),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="shutoffs-by-year.csv"'},
        )
    return _render(request, "staff/collection_reports/shutoffs.html", {"rows": rows, "agency": settings.agency_name})


async def shutoffs(request: Request) -> Response:
    return await run_in_threadpool(_shutoffs, request, False)


async def shutoffs_csv(request: Request) -> Response:
    return await run_in_threadpool(_shutoffs, request, True)
