"""Signing in and out."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from .. import csrf
from ..billing_core import audit, users
from ..billing_core.models import Role, User
from ..web import db, now, redirect, remote_addr, safe_next, signed_in_user

GENERIC_FAILURE = "That email and password do not match our records. Check them and try again."


def home(request: Request) -> Response:
    with db(request) as session:
        user = signed_in_user(request, session)
        return redirect(_home_for(user) if user else "/sign-in")


def _home_for(user: User) -> str:
    return "/staff" if Role(user.role).is_staff else "/my"


def sign_in_page(request: Request) -> Response:
    with db(request) as session:
        user = signed_in_user(request, session)
        if user is not None:
            return redirect(_home_for(user))
    return request.app.state.templates.TemplateResponse(
        request, "sign_in.html", {"next": request.query_params.get("next", ""), "email": "", "error": None}
    )


async def sign_in(request: Request) -> Response:
    form = await request.form()
    email = str(form.get("email", ""))[:254]
    password = str(form.get("password", ""))[:1024]
    next_url = str(form.get("next", ""))
    user_id, role = await run_in_threadpool(_check, request, email, password)
    if user_id is None:
        return request.app.state.templates.TemplateResponse(
            request,
            "sign_in.html",
            {"next": next_url, "email": email, "error": GENERIC_FAILURE},
            status_code=400,
        )
    # A fresh session on sign-in: nothing from before carries over.
    request.session.clear()
    request.session["user_id"] = user_id
    csrf.rotate(request)
    default = "/staff" if Role(role).is_staff else "/my"
    return redirect(safe_next(next_url, default))


def _check(request: Request, email: str, password: str) -> tuple[int | None, str | None]:
    with db(request) as session:
        user = users.authenticate(session, email, password, now(request))
        audit.record(
            session,
            "sign_in.success" if user else "sign_in.failure",
            actor=user,
            actor_label=users.normalise_email(email),
            entity_type="user",
            entity_id=user.id if user else None,
            remote_addr=remote_addr(request),
            detail=None if user else "wrong email or password",
        )
        return (user.id, user.role) if user else (None, None)


async def sign_out(request: Request) -> Response:
    user_id = request.session.get("user_id")
    if user_id:
        await run_in_threadpool(_record_sign_out, request, user_id)
    request.session.clear()
    return redirect("/sign-in?signed_out=1")


def _record_sign_out(request: Request, user_id: int) -> None:
    with db(request) as session:
        user = session.get(User, user_id)
        audit.record(
            session, "sign_out", actor=user, entity_type="user", entity_id=user_id, remote_addr=remote_addr(request)
        )
