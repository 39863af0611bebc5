"""A payment plan the customer proposes for one account, and what staff decided
(``services/arrangements.py``)."""

from __future__ import annotations

from datetime import timedelta

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from ..billing_core.arrangements import Proposal
from ..billing_core.errors import FieldErrors, InvalidInput
from ..billing_core.status import ArrangementStatus
from ..i18n import gettext
from ..services import arrangements
from ..web import FormState, PageNotFound, db, error_text, flash, now, pop_flash, redirect, remote_addr, today
from .payments import my_account, render

FIELDS = ("installments", "down_payment", "first_due", "reason", "preview")


def _context(request: Request, page: arrangements.PlanPage, form: FormState, proposal: Proposal | None = None) -> dict:
    return {
        **vars(page),
        "form": form,
        "proposal": proposal,
        "flash": pop_flash(request),
        "ArrangementStatus": ArrangementStatus,
    }


def arrangement_page(request: Request) -> Response:
    with db(request) as session:
        _user, account = my_account(request, session)
        first_due = today(request) + timedelta(days=14)
        form = FormState({"installments": "6", "down_payment": "", "first_due": first_due.isoformat()})
        page = arrangements.plan_page(session, account, today(request))
        return render(request, "customer/arrangement.html", _context(request, page, form))


async def arrangement_submit(request: Request) -> Response:
    """Check the plan; with "preview", show its payments without sending it."""
    data = await request.form()
    form = FormState({k: str(data.get(k, ""))[:1000] for k in FIELDS})

    def submit() -> Response:
        with db(request) as session:
            user, account = my_account(request, session)
            preview = bool(form.get("preview"))
            try:
                proposal = arrangements.propose(
                    session, account, user, form.values, today(request), now(request), remote_addr(request), not preview
                )
            except FieldErrors as exc:
                form.errors.update({k: error_text(e) for k, e in exc.errors.items()})
                page = arrangements.plan_page(session, account, today(request))
                return render(request, "customer/arrangement.html", _context(request, page, form), 400)
            if preview:
                page = arrangements.plan_page(session, account, today(request))
                return render(request, "customer/arrangement.html", _context(request, page, form, proposal))
            flash(request, gettext("We sent your payment plan to our staff. We will email you their answer."))
            return redirect(f"/my/accounts/{account.number}/arrangement")

    return await run_in_threadpool(submit)


async def arrangement_withdraw(request: Request) -> Response:
    def withdraw() -> str:
        with db(request) as session:
            user, account = my_account(request, session)
            try:
                rid = int(request.path_params["request"])
            except ValueError:
                raise PageNotFound() from None
            try:
                arrangements.withdraw(session, account, user, rid, now(request))
            except InvalidInput as exc:
                return error_text(exc)
            return gettext("You withdrew the request.")

    flash(request, await run_in_threadpool(withdraw))
    return redirect(f"/my/accounts/{request.path_params['number']}/arrangement")
