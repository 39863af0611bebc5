"""The staff's notices page: a day's collection notices by kind, printing a kind's batch for
the mail house (one PDF in ZIP order), downloading it, and reprinting one notice."""

from __future__ import annotations

from datetime import date

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, Response

from ..billing_core.errors import FieldErrors, InvalidInput
from ..services import notices as service
from ..web import PageNotFound, db, error_text, flash, now, pop_flash, redirect, require_staff, today


def _day(text: str, default: date) -> date:
    try:
        return date.fromisoformat(text) if text else default
    except ValueError:
        raise PageNotFound() from None


def _render(request: Request, day: date, error: str | None = None, status: int = 200) -> Response:
    with db(request) as session:
        user = require_staff(request, session)
        listing = service.day(session, user, day)
        return request.app.state.templates.TemplateResponse(
            request,
            "staff/notices/day.html",
            {"day": listing, "error": error, "flash": pop_flash(request)},
            status_code=status,
        )


def notices_day(request: Request) -> Response:
    return _render(request, _day(request.query_params.get("on", ""), today(request)))


async def print_batch(request: Request) -> Response:
    data = await request.form()
    day = _day(str(data.get("on", "")), today(request))
    kind = str(data.get("kind", ""))[:20]
    env, settings = request.app.state.templates.env, request.app.state.settings

    def prepare() -> tuple[int, list[str]] | str:
        try:
            with db(request) as session:
                user = require_staff(request, session)
                batch, slices = service.prepare_batch(session, user, env, settings, day, kind, now(request))
                return batch.id, slices
        except (FieldErrors, InvalidInput) as exc:
            first = next(iter(exc.errors.values())) if isinstance(exc, FieldErrors) else exc
            return error_text(first)

    prepared = await run_in_threadpool(prepare)
    if isinstance(prepared, str):
        return await run_in_threadpool(_render, request, day, prepared, 400)
    batch_id, slices = prepared
    pdfs = [await request.app.state.printer.pdf(html) for html in slices]

    def store() -> int:
        with db(request) as session:
            user = require_staff(request, session)
            return service.store_batch(session, user, settings, batch_id, pdfs).notices_total

    total = await run_in_threadpool(store)
    flash(request, f"Batch {batch_id} printed: {total} notices in ZIP order.")
    return redirect(f"/staff/notices?on={day.isoformat()}")


def download_batch(request: Request) -> Response:
    try:
        batch_id = int(request.path_params["batch"])
    except ValueError:
        raise PageNotFound() from None
    with db(request) as session:
        user = require_staff(request, session)
        batch, path = service.batch_file(session, user, batch_id)
        name = f"notices-{batch.issued_on.isoformat()}-{batch.kind}.pdf"
    return FileResponse(path, media_type="application/pdf", filename=name, headers={"Cache-Control": "no-store"})


async def reprint(request: Request) -> Response:
    from .customer import pdf_response

    try:
        notice_id = int(request.path_params["notice"])
    except ValueError:
        raise PageNotFound() from None
    env, settings = request.app.state.templates.env, request.app.state.settings

    def build() -> str:
        with db(request) as session:
            user = require_staff(request, session)
            return service.reprint_html(session, user, env, settings, notice_id)

    html = await run_in_threadpool(build)
    return await pdf_response(request, html, f"notice-{notice_id}.pdf")
