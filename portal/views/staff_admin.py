"""Staff administration (``services/staff_admin.py``): the staff list and the invitation
form, one staff member's page (role, turn off or on, password reset, invitation again), and
the invitation link's set-password page. Staff pages: English."""

from __future__ import annotations

from datetime import datetime

from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from .. import jobs
from ..billing_core.errors import FieldErrors, InvalidInput
from ..billing_core.models import User
from ..billing_core.users import INVITE_HOURS, MIN_PASSWORD
from ..services import staff_admin as service
from ..web import FormState, db, error_text, flash, now, pop_flash, redirect, remote_addr, require_staff, start_session

INVITE_FIELDS = ("email", "role", "name")


def _render(request: Request, template: str, context: dict, status: int = 200) -> Response:
    tz = request.app.state.settings.tz

    def local_time(at: datetime) -> str:
        """A moment in the office's time zone: "2026-11-22 10:00 PST"."""
        return at.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z")

    return request.app.state.templates.TemplateResponse(
        request, template, {**context, "flash": pop_flash(request), "local_time": local_time}, status_code=status
    )


def _sentence(message: str) -> str:
    return message[:1].upper() + message[1:] + ("" if message.endswith(".") else ".")


def _send(request: Request, user_id: int, kind: str) -> tuple[bool, BackgroundTask]:
    """Queue a sign-in email (after the change has committed) and send it after the answer."""
    settings, sessions = request.app.state.settings, request.app.state.sessions
    outbox_id = jobs.queue_email(settings, "email.account", sessions, user_id=user_id, kind=kind)
    return outbox_id is not None, BackgroundTask(jobs.send_queued, settings, sessions, outbox_id)


# --- The staff list and the invitation ---------------------------------------------------


def _users(request: Request, form: FormState | None = None) -> Response:
    with db(request) as session:
        admin = require_staff(request, session)
        page = service.users_page(session, admin, now(request))
        return _render(
            request,
            "staff/admin/users.html",
            {**vars(page), "form": form or FormState({"role": "csr"}), "me": admin.id, "hours": INVITE_HOURS},
            400 if form and form.errors else 200,
        )


def users_page(request: Request) -> Response:
    return _users(request)


async def invite(request: Request) -> Response:
    data = await request.form()
    form = FormState({k: str(data.get(k, "")).strip()[:300] for k in INVITE_FIELDS})

    def act() -> Response:
        with db(request) as session:
            admin = require_staff(request, session)
            try:
                user = service.invite(session, admin, form.values, now(request), remote_addr(request))
            except FieldErrors as exc:
                form.errors.update({k: _sentence(e.message) for k, e in exc.errors.items()})
                user = None
            if user is not None:
                user_id, email = user.id, user.email
        if user is None:
            return _users(request, form)
        queued, task = _send(request, user_id, "invite")
        flash(
            request,
            f"Invited {email}: the invitation with a link to choose a password is on its way "
            f"(it works for {INVITE_HOURS} hours)."
            if queued
            else f"Invited {email}, but the email could not be queued: send the invitation again in a few minutes.",
        )
        response = redirect(f"/staff/admin/users/{user_id}")
        response.background = task
        return response

    return await run_in_threadpool(act)


# --- One staff member --------------------------------------------------------------------


def _user(request: Request, errors: dict[str, str] | None = None, values: dict[str, str] | None = None) -> Response:
    with db(request) as session:
        admin = require_staff(request, session)
        page = service.user_page(session, admin, request.path_params["id"], now(request))
        form = FormState(values or {"role": page.row.user.role})
        form.errors.update(errors or {})
        return _render(request, "staff/admin/user.html", {**vars(page), "form": form}, 400 if errors else 200)


def user_page(request: Request) -> Response:
    return _user(request)


def _ended(count: int) -> str:
    return f"{count} session{'' if count == 1 else 's'} ended"


def _act(request: Request, name: str, values: dict[str, str], change) -> Response:  # type: ignore[no-untyped-def]
    """Run ``change(session, admin, user_id) -> (message, email kind or None, user id)`` in one
    transaction; a refusal is shown next to the form ``name`` on the staff member's page."""
    user_id = request.path_params["id"]
    try:
        with db(request) as session:
            admin = require_staff(request, session)
            message, kind, target = change(session, admin, user_id)
    except FieldErrors as exc:
        return _user(request, {k: _sentence(e.message) for k, e in exc.errors.items()}, values)
    except InvalidInput as exc:
        return _user(request, {name: _sentence(error_text(exc))}, values)
    response = redirect(f"/staff/admin/users/{target}")
    if kind is not None:
        queued, response.background = _send(request, target, kind)
        if not queued:
            message += " The email could not be queued: try again in a few minutes."
    flash(request, message)
    return response


