"""The cashier's pages: my drawer (open, take payments, close with a count), supervisors'
sign-off of closed drawers, the receipt (page and PDF), and the daily money reports."""

from __future__ import annotations

from datetime import date

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from .. import i18n, jobs
from ..billing_core import drawers
from ..billing_core.errors import FieldErrors, NotFound
from ..services import counter, money_reports
from ..web import FormState, db, flash, now, pop_flash, redirect, require_staff, today

LINES = 3


def _render(request: Request, template: str, context: dict, status: int = 200) -> Response:
    return request.app.state.templates.TemplateResponse(request, template, context, status_code=status)


def _errors(form: FormState, exc: FieldErrors) -> None:
    for name, problem in exc.errors.items():
        form.errors[name] = problem.message


def _page(
    request: Request,
    page: counter.DrawerPage,
    open_form: FormState | None = None,
    pay_form: FormState | None = None,
    close_form: FormState | None = None,
    sign_form: FormState | None = None,
    failed_drawer: int | None = None,
) -> Response:
    bad = any(f is not None and f.errors for f in (open_form, pay_form, close_form, sign_form))
    return _render(
        request,
        "staff/cashier/drawers.html",
        {
            **vars(page),
            "open_form": open_form or FormState({"float": "150.00"}),
            "pay_form": pay_form or FormState({"tender": "cash"}),
            "close_form": close_form or FormState(),
            "sign_form": sign_form or FormState(),
            "failed_drawer": failed_drawer,
            "lines": range(1, LINES + 1),
            "bills": drawers.BILLS,
            "coins": drawers.COINS,
            "label": drawers.denomination_label,
            "tender_labels": drawers.TENDER_LABELS,
            "flash": pop_flash(request),
        },
        400 if bad else 200,
    )


def drawer_view(request: Request) -> Response:
    with db(request) as session:
        user = require_staff(request, session)
        return _page(request, counter.drawer_page(session, user))


async def open_drawer(request: Request) -> Response:
    data = await request.form()
    form = FormState({k: str(data.get(k, "")).strip()[:100] for k in ("name", "float")})

    def act() -> Response:
        with db(request) as session:
            user = require_staff(request, session)
            try:
                drawer = counter.open_drawer(
                    session, user, form.get("name"), form.get("float"), today(request), now(request)
                )
            except FieldErrors as exc:
                _errors(form, exc)
                return _page(request, counter.drawer_page(session, user), open_form=form)
            flash(request, f"Drawer {drawer.name} is open with a float of ${drawer.float_cents / 100:,.2f}.")
            return redirect("/staff/drawers")

    return await run_in_threadpool(act)


PAY_FIELDS = ("tender", "tendered", "check_number", "check_bank", "approval_code", "payer_name")


async def take_payment(request: Request) -> Response:
    data = await request.form()
    names = [*PAY_FIELDS, *(f"account-{i}" for i in range(1, LINES + 1)), *(f"amount-{i}" for i in range(1, LINES + 1))]
    form = FormState({k: str(data.get(k, "")).strip()[:200] for k in names})

    def act() -> tuple[Response, int | None]:
        with db(request) as session:
            user = require_staff(request, session)
            lines = [counter.Line(form.get(f"account-{i}"), form.get(f"amount-{i}")) for i in range(1, LINES + 1)]
            tender = counter.Tender(
                form.get("tender"),
                tendered=form.get("tendered"),
                check_number=form.get("check_number"),
                check_bank=form.get("check_bank"),
                approval_code=form.get("approval_code"),
            )
            try:
                receipt = counter.take_payment(session, user, lines, tender, now(request), form.get("payer_name"))
            except FieldErrors as exc:
                _errors(form, exc)
                return _page(request, counter.drawer_page(session, user), pay_form=form), None
            change = f" Change due: ${receipt.change_cents / 100:,.2f}." if receipt.change_cents else ""
            flash(request, f"Receipt {receipt.number}: ${receipt.total_cents / 100:,.2f} taken.{change}")
            return redirect(f"/staff/drawers/receipts/{receipt.number}"), (receipt.id if receipt.email else None)

    response, emailed = await run_in_threadpool(act)
    if emailed is not None:
        await run_in_threadpool(
            jobs.defer,
            request.app.state.settings,
            counter.RECEIPT_EMAIL,
            request.app.state.sessions,
            receipt_id=emailed,
        )
    return response


