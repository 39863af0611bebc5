"""Staff pages for reads and bill runs: review queue, read upload, runs with their register."""

from __future__ import annotations

import dataclasses
from datetime import date
from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import FileResponse, Response

from .. import jobs
from ..billing_core import bill_runs, permissions, read_files
from ..billing_core.errors import FieldErrors, InvalidInput
from ..billing_core.models import User
from ..billing_core.permissions import Action
from ..billing_core.reads import ReadException
from ..billing_core.status import BillRunStatus
from ..services import billing as service
from ..web import PageNotFound, db, flash, now, pop_flash, redirect, remote_addr, require_staff, today

MAX_READ_FILE = 20 * 1024 * 1024


def _templates(request: Request):  # type: ignore[no-untyped-def]
    return request.app.state.templates


def _fields(page: object) -> dict[str, object]:
    """A service's page (a dataclass) as template variables."""
    return dict(vars(page))


# --------------------------------------------------------------------------- reads


def review_queue(request: Request) -> Response:
    with db(request) as session:
        user = require_staff(request, session)
        return _queue_page(request, service.read_queue(session), user)


def _queue_page(
    request: Request,
    queue: service.ReadQueue,
    user: User,
    errors: dict[int, dict[str, str]] | None = None,
    typed: dict[int, dict[str, str]] | None = None,
    status_code: int = 200,
) -> Response:
    """The queue; ``errors`` and ``typed`` put a refused correction's message next to its
    field and keep what was typed, per read."""
    return _templates(request).TemplateResponse(
        request,
        "staff/reads.html",
        {
            "queue": queue.reads,
            "previous": queue.previous,
            "accounts": queue.accounts,
            "labels": {e.value: e.plain for e in ReadException},
            "can_review": permissions.can(user.role, Action.READS_REVIEW),
            "errors": errors or {},
            "typed": typed or {},
            "done": None if errors else request.query_params.get("done"),
        },
        status_code=status_code,
    )


async def review_action(request: Request) -> Response:
    form = await request.form()
    action = str(form.get("action", ""))
    value_text = str(form.get("value", "")).strip()[:40]
    reason = str(form.get("reason", "")).strip()[:250]
    return await run_in_threadpool(_review, request, int(request.path_params["read"]), action, value_text, reason)


def _review(request: Request, read_id: int, action: str, value_text: str, reason: str) -> Response:
    with db(request) as session:
        user = require_staff(request, session)
        try:
            service.review_read(
                session, user, read_id, action, value_text, reason, remote_addr(request), now=now(request)
            )
        except FieldErrors as exc:
            return _queue_page(
                request,
                service.read_queue(session),
                user,
                errors={read_id: {field: e.message for field, e in exc.errors.items()}},
                typed={read_id: {"value": value_text, "reason": reason}},
                status_code=400,
            )
        except InvalidInput as exc:
            return _templates(request).TemplateResponse(
                request, "staff/_read_error.html", {"message": exc.message, "read_id": read_id}, status_code=400
            )
    return redirect(f"/staff/reads?done={action}")


def read_upload_page(request: Request) -> Response:
    with db(request) as session:
        require_staff(request, session)
    return _templates(request).TemplateResponse(
        request,
        "staff/read_upload.html",
        {"layouts": read_files.layouts(), "report": None, "errors": {}, "form": {"format": "csv"}},
    )


async def read_upload(request: Request) -> Response:
    form = await request.form()
    upload = form.get("read_file")
    values = {
        "format": str(form.get("format", "csv")),
        "layout": str(form.get("layout", "")),
        "mapping": str(form.get("mapping", "")).strip()[:300],
    }
    errors: dict[str, str] = {}
    content, name = b"", ""
    if not isinstance(upload, UploadFile) or not upload.filename:
        errors["read_file"] = "Choose a read file to upload."
    else:
        name = upload.filename.rsplit("/", 1)[-1][:200]
        content = await upload.read(MAX_READ_FILE + 1)
        if len(content) > MAX_READ_FILE:
            errors["read_file"] = "That file is over 20 MB; split it by route."
    await form.close()
    return await run_in_threadpool(_read_upload, request, name, content, values, errors)


def _read_upload(request: Request, name: str, content: bytes, values: dict, errors: dict) -> Response:
    with db(request) as session:
        user = require_staff(request, session)
        permissions.require(user, Action.READS_LOAD)  # before the form's own errors are shown
        report = None
        if not errors:
            try:
                report = service.load_read_file(
                    session,
                    user,
                    content,
                    name,
                    values["format"],
                    values["layout"],
                    values["mapping"],
                    today=today(request),
                    now=now(request),
                    remote_addr=remote_addr(request),
                )
            except FieldErrors as exc:
                errors.update({field: e.message for field, e in exc.errors.items()})
        status = 400 if errors or (report and not report.ok) else 200
        return _templates(request).TemplateResponse(
            request,
            "staff/read_upload.html",
            {"layouts": read_files.layouts(), "report": report, "errors": errors, "form": values},
            status_code=status,
        )


# --------------------------------------------------------------------------- bill runs


