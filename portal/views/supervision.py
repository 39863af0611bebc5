"""The supervisor dashboard and its reassign action (``services/supervision.py``). Staff
page: English."""

from __future__ import annotations

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from ..billing_core.errors import FieldErrors
from ..billing_core.models import User
from ..services import supervision as service
from ..web import FormState, db, flash, now, pop_flash, redirect, require_staff, today

FIELDS = ("kind", "id", "to")


def _page(request: Request, session: Session, user: User, form: FormState | None = None) -> Response:
    person = request.query_params.get("person", "")[:20]
    page = service.dashboard(session, user, today(request), person)
    return request.app.state.templates.TemplateResponse(
        request,
        "staff/supervisor/dashboard.html",
        {"page": page, "form": form or FormState(), "today": today(request), "flash": pop_flash(request)},
        status_code=400 if form and form.errors else 200,
    )


def dashboard(request: Request) -> Response:
    with db(request) as session:
        user = require_staff(request, session)
        return _page(request, session, user)


async def reassign(request: Request) -> Response:
    data = await request.form()
    form = FormState({k: str(data.get(k, "")).strip()[:40] for k in FIELDS})

    def act() -> Response:
        with db(request) as session:
            user = require_staff(request, session)
            try:
                done = service.reassign(session, user, form.values, now(request))
            except FieldErrors as exc:
                form.errors.update({k: e.message for k, e in exc.errors.items()})
                return _page(request, session, user, form)
            flash(request, done)
        person = request.query_params.get("person", "")[:20]
        return redirect("/staff/supervisor" + (f"?person={person}" if person.isdigit() or person == "none" else ""))

    return await run_in_threadpool(act)