async def close_drawer(request: Request) -> Response:
    data = await request.form()
    form = FormState({k: str(v).strip()[:200] for k, v in data.items() if k != "csrf_token"})
    drawer_id = int(request.path_params["drawer"])

    def act() -> Response:
        with db(request) as session:
            user = require_staff(request, session)
            checks = [(form.get(f"check-number-{i}"), form.get(f"check-amount-{i}")) for i in range(1, 21)]
            try:
                diff = counter.close_drawer(
                    session,
                    user,
                    drawer_id,
                    form.values,
                    checks,
                    form.get("card_total"),
                    form.get("reason"),
                    now(request),
                )
            except FieldErrors as exc:
                _errors(form, exc)
                return _page(request, counter.drawer_page(session, user), close_form=form)
            total = sum(diff.values())
            word = "balanced" if not any(diff.values()) else ("over" if total > 0 else "short")
            flash(request, f"Drawer closed ({word}); it waits for a supervisor's sign-off.")
            return redirect("/staff/drawers")

    return await run_in_threadpool(act)


async def sign_off(request: Request) -> Response:
    data = await request.form()
    form = FormState({"note": str(data.get("note", "")).strip()[:2000]})
    drawer_id = int(request.path_params["drawer"])

    def act() -> Response:
        with db(request) as session:
            user = require_staff(request, session)
            try:
                drawer = counter.sign_off(session, user, drawer_id, form.get("note"), today(request), now(request))
            except FieldErrors as exc:
                _errors(form, exc)
                return _page(request, counter.drawer_page(session, user), sign_form=form, failed_drawer=drawer_id)
            flash(request, f"Drawer {drawer.name} is signed off.")
            return redirect("/staff/drawers")

    return await run_in_threadpool(act)


def lookup(request: Request) -> Response:
    query = request.query_params.get("q", "").strip()[:200]
    with db(request) as session:
        user = require_staff(request, session)
        results = counter.lookup(session, user, query)
        template = "staff/cashier/_lookup.html" if request.headers.get("HX-Request") else "staff/cashier/lookup.html"
        response = _render(request, template, {"query": query, "results": results})
        response.headers["Vary"] = "HX-Request"
        return response


def _receipt_html(request: Request, view: counter.ReceiptView, printable: bool) -> str:
    with i18n.use(view.receipt.language):
        return request.app.state.templates.env.get_template("counter_receipt_document.html").render(
            view=view,
            agency_name=request.app.state.settings.agency_name,
            agency_phone=request.app.state.settings.agency_phone,
            printable=printable,
        )


def receipt_view(request: Request) -> Response:
    with db(request) as session:
        user = require_staff(request, session)
        view = counter.staff_receipt(session, user, request.path_params["number"])
        return _render(
            request,
            "staff/cashier/receipt.html",
            {"view": view, "document": _receipt_html(request, view, False), "flash": pop_flash(request)},
        )


async def receipt_pdf(request: Request) -> Response:
    from .customer import pdf_response

    def build() -> tuple[str, str]:
        with db(request) as session:
            user = require_staff(request, session)
            view = counter.staff_receipt(session, user, request.path_params["number"])
            return _receipt_html(request, view, True), f"receipt-{view.receipt.number}.pdf"

    return await pdf_response(request, *await run_in_threadpool(build))


# --- Reports -----------------------------------------------------------------------------


def _day(request: Request) -> date:
    text = request.query_params.get("on", "")
    try:
        return date.fromisoformat(text) if text else today(request)
    except ValueError:
        raise NotFound(f"date {text}") from None


def _reports(request: Request) -> tuple[money_reports.DepositReport, money_reports.RemittanceReport]:
    day = _day(request)
    with db(request) as session:
        user = require_staff(request, session)
        return money_reports.deposit_report(session, user, day), money_reports.remittance_report(session, user, day)


def reports(request: Request) -> Response:
    deposit, remittance = _reports(request)
    return _render(
        request, "staff/cashier/reports.html", {"deposit": deposit, "remittance": remittance, "printable": False}
    )


def report_csv(request: Request) -> Response:
    deposit, remittance = _reports(request)
    which = request.path_params["which"]
    if which == "deposit":
        body = money_reports.deposit_csv(deposit)
    elif which == "remittance":
        body = money_reports.remittance_csv(remittance)
    else:
        raise NotFound(which)
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{which}-{deposit.day.isoformat()}.csv"'},
    )


async def reports_pdf(request: Request) -> Response:
    from .customer import pdf_response

    def build() -> tuple[str, str]:
        deposit, remittance = _reports(request)
        html = request.app.state.templates.env.get_template("staff/cashier/reports_document.html").render(
            deposit=deposit, remittance=remittance, agency_name=request.app.state.settings.agency_name
        )
        return html, f"money-{deposit.day.isoformat()}.pdf"

    return await pdf_response(request, *await run_in_threadpool(build))
