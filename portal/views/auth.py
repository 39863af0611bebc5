"""Signing in and out."""

from __future__ import annotations

import hashlib
import math

from itsdangerous import BadSignature, URLSafeSerializer
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from .. import i18n, jobs
from ..billing_core import permissions, user_sessions, users
from ..billing_core.models import User
from ..billing_core.permissions import Action
from ..i18n import N_, gettext
from ..services import signin
from ..web import TIMED_OUT, db, end_session, now, redirect, remote_addr, safe_next, signed_in_user, start_session

GENERIC_FAILURE = N_("That email and password do not match our records. Check them and try again.")
NOT_CONFIRMED = N_(
    "Please confirm your email address first. We just sent a new link to %(email)s: open it, then sign in."
)
NOT_CONFIRMED_UNSENT = N_(
    "Please confirm your email address first. We could not send a new link just now: try again in a few minutes."
)
DEVICE_COOKIE = "portal_device"
DEVICE_DAYS = 400


def too_many(wait_seconds: int) -> str:
    minutes = max(1, math.ceil(wait_seconds / 60))
    return i18n.ngettext(
        "Too many tries. To keep your account safe, please wait %(num)s minute and try again, "
        "or call customer service.",
        "Too many tries. To keep your account safe, please wait %(num)s minutes and try again, "
        "or call customer service.",
        minutes,
    )


def _devices(request: Request) -> URLSafeSerializer:
    return URLSafeSerializer(request.app.state.settings.secret_key, salt="known-device")


def _email_mark(email: str) -> str:
    return hashlib.sha256(users.normalise_email(email).encode()).hexdigest()[:32]


def known_marks(request: Request) -> list[str]:
    """The sign-ins this browser has completed before (hashes of their email addresses)."""
    raw = request.cookies.get(DEVICE_COOKIE)
    if not raw:
        return []
    try:
        marks = _devices(request).loads(raw)
    except BadSignature:
        return []
    return [m for m in marks if isinstance(m, str)][:5] if isinstance(marks, list) else []


def home(request: Request) -> Response:
    with db(request) as session:
        user = signed_in_user(request, session)
        return redirect(_home_for(user) if user else "/sign-in")


def _home_for(user: User) -> str:
    return "/staff" if permissions.can(user.role, Action.STAFF_VIEW) else "/my"


def sign_in_page(request: Request) -> Response:
    with db(request) as session:
        user = signed_in_user(request, session)
        if user is not None:
            return redirect(_home_for(user))
    return request.app.state.templates.TemplateResponse(
        request,
        "sign_in.html",
        {
            "next": request.query_params.get("next", ""),
            "email": "",
            "error": None,
            "timed_out": bool(request.session.pop(TIMED_OUT, False)),
        },
    )


async def sign_in(request: Request) -> Response:
    form = await request.form()
    email = str(form.get("email", ""))[:254]
    password = str(form.get("password", ""))[:1024]
    next_url = str(form.get("next", ""))
    marks = known_marks(request)
    user, wait = await run_in_threadpool(_check, request, email, password, _email_mark(email) in marks)
    if user is not None and user.email_verified_at is None:
        # The right password, but the address was never confirmed: queue the link again and
        # send it after the answer has gone out.
        outbox_id = await run_in_threadpool(
            jobs.queue_email,
            request.app.state.settings,
            "email.account",
            request.app.state.sessions,
            user_id=user.id,
            kind="confirm_email",
        )
        error = gettext(NOT_CONFIRMED, email=user.email) if outbox_id is not None else gettext(NOT_CONFIRMED_UNSENT)
        response = _sign_in_again(request, next_url, email, error, 400)
        response.background = BackgroundTask(
            jobs.send_queued, request.app.state.settings, request.app.state.sessions, outbox_id
        )
        return response
    if user is None:
        error = too_many(wait) if wait else gettext(GENERIC_FAILURE)
        return _sign_in_again(request, next_url, email, error, 429 if wait else 400)
    await run_in_threadpool(start_session, request, user)
    response = redirect(safe_next(next_url, _home_for(user)))
    # Remember that this browser signed in to this address (see billing_core/throttle.py).
    mark = _email_mark(email)
    response.set_cookie(
        DEVICE_COOKIE,
        _devices(request).dumps([mark, *[m for m in marks if m != mark]][:5]),
        max_age=DEVICE_DAYS * 86400,
        httponly=True,
        secure=not request.app.state.settings.development,
        samesite="lax",
    )
    return response


def _sign_in_again(request: Request, next_url: str, email: str, error: str, status: int) -> Response:
    return request.app.state.templates.TemplateResponse(
        request, "sign_in.html", {"next": next_url, "email": email, "error": error}, status_code=status
    )


def _check(request: Request, email: str, password: str, known_device: bool) -> tuple[User | None, int]:
    """(user, 0) on success; (None, seconds to wait) when throttled; else (None, 0).
    A throttled attempt does not check the password at all."""
    checked = signin.check_password(
        request.app.state.sessions, email, password, known_device, now(request), remote_addr(request)
    )
    return checked.user, checked.wait_seconds


async def sign_out(request: Request) -> Response:
    """End the session on the server, not only in this browser: a copy of the cookie
    is worth nothing afterwards."""
    await run_in_threadpool(_sign_out, request)
    return redirect("/sign-in?signed_out=1")


def _sign_out(request: Request) -> None:
    cookie = request.session
    user_id = cookie.get("user_id")
    with db(request) as session:
        ended = end_session(request, session)
        user_sessions.record_sign_out(session, user_id, ended, remote_addr(request))
