"""Staff pages for reads and bill runs: review queue, read upload, runs with their register."""

from __future__ import annotations

import dataclasses
from datetime import date
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import FileResponse, Response

from .. import jobs
from ..billing_core import bill_runs, delivery, read_files, read_review, reads
from ..billing_core.errors import InvalidInput
from ..billing_core.models import Account, BillingCycle, BillRun, Meter, MeterRead, Service, User
from ..billing_core.read_import import import_reads
from ..billing_core.reads import ReadException, consumption
from ..charts import usage_chart
from ..web import Forbidden, PageNotFound, db, flash, pop_flash, redirect, remote_addr, require_staff, today

MAX_READ_FILE = 20 * 1024 * 1024
RUNNERS = ("specialist", "supervisor", "admin")


def _templates(request: Request):  # type: ignore[no-untyped-def]
    return request.app.state.templates


# --------------------------------------------------------------------------- reads


def review_queue(request: Request) -> Response:
    with db(request) as session:
        user = require_staff(request, session)
        return _queue_page(request, session, user)


def _queue_page(
    request: Request,
    session: Session,
    user: User,
    errors: dict[int, dict[str, str]] | None = None,
    typed: dict[int, dict[str, str]] | None = None,
    status_code: int = 200,
) -> Response:
    """The queue; ``errors`` and ``typed`` put a refused correction's message next to its
    field and keep what was typed, per read."""
    queue = read_review.queue(session)
    previous = {}
    accounts = {}
    for read in queue:
        previous[read.id] = session.scalar(
            select(MeterRead)
            .where(MeterRead.meter_id == read.meter_id, MeterRead.read_on < read.read_on)
            .order_by(MeterRead.read_on.desc())
            .limit(1)
        )
        accounts[read.id] = session.scalar(
            select(Account.number)
            .join(Service, Service.account_id == Account.id)
            .where(Service.meter_id == read.meter_id)
            .limit(1)
        )
    labels = {e.value: e.plain for e in ReadException}
    return _templates(request).TemplateResponse(
        request,
        "staff/reads.html",
        {
            "queue": queue,
            "previous": previous,
            "accounts": accounts,
            "labels": labels,
            "can_review": user.role in read_review.REVIEWERS,
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
        if user.role not in read_review.REVIEWERS:
            raise Forbidden("Only billing specialists and supervisors review reads.")
        read = session.scalar(select(MeterRead).where(MeterRead.id == read_id).options(joinedload(MeterRead.meter)))
        if read is None:
            raise PageNotFound()
        try:
            with session.begin_nested():  # a refusal undoes all of it; the page still renders
                if action == "approve":
                    read_review.approve(session, read, user, reason, remote_addr(request))
                elif action == "reread":
                    read_review.order_reread(session, read, user, reason, remote_addr(request))
                elif action == "correct":
                    value = reads.read_value(value_text, read.meter.dials)
                    read_review.correct(session, read, value, reason, user, remote_addr(request))
                else:
                    raise InvalidInput("Choose approve, correct or order a re-read.", "action")
        except InvalidInput as exc:
            if action == "correct" and read.status == "exception":
                field = "reason" if exc.field == "reason" else "value"
                return _queue_page(
                    request,
                    session,
                    user,
                    errors={read_id: {field: exc.message}},
                    typed={read_id: {"value": value_text, "reason": reason}},
                    status_code=400,
                )
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
        if user.role not in read_review.REVIEWERS:
            raise Forbidden("Only billing specialists and supervisors load reads.")
        report = None
        if not errors:
            try:
                mapping = read_files.parse_mapping(values["mapping"]) if values["mapping"] else None
                report = import_reads(
                    session,
                    content,
                    name,
                    values["format"],
                    layout_name=values["layout"] or None,
                    mapping=mapping,
                    today=today(request),
                    actor=user,
                    remote_addr=remote_addr(request),
                )
            except InvalidInput as exc:
                errors[exc.field if exc.field in ("format", "layout", "mapping") else "read_file"] = exc.message
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
        runs = session.scalars(select(BillRun).options(joinedload(BillRun.cycle)).order_by(BillRun.id.desc())).all()
        cycles = session.scalars(select(BillingCycle).order_by(BillingCycle.code)).all()
        return _templates(request).TemplateResponse(
            request,
            "staff/bill_runs.html",
            {"runs": runs, "cycles": cycles, "can_run": user.role in RUNNERS, "errors": {}, "form": {}},
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
        if user.role not in RUNNERS:
            raise Forbidden("Only billing specialists and supervisors start bill runs.")
        if not errors:
            try:
                run = bill_runs.create_run(
                    session, values["cycle"], parsed["period_start"], parsed["period_end"], actor=user
                )
                return redirect(f"/staff/bill-runs/{run.id}")
            except InvalidInput as exc:
                errors[exc.field if exc.field in values else "cycle"] = exc.message
        runs = session.scalars(select(BillRun).options(joinedload(BillRun.cycle)).order_by(BillRun.id.desc())).all()
        cycles = session.scalars(select(BillingCycle).order_by(BillingCycle.code)).all()
        return _templates(request).TemplateResponse(
            request,
            "staff/bill_runs.html",
            {"runs": runs, "cycles": cycles, "can_run": True, "errors": errors, "form": values},
            status_code=400,
        )


def run_view(request: Request) -> Response:
    with db(request) as session:
        user = require_staff(request, session)
        run = session.scalar(
            select(BillRun).where(BillRun.id == request.path_params["run"]).options(joinedload(BillRun.cycle))
        )
        if run is None:
            raise PageNotFound()
        register = bill_runs.register(session, run)
        busy = run.status in ("calculating", "posting") and register.drafts + register.posted < run.accounts_total
        template = "staff/_bill_run_status.html" if request.headers.get("HX-Request") else "staff/bill_run.html"
        response = _templates(request).TemplateResponse(
            request,
            template,
            {
                "run": run,
                "register": register,
                "labels": bill_runs.EXCEPTION_LABELS,
                "busy": busy,
                "can_run": user.role in RUNNERS,
                "can_approve": user.role in bill_runs.APPROVERS,
                "delivery": delivery.progress(session, run),
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
    print_file_id = None
    with db(request) as session:
        user = require_staff(request, session)
        run = session.get(BillRun, run_id)
        if run is None:
            raise PageNotFound()
        if action in ("calculate", "deliver", "resend_emails") and user.role not in RUNNERS:
            raise Forbidden("Only billing specialists and supervisors calculate bill runs.")
        if action in ("approve", "post") and user.role not in bill_runs.APPROVERS:
            raise Forbidden("Only a billing supervisor approves and posts bill runs.")
        try:
            if action == "approve":
                bill_runs.approve(session, run, user)
                flash(request, "Run approved.")
                return redirect(f"/staff/bill-runs/{run_id}")
            if action == "post" and run.status not in ("approved", "posting", "posted"):
                raise InvalidInput("Approve the run before posting it.", "status")
            if action == "calculate" and run.status not in ("created", "calculating", "calculated"):
                raise InvalidInput("This run is approved; it is no longer calculated.", "status")
            if action == "deliver":
                print_file_id = delivery.start(session, run, user).id
            elif action == "resend_emails":
                pf = delivery.progress(session, run).print_file
                if pf is None:
                    raise InvalidInput("This run's bills are not delivered yet.", "status")
                print_file_id = pf.id
            elif action not in ("calculate", "post"):
                raise InvalidInput("Unknown action.", "action")
            user_id = user.id
        except (InvalidInput, bill_runs.NotAllowed) as exc:
            flash(request, f"Nothing was done: {getattr(exc, 'message', str(exc))}")
            return redirect(f"/staff/bill-runs/{run_id}")
    # The portal's own database (tests and single-machine installs hand the app its engine).
    url = request.app.state.engine.url.render_as_string(hide_password=False)
    settings = dataclasses.replace(settings, database_url=url)
    if action == "deliver":
        # Emails that cannot be sent now wait in the outbox and are retried: never a failed page.
        jobs.dispatch_delivery(settings, print_file_id)
        flash(request, _delivery_note(request, run_id))
        return redirect(f"/staff/bill-runs/{run_id}")
    if action == "resend_emails":
        queued = jobs.resend_failed(settings, request.app.state.sessions, print_file_id)
        flash(request, f"{queued} failed emails queued again." if queued else "No failed emails to send again.")
        return redirect(f"/staff/bill-runs/{run_id}")
    jobs.dispatch(settings, run_id, action, user_id)
    flash(request, {"calculate": "Calculation started.", "post": "Posting started."}[action])
    return redirect(f"/staff/bill-runs/{run_id}")


def _delivery_note(request: Request, run_id: int) -> str:
    """What delivering did, as it stands: emails are said sent only when they were."""
    with db(request) as session:
        progress = delivery.progress(session, session.get(BillRun, run_id))
    pf, emails = progress.print_file, progress.emails
    if pf is None:
        return "Delivery started."
    parts = [
        "Delivery started: " + ("the print file is ready" if pf.status == "ready" else "the print file is being made")
    ]
    if pf.emails_total:
        waiting = emails["retrying"] + emails["failed"]
        parts.append(
            f"{emails['sent']} of {pf.emails_total} emails sent"
            + (f", {emails.in_flight} queued" if emails.in_flight else "")
            + (f", {waiting} could not be sent yet (see Delivery below)" if waiting else "")
        )
    return "; ".join(parts) + "."


def print_file_download(request: Request) -> Response:
    """The run's print file or mail-house extract, for staff only."""
    kind = request.path_params["kind"]
    if kind not in ("print-file.pdf", "mail-extract.csv"):
        raise PageNotFound()
    with db(request) as session:
        require_staff(request, session)
        run = session.get(BillRun, request.path_params["run"])
        pf = delivery.progress(session, run).print_file if run else None
        path = (pf.pdf_path if kind == "print-file.pdf" else pf.csv_path) if pf and pf.status == "ready" else None
        if path is None or not Path(path).is_file():
            raise PageNotFound()
    media = "application/pdf" if path.endswith(".pdf") else "text/csv"
    return FileResponse(path, media_type=media, filename=Path(path).name, headers={"Cache-Control": "no-store"})


def meter_view(request: Request) -> Response:
    with db(request) as session:
        user = require_staff(request, session)
        meter = session.scalar(select(Meter).where(Meter.serial == request.path_params["serial"]))
        if meter is None:
            raise PageNotFound()
        return _meter_page(request, session, user, meter, message=pop_flash(request))


def _meter_page(
    request: Request,
    session: Session,
    user: User,
    meter: Meter,
    *,
    message: str | None = None,
    errors: dict[str, str] | None = None,
    form: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    from ..billing_core.meters import FIELD_ROLES, MOVES

    history = session.scalars(
        select(MeterRead).where(MeterRead.meter_id == meter.id).order_by(MeterRead.read_on.desc()).limit(25)
    ).all()
    uses = []
    ordered = list(reversed(history))
    for older, newer in zip(ordered, ordered[1:], strict=False):
        try:
            q = consumption(older.value, newer.value, meter.dials, meter.multiplier).quantity
        except InvalidInput:
            q = None
        uses.append((newer.read_on, q))
    return _templates(request).TemplateResponse(
        request,
        "staff/meter.html",
        {
            "meter": meter,
            "accounts": _meter_accounts(session, meter),
            "reads": history,
            "uses": uses[-13:],
            "chart": usage_chart(uses[-13:], meter.unit),
            "can_change": user.role in FIELD_ROLES,
            "moves": sorted(MOVES.get(meter.status, set()) - {"installed", "removed"}),
            "message": message,
            "errors": errors or {},
            "form": form or {},
        },
        status_code=status_code,
    )


def _meter_accounts(session: Session, meter: Meter) -> list[str]:
    """The accounts this meter serves; for a meter taken out, the accounts at its premise."""
    served = session.scalars(
        select(Account.number)
        .join(Service, Service.account_id == Account.id)
        .where(Service.meter_id == meter.id)
        .group_by(Account.number)
        .order_by(Account.number)
    ).all()
    if served or meter.premise_id is None:
        return list(served)
    return list(
        session.scalars(
            select(Account.number)
            .where(Account.premise_id == meter.premise_id)
            .order_by((Account.status == "active").desc(), Account.opened_on.desc())
            .limit(3)
        )
    )


async def meter_action(request: Request) -> Response:
    form = await request.form()
    values = {
        k: str(form.get(k, "")).strip()[:40]
        for k in ("action", "to", "new_serial", "on", "final_read", "first_read", "read_on", "read_value")
    }
    values["read_note"] = str(form.get("read_note", "")).strip()[:200]
    return await run_in_threadpool(_meter_action, request, request.path_params["serial"], values)


def _meter_action(request: Request, serial: str, values: dict[str, str]) -> Response:
    from ..billing_core import meters

    with db(request) as session:
        user = require_staff(request, session)
        if user.role not in meters.FIELD_ROLES:
            raise Forbidden("Only billing specialists and supervisors change meters.")
        meter = session.scalar(select(Meter).where(Meter.serial == serial))
        if meter is None:
            raise PageNotFound()
        date_field = "read_on" if values["action"] == "read" else "on"
        try:
            try:
                on = date.fromisoformat(values[date_field]) if values[date_field] else today(request)
            except ValueError as exc:
                raise InvalidInput("Enter the date as YYYY-MM-DD.", date_field) from exc
            with session.begin_nested():
                if values["action"] == "read":
                    value = reads.read_value(values["read_value"], meter.dials, "read_value")
                    read = meters.record_read(session, meter, on, value, user, today(request), values["read_note"])
                    flash(
                        request, "Read recorded." if read.status == "valid" else "Read recorded; it waits for review."
                    )
                    return redirect(f"/staff/meters/{serial}")
                if values["action"] == "exchange":
                    new = session.scalar(select(Meter).where(Meter.serial == values["new_serial"].upper()))
                    if new is None:
                        raise InvalidInput(f"No meter with serial {values['new_serial']}.", "new_serial")
                    final = reads.read_value(values["final_read"], meter.dials, "final_read")
                    first = reads.read_value(values["first_read"] or "0", new.dials, "first_read")
                    meters.exchange(session, meter, new, on, final, first, user)
                else:
                    meters.move(session, meter, values["to"], user, on)
        except InvalidInput as exc:
            if values["action"] not in ("exchange", "read"):
                flash(request, f"Nothing was changed: {exc.message}")
                return redirect(f"/staff/meters/{serial}")
            fields = (
                ("read_on", "read_value")
                if values["action"] == "read"
                else ("new_serial", "on", "final_read", "first_read")
            )
            field = exc.field if exc.field in fields else fields[-1 if values["action"] == "read" else 0]
            return _meter_page(
                request,
                session,
                user,
                meter,
                message=f"Nothing was changed: {exc.message}",
                errors={field: exc.message},
                form=values,
                status_code=400,
            )
    flash(request, "Meter updated.")
    return redirect(f"/staff/meters/{serial}")
