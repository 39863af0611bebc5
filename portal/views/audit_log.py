"""The audit trail viewer (``services/audit_log.py``): search, page, export to CSV.
Staff pages: English."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from ..billing_core.errors import FieldErrors
from ..services import audit_log as service
from ..web import db, now, remote_addr, require_staff


def _values(request: Request) -> dict[str, str]:
    return {k: request.query_params.get(k, "").strip()[:200] for k in service.FIELDS}


def _search(request: Request) -> Response:
    values = _values(request)
    with db(request) as session:
        user = require_staff(request, session)
        page = service.search(
            session, user, values, request.query_params.get("after", ""), request.app.state.settings.tz
        )
        return request.app.state.templates.TemplateResponse(
            request,
            "staff/audit/search.html",
            {**vars(page), "values": values, "first_page": not request.query_params.get("after")},
            status_code=400 if page.errors else 200,
        )


async def search(request: Request) -> Response:
    return await run_in_threadpool(_search, request)


def _export(request: Request) -> Response:
    values = _values(request)
    with db(request) as session:
        user = require_staff(request, session)
        try:
            export = service.export(
                session, user, values, request.app.state.settings.tz, request.app.state.sessions, remote_addr(request)
            )
        except FieldErrors as exc:
            return Response(" ".join(e.message for e in exc.errors.values()), status_code=400, media_type="text/plain")
    stamp = now(request).astimezone(request.app.state.settings.tz).strftime("%Y%m%d-%H%M")
    return StreamingResponse(
        export.lines(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="audit-{stamp}.csv"'},
    )


async def export_csv(request: Request) -> Response:
    return await run_in_threadpool(_export, request)
