"""Staff pages for mail batches and bank/lockbox files (issue 14 items 3 and 4)."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response

from ..billing_core import permissions, remittance
from ..billing_core.errors import FieldErrors, InvalidInput, NotFound
from ..billing_core.models import User
from ..billing_core.permissions import Action
from ..services import batches, lockbox
from ..web import FormState, PageNotFound, db, flash, now, pop_flash, redirect, remote_addr, require_staff, today

#: A lockbox file of 20,000 rows is about 1.5 MB.
MAX_FILE = 20 * 1024 * 1024


def _render(request: Request, template: str, context: dict, status: int = 200) -> Response:
    return request.app.state.templates.TemplateResponse(request, template, context, status_code=status)


def _errors(exc: FieldErrors) -> dict[str, str]:
    return {field: e.message for field, e in exc.errors.items()}


# --- Mail batches -----------------------------------------------------------------------------


def _list_page(request: Request, session, user: User, form: FormState | None = None) -> Response:  # type: ignore[no-untyped-def]
    listing = batches.batch_list(session)
    return _render(
        request,
        "staff/batches/list.html",
        {
            **vars(listing),
            "form": form or FormState({"deposit_date": today(request).isoformat()}),
            "can_batch": permissions.can(user.role, Action.PAYMENTS_BATCH),
            "flash": pop_flash(request),
        },
        400 if form and form.errors else 200,
    )


def batch_list(request: Request) -> Response:
    with db(request) as session:
        user = require_staff(request, session)
        return _list_page(request, session, user)


async def batch_create(request: Request) -> Response:
    data = await request.form()
    form = FormState({k: str(data.get(k, "")).strip()[:100] for k in batches.BATCH_FIELDS})

    def act() -> Response:
        with db(request) as session:
            user = require_staff(request, session)
            try:
                batch = batches.create_batch(session, user, form.values, now(request))
            except FieldErrors as exc:
                form.errors.update(_errors(exc))
                return _list_page(request, session, user, form)
            flash(request, f"Batch {batch.id} created. Key its checks below.")
            return redirect(f"/staff/payments/batches/{batch.id}")

    return await run_in_threadpool(act)


def _batch_page(
    request: Request, session, user: User, batch_id: int, form: FormState | None = None, error: str | None = None
) -> Response:  # type: ignore[no-untyped-def]
    try:
        page = batches.batch_page(session, batch_id)
    except NotFound as exc:
        raise PageNotFound() from exc
    return _render(
        request,
        "staff/batches/batch.html",
        {
            **vars(page),
            "form": form or FormState(),
            "post_error": error,
            "can_batch": permissions.can(user.role, Action.PAYMENTS_BATCH),
            "flash": pop_flash(request),
        },
        400 if error or (form and form.errors) else 200,
    )


def batch_view(request: Request) -> Response:
    with db(request) as session:
        user = require_staff(request, session)
        return _batch_page(request, session, user, request.path_params["batch"])


async def batch_item(request: Request) -> Response:
    data = await request.form()
    form = FormState({k: str(data.get(k, "")).strip()[:80] for k in batches.ITEM_FIELDS})
    batch_id = request.path_params["batch"]

    def act() -> Response:
        with db(request) as session:
            user = require_staff(request, session)
            try:
                item = batches.add_item(session, user, batch_id, form.values)
            except NotFound as exc:
                raise PageNotFound() from exc
            except FieldErrors as exc:
                form.errors.update(_errors(exc))
                return _batch_page(request, session, user, batch_id, form)
            flash(request, f"Line {item.line_no} keyed.")
            return redirect(f"/staff/payments/batches/{batch_id}#key-heading")

    return await run_in_threadpool(act)


async def batch_item_remove(request: Request) -> Response:
    batch_id, item_id = request.path_params["batch"], request.path_params["item"]

    def act() -> Response:
        with db(request) as session:
            user = require_staff(request, session)
            try:
                batches.remove_item(session, user, batch_id, item_id)
            except NotFound as exc:
                raise PageNotFound() from exc
            except InvalidInput as exc:
                return _batch_page(request, session, user, batch_id, error=exc.message)
            flash(request, "The item was removed.")
            return redirect(f"/staff/payments/batches/{batch_id}")

    return await run_in_threadpool(act)


async def batch_post(request: Request) -> Response:
    batch_id = request.path_params["batch"]

    def act() -> Response:
        with db(request) as session:
            user = require_staff(request, session)
            try:
                posted = batches.post_batch(session, user, batch_id, now(request))
            except NotFound as exc:
                raise PageNotFound() from exc
            except InvalidInput as exc:
                return _batch_page(request, session, user, batch_id, error=exc.message)
            flash(request, f"Batch {batch_id} posted: {len(posted.payments)} payments.")
            return redirect(f"/staff/payments/batches/{batch_id}")

    return await run_in_threadpool(act)


# --- Bank and lockbox files ------------------------------------------------------------------


def _imports_page(
    request: Request, session, user: User, form: FormState | None = None, report: lockbox.ImportReport | None = None
) -> Response:  # type: ignore[no-untyped-def]
    records = lockbox.imports(session)
    layouts: dict[str, remittance.Layout] = {}
    layout_error = None
    try:
        layouts = remittance.load_layouts(request.app.state.settings.lockbox_layouts_file)
    except InvalidInput as exc:
        layout_error = exc.message
    return _render(
        request,
        "staff/batches/imports.html",
        {
            "imports": records,
            "people": lockbox.people(session, {r.imported_by_id for r in records}),
            "layouts": layouts,
            "layout_error": layout_error,
            "queue_count": len(lockbox.queue(session)),
            "form": form or FormState({"format": "bai2"}),
            "report": report,
            "can_import": permissions.can(user.role, Action.PAYMENTS_IMPORT),
            "flash": pop_flash(request),
        },
        400 if form and form.errors else 200,
    )


def imports_view(request: Request) -> Response:
    with db(request) as session:
        user = require_staff(request, session)
        return _imports_page(request, session, user)


async def import_upload(request: Request) -> Response:
    data = await request.form()
    upload = data.get("bank_file")
    form = FormState({"format": str(data.get("format", "")), "layout": str(data.get("layout", ""))[:40]})
    content, name = b"", ""
    if not isinstance(upload, UploadFile) or not upload.filename:
        form.errors["bank_file"] = "Choose a bank or lockbox file to upload."
    else:
        name = upload.filename.rsplit("/", 1)[-1][:200]
        content = await upload.read(MAX_FILE + 1)
        if len(content) > MAX_FILE:
            form.errors["bank_file"] = "That file is over 20 MB; ask the bank for one file a day."
    await data.close()

    def act() -> Response:
        with db(request) as session:
            user = require_staff(request, session)
            permissions.require(user, Action.PAYMENTS_IMPORT)
            if form.errors:
                return _imports_page(request, session, user, form)
            try:
                report = lockbox.import_file(
                    session,
                    user,
                    content,
                    name,
                    form.get("format"),
                    form.get("layout") if form.get("format") == "csv" else None,
                    layouts_file=request.app.state.settings.lockbox_layouts_file,
                    today=today(request),
                    now=now(request),
                    remote_addr=remote_addr(request),
                )
            except FieldErrors as exc:
                errors = _errors(exc)
                form.errors.update({("bank_file" if k == "file" else k): v for k, v in errors.items()})
                return _imports_page(request, session, user, form)
        if report.already_imported_at is not None:
            flash(
                request,
                f"This file was already imported on {report.already_imported_at:%Y-%m-%d %H:%M} UTC; "
                "nothing was added.",
            )
        else:
            flash(request, f"Imported {name}: {report.counts()}.")
        return redirect(f"/staff/payments/imports/{report.import_id}")

    return await run_in_threadpool(act)


def import_view(request: Request) -> Response:
    with db(request) as session:
        require_staff(request, session)
        try:
            record, rows = lockbox.import_rows(session, request.path_params["import"])
        except NotFound as exc:
            raise PageNotFound() from exc
        return _render(
            request,
            "staff/batches/import.html",
            {
                "record": record,
                "rows": rows,
                "numbers": lockbox.numbers_of(session, {r.account_id for r in rows}),
                "people": lockbox.people(session, {record.imported_by_id} | {r.resolved_by_id for r in rows}),
                "flash": pop_flash(request),
            },
        )


def import_csv(request: Request) -> Response:
    with db(request) as session:
        require_staff(request, session)
        try:
            body = lockbox.report_csv(session, request.path_params["import"])
        except NotFound as exc:
            raise PageNotFound() from exc
    name = f"bank-file-{request.path_params['import']}-rows.csv"
    return Response(
        body, media_type="text/csv; charset=utf-8", headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )


def _queue_page(
    request: Request, session, user: User, failed: int | None = None, form: FormState | None = None
) -> Response:  # type: ignore[no-untyped-def]
    rows = lockbox.queue(session)
    return _render(
        request,
        "staff/batches/queue.html",
        {
            "rows": rows,
            "numbers": lockbox.numbers_of(session, {r.account_id for r in rows}),
            "failed": failed,
            "form": form or FormState(),
            "can_import": permissions.can(user.role, Action.PAYMENTS_IMPORT),
            "flash": pop_flash(request),
        },
        400 if form and form.errors else 200,
    )


def queue_view(request: Request) -> Response:
    with db(request) as session:
        user = require_staff(request, session)
        return _queue_page(request, session, user)


async def queue_action(request: Request) -> Response:
    data = await request.form()
    form = FormState({k: str(data.get(k, "")).strip()[:300] for k in ("action", "account_number", "note")})
    row_id = request.path_params["row"]

    def act() -> Response:
        with db(request) as session:
            user = require_staff(request, session)
            try:
                if form.get("action") == "return":
                    lockbox.mark_returned(session, user, row_id, form.get("note"), now(request))
                    flash(request, f"Row {row_id} is marked for return to the payer.")
                else:
                    payment = lockbox.assign(
                        session, user, row_id, form.get("account_number"), form.get("note"), now(request)
                    )
                    flash(request, f"Row {row_id} is assigned: payment {payment.id} posted.")
            except NotFound as exc:
                raise PageNotFound() from exc
            except FieldErrors as exc:
                form.errors.update(_errors(exc))
                return _queue_page(request, session, user, int(row_id), form)
            except InvalidInput as exc:
                form.errors["account_number"] = exc.message
                return _queue_page(request, session, user, int(row_id), form)
        return redirect("/staff/payments/imports/queue")

    return await run_in_threadpool(act)
