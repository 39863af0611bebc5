"""The customer's profile page (``services/profile.py``)."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from .. import i18n
from ..billing_core.errors import FieldErrors
from ..i18n import gettext
from ..services import profile
from ..services.profile import SIGN_OUT_OTHERS
from ..web import (
    FormState,
    current_session_id,
    db,
    error_text,
    flash,
    now,
    pop_flash,
    redirect,
    remote_addr,
    require_customer,
)
from .payments import render


def _context(page: profile.ProfilePage, form: FormState, flash_text: str | None) -> dict:
    return {
        "form": form,
        "user": page.user,
        "groups": page.groups,
        "flash": flash_text,
        "other_sessions": page.other_sessions,
    }


def profile_page(request: Request) -> Response:
    with db(request) as session:
        user = require_customer(request, session)
        page = profile.page(session, user, now(request))
        return render(request, "customer/profile.html", _context(page, FormState(page.defaults), pop_flash(request)))


async def profile_save(request: Request) -> Response:
    data = await request.form()
    if data.get("action") == SIGN_OUT_OTHERS:
        return await run_in_threadpool(_sign_out_others, request)
    values = {k: str(v)[:300] for k, v in data.items() if k not in ("csrf_token", "action")}

    def save() -> Response:
        with db(request) as session:
            user = require_customer(request, session)
            try:
                change = profile.save(session, user, values, tuple(i18n.LANGUAGES), remote_addr(request))
            except FieldErrors as exc:
                form = FormState(values)
                form.errors.update({k: error_text(e) for k, e in exc.errors.items()})
                page = profile.page(session, user, now(request))
                return render(request, "customer/profile.html", _context(page, form, None), 400)
            request.session["lang"] = change.language
            with i18n.use(change.language):
                flash(request, gettext("Your profile is saved."))
        return redirect("/my/profile")

    return await run_in_threadpool(save)


def _sign_out_others(request: Request) -> Response:
    """End every session of this sign-in but the one in this browser."""
    with db(request) as session:
        user = require_customer(request, session)
        ended = profile.sign_out_others(session, user, now(request), current_session_id(request), remote_addr(request))
        flash(
            request,
            i18n.ngettext(
                "You are signed out on %(num)s other device. This one stays signed in.",
                "You are signed out on %(num)s other devices. This one stays signed in.",
                ended,
            )
            if ended
            else gettext("You were not signed in anywhere else. This device stays signed in."),
        )
    return redirect("/my/profile")
