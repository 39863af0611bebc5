"""The customer's profile page."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from .. import i18n
from ..billing_core import accounts, audit, profile, user_sessions
from ..i18n import gettext
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


def _form(user, linked) -> FormState:  # type: ignore[no-untyped-def]
    values = {
        "display_name": user.display_name or (linked[0].customer.name if linked else ""),
        "phone": profile.shown_phone(user, linked),
        "language": user.language,
        "notify_receipts": "on" if user.notify_receipts else "",
        "notify_updates": "on" if user.notify_updates else "",
    }
    for key, held in profile.contact_groups(linked):
        values[f"email-{key}"] = held[0].customer.email or ""
    return FormState(values)


SIGN_OUT_OTHERS = "sign_out_others"


def _context(request: Request, session, user, linked, form: FormState, flash_text: str | None) -> dict:  # type: ignore[no-untyped-def]
    return {
        "form": form,
        "user": user,
        "groups": profile.contact_groups(linked),
        "flash": flash_text,
        # Sessions of this sign-in still open in other browsers (this one not counted).
        "other_sessions": max(0, user_sessions.open_sessions(session, user, now(request)) - 1),
    }


def profile_page(request: Request) -> Response:
    with db(request) as session:
        user = require_customer(request, session)
        linked = accounts.accounts_for_user(session, user)
        return render(
            request,
            "customer/profile.html",
            _context(request, session, user, linked, _form(user, linked), pop_flash(request)),
        )


async def profile_save(request: Request) -> Response:
    data = await request.form()
    if data.get("action") == SIGN_OUT_OTHERS:
        return await run_in_threadpool(_sign_out_others, request)
    values = {k: str(v)[:300] for k, v in data.items() if k not in ("csrf_token", "action")}

    def save() -> Response:
        with db(request) as session:
            user = require_customer(request, session)
            linked = accounts.accounts_for_user(session, user)
            try:
                change = profile.check(values, linked, tuple(i18n.LANGUAGES), user)
            except profile.ProfileErrors as exc:
                form = FormState(values)
                form.errors.update({k: error_text(e) for k, e in exc.errors.items()})
                return render(
                    request, "customer/profile.html", _context(request, session, user, linked, form, None), 400
                )
            profile.apply(session, user, linked, change, remote_addr(request))
            request.session["lang"] = change.language
            with i18n.use(change.language):
                flash(request, gettext("Your profile is saved."))
        return redirect("/my/profile")

    return await run_in_threadpool(save)


def _sign_out_others(request: Request) -> Response:
    """End every session of this sign-in but the one in this browser."""
    with db(request) as session:
        user = require_customer(request, session)
        ended = user_sessions.end_all(session, user, now(request), SIGN_OUT_OTHERS, keep=current_session_id(request))
        audit.record(
            session,
            "user.sign_out_others",
            actor=user,
            entity_type="user",
            entity_id=user.id,
            after={"sessions_ended": ended},
            remote_addr=remote_addr(request),
        )
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
