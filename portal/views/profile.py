"""The customer's profile page."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from .. import i18n
from ..billing_core import accounts, profile
from ..i18n import gettext
from ..web import FormState, db, error_text, flash, pop_flash, redirect, remote_addr, require_customer
from .payments import render


def _form(user, linked) -> FormState:  # type: ignore[no-untyped-def]
    values = {
        "display_name": user.display_name or (linked[0].customer.name if linked else ""),
        "phone": user.phone or "",
        "language": user.language,
        "notify_receipts": "on" if user.notify_receipts else "",
        "notify_updates": "on" if user.notify_updates else "",
    }
    for key, held in profile.contact_groups(linked):
        values[f"email-{key}"] = held[0].customer.email or ""
        values[f"phone-{key}"] = held[0].customer.phone or ""
    return FormState(values)


def profile_page(request: Request) -> Response:
    with db(request) as session:
        user = require_customer(request, session)
        linked = accounts.accounts_for_user(session, user)
        return render(
            request,
            "customer/profile.html",
            {
                "form": _form(user, linked),
                "user": user,
                "groups": profile.contact_groups(linked),
                "flash": pop_flash(request),
            },
        )


async def profile_save(request: Request) -> Response:
    data = await request.form()
    values = {k: str(v)[:300] for k, v in data.items() if k != "csrf_token"}

    def save() -> Response:
        with db(request) as session:
            user = require_customer(request, session)
            linked = accounts.accounts_for_user(session, user)
            try:
                change = profile.check(values, linked, tuple(i18n.LANGUAGES))
            except profile.ProfileErrors as exc:
                form = FormState(values)
                form.errors.update({k: error_text(e) for k, e in exc.errors.items()})
                return render(
                    request,
                    "customer/profile.html",
                    {"form": form, "user": user, "groups": profile.contact_groups(linked), "flash": None},
                    400,
                )
            profile.apply(session, user, linked, change, remote_addr(request))
            request.session["lang"] = change.language
            with i18n.use(change.language):
                flash(request, gettext("Your profile is saved."))
        return redirect("/my/profile")

    return await run_in_threadpool(save)
