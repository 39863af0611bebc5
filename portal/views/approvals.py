"""The approvals queue: one list of everything waiting for someone else's decision, with
approve / reject (``services/approvals.py``). Staff page: English."""

from __future__ import annotations

from urllib.parse import urlencode

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from .. import jobs
from ..billing_core.errors import FieldErrors
from ..billing_core.models import User
from ..services import approvals as service
from ..web import FormState, db, flash, now, pop_flash, redirect, remote_addr, require_staff, today


def _sentence(message: str) -> str:
    return message[:1].upper() + message[1:] + ("" if message.endswith(".") else ".")


def _page(request: Request, session: Session, user: User, failed: str = "", form: FormState | None = None) -> Response:
    q = request.query_params
    page = service.queue(
        session, user, today(request), q.get("kind", ""), q.get("age", ""), q.get("preparer", "")[:254]
    )
    fragment = bool(request.headers.get("HX-Request"))
    response = request.app.state.templates.TemplateResponse(
        request,
        "staff/approvals/queue.html",
        {
            "page": page,
            "items": page.rows,
            "kinds": service.KINDS,
            "nouns": service.NOUNS,
            "words": service.WORDS,
            "ages": service.AGES,
            "failed": failed,
            "form": form or FormState(),
            "fragment": fragment,
            "flash": pop_flash(request),
        },
        status_code=400 if failed else 200,
    )
    response.headers["Vary"] = "HX-Request"
    return response


def approvals(request: Request) -> Response:
    with db(request) as session:
        user = require_staff(request, session)
        return _page(request, session, user)


async def approval_decide(request: Request) -> Response:
    data = await request.form()
    form = FormState({k: str(data.get(k, "")).strip()[:2000] for k in ("decision", "decision_note")})
    kind, item_id = request.path_params["kind"], request.path_params["id"]

    def act() -> Response | service.Decided:
        with db(request) as session:
            user = require_staff(request, session)
        try:
            return service.decide(
                request.app.state.sessions,
                user,
                kind,
                item_id,
                form.get("decision"),
                form.get("decision_note"),
                today(request),
                now(request),
                remote_addr(request),
            )
        except FieldErrors as exc:
            form.errors.update({k: _sentence(e.message) for k, e in exc.errors.items()})
            with db(request) as session:
                return _page(request, session, require_staff(request, session), f"{kind}-{item_id}", form)

    done = await run_in_threadpool(act)
    if isinstance(done, Response):
        return done
    for job, about in done.emails:  # the customer is told once the decision is saved
        await run_in_threadpool(
            jobs.defer, request.app.state.settings, job, request.app.state.sessions, request_id=about
        )
    flash(request, done.message)
    return redirect(_back(request))


def _back(request: Request) -> str:
    """Back to the queue as it was filtered (the form's address carries the filters)."""
    q = request.query_params
    kept = urlencode({k: q[k][:254] for k in ("kind", "age", "preparer") if q.get(k)})
    return "/staff/approvals" + (f"?{kept}" if kept else "")
