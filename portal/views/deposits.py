"""The staff's deposit and refund pages: the account page's Deposits and Refunds panels
(a fragment for htmx, a page otherwise), the refunds list with the check register export,
and one refund (approve, reject, pay). Each route calls one service and renders."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from ..billing_core import deposits as deposit_rules
from ..billing_core import money_policy
from ..billing_core.errors import FieldErrors
from ..billing_core.status import DepositStatus, RefundStatus
from ..services import deposits as deposit_service
from ..services import refunds as refund_service
from ..web import FormState, PageNotFound, db, error_text, flash, now, pop_flash, redirect, require_staff, today


def _policy(request: Request) -> money_policy.MoneyPolicy:
    return money_policy.load(request.app.state.settings.money_policy_file)


def _render(request: Request, template: str, context: dict, status: int = 200) -> Response:
    response = request.app.state.templates.TemplateResponse(request, template, context, status_code=status)
    response.headers["Vary"] = "HX-Request"
    return response


def _panel_or_page(request: Request, name: str, context: dict, status: int = 200) -> Response:
    fragment = bool(request.headers.get("HX-Request"))
    template = f"staff/deposits/{name}.html" if fragment else f"staff/deposits/{name}_page.html"
    return _render(request, template, {**context, "flash": pop_flash(request)}, status)


# --- Deposits ------------------------------------------------------------------------------


def _deposit_context(panel: deposit_service.DepositPanel, form: FormState, cancel: FormState) -> dict:
    return {
        "panel": panel,
        "form": form,
        "cancel_form": cancel,
        "reasons": deposit_rules.REASON_LABELS,
        "DepositStatus": DepositStatus,
    }


def deposits_panel(request: Request) -> Response:
    with db(request) as session:
        user = require_staff(request, session)
        panel = deposit_service.panel(session, _policy(request), user, request.path_params["number"], today(request))
        form = FormState({"reason": (panel.suggestion.reasons or ["other"])[0]})
        return _panel_or_page(request, "deposits", _deposit_context(panel, form, FormState()))


async def deposit_bill(request: Request) -> Response:
    data = await request.form()
    form = FormState({k: str(data.get(k, ""))[:1000] for k in ("amount", "reason", "note")})
    number = request.path_params["number"]

    def run() -> Response:
        with db(request) as session:
            user = require_staff(request, session)
        try:
            deposit_id = deposit_service.bill(
                request.app.state.sessions,
                _policy(request),
                user,
                number,
                amount=form.get("amount"),
                reason=form.get("reason"),
                note=form.get("note"),
                on=today(request),
                now=now(request),
            )
        except FieldErrors as exc:
            form.errors.update({k: error_text(e) for k, e in exc.errors.items()})
            with db(request) as session:
                panel = deposit_service.panel(session, _policy(request), user, number, today(request))
                return _panel_or_page(request, "deposits", _deposit_context(panel, form, FormState()), 400)
        flash(request, f"Deposit {deposit_id} billed.")
        return redirect(f"/staff/accounts/{number}/deposits")

    return await run_in_threadpool(run)


async def deposit_cancel(request: Request) -> Response:
    data = await request.form()
    reason = str(data.get("cancel_reason", ""))[:300]
    number = request.path_params["number"]
    try:
        deposit_id = int(request.path_params["deposit"])
    except ValueError:
        raise PageNotFound() from None

    def run() -> Response:
        with db(request) as session:
            user = require_staff(request, session)
        try:
            deposit_service.cancel(request.app.state.sessions, user, deposit_id, reason, today(request), now(request))
        except FieldErrors as exc:
            cancel = FormState({"cancel_reason": reason, "deposit": str(deposit_id)})
            cancel.errors["cancel_reason"] = error_text(next(iter(exc.errors.values())))
            with db(request) as session:
                panel = deposit_service.panel(session, _policy(request), user, number, today(request))
                return _panel_or_page(request, "deposits", _deposit_context(panel, FormState(), cancel), 400)
        flash(request, f"Deposit {deposit_id} cancelled.")
        return redirect(f"/staff/accounts/{number}/deposits")

    return await run_in_threadpool(run)


# --- Refunds -------------------------------------------------------------------------------


def _refund_context(listing: refund_service.RefundList, number: str, form: FormState) -> dict:
    return {"listing": listing, "number": number, "form": form, "RefundStatus": RefundStatus}


def refunds_panel(request: Request) -> Response:
    number = request.path_params["number"]
    with db(request) as session:
        user = require_staff(request, session)
        listing = refund_service.listing(session, user, number)
        form = FormState({"method": "check", "reason": request.query_params.get("reason", "")[:200]})
        form.values["amount"] = request.query_params.get("amount", "")[:20]
        return _panel_or_page(request, "refunds", _refund_context(listing, number, form))


async def refund_request(request: Request) -> Response:
    data = await request.form()
    form = FormState({k: str(data.get(k, ""))[:300] for k in ("amount", "method", "reason")})
    number = request.path_params["number"]

    def run() -> Response:
        with db(request) as session:
            user = require_staff(request, session)
        try:
            refund_id = refund_service.request(
                request.app.state.sessions,
                user,
                number,
                amount=form.get("amount"),
                method=form.get("method"),
                reason=form.get("reason"),
                now=now(request),
            )
        except FieldErrors as exc:
            form.errors.update({k: error_text(e) for k, e in exc.errors.items()})
            with db(request) as session:
                listing = refund_service.listing(session, user, number)
                return _panel_or_page(request, "refunds", _refund_context(listing, number, form), 400)
        flash(request, f"Refund {refund_id} requested; it waits for someone else's approval.")
        return redirect(f"/staff/refunds/{refund_id}")

    return await run_in_threadpool(run)


def refund_list(request: Request) -> Response:
    with db(request) as session:
        user = require_staff(request, session)
        listing = refund_service.listing(session, user)
        return _render(request, "staff/deposits/refund_list.html", {"listing": listing, "flash": pop_flash(request)})


async def refund_export(request: Request) -> Response:
    def run() -> Response:
        with db(request) as session:
            user = require_staff(request, session)
        text, ids = refund_service.export_checks(request.app.state.sessions, user, today(request), now(request))
        name = f"check-register-{now(request).strftime('%Y%m%d-%H%M%S')}.csv"
        return Response(
            text,
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"', "X-Refunds": str(len(ids))},
        )

    return await run_in_threadpool(run)


def _refund_id(request: Request) -> int:
    try:
        return int(request.path_params["refund"])
    except ValueError:
        raise PageNotFound() from None


def refund_view(request: Request, form: FormState | None = None, status: int = 200) -> Response:
    with db(request) as session:
        user = require_staff(request, session)
        page = refund_service.page(session, user, _refund_id(request))
        return _render(
            request,
            "staff/deposits/refund.html",
            {"page": page, "form": form or FormState(), "RefundStatus": RefundStatus, "flash": pop_flash(request)},
            status,
        )


async def refund_action(request: Request) -> Response:
    data = await request.form()
    action = str(data.get("action", ""))
    note = str(data.get("note", ""))[:1000]
    refund_id = _refund_id(request)

    def run() -> Response:
        with db(request) as session:
            user = require_staff(request, session)
        factory = request.app.state.sessions
        try:
            if action == "approve":
                refund_service.approve(factory, user, refund_id, today(request), now(request))
                flash(request, f"Refund {refund_id} approved.")
            elif action == "reject":
                refund_service.reject(factory, user, refund_id, note, now(request))
                flash(request, f"Refund {refund_id} rejected.")
            elif action == "pay":
                gateway = request.app.state.gateway
                if gateway is None:
                    raise FieldErrors.one("pay", "The payment processor is not set up: card refunds cannot be paid.")
                paid = refund_service.pay_card(factory, gateway, user, refund_id, today(request), now(request))
                flash(
                    request,
                    f"Refund {refund_id} paid to the card."
                    if paid.ok
                    else f"The processor refused refund {refund_id}: {paid.message} The credit is back on the account.",
                )
            else:
                raise FieldErrors.one("decision", "Choose approve, reject or pay.")
        except FieldErrors as exc:
            form = FormState({"note": note})
            form.errors.update({k: error_text(e) for k, e in exc.errors.items()})
            return refund_view(request, form, 400)
        return redirect(f"/staff/refunds/{refund_id}")

    return await run_in_threadpool(run)