def run_list(request: Request) -> Response:
    with db(request) as session:
        user = require_staff(request, session)
        runs = service.run_list(session)
        return _templates(request).TemplateResponse(
            request,
            "staff/bill_runs.html",
            {
                "runs": runs.runs,
                "cycles": runs.cycles,
                "can_run": permissions.can(user.role, Action.BILL_RUNS_RUN),
                "errors": {},
                "form": {},
            },
        )


async def run_create(request: Request) -> Response:
    form = await request.form()
    values = {k: str(form.get(k, "")).strip()[:20] for k in ("cycle", "period_start", "period_end")}
    return await run_in_threadpool(_run_create, request, values)


def _run_create(request: Request, values: dict[str, str]) -> Response:
    errors: dict[str, str] = {}
    parsed: dict[str, date] = {}
    for key in ("period_start", "period_end"):
        try:
            parsed[key] = date.fromisoformat(values[key])
        except ValueError:
            errors[key] = "Enter the date as YYYY-MM-DD."
    with db(request) as session:
        user = require_staff(request, session)
        permissions.require(user, Action.BILL_RUNS_RUN)  # before the form's own errors are shown
        if not errors:
            try:
                run_id = service.create_run(
                    session, user, values["cycle"], parsed["period_start"], parsed["period_end"]
                )
                return redirect(f"/staff/bill-runs/{run_id}")
            except InvalidInput as exc:
                errors[exc.field if exc.field in values else "cycle"] = exc.message
        runs = service.run_list(session)
        return _templates(request).TemplateResponse(
            request,
            "staff/bill_runs.html",
            {"runs": runs.runs, "cycles": runs.cycles, "can_run": True, "errors": errors, "form": values},
            status_code=400,
        )


def run_view(request: Request) -> Response:
    with db(request) as session:
        user = require_staff(request, session)
        page = service.run_page(session, request.path_params["run"])
        template = "staff/_bill_run_status.html" if request.headers.get("HX-Request") else "staff/bill_run.html"
        response = _templates(request).TemplateResponse(
            request,
            template,
            {
                **_fields(page),
                "labels": bill_runs.EXCEPTION_LABELS,
                "can_run": permissions.can(user.role, Action.BILL_RUNS_CALCULATE),
                "can_approve": permissions.can(user.role, Action.BILL_RUNS_APPROVE),
                "RunStatus": BillRunStatus,
                "message": pop_flash(request),
            },
        )
        response.headers["Vary"] = "HX-Request"
        return response


async def run_action(request: Request) -> Response:
    form = await request.form()
    action = str(form.get("action", ""))
    return await run_in_threadpool(_run_action, request, int(request.path_params["run"]), action)


def _run_action(request: Request, run_id: int, action: str) -> Response:
    settings = request.app.state.settings
    with db(request) as session:
        user = require_staff(request, session)
        try:
            started = service.start_run_action(session, user, run_id, action, now=now(request))
        except InvalidInput as exc:
            flash(request, f"Nothing was done: {exc.message}")
            return redirect(f"/staff/bill-runs/{run_id}")
    if action == "approve":
        flash(request, "Run approved.")
        return redirect(f"/staff/bill-runs/{run_id}")
    # The portal's own database (tests and single-machine installs hand the app its engine).
    url = request.app.state.engine.url.render_as_string(hide_password=False)
    settings = dataclasses.replace(settings, database_url=url)
    if action == "deliver":
        # Emails that cannot be sent now wait in the outbox and are retried: never a failed page.
        jobs.dispatch_delivery(settings, started.print_file_id)
        flash(request, _delivery_note(request, run_id))
        return redirect(f"/staff/bill-runs/{run_id}")
    if action == "resend_emails":
        queued = jobs.resend_failed(settings, request.app.state.sessions, started.print_file_id)
        flash(request, f"{queued} failed emails queued again." if queued else "No failed emails to send again.")
        return redirect(f"/staff/bill-runs/{run_id}")
    jobs.dispatch(settings, run_id, action, started.actor_id)
    flash(request, {"calculate": "Calculation started.", "post": "Posting started."}[action])
    return redirect(f"/staff/bill-runs/{run_id}")


def _delivery_note(request: Request, run_id: int) -> str:
    """What delivering did, as it stands: emails are said sent only when they were."""
    with db(request) as session:
        state = service.delivery_state(session, run_id)
    if not state.started:
        return "Delivery started."
    parts = [
        "Delivery started: " + ("the print file is ready" if state.print_file_ready else "the print file is being made")
    ]
    if state.emails_total:
        parts.append(
            f"{state.emails_sent} of {state.emails_total} emails sent"
            + (f", {state.emails_in_flight} queued" if state.emails_in_flight else "")
            + (f", {state.emails_waiting} could not be sent yet (see Delivery below)" if state.emails_waiting else "")
        )
    return "; ".join(parts) + "."


def print_file_download(request: Request) -> Response:
    """The run's print file or mail-house extract, for staff only."""
    kind = request.path_params["kind"]
    if kind not in service.PRINT_FILE_KINDS:
        raise PageNotFound()
    with db(request) as session:
        require_staff(request, session)
        path = service.print_file_path(session, request.path_params["run"], kind)
    media = "application/pdf" if path.endswith(".pdf") else "text/csv"
    return FileResponse(path, media_type=media, filename=Path(path).name, headers={"Cache-Control": "no-store"})
