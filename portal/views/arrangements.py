"""A payment plan the customer proposes for one account, and what staff decided."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from ..billing_core import accounts, arrangements
from ..billing_core.errors import InvalidInput
from ..billing_core.models import ArrangementRequest
from ..i18n import gettext
from ..web import FormState, PageNotFound, db, error_text, flash, now, pop_flash, redirect, remote_addr, today
from .payments import my_account, render

FIELDS = ("installments", "down_payment", "first_due", "reason", "preview")


def _context(request: Request, session, account, form: FormState, proposal=None) -> dict:  # type: ignore[no-untyped-def]
    summary = accounts.summarise(session, account, today(request))
    return {
        "account": account,
        "summary": summary,
        "form": form,
        "proposal": proposal,
        "policy": arrangements.POLICY,
        "current": arrangements.open_for(session, account.id),
        "history": arrangements.for_account(session, account.id),
        "flash": pop_flash(request),
    }


def arrangement_page(request: Request) -> Response:
    with db(request) as session:
        _user, account = my_account(request, session)
        first_due = today(request) + timedelta(days=14)
        form = FormState({"installments": "6", "down_payment": "", "first_due": first_due.isoformat()})
        return render(request, "customer/arrangement.html", _context(request, session, account, form))


async def arrangement_submit(request: Request) -> Response:
    """Check the plan; with "preview", show its payments without sending it."""
    data = await request.form()
    form = FormState({k: str(data.get(k, ""))[:1000] for k in FIELDS})

    def submit() -> Response:
        with db(request) as session:
            user, account = my_account(request, session)
            summary = accounts.summarise(session, account, today(request))
            try:
                proposal = arrangements.check(
                    summary.balance_cents,
                    form.get("installments"),
                    form.get("down_payment"),
                    form.get("first_due"),
                    form.get("reason"),
                    today(request),
                )
                if form.get("preview"):
                    return render(
                        request, "customer/arrangement.html", _context(request, session, account, form, proposal)
                    )
                arrangements.submit(session, account, user, proposal, now(request), remote_addr(request))
            except arrangements.ProposalErrors as exc:
                form.errors.update({k: error_text(e) for k, e in exc.errors.items()})
            except InvalidInput as exc:
                form.errors[exc.field or "installments"] = error_text(exc)
            if form.errors:
                return render(request, "customer/arrangement.html", _context(request, session, account, form), 400)
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
            item = session.scalar(
                select(ArrangementRequest).where(
                    ArrangementRequest.id == rid, ArrangementRequest.account_id == account.id
                )
            )
            if item is None:
                raise PageNotFound()
            try:
                arrangements.withdraw(session, item, user, now(request))
            except InvalidInput as exc:
                return error_text(exc)
            return gettext("You withdrew the request.")

    flash(request, await run_in_threadpool(withdraw))
    return redirect(f"/my/accounts/{request.path_params['number']}/arrangement")
