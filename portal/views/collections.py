"""The staff's collections pages: today's action list of the delinquency run (preview and
post buttons, the runs of past days, the accounts held), and the account page's
Collections panel (the episode, its dated steps and actions, the hold form). Each route
calls one service and renders."""

from __future__ import annotations

import dataclasses
from datetime import date

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from .. import jobs
from ..billing_core import collection_run
from ..billing_core.errors import FieldErrors
from ..services import collections as service
from ..web import FormState, db, error_text, flash, now, pop_flash, redirect, require_staff, today


def _render(request: Request, template: str, context: dict, status: int = 200) -> Response:
    response = request.app.state.templates.TemplateResponse(request, template, context, status_code=status)
    response.headers["Vary"] = "HX-Request"
    return response


def _day(request: Request, raw: str | None) -> date:
    try:
        return date.fromisoformat((raw or "").strip()) if raw else today(request)
    except ValueError:
        return today(request)


def action_list(request: Request, status: int = 200, form: FormState | None = None) -> Response:
    on = _day(request, request.query_params.get("on"))
    step = request.query_params.get("step") or None
    with db(request) as session:
        user = require_staff(request, session)
        listing = service.action_list(session, user, on, step)
        return _render(
            request,
            "staff/collections/list.html",
            {
                "listing": listing,
                "labels": collection_run.STEP_LABELS,
                "steps": collection_run.STEP_ORDER,
                "today": today(request),
                "form": form or FormState(),
                "flash": pop_flash(request),
            },
            status,
        )


async def run_action(request: Request) -> Response:
    data = await request.form()
    what = str(data.get("action", ""))
    form = FormState({"run_on": str(data.get("run_on", ""))[:20]})

    def run() -> Response:
        with db(request) as session:
            user = require_staff(request, session)
        if what not in ("preview", "post"):
            form.errors["action"] = "Choose preview or post."
            return action_list(request, 400, form)
        try:
            on = service.run_day_of(form.get("run_on"), today(request))
        except FieldErrors as exc:
            form.errors["run_on"] = error_text(exc.errors["on"])
            return action_list(request, 400, form)
        settings = request.app.state.settings
        if settings.is_postgres and not settings.jobs_in_process:
            # A district's run goes to the workers in chunks; the page shows the counts as they come.
            service.may_run(user, what == "post")
            url = request.app.state.engine.url.render_as_string(hide_password=False)
            chunks = jobs.dispatch_collections(
                dataclasses.replace(settings, database_url=url), on, what == "post", user.id
            )
            flash(
                request, f"The run of {on.isoformat()} went to the workers in {chunks} chunks; refresh for the counts."
            )
        else:
            result = service.run(request.app.state.sessions, user, on, now(request), post=what == "post")
            flash(request, "; ".join(service.summary(result, what == "post")))
        return redirect(f"/staff/collections?on={on.isoformat()}")

    return await run_in_threadpool(run)


# --- The account page's panel ----------------------------------------------------------------


def _panel(request: Request, form: FormState | None = None, status: int = 200) -> Response:
    number = request.path_params["number"]
    with db(request) as session:
        user = require_staff(request, session)
        panel = service.panel(session, user, number, today(request))
        fragment = bool(request.headers.get("HX-Request"))
        template = "staff/collections/panel.html" if fragment else "staff/collections/panel_page.html"
        return _render(
            request,
            template,
            {
                "panel": panel,
                "labels": collection_run.STEP_LABELS,
                "today": today(request),
                "form": form or FormState(),
                "flash": pop_flash(request),
            },
            status,
        )


def collections_panel(request: Request) -> Response:
    return _panel(request)


async def hold_action(request: Request) -> Response:
    data = await request.form()
    form = FormState({k: str(data.get(k, ""))[:1000] for k in ("reason", "until")})
    what = str(data.get("action", "hold"))
    number = request.path_params["number"]

    def run() -> Response:
        with db(request) as session:
            user = require_staff(request, session)
        try:
            if what == "release":
                service.release(request.app.state.sessions, user, number, now(request))
                flash(request, f"Account {number} is back in the delinquency run.")
            else:
                service.hold(
                    request.app.state.sessions,
                    user,
                    number,
                    form.get("reason"),
                    form.get("until"),
                    now(request),
                    today(request),
                )
                flash(request, f"Account {number} is held out of the delinquency run.")
        except FieldErrors as exc:
            form.errors.update({k: error_text(e) for k, e in exc.errors.items()})
            return _panel(request, form, 400)
        return redirect(f"/staff/accounts/{number}/collections")

    return await run_in_threadpool(run)
