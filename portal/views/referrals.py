"""Final-account collections (``services/referrals.py``): /staff/referrals (lists by status,
approve / reject, export, recall, export files again by sha256) and the account page's
referrals panel (prepare, recoveries). Staff pages: English."""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from ..billing_core import referrals as rules
from ..billing_core.errors import FieldErrors, InvalidInput
from ..billing_core.models import User
from ..services import referrals as service
from ..web import FormState, db, flash, now, pop_flash, redirect, require_staff, today


def _render(request: Request, template: str, context: dict, status: int = 200) -> Response:
    fragment = bool(request.headers.get("HX-Request"))
    response = request.app.state.templates.TemplateResponse(
        request, template, {**context, "fragment": fragment, "flash": pop_flash(request)}, status_code=status
    )
    response.headers["Vary"] = "HX-Request"
    return response


def _sentence(message: str) -> str:
    return message[:1].upper() + message[1:] + ("" if message.endswith(".") else ".")


def _errors(form: FormState, exc: FieldErrors) -> None:
    form.errors.update({k: _sentence(e.message) for k, e in exc.errors.items()})


# --- The account panel -----------------------------------------------------------------------


def _panel(
    request: Request,
    session: Session,
    user: User,
    number: str,
    form: FormState | None = None,
    recovery_form: FormState | None = None,
    failed: int | None = None,
) -> Response:
    page = service.panel(session, user, number)
    bad = bool((form and form.errors) or (recovery_form and recovery_form.errors))
    return _render(
        request,
        "staff/referrals/panel.html",
        {
            **vars(page),
            "form": form or FormState({"kind": "agency"}),
            "recovery_form": recovery_form or FormState({"source": "received"}),
            "blank_recovery": FormState({"source": "received"}),
            "form_key": uuid.uuid4().hex,
            "failed": failed,
            "kinds": rules.KINDS,
            "sources": rules.RECOVERY_SOURCES,
            "recoverable": rules.RECOVERABLE,
            "outstanding": rules.outstanding,
            "today": today(request),
        },
        400 if bad else 200,
    )


def panel(request: Request) -> Response:
    with db(request) as session:
        user = require_staff(request, session)
        return _panel(request, session, user, request.path_params["number"])


async def prepare(request: Request) -> Response:
    data = await request.form()
    form = FormState({k: str(data.get(k, "")).strip()[:100] for k in ("kind", "amount")})

    def act() -> Response:
        number = request.path_params["number"]
        with db(request) as session:
            user = require_staff(request, session)
            try:
                items = service.prepare(session, user, number, form.values, now(request))
            except FieldErrors as exc:
                _errors(form, exc)
                return _panel(request, session, user, number, form=form)
            ids = ", ".join(str(i.id) for i in items)
            flash(request, f"Referral {ids} is prepared; it waits for a supervisor's approval.")
        return redirect(f"/staff/accounts/{number}/referrals")

    return await run_in_threadpool(act)


async def recover(request: Request) -> Response:
    data = await request.form()
    fields = ("source", "amount", "received_on", "payment", "note", "key")
    form = FormState({k: str(data.get(k, "")).strip()[:500] for k in fields})

    def act() -> Response:
        number = request.path_params["number"]
        referral = request.path_params["referral"]
        with db(request) as session:
            user = require_staff(request, session)
            try:
                row = service.recover(session, user, referral, form.values, today(request), now(request))
            except FieldErrors as exc:
                _errors(form, exc)
                return _panel(request, session, user, number, recovery_form=form, failed=int(referral))
            flash(request, f"Recovery of {row.amount_cents / 100:.2f} recorded on referral {row.referral_id}.")
        return redirect(f"/staff/accounts/{number}/referrals")

    return await run_in_threadpool(act)


# --- The referrals page -----------------------------------------------------------------------


def _list(
    request: Request, session: Session, user: User, failed: str = "", form: FormState | None = None, error: str = ""
) -> Response:
    page = service.list_page(session, user, request.query_params.get("status", "proposed"))
    return _render(
        request,
        "staff/referrals/list.html",
        {
            "page": page,
            "kinds": rules.KINDS,
            "statuses": rules.STATUSES,
            "failed": failed,
            "form": form or FormState(),
            "error": error,
            "outstanding": rules.outstanding,
        },
        400 if (failed or error) else 200,
    )


def referral_list(request: Request) -> Response:
    with db(request) as session:
        user = require_staff(request, session)
        return _list(request, session, user)


async def decide(request: Request) -> Response:
    data = await request.form()
    form = FormState({k: str(data.get(k, "")).strip()[:2000] for k in ("decision", "decision_note", "recall_note")})
    referral = request.path_params["referral"]

    def act() -> Response:
        with db(request) as session:
            user = require_staff(request, session)
            decision = form.get("decision")
            note = form.get("recall_note") if decision == "recall" else form.get("decision_note")
            try:
                item = service.decide(session, user, referral, decision, note, now(request))
            except FieldErrors as exc:
                _errors(form, exc)
                return _list(request, session, user, str(referral), form)
            except InvalidInput as exc:
                return _list(request, session, user, str(referral), form, _sentence(exc.message))
            flash(request, f"Referral {item.id} is {item.status}.")
            back = "approved" if item.status == "approved" else item.status
        return redirect(f"/staff/referrals?status={back}")

    return await run_in_threadpool(act)


async def export(request: Request) -> Response:
    data = await request.form()
    kind = str(data.get("kind", ""))

    def act() -> Response:
        with db(request) as session:
            user = require_staff(request, session)
            try:
                done = service.export(session, user, kind, request.app.state.settings.files_dir, now(request))
            except InvalidInput as exc:
                return _list(request, session, user, error=_sentence(exc.message))
            if not done.referral_ids:
                flash(request, f"No approved {rules.KINDS.get(kind, kind).lower()} referral is waiting for export.")
                return redirect("/staff/referrals?status=approved")
        name = f"referrals-{kind}-{now(request).strftime('%Y%m%d-%H%M%S')}.csv"
        return Response(
            done.content,
            media_type="text/csv; charset=utf-8",
            headers={
                "Content-Disposition": f'attachment; filename="{name}"',
                "X-Referrals": str(len(done.referral_ids)),
                "X-Sha256": done.sha256,
            },
        )

    return await run_in_threadpool(act)


def export_file(request: Request) -> Response:
    with db(request) as session:
        user = require_staff(request, session)
        kind, content = service.export_file(
            session, user, request.path_params["sha"], request.app.state.settings.files_dir
        )
    sha = request.path_params["sha"].lower()
    return Response(
        content,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="referrals-{kind}-{sha[:12]}.csv"', "X-Sha256": sha},
    )
