"""The ASGI application: routes, middleware, and errors mapped to pages in one place."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import anyio
import anyio.to_thread
from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from . import devstack, jobs, observability
from .adapters.database import make_engine, make_sessionmaker
from .adapters.gateway import PaymentGateway
from .adapters.gateway import from_settings as gateway_from_settings
from .adapters.printer import AsyncPrinter
from .billing_core.errors import NotAllowed, NotFound
from .csrf import CSRFMiddleware
from .i18n import LanguageMiddleware, gettext
from .security_headers import SecurityHeadersMiddleware, content_security_policy
from .settings import Settings
from .templating import make_templates
from .views import account_changes as account_change_views  # issue 16: maint
from .views import (  # issue 15, reports
    account_opening,  # issue 16: open
    adjustments,
    arrangements,
    auth,
    autopay,
    batches,
    billing,
    cashier,
    collection_reports,
    collections,
    collections_policy,
    customer,
    deposits,
    field,
    notices,
    outbox,
    outside,
    payments,
    profile,
    queues,
    rates,
    referrals,
    requests,
    returns,
    signup,
    staff,
    work_orders,  # issue 16: field
)
from .views import approvals as approval_views  # issue 16: approvals
from .views import audit_log as audit_views  # issue 16: admin
from .views import cases as case_views  # issue 16: cases
from .views import disputes as dispute_views
from .views import meters as meter_views  # issue 16: meters
from .views import plans as plan_views
from .views import staff_admin as staff_admin_views  # issue 16: admin
from .views import supervision as supervision_views  # issue 16: approvals
from .web import PageNotFound, SignInRequired, sign_in_url

log = logging.getLogger(__name__)
STATIC = __file__.rsplit("/", 1)[0] + "/static"


def healthz(request: Request) -> Response:
    return PlainTextResponse("ok")


def favicon(request: Request) -> Response:
    """Browsers ask for /favicon.ico whatever the page links; the icon is in /static."""
    from starlette.responses import FileResponse

    return FileResponse(
        STATIC + "/favicon.ico", media_type="image/x-icon", headers={"Cache-Control": "public, max-age=86400"}
    )


ROUTES = [
    Route("/", auth.home),
    Route("/healthz", healthz),
    # issue 17: ops (readiness and Prometheus metrics, portal/observability.py; no sign-in,
    # /metrics only with PORTAL_METRICS_TOKEN's bearer token or from this machine)
    Route("/readyz", observability.readyz, methods=["GET"]),
    Route("/metrics", observability.metrics, methods=["GET"]),
    Route("/favicon.ico", favicon),
    Route("/sign-in", auth.sign_in_page, methods=["GET"]),
    Route("/sign-in", auth.sign_in, methods=["POST"]),
    Route("/sign-out", auth.sign_out, methods=["POST"]),
    Route("/sign-in/outside", outside.start, methods=["GET"]),
    Route("/sign-in/outside/callback", outside.callback, methods=["GET"], name="outside_callback"),
    Route("/sign-up", signup.sign_up_page, methods=["GET"]),
    Route("/sign-up", signup.sign_up, methods=["POST"]),
    Route("/confirm-email", signup.confirm_email_page, methods=["GET"]),
    Route("/confirm-email", signup.confirm_email, methods=["POST"]),
    Route("/forgot-password", signup.forgot_password_page, methods=["GET"]),
    Route("/forgot-password", signup.forgot_password, methods=["POST"]),
    Route("/reset-password", signup.reset_password_page, methods=["GET"]),
    Route("/reset-password", signup.reset_password, methods=["POST"]),
    Route("/language", signup.set_language, methods=["POST"]),
    Route("/my/link", signup.link_page, methods=["GET"]),
    Route("/my/link", signup.link, methods=["POST"]),
    Route("/my", customer.my_accounts),
    Route("/my/accounts/{number}", customer.account_detail),
    Route("/my/accounts/{number}/paperless", customer.paperless, methods=["POST"]),
    Route("/my/accounts/{number}/usage", customer.usage),
    Route("/my/accounts/{number}/pay", payments.pay_page, methods=["GET"]),
    Route("/my/accounts/{number}/pay", payments.pay_start, methods=["POST"]),
    Route("/my/accounts/{number}/pay/{attempt}", payments.pay_method_page, methods=["GET"]),
    Route("/my/accounts/{number}/pay/{attempt}", payments.pay_charge, methods=["POST"]),
    Route("/my/accounts/{number}/payments/{payment}", payments.receipt),
    Route("/my/accounts/{number}/autopay", autopay.autopay_page, methods=["GET"]),
    Route("/my/accounts/{number}/autopay", autopay.autopay_start, methods=["POST"]),
    Route("/my/accounts/{number}/autopay/cancel", autopay.autopay_cancel, methods=["POST"]),
    Route("/my/accounts/{number}/autopay/{attempt}", autopay.autopay_method_page, methods=["GET"]),
    Route("/my/accounts/{number}/autopay/{attempt}", autopay.autopay_confirm, methods=["POST"]),
    Route("/webhooks/stripe", payments.webhook, methods=["POST"]),
    Route("/my/accounts/{number}/arrangement", arrangements.arrangement_page, methods=["GET"]),
    Route("/my/accounts/{number}/arrangement", arrangements.arrangement_submit, methods=["POST"]),
    Route("/my/accounts/{number}/arrangement/{request}/withdraw", arrangements.arrangement_withdraw, methods=["POST"]),
    Route("/my/profile", profile.profile_page, methods=["GET"]),
    Route("/my/profile", profile.profile_save, methods=["POST"]),
    Route("/my/requests", requests.requests_page),
    Route("/my/requests/new/{kind}", requests.new_request_page, methods=["GET"]),
    Route("/my/requests/new/{kind}", requests.new_request, methods=["POST"]),
    Route("/my/requests/{request}", requests.request_detail),
    Route("/my/requests/{request}/cancel", requests.request_cancel, methods=["POST"]),
    Route("/my/accounts/{number}/bills/{bill}", customer.bill_detail),
    Route("/my/accounts/{number}/bills/{bill}/document", customer.bill_document),
    Route("/my/accounts/{number}/bills/{bill}/pdf", customer.bill_pdf),
    Route("/staff", staff.search),
    # issue 16: open (opening accounts, from a start request or from scratch; transfers)
    Route("/staff/accounts/new", account_opening.open_page, methods=["GET"]),
    Route("/staff/accounts/new", account_opening.open_submit, methods=["POST"]),
    Route("/staff/accounts/{number}/opened", account_opening.opened_view, methods=["GET"]),
    Route("/staff/accounts/{number}/welcome.pdf", account_opening.welcome_pdf, methods=["GET"]),
    Route("/staff/accounts/{number}/transfer", account_opening.transfer_page, methods=["GET"]),
    Route("/staff/accounts/{number}/transfer", account_opening.transfer_submit, methods=["POST"]),
    Route("/staff/accounts/{number}/move-balance", account_opening.move_balance, methods=["POST"]),
    Route("/staff/accounts/{number}", staff.account_view),
    Route("/staff/accounts/{number}/stop", staff.stop_service, methods=["POST"]),
    Route("/staff/accounts/{number}/bills/{bill}", staff.bill_view),
    Route("/staff/accounts/{number}/bills/{bill}/void", staff.void_bill, methods=["POST"]),
    Route("/staff/accounts/{number}/bills/{bill}/document", staff.bill_document),
    Route("/staff/accounts/{number}/bills/{bill}/pdf", staff.bill_pdf),
    # Returned payments and cash only (issue 14): the account's payments panel and its actions.
    Route("/staff/accounts/{number}/payments", returns.payments_panel, methods=["GET"]),
    Route("/staff/accounts/{number}/cash-only/lift", returns.lift_cash_only, methods=["POST"]),
    Route("/staff/payments/{payment:int}/return", returns.record_return, methods=["POST"]),
    Route("/staff/payments/{payment:int}/return-letter", returns.return_letter, methods=["GET"]),
    Route("/staff/requests", queues.request_queue),
    Route("/staff/requests/{request}", queues.request_view, methods=["GET"]),
    Route("/staff/requests/{request}", queues.request_action, methods=["POST"]),
    Route("/staff/arrangements", queues.arrangement_queue),
    # Counter payments, cash drawers and the daily money reports (issue 14, counter)
    Route("/staff/drawers", cashier.drawer_view),
    Route("/staff/drawers/open", cashier.open_drawer, methods=["POST"]),
    Route("/staff/drawers/payments", cashier.take_payment, methods=["POST"]),
    Route("/staff/drawers/lookup", cashier.lookup),
    Route("/staff/drawers/receipts/{number}", cashier.receipt_view),
    Route("/staff/drawers/receipts/{number}/pdf", cashier.receipt_pdf),
    Route("/staff/drawers/{drawer:int}/close", cashier.close_drawer, methods=["POST"]),
    Route("/staff/drawers/{drawer:int}/sign-off", cashier.sign_off, methods=["POST"]),
    Route("/staff/reports/money", cashier.reports),
    Route("/staff/reports/money/pdf", cashier.reports_pdf),
    Route("/staff/reports/money/{which}.csv", cashier.report_csv),
    # Deposits and refunds (issue 14 items 7 and 8)
    Route("/staff/accounts/{number}/deposits", deposits.deposits_panel, methods=["GET"]),
    Route("/staff/accounts/{number}/deposits", deposits.deposit_bill, methods=["POST"]),
    Route("/staff/accounts/{number}/deposits/{deposit}/cancel", deposits.deposit_cancel, methods=["POST"]),
    Route("/staff/accounts/{number}/refunds", deposits.refunds_panel, methods=["GET"]),
    Route("/staff/accounts/{number}/refunds", deposits.refund_request, methods=["POST"]),
    Route("/staff/refunds", deposits.refund_list, methods=["GET"]),
    Route("/staff/refunds/export", deposits.refund_export, methods=["POST"]),
    Route("/staff/refunds/{refund}", deposits.refund_view, methods=["GET"]),
    Route("/staff/refunds/{refund}", deposits.refund_action, methods=["POST"]),
    Route("/staff/payments/refunds", payments.refund_queue),
    Route("/staff/payments/refunds/{payment}", payments.refund_reviewed, methods=["POST"]),
    Route("/staff/arrangements/{request}", queues.arrangement_view, methods=["GET"]),
    Route("/staff/arrangements/{request}", queues.arrangement_action, methods=["POST"]),
    Route("/staff/reads", billing.review_queue),
    Route("/staff/reads/{read:int}", billing.review_action, methods=["POST"]),
    Route("/staff/reads/upload", billing.read_upload_page, methods=["GET"]),
    Route("/staff/reads/upload", billing.read_upload, methods=["POST"]),
    Route("/staff/bill-runs", billing.run_list, methods=["GET"]),
    Route("/staff/bill-runs", billing.run_create, methods=["POST"]),
    Route("/staff/bill-runs/{run:int}", billing.run_view, methods=["GET"]),
    Route("/staff/bill-runs/{run:int}", billing.run_action, methods=["POST"]),
    Route("/staff/bill-runs/{run:int}/{kind:str}", billing.print_file_download, methods=["GET"]),
    # issue 16: meters (the inventory: stock list, receiving, one meter's page and its forms)
    Route("/staff/meters", meter_views.stock_list, methods=["GET"]),
    Route("/staff/meters/receive", meter_views.receive_page, methods=["GET"]),
    Route("/staff/meters/receive", meter_views.receive_one, methods=["POST"]),
    Route("/staff/meters/receive/file", meter_views.receive_file, methods=["POST"]),
    Route("/staff/meters/{serial}", meter_views.meter_view, methods=["GET"]),
    Route("/staff/meters/{serial}", meter_views.meter_action, methods=["POST"]),
    Route("/staff/rates", rates.schedule_list),
    Route("/staff/rates/versions/{version:int}", rates.version_view),
    Route("/staff/rates/calculator", rates.calculator),
    Route("/staff/rates/upload", rates.upload_page, methods=["GET"]),
    Route("/staff/rates/upload", rates.upload, methods=["POST"]),
    # Adjustments, write-offs and the approvals queue (issue 14)
    Route("/staff/accounts/{number}/adjustments", adjustments.adjustments_panel, methods=["GET"]),
    Route("/staff/accounts/{number}/adjustments", adjustments.adjustment_prepare, methods=["POST"]),
    Route("/staff/accounts/{number}/adjustments/leak", adjustments.leak_prepare, methods=["POST"]),
    Route("/staff/accounts/{number}/write-off", adjustments.write_off_panel, methods=["GET"]),
    Route("/staff/accounts/{number}/write-off", adjustments.write_off_prepare, methods=["POST"]),
    # issue 16: approvals (the one approvals queue, the supervisor dashboard)
    Route("/staff/approvals", approval_views.approvals, methods=["GET"]),
    Route("/staff/approvals/{kind}/{id}", approval_views.approval_decide, methods=["POST"]),
    Route("/staff/supervisor", supervision_views.dashboard, methods=["GET"]),
    Route("/staff/supervisor/reassign", supervision_views.reassign, methods=["POST"]),
    # Mail batches and bank/lockbox files (issue 14)
    Route("/staff/payments/batches", batches.batch_list, methods=["GET"]),
    Route("/staff/payments/batches", batches.batch_create, methods=["POST"]),
    Route("/staff/payments/batches/{batch:int}", batches.batch_view, methods=["GET"]),
    Route("/staff/payments/batches/{batch:int}/items", batches.batch_item, methods=["POST"]),
    Route("/staff/payments/batches/{batch:int}/items/{item:int}/remove", batches.batch_item_remove, methods=["POST"]),
    Route("/staff/payments/batches/{batch:int}/post", batches.batch_post, methods=["POST"]),
    Route("/staff/payments/imports", batches.imports_view, methods=["GET"]),
    Route("/staff/payments/imports", batches.import_upload, methods=["POST"]),
    Route("/staff/payments/imports/queue", batches.queue_view, methods=["GET"]),
    Route("/staff/payments/imports/rows/{row:int}", batches.queue_action, methods=["POST"]),
    Route("/staff/payments/imports/{import:int}", batches.import_view, methods=["GET"]),
    Route("/staff/payments/imports/{import:int}/report.csv", batches.import_csv, methods=["GET"]),
    # The collection policy, closures, protections and shutoff orders by hand (issue 15, the gate)
    Route("/staff/collections/policy", collections_policy.policy_view, methods=["GET"]),
    Route("/staff/collections/policy", collections_policy.policy_propose, methods=["POST"]),
    Route("/staff/collections/closures", collections_policy.closures_view, methods=["GET"]),
    Route("/staff/collections/closures", collections_policy.closure_add, methods=["POST"]),
    Route("/staff/collections/closures/{closure:int}/remove", collections_policy.closure_remove, methods=["POST"]),
    Route("/staff/accounts/{number}/protections", collections_policy.protections_panel, methods=["GET"]),
    Route("/staff/accounts/{number}/protections", collections_policy.protection_record, methods=["POST"]),
    Route(
        "/staff/accounts/{number}/protections/{protection:int}/revoke",
        collections_policy.protection_revoke,
        methods=["POST"],
    ),
    Route("/staff/accounts/{number}/shutoff-order", collections_policy.shutoff_order, methods=["POST"]),
    # Issue 15, notices and field orders: the day's notices and batches, the field staff's
    # orders and door-tag route sheet, the account page's Field orders panel.
    Route("/staff/notices", notices.notices_day, methods=["GET"]),
    Route("/staff/notices/batches", notices.print_batch, methods=["POST"]),
    Route("/staff/notices/batches/{batch:int}/pdf", notices.download_batch, methods=["GET"]),
    Route("/staff/notices/{notice:int}/pdf", notices.reprint, methods=["GET"]),
    Route("/staff/field", field.field_list, methods=["GET"]),
    Route("/staff/field/door-tags", field.door_tags, methods=["GET"]),
    Route("/staff/field/orders/{order:int}/done", field.mark_done, methods=["POST"]),
    Route("/staff/field/orders/{order:int}/not-done", field.mark_not_done, methods=["POST"]),
    Route("/staff/accounts/{number}/field-orders", field.orders_panel, methods=["GET"]),
    Route("/staff/accounts/{number}/field-orders/reconnect", field.queue_reconnection, methods=["POST"]),
    Route("/staff/accounts/{number}/field-orders/{order:int}/cancel", field.cancel_order, methods=["POST"]),
    # issue 16: field (work orders: the office's list, assignment, orders by hand, the read
    # review's re-read order)
    Route("/staff/work-orders", work_orders.work_order_list, methods=["GET"]),
    Route("/staff/work-orders/new", work_orders.new_order, methods=["GET"]),
    Route("/staff/work-orders/new", work_orders.create, methods=["POST"]),
    Route("/staff/work-orders/{order:int}/assign", work_orders.assign, methods=["POST"]),
    Route("/staff/work-orders/{order:int}/photo", work_orders.photo, methods=["GET"]),
    Route("/staff/reads/{read:int}/reread-order", work_orders.reread, methods=["POST"]),
    # Payment plans, extensions and disputes (issue 15, items 6 and 7)
    Route("/staff/plans", plan_views.plan_list, methods=["GET"]),
    Route("/staff/accounts/{number}/plans", plan_views.plans_panel, methods=["GET"]),
    Route("/staff/accounts/{number}/plans", plan_views.plan_create, methods=["POST"]),
    Route("/staff/accounts/{number}/plans/{plan}/change", plan_views.plan_change, methods=["POST"]),
    Route("/staff/accounts/{number}/plans/{plan}/cancel", plan_views.plan_cancel, methods=["POST"]),
    Route("/staff/disputes", dispute_views.register, methods=["GET"]),
    Route("/staff/disputes/{dispute}", dispute_views.dispute_decide, methods=["POST"]),
    Route("/staff/accounts/{number}/disputes", dispute_views.disputes_panel, methods=["GET"]),
    Route("/staff/accounts/{number}/disputes", dispute_views.dispute_open, methods=["POST"]),
    Route("/my/accounts/{number}/bills/{bill}/dispute", dispute_views.resident_page, methods=["GET"]),
    Route("/my/accounts/{number}/bills/{bill}/dispute", dispute_views.resident_open, methods=["POST"]),
    # Collection reports and final-account referrals (issue 15, reports)
    Route("/staff/reports/aging", collection_reports.aging, methods=["GET"]),
    Route("/staff/reports/aging.csv", collection_reports.aging_csv, methods=["GET"]),
    Route("/staff/reports/aging.xlsx", collection_reports.aging_xlsx, methods=["GET"]),
    Route("/staff/reports/call-list", collection_reports.calls, methods=["GET"]),
    Route("/staff/reports/call-list.csv", collection_reports.calls_csv, methods=["GET"]),
    Route("/staff/reports/shutoffs", collection_reports.shutoffs, methods=["GET"]),
    Route("/staff/reports/shutoffs.csv", collection_reports.shutoffs_csv, methods=["GET"]),
    Route("/staff/referrals", referrals.referral_list, methods=["GET"]),
    Route("/staff/referrals/export", referrals.export, methods=["POST"]),
    Route("/staff/referrals/exports/{sha}.csv", referrals.export_file, methods=["GET"]),
    Route("/staff/referrals/{referral:int}", referrals.decide, methods=["POST"]),
    Route("/staff/accounts/{number}/referrals", referrals.panel, methods=["GET"]),
    Route("/staff/accounts/{number}/referrals", referrals.prepare, methods=["POST"]),
    Route("/staff/accounts/{number}/referrals/{referral:int}/recoveries", referrals.recover, methods=["POST"]),
    # Delinquency run: the action list, preview and post, holds, the account panel (issue 15, run)
    Route("/staff/collections", collections.action_list, methods=["GET"]),
    Route("/staff/collections/run", collections.run_action, methods=["POST"]),
    Route("/staff/accounts/{number}/collections", collections.collections_panel, methods=["GET"]),
    Route("/staff/accounts/{number}/collections/hold", collections.hold_action, methods=["POST"]),
    # issue 16: maint (maintaining an account, and its history tab)
    Route("/staff/accounts/{number}/change/{kind}", account_change_views.change_form, methods=["GET"]),
    Route("/staff/accounts/{number}/change/{kind}", account_change_views.change_submit, methods=["POST"]),
    Route("/staff/accounts/{number}/history", account_change_views.history, methods=["GET"]),
    # issue 16: admin (staff administration, the invitation link, the audit trail viewer)
    Route("/staff/admin/users", staff_admin_views.users_page, methods=["GET"]),
    Route("/staff/admin/users", staff_admin_views.invite, methods=["POST"]),
    Route("/staff/admin/users/{id:int}", staff_admin_views.user_page, methods=["GET"]),
    Route("/staff/admin/users/{id:int}/role", staff_admin_views.change_role, methods=["POST"]),
    Route("/staff/admin/users/{id:int}/deactivate", staff_admin_views.deactivate, methods=["POST"]),
    Route("/staff/admin/users/{id:int}/activate", staff_admin_views.activate, methods=["POST"]),
    Route("/staff/admin/users/{id:int}/reset", staff_admin_views.send_reset, methods=["POST"]),
    Route("/staff/admin/users/{id:int}/sign-out", staff_admin_views.sign_out_everywhere, methods=["POST"]),
    Route("/staff/admin/users/{id:int}/invite", staff_admin_views.resend_invite, methods=["POST"]),
    Route("/set-password", staff_admin_views.set_password_page, methods=["GET"]),
    Route("/set-password", staff_admin_views.set_password, methods=["POST"]),
    Route("/staff/audit", audit_views.search, methods=["GET"]),
    Route("/staff/audit/export.csv", audit_views.export_csv, methods=["GET"]),
    # issue 16: cases (complaints, inquiries, disputes, high bills, claims), staff and residents
    Route("/staff/cases", case_views.case_list, methods=["GET"]),
    Route("/staff/cases", case_views.case_open, methods=["POST"]),
    Route("/staff/cases/new", case_views.new_case, methods=["GET"]),
    Route("/staff/cases/{case:int}", case_views.case_view, methods=["GET"]),
    Route("/staff/cases/{case:int}/notes", case_views.add_note, methods=["POST"]),
    Route("/staff/cases/{case:int}/attachments", case_views.attach, methods=["POST"]),
    Route("/staff/cases/{case:int}/attachments/{attachment:int}", case_views.attachment, methods=["GET"]),
    Route("/staff/cases/{case:int}/assign", case_views.reassign, methods=["POST"]),
    Route("/staff/cases/{case:int}/status", case_views.change_status, methods=["POST"]),
    Route("/staff/cases/{case:int}/resolve", case_views.resolve, methods=["POST"]),
    Route("/staff/cases/{case:int}/letters/new", case_views.letter_new, methods=["GET"]),
    Route("/staff/cases/{case:int}/letters", case_views.letter_send, methods=["POST"]),
    Route("/staff/cases/{case:int}/letters/{letter:int}/pdf", case_views.letter_pdf, methods=["GET"]),
    Route("/staff/accounts/{number}/cases", case_views.account_panel, methods=["GET"]),
    Route("/my/cases", case_views.my_cases, methods=["GET"]),
    Route("/my/cases", case_views.my_open, methods=["POST"]),
    Route("/my/cases/new", case_views.my_new, methods=["GET"]),
    Route("/my/cases/{case:int}", case_views.my_case, methods=["GET"]),
    Route("/my/cases/{case:int}/messages", case_views.my_message, methods=["POST"]),
    Route("/my/cases/{case:int}/letters/{letter:int}/pdf", case_views.my_letter_pdf, methods=["GET"]),
    Route("/my/cases/{case:int}/attachments/{attachment:int}", case_views.my_attachment, methods=["GET"]),
    Mount("/dev/outbox", routes=outbox.ROUTES),  # 404 unless the demo stand-ins are on (portal/devstack.py)
    Mount("/static", StaticFiles(directory=STATIC), name="static"),
]


def _page(request: Request, status: int, title: str, message: str) -> Response:
    return request.app.state.templates.TemplateResponse(
        request, "error.html", {"title": title, "message": message}, status_code=status
    )


async def _not_found(request: Request, exc: Exception) -> Response:
    return _page(
        request,
        404,
        gettext("Page not found"),
        gettext("We could not find that page. It may have moved, or the link may be wrong."),
    )


async def _forbidden(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, NotAllowed)
    return _page(request, 403, "Not allowed", exc.message)


async def _sign_in_required(request: Request, exc: Exception) -> Response:
    return RedirectResponse(sign_in_url(request), status_code=303)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return await _not_found(request, exc)
    return _page(request, exc.status_code, gettext("Something went wrong"), str(exc.detail))


async def _server_error(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s", request.url.path, exc_info=exc)
    return PlainTextResponse(
        gettext("Sorry, something went wrong on our side. Please try again in a few minutes."), status_code=500
    )


class Portal(Starlette):
    """Starlette with middleware that runs outside its error handler as well: the forwarded
    headers of a configured proxy first, then the security headers, so the 500 page (made
    by ``ServerErrorMiddleware``, the outermost layer Starlette builds) carries them too."""

    def __init__(self, *args, outer_middleware: list[Middleware] | None = None, **kwargs) -> None:  # type: ignore[no-untyped-def]
        self.outer_middleware = list(outer_middleware or [])
        super().__init__(*args, **kwargs)

    def build_middleware_stack(self) -> ASGIApp:
        app = super().build_middleware_stack()
        for cls, args, kwargs in reversed(self.outer_middleware):
            app = cls(app, *args, **kwargs)
        return app


def outer_middleware(settings: Settings) -> list[Middleware]:
    outer = [Middleware(observability.RequestSignals)]  # issue 17: ops (request id, access line, metrics)
    if settings.forwarded_allow_ips:
        # Only a configured proxy's X-Forwarded-For/-Proto count (uvicorn's own handling is
        # off in the Procfile and `portal serve`: it trusts 127.0.0.1 by default).
        outer.append(Middleware(ProxyHeadersMiddleware, trusted_hosts=settings.forwarded_allow_ips))
    outer.append(
        Middleware(SecurityHeadersMiddleware, policy=content_security_policy(settings), hsts=not settings.development)
    )
    return outer


def create_app(
    settings: Settings | None = None,
    engine: Engine | None = None,
    clock: Callable[[], datetime] | None = None,
    gateway: PaymentGateway | None = None,
) -> Starlette:
    settings = settings or Settings.from_env()
    devstack.check(settings)  # demo stand-ins: development on this machine only, else refuse to start
    observability.check(settings)  # issue 17: ops (a guessable metrics token refused)
    observability.setup_logging(settings)  # issue 17: ops (JSON lines, as the CLI and workers)
    engine = engine or make_engine(settings.database_url)
    printer = AsyncPrinter(settings.chromium)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Sync pages run in this loop's thread pool: at most web_threads at once.
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.web_threads
        email_pass = jobs.start_email_pass(settings, app.state.sessions)  # retries when no workers do
        yield
        if email_pass is not None:
            email_pass.cancel()
        await printer.close()

    app = Portal(
        routes=ROUTES,
        lifespan=lifespan,
        outer_middleware=outer_middleware(settings),
        middleware=[
            Middleware(
                SessionMiddleware,
                secret_key=settings.secret_key,
                session_cookie="portal_session",
                max_age=8 * 60 * 60,
                same_site="lax",
                https_only=not settings.development,
            ),
            Middleware(LanguageMiddleware),
            Middleware(CSRFMiddleware, exempt_paths=("/webhooks/",)),
        ],
        exception_handlers={
            SignInRequired: _sign_in_required,
            PageNotFound: _not_found,
            NotAllowed: _forbidden,
            NotFound: _not_found,
            HTTPException: _http_error,
            500: _server_error,
        },
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessions = make_sessionmaker(engine)
    app.state.templates = make_templates()
    app.state.printer = printer
    app.state.gateway = gateway if gateway is not None else gateway_from_settings(settings)
    app.state.oauth = outside.client_for(settings)
    app.state.clock = clock or (lambda: datetime.now(UTC))
    return app
