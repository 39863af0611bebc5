"""Cases (``services/cases.py``): the staff list with its filters, opening a case, the case
page (notes, attachments, reassign, status, resolve, letters from templates printed to PDF
and emailed), the account page's panel; the resident's "Questions and disputes" pages
(English and Spanish): their cases, opening an inquiry or a dispute, adding a message."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import FileResponse, Response

from .. import jobs
from ..billing_core import cases as rules
from ..billing_core import disputes as dispute_rules
from ..billing_core.errors import FieldErrors
from ..billing_core.models import User
from ..i18n import gettext
from ..services import cases as service
from ..web import (
    FormState,
    db,
    error_text,
    flash,
    now,
    pop_flash,
    redirect,
    remote_addr,
    require_customer,
    require_staff,
    today,
)

OPEN_FIELDS = ("kind", "account", "bill", "channel", "subject", "description", "assignee", "amount")
RESIDENT_FIELDS = ("kind", "account", "bill", "dispute_bill", "subject", "reason", "amount")


def _sentence(message: str) -> str:
    return message[:1].upper() + message[1:] + ("" if message.endswith(".") else ".")


def _render(request: Request, template: str, context: dict, status: int = 200) -> Response:
    response = request.app.state.templates.TemplateResponse(
        request, template, {**context, "flash": pop_flash(request)}, status_code=status
    )
    response.headers["Vary"] = "HX-Request"
    return response


def _labels() -> dict:
    return {
        "kinds": rules.KINDS,
        "channels": rules.CHANNELS,
        "statuses": rules.STATUSES,
        "sla": rules.SLA_BUSINESS_DAYS,
        "letter_templates": rules.LETTER_TEMPLATES,
        "decisions": dispute_rules.DECISIONS,
        "dispute_kinds": rules.DISPUTE_KINDS,
        "amount_kinds": rules.AMOUNT_KINDS,
        "blank": FormState(),
    }


def _case_id(request: Request) -> int:
    return int(request.path_params["case"])


async def _fields(request: Request, names: tuple[str, ...], limit: int = 4000) -> FormState:
    data = await request.form()
    return FormState({k: str(data.get(k, "")).strip()[:limit] for k in names})


def _file_response(path: object, content_type: str, name: str) -> Response:
    inline = content_type == "application/pdf" or content_type.startswith("image/")
    return FileResponse(
        path,  # type: ignore[arg-type]
        media_type=content_type,
        filename=name,
        content_disposition_type="inline" if inline else "attachment",
        headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
    )


# --- Staff: the list and opening a case ------------------------------------------------------


def case_list(request: Request) -> Response:
    query = request.query_params
    filters = {k: query.get(k, "")[:30] for k in ("status", "kind", "assignee", "account", "breached")}
    with db(request) as session:
        user = require_staff(request, session)
        page = service.listing(session, user, filters, today(request))
        return _render(request, "staff/cases/list.html", {"page": page, "me": user, **_labels()})


def _new_page(request: Request, user: User, form: FormState, status: int = 200) -> Response:
    with db(request) as session:
        page = service.new_case(session, user, form.get("account"))
        return _render(request, "staff/cases/new.html", {"page": page, "form": form, **_labels()}, status)


def new_case(request: Request) -> Response:
    with db(request) as session:
        user = require_staff(request, session)
    query = request.query_params
    form = FormState(
        {
            "account": query.get("account", "")[:30],
            "bill": query.get("bill", "")[:30],
            "kind": query.get("kind", "")[:20] or "complaint",
            "channel": "phone",
        }
    )
    return _new_page(request, user, form)


async def case_open(request: Request) -> Response:
    form = await _fields(request, OPEN_FIELDS)

    def act() -> Response:
        with db(request) as session:
            user = require_staff(request, session)
        try:
            with db(request) as session:
                case = service.open_by_staff(
                    session, user, form.values, today(request), now(request), remote_addr(request)
                )
                case_id, number, due = case.id, case.number, case.due_on
        except FieldErrors as exc:
            form.errors.update({k: _sentence(e.message) for k, e in exc.errors.items()})
            return _new_page(request, user, form, 400)
        flash(request, f"Case {number} opened; due {due.isoformat()}.")
        return redirect(f"/staff/cases/{case_id}")

    return await run_in_threadpool(act)


# --- Staff: the case page ----------------------------------------------------------------------


def _case_page(
    request: Request, user: User, case_id: int, forms: dict[str, FormState] | None = None, status: int = 200
) -> Response:
    with db(request) as session:
        page = service.case_page(session, user, case_id, today(request))
        forms = forms or {}
        return _render(
            request,
            "staff/cases/case.html",
            {
                "page": page,
                "forms": {
                    k: forms.get(k, FormState()) for k in ("note", "file", "assign", "status", "resolve", "letter")
                },
                "today": today(request),
                **_labels(),
            },
            status,
        )


def case_view(request: Request) -> Response:
    with db(request) as session:
        user = require_staff(request, session)
    return _case_page(request, user, _case_id(request))


def _case_action(request: Request, form: FormState, name: str, act, message) -> Response:  # type: ignore[no-untyped-def]
    case_id = _case_id(request)
    with db(request) as session:
        user = require_staff(request, session)
    try:
        with db(request) as session:
            act(session, user, case_id)
    except FieldErrors as exc:
        form.errors.update({k: _sentence(e.message) for k, e in exc.errors.items()})
        return _case_page(request, user, case_id, {name: form}, 400)
    flash(request, message)
    return redirect(f"/staff/cases/{case_id}")


async def add_note(request: Request) -> Response:
    form = await _fields(request, ("body", "public"))
    word = "Public note (the resident sees it) added." if form.get("public") == "1" else "Internal note added."
    return await run_in_threadpool(
        _case_action, request, form, "note", lambda s, u, c: service.add_note(s, u, c, form.values, now(request)), word
    )


async def reassign(request: Request) -> Response:
    form = await _fields(request, ("assignee",))
    return await run_in_threadpool(
        _case_action,
        request,
        form,
        "assign",
        lambda s, u, c: service.reassign(s, u, c, form.values),
        "Case reassigned.",
    )


async def change_status(request: Request) -> Response:
    form = await _fields(request, ("status",))
    return await run_in_threadpool(
        _case_action,
        request,
        form,
        "status",
        lambda s, u, c: service.change_status(s, u, c, form.get("status")),
        f"Case is now {form.get('status')}.",
    )


async def resolve(request: Request) -> Response:
    form = await _fields(request, ("resolution", "decision"), 2000)
    return await run_in_threadpool(
        _case_action,
        request,
        form,
        "resolve",
        lambda s, u, c: service.resolve(s, u, c, form.values, now(request)),
        "Case resolved.",
    )


async def attach(request: Request) -> Response:
    data = await request.form()
    upload = data.get("file")
    form = FormState({"shared": str(data.get("shared", ""))})
    name, content = "", b""
    if isinstance(upload, UploadFile) and upload.filename:
        name = upload.filename[:300]
        content = await upload.read(rules.MAX_ATTACHMENT_BYTES + 1)
    await data.close()
    settings = request.app.state.settings
    return await run_in_threadpool(
        _case_action,
        request,
        form,
        "file",
        lambda s, u, c: service.attach(s, u, settings, c, name, content, form.get("shared") == "1", now(request)),
        f"{rules.safe_filename(name) if name else 'File'} attached.",
    )


def attachment(request: Request) -> Response:
    with db(request) as session:
        user = require_staff(request, session)
        item, path = service.attachment_file(session, user, _case_id(request), int(request.path_params["attachment"]))
        return _file_response(path, item.content_type, item.filename)


# --- Staff: letters ----------------------------------------------------------------------------


def _letter_page(request: Request, user: User, case_id: int, form: FormState, status: int = 200) -> Response:
    with db(request) as session:
        page = service.case_page(session, user, case_id, today(request))
        return _render(request, "staff/cases/letter.html", {"page": page, "form": form, **_labels()}, status)


def letter_new(request: Request) -> Response:
    case_id = _case_id(request)
    template = request.query_params.get("template", "")[:40]
    env, settings = request.app.state.templates.env, request.app.state.settings
    with db(request) as session:
        user = require_staff(request, session)
    form = FormState({"template": template})
    try:
        with db(request) as session:
            _language, body = service.letter_draft(session, user, env, settings, case_id, template)
            form.values["body"] = body
    except FieldErrors as exc:
        form.errors.update({k: _sentence(e.message) for k, e in exc.errors.items()})
        return _case_page(request, user, case_id, {"letter": form}, 400)
    return _letter_page(request, user, case_id, form)


async def letter_send(request: Request) -> Response:
    form = await _fields(request, ("template", "body"), rules.MAX_LETTER + 1)
    case_id = _case_id(request)
    env, settings = request.app.state.templates.env, request.app.state.settings

    def prepare() -> tuple[User, str | None]:
        with db(request) as session:
            user = require_staff(request, session)
        try:
            with db(request) as session:
                return user, service.letter_html(session, user, env, settings, case_id, form.values, today(request))
        except FieldErrors as exc:
            form.errors.update({k: _sentence(e.message) for k, e in exc.errors.items()})
            return user, None

    user, html = await run_in_threadpool(prepare)
    if html is None:
        return await run_in_threadpool(_letter_page, request, user, case_id, form, 400)
    pdf = await request.app.state.printer.pdf(html, tagged=True)

    def store() -> Response:
        with db(request) as session:
            stored = service.store_letter(session, user, settings, case_id, form.values, pdf, now(request))
            letter_id, outbox_id = stored.letter.id, stored.outbox_id
        jobs.send_outbox_soon(settings, request.app.state.sessions, outbox_id)
        emailed = " and emailed to the customer" if outbox_id else " (the customer has no email address: mail the PDF)"
        flash(request, f"Letter {letter_id} stored{emailed}.")
        return redirect(f"/staff/cases/{case_id}")

    return await run_in_threadpool(store)


def letter_pdf(request: Request) -> Response:
    with db(request) as session:
        user = require_staff(request, session)
        letter, path = service.letter_file(session, user, _case_id(request), int(request.path_params["letter"]))
        return _file_response(path, "application/pdf", f"letter-{letter.id}.pdf")


# --- Staff: the account page's panel -----------------------------------------------------------


def account_panel(request: Request) -> Response:
    with db(request) as session:
        user = require_staff(request, session)
        panel = service.account_panel(session, user, request.path_params["number"], today(request))
        template = "staff/cases/panel.html" if request.headers.get("HX-Request") else "staff/cases/panel_page.html"
        return _render(request, template, {"panel": panel, **_labels()})


# --- The resident ------------------------------------------------------------------------------


def my_cases(request: Request) -> Response:
    with db(request) as session:
        user = require_customer(request, session)
        rows = service.my_cases(session, user)
        return _render(request, "customer/cases.html", {"rows": rows})


def _my_new(request: Request, user: User, form: FormState, status: int = 200) -> Response:
    with db(request) as session:
        page = service.resident_new(session, user, form.get("account"), form.get("bill"))
        return _render(request, "customer/case_new.html", {"page": page, "form": form}, status)


def my_new(request: Request) -> Response:
    with db(request) as session:
        user = require_customer(request, session)
    query = request.query_params
    form = FormState({k: query.get(k, "")[:30] for k in ("account", "bill", "kind")})
    return _my_new(request, user, form)


async def my_open(request: Request) -> Response:
    form = await _fields(request, RESIDENT_FIELDS, 2001)

    def act() -> Response:
        with db(request) as session:
            user = require_customer(request, session)
        try:
            with db(request) as session:
                case = service.open_by_resident(
                    session, user, form.values, today(request), now(request), remote_addr(request)
                )
                case_id, kind, number = case.id, case.kind, case.number
        except FieldErrors as exc:
            form.errors.update({k: error_text(e) for k, e in exc.errors.items()})
            return _my_new(request, user, form, 400)
        if kind == "dispute":
            flash(
                request,
                gettext(
                    "We received your dispute. While we look into it, we charge no late fee on the amount and do not "
                    "shut off your service."
                ),
            )
        else:
            flash(
                request, gettext("We received your question (case %(number)s). We will answer you here.", number=number)
            )
        return redirect(f"/my/cases/{case_id}")

    return await run_in_threadpool(act)


def _my_page(request: Request, user: User, case_id: int, form: FormState | None = None, status: int = 200) -> Response:
    with db(request) as session:
        page = service.my_case(session, user, case_id)
        return _render(request, "customer/case.html", {"page": page, "form": form or FormState()}, status)


def my_case(request: Request) -> Response:
    with db(request) as session:
        user = require_customer(request, session)
    return _my_page(request, user, _case_id(request))


async def my_message(request: Request) -> Response:
    form = await _fields(request, ("body",))
    case_id = _case_id(request)

    def act() -> Response:
        with db(request) as session:
            user = require_customer(request, session)
        try:
            with db(request) as session:
                service.my_message(session, user, case_id, form.values, now(request))
        except FieldErrors as exc:
            form.errors.update({k: error_text(e) for k, e in exc.errors.items()})
            return _my_page(request, user, case_id, form, 400)
        flash(request, gettext("Your message was added to the case."))
        return redirect(f"/my/cases/{case_id}")

    return await run_in_threadpool(act)


def my_letter_pdf(request: Request) -> Response:
    with db(request) as session:
        user = require_customer(request, session)
        letter, path = service.my_letter_file(session, user, _case_id(request), int(request.path_params["letter"]))
        return _file_response(path, "application/pdf", f"letter-{letter.id}.pdf")


def my_attachment(request: Request) -> Response:
    with db(request) as session:
        user = require_customer(request, session)
        item, path = service.my_attachment_file(
            session, user, _case_id(request), int(request.path_params["attachment"])
        )
        return _file_response(path, item.content_type, item.filename)
