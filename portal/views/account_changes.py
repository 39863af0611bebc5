"""Maintaining an account (``services/account_changes.py``): one page per change, reached from
the staff account page, and the account's history tab. Staff pages: English."""

from __future__ import annotations

from datetime import timedelta

from starlette.requests import Request
from starlette.responses import Response

from ..billing_core.account_changes import shown
from ..billing_core.errors import FieldErrors
from ..billing_core.models import Service
from ..services import account_changes as service
from ..web import FormState, db, flash, redirect, remote_addr, require_staff, today


def _sentence(message: str) -> str:
    return message[:1].upper() + message[1:] + ("" if message.endswith(".") else ".")


def _choices(page: service.ChangePage) -> dict[str, object]:
    """The form's choices as (value, label) pairs."""

    def named(s: Service) -> str:
        carts = f", {shown('options', s.options)}" if s.options else ""
        return f"{s.service_type.capitalize()}: {s.rate_schedule.name}{carts}, since {s.started_on:%m/%d/%Y}"

    sizes = sorted({z for group in page.cart_sizes.values() for z in group}, key=lambda v: (len(v), v))
    return {
        "services_pairs": [(str(s.id), named(s)) for s in page.services],
        "cart_pairs": [(str(s.id), named(s)) for s in page.services if s.service_type == "sanitation"],
        "schedule_pairs": [
            (str(s.id), f"{kind.capitalize()}: {s.name}") for kind, group in page.schedules.items() for s in group
        ],
        "class_pairs": [(c, c.replace("_", " ").title()) for c in page.classes],
        "meter_pairs": [(str(m.id), f"{m.serial} ({m.size})") for m in page.meters],
        "size_pairs": [(z, f"{z} gallons") for z in sizes],
        "billed_to": page.earliest - timedelta(days=1) if page.earliest else None,
    }


def _form_page(request: Request, page: service.ChangePage, form: FormState, status: int = 200) -> Response:
    return request.app.state.templates.TemplateResponse(
        request,
        "staff/account_changes/change.html",
        {**vars(page), **_choices(page), "form": form, "kinds": service.KINDS},
        status_code=status,
    )


def change_form(request: Request) -> Response:
    with db(request) as session:
        user = require_staff(request, session)
        page = service.change_page(
            session, user, request.path_params["number"], request.path_params["kind"], today=today(request)
        )
        return _form_page(request, page, FormState(page.values))


async def change_submit(request: Request) -> Response:
    kind = request.path_params["kind"]
    data = await request.form()
    fields = service.KINDS[kind][1] if kind in service.KINDS else ()
    values = {k: str(data.get(k, "")).strip()[:300] for k in fields}
    number = request.path_params["number"]
    with db(request) as session:
        user = require_staff(request, session)
        try:
            done = service.apply_change(
                session, user, number, kind, values, today=today(request), remote_addr=remote_addr(request)
            )
        except FieldErrors as exc:
            form = FormState(values)
            form.errors.update({k: _sentence(e.message) for k, e in exc.errors.items()})
            page = service.change_page(session, user, number, kind, today=today(request))
            return _form_page(request, page, form, 400)
    flash(request, done)
    return redirect(f"/staff/accounts/{number}#services-heading")


def history(request: Request) -> Response:
    try:
        page_number = int(request.query_params.get("page", "1"))
    except ValueError:
        page_number = 1
    with db(request) as session:
        require_staff(request, session)
        page = service.history(session, request.path_params["number"], page_number)
        fragment = bool(request.headers.get("HX-Request"))
        response = request.app.state.templates.TemplateResponse(
            request, "staff/account_changes/history.html", {**vars(page), "fragment": fragment}
        )
        response.headers["Vary"] = "HX-Request"
        return response
