"""Signing up, confirming the address, resetting a password, linking an account, language.

Every answer that could tell a stranger whether an address has a sign-in reads the same
either way; what differs goes into the email, which only the address's owner reads.
"""

from __future__ import annotations

from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from .. import i18n, jobs
from ..billing_core import users
from ..billing_core.errors import InvalidInput
from ..billing_core.models import User
from ..i18n import gettext
from ..services import customers, signin
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
    safe_next,
    signed_in_user,
    start_session,
)
from .auth import too_many

SIGN_UP_FIELDS = ("email", "name")


def _render(request: Request, template: str, context: dict, status: int = 200) -> Response:
    return request.app.state.templates.TemplateResponse(request, template, context, status_code=status)


def _queue(request: Request, user_id: int, kind: str) -> int | None:
    """Put the email in the outbox now; its id when it is on its way (None: it could not be)."""
    return jobs.queue_email(
        request.app.state.settings, "email.account", request.app.state.sessions, user_id=user_id, kind=kind
    )


def _send_later(request: Request, outbox_id: int | None) -> BackgroundTask:
    """Send a queued email after the answer has gone out, so the time an answer takes does
    not depend on talking to the mail server."""
    return BackgroundTask(jobs.send_queued, request.app.state.settings, request.app.state.sessions, outbox_id)


def _send(request: Request, user_id: int, kind: str) -> bool:
    """Queue the email and send it (without workers) here: for background tasks only."""
    return jobs.defer(
        request.app.state.settings, "email.account", request.app.state.sessions, user_id=user_id, kind=kind
    )


# --- Sign up ---------------------------------------------------------------------------


def sign_up_page(request: Request) -> Response:
    return _render(request, "account/sign_up.html", {"form": FormState()})


async def sign_up(request: Request) -> Response:
    data = await request.form()
    form = FormState({k: str(data.get(k, ""))[:254] for k in SIGN_UP_FIELDS})
    password = str(data.get("password", ""))[:2048]
    if password != str(data.get("password_again", ""))[:2048]:
        form.errors["password_again"] = gettext("The two passwords are not the same. Type the same one twice.")
    if not form.errors:
        result = await run_in_threadpool(_sign_up, request, form, password)
        if isinstance(result, int):
            form.errors["email"] = too_many(result)
            return _render(request, "account/sign_up.html", {"form": form}, 429)
        if result is not None:
            user_id, new = result
            # Both answers (a new sign-in, or "you already have one") queue one email here and
            # send it after the response: the same work before the answer either way.
            outbox_id = await run_in_threadpool(
                _queue, request, user_id, "confirm_email" if new else "already_registered"
            )
            queued = outbox_id is not None
            response = _render(
                request,
                "account/check_email.html",
                {"email": users.normalise_email(form.get("email")), "queued": queued},
                200 if queued else 503,
            )
            response.background = _send_later(request, outbox_id)
            return response
    return _render(request, "account/sign_up.html", {"form": form}, 400)


def _sign_up(request: Request, form: FormState, password: str) -> tuple[int, bool] | int | None:
    """(user id, send the confirmation link) when the sign-up went through or the address
    already had a sign-in; seconds to wait when too many sign-ups came from this network
    address or for this email; None when the form was wrong (its errors set)."""
    try:
        with db(request) as session:
            result = signin.sign_up(
                session,
                form.get("email"),
                password,
                form.get("name"),
                i18n.language(),
                now(request),
                remote_addr(request),
            )
    except InvalidInput as exc:
        form.errors[exc.field or "email"] = error_text(exc)
        return None
    if result.wait_seconds is not None:
        return result.wait_seconds
    assert result.user_id is not None
    return result.user_id, result.confirm


def confirm_email_page(request: Request) -> Response:
    token = request.query_params.get("token", "")
    with db(request) as session:
        valid = signin.token_valid(session, token, users.VERIFY_EMAIL, now(request))
    return _render(request, "account/confirm_email.html", {"token": token, "valid": valid}, 200 if valid else 400)


async def confirm_email(request: Request) -> Response:
    token = str((await request.form()).get("token", ""))

    def confirm() -> User | None:
        with db(request) as session:
            return signin.confirm_email(session, token, now(request), remote_addr(request))

    user = await run_in_threadpool(confirm)
    if user is None:
        return _render(request, "account/confirm_email.html", {"token": "", "valid": False}, 400)
    await run_in_threadpool(start_session, request, user)
    flash(request, gettext("Your email address is confirmed. Next, link your account."))
    return redirect("/my/link")


# --- Forgotten password ------------------------------------------------------------------


def forgot_password_page(request: Request) -> Response:
    return _render(request, "account/forgot_password.html", {"form": FormState(), "sent": False})