async def change_role(request: Request) -> Response:
    role = str((await request.form()).get("role", "")).strip()[:40]

    def change(session, admin: User, user_id: object):  # type: ignore[no-untyped-def]
        done = service.change_role(session, admin, user_id, role, now(request), remote_addr(request))
        after = service.role_name(done.user.role)
        if done.before == after:
            return f"{done.user.email} is already {after}.", None, done.user.id
        return (
            f"{done.user.email} is now {after} (was {done.before}); {_ended(done.sessions_ended)}.",
            None,
            done.user.id,
        )

    return await run_in_threadpool(_act, request, "role", {"role": role}, change)


async def deactivate(request: Request) -> Response:
    await request.form()

    def change(session, admin: User, user_id: object):  # type: ignore[no-untyped-def]
        done = service.set_active(session, admin, user_id, False, now(request), remote_addr(request))
        return f"Turned off {done.user.email}; {_ended(done.sessions_ended)}.", None, done.user.id

    return await run_in_threadpool(_act, request, "active", {}, change)


async def activate(request: Request) -> Response:
    await request.form()

    def change(session, admin: User, user_id: object):  # type: ignore[no-untyped-def]
        done = service.set_active(session, admin, user_id, True, now(request), remote_addr(request))
        return f"Turned {done.user.email} back on.", None, done.user.id

    return await run_in_threadpool(_act, request, "active", {}, change)


async def sign_out_everywhere(request: Request) -> Response:
    await request.form()

    def change(session, admin: User, user_id: object):  # type: ignore[no-untyped-def]
        done = service.sign_out_everywhere(session, admin, user_id, now(request), remote_addr(request))
        return f"Signed {done.user.email} out everywhere; {_ended(done.sessions_ended)}.", None, done.user.id

    return await run_in_threadpool(_act, request, "sessions", {}, change)


async def send_reset(request: Request) -> Response:
    await request.form()

    def change(session, admin: User, user_id: object):  # type: ignore[no-untyped-def]
        user = service.send_reset(session, admin, user_id, now(request), remote_addr(request))
        return f"A password reset link is on its way to {user.email} (it works for 1 hour).", "reset_password", user.id

    return await run_in_threadpool(_act, request, "reset", {}, change)


async def resend_invite(request: Request) -> Response:
    await request.form()

    def change(session, admin: User, user_id: object):  # type: ignore[no-untyped-def]
        user = service.resend_invite(session, admin, user_id, now(request), remote_addr(request))
        return (
            f"A new invitation is on its way to {user.email} (it works for {INVITE_HOURS} hours); "
            "the earlier link no longer works.",
            "invite",
            user.id,
        )

    return await run_in_threadpool(_act, request, "invite", {}, change)


# --- The invitation link: choose a password -----------------------------------------------


def _set_password(request: Request, token: str, valid: bool, form: FormState, status: int) -> Response:
    return _render(
        request,
        "staff/admin/set_password.html",
        {"token": token, "valid": valid, "form": form, "min_password": MIN_PASSWORD},
        status,
    )


def set_password_page(request: Request) -> Response:
    token = request.query_params.get("token", "")[:200]
    with db(request) as session:
        valid = service.invite_valid(session, token, now(request))
    return _set_password(request, token, valid, FormState(), 200 if valid else 400)


async def set_password(request: Request) -> Response:
    data = await request.form()
    token = str(data.get("token", ""))[:200]
    password = str(data.get("password", ""))[:2048]
    form = FormState()
    if password != str(data.get("password_again", ""))[:2048]:
        form.errors["password_again"] = "The two passwords are not the same. Type the same one twice."
        return _set_password(request, token, True, form, 400)

    def accept() -> Response:
        try:
            with db(request) as session:
                user = service.accept_invite(session, token, password, now(request), remote_addr(request))
                start_session(request, user, session)
        except InvalidInput as exc:
            form.errors[exc.field or "password"] = _sentence(error_text(exc))
            return _set_password(request, token, exc.field != "token", form, 400)
        return redirect("/staff")  # signed in: the staff home

    return await run_in_threadpool(accept)