async def forgot_password(request: Request) -> Response:
    form = FormState({"email": str((await request.form()).get("email", ""))[:254]})
    try:
        users.validate_email(form.get("email"))
    except InvalidInput as exc:
        form.errors["email"] = error_text(exc)
        return _render(request, "account/forgot_password.html", {"form": form, "sent": False}, 400)

    def find() -> tuple[int | None, int | None]:
        with db(request) as session:
            asked = signin.ask_reset(session, form.get("email"), now(request), remote_addr(request))
            return asked.user_id, asked.wait_seconds

    user_id, wait = await run_in_threadpool(find)
    if wait is not None:
        form.errors["email"] = too_many(wait)
        return _render(request, "account/forgot_password.html", {"form": form, "sent": False}, 429)
    # Only an address with a sign-in gets an email, so it is queued and sent after the
    # answer: known and unknown addresses get the same page after the same work. (The page
    # says an email goes out if the address has a sign-in; it cannot say more without
    # telling who has one.)
    response = _render(request, "account/forgot_password.html", {"form": form, "sent": True})
    if user_id is not None:
        response.background = BackgroundTask(_send, request, user_id, "reset_password")
    return response


def reset_password_page(request: Request) -> Response:
    token = request.query_params.get("token", "")
    with db(request) as session:
        valid = signin.token_valid(session, token, users.RESET_PASSWORD, now(request))
    return _render(
        request,
        "account/reset_password.html",
        {"token": token, "valid": valid, "form": FormState()},
        200 if valid else 400,
    )


async def reset_password(request: Request) -> Response:
    data = await request.form()
    token = str(data.get("token", ""))
    password = str(data.get("password", ""))[:2048]
    form = FormState()
    if password != str(data.get("password_again", ""))[:2048]:
        form.errors["password_again"] = gettext("The two passwords are not the same. Type the same one twice.")
        return _render(request, "account/reset_password.html", {"token": token, "valid": True, "form": form}, 400)

    def reset() -> User | InvalidInput:
        try:
            with db(request) as session:
                # Every session of the sign-in ends (users.reset_password); this browser
                # gets a new one.
                user = signin.reset_password(session, token, password, now(request), remote_addr(request))
                start_session(request, user, session)
                return user
        except InvalidInput as exc:
            return exc

    result = await run_in_threadpool(reset)
    if isinstance(result, InvalidInput):
        valid = result.field != "token"
        form.errors[result.field or "password"] = error_text(result)
        return _render(request, "account/reset_password.html", {"token": token, "valid": valid, "form": form}, 400)
    flash(request, gettext("Your new password is set, and you are signed in."))
    return redirect("/my")


# --- Linking an account ------------------------------------------------------------------

LINK_FIELDS = ("account_number", "service_zip", "amount_due")


def link_page(request: Request) -> Response:
    with db(request) as session:
        require_customer(request, session)
        return _render(request, "customer/link.html", {"form": FormState(), "flash": pop_flash(request)})


async def link(request: Request) -> Response:
    data = await request.form()
    form = FormState({k: str(data.get(k, ""))[:40] for k in LINK_FIELDS})

    def attempt() -> str | None:
        with db(request) as session:
            user = require_customer(request, session)
            try:
                account = customers.link_account(
                    session,
                    user,
                    form.get("account_number"),
                    form.get("service_zip"),
                    form.get("amount_due"),
                    now(request),
                    remote_addr(request),
                )
            except InvalidInput as exc:
                form.errors[exc.field or "account_number"] = error_text(exc)
                return None
            if account is None:
                # One answer for every refusal: facts that did not match, or any limit reached.
                form.errors["account_number"] = gettext(users.LINK_FAILED)
                return None
            return account.number

    number = await run_in_threadpool(attempt)
    if number is None:
        return _render(request, "customer/link.html", {"form": form, "flash": None}, 400)
    flash(request, gettext("Account %(number)s is now linked to your sign-in.", number=number))
    return redirect(f"/my/accounts/{number}")


# --- Language ----------------------------------------------------------------------------


async def set_language(request: Request) -> Response:
    """Switch the pages' language; remembered for the sign-in, or in a cookie for a visitor."""
    data = await request.form()
    code = i18n.supported(str(data.get("lang", ""))) or i18n.DEFAULT
    target = safe_next(str(data.get("next", "")), "/")

    def remember() -> None:
        with db(request) as session:
            signin.set_language(session, signed_in_user(request, session), code)

    await run_in_threadpool(remember)
    request.session["lang"] = code
    response = redirect(target)
    response.set_cookie(
        i18n.COOKIE,
        code,
        max_age=400 * 86400,
        httponly=True,
        samesite="lax",
        secure=not request.app.state.settings.development,
    )
    return response
