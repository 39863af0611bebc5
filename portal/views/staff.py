"""The office's pages: account search and the account view."""

from __future__ import annotations

from datetime import date
from decimal import Decimal, InvalidOperation

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from .. import jobs
from ..billing_core import accounts, arrangements, autopay, bill_runs, customers, payments, service_requests
from ..billing_core.errors import InvalidInput
from ..billing_core.models import Account, Bill, Meter, MeterRead, Service, User
from ..web import Forbidden, FormState, PageNotFound, db, now, redirect, remote_addr, require_staff, today

FINAL_BILLERS = bill_runs.APPROVERS + ("specialist",)


def search(request: Request) -> Response:
    query = request.query_params.get("q", "").strip()[:200]
    with db(request) as session:
        require_staff(request, session)
        results = accounts.search(session, query) if query else []
        template = "staff/_results.html" if request.headers.get("HX-Request") else "staff/search.html"
        response = request.app.state.templates.TemplateResponse(request, template, {"query": query, "results": results})
        response.headers["Vary"] = "HX-Request"
        return response


def account_view(request: Request) -> Response:
    with db(request) as session:
        user = require_staff(request, session)
        return _account_page(request, session, user, _account(session, request.path_params["number"]))


def _account(session: Session, number: str) -> Account:
    account = session.scalars(
        select(Account)
        .where(Account.number == number)
        .options(
            selectinload(Account.services).selectinload(Service.meter),
            selectinload(Account.services).selectinload(Service.rate_schedule),
        )
    ).first()
    if account is None:
        raise PageNotFound()
    return account


def _account_page(
    request: Request, session: Session, user: User, account: Account, stop_form: FormState | None = None
) -> Response:
    # One meter may serve several services (water and sewer by volume): list it once.
    meters = list({s.meter.id: s.meter for s in account.services if s.meter is not None}.values())
    last_reads = {
        m.id: session.scalars(
            select(MeterRead).where(MeterRead.meter_id == m.id).order_by(MeterRead.read_on.desc()).limit(3)
        ).all()
        for m in meters
    }
    as_of = today(request)
    return request.app.state.templates.TemplateResponse(
        request,
        "staff/account.html",
        {
            "account": account,
            "summary": accounts.summarise(session, account, as_of),
            "enrollment": autopay.active_enrollment(session, account.id),
            "service_requests": service_requests.for_account(session, account.id),
            "plans": arrangements.for_account(session, account.id),
            "refund_review": payments.to_review(session, account.id),
            "meters": meters,
            "active_meters": _meters(account),
            "last_reads": last_reads,
            "bills": accounts.bills_for_account(session, account.id, limit=24),
            "ledger": accounts.ledger_with_running_balance(session, account.id),
            "as_of": as_of,
            "can_stop": user.role in FINAL_BILLERS and account.status == "active",
            "stop_form": stop_form or FormState({"stop_on": as_of.isoformat()}),
        },
        status_code=400 if stop_form and stop_form.errors else 200,
    )


def _meters(account: Account) -> list[Meter]:
    """The meters of the account's services still running: each needs a final read."""
    return list({s.meter.id: s.meter for s in account.services if s.meter is not None and s.ended_on is None}.values())


STOP_FIELDS = ("stop_on", "mailing_line1", "mailing_city", "mailing_state", "mailing_zip")


async def stop_service(request: Request) -> Response:
    """Stop an account's service and post its final bill, from the final reads entered here;
    a forwarding address, when given, is where the final bill goes."""
    form = await request.form()
    values = {k: str(v).strip()[:200] for k, v in form.items() if k in STOP_FIELDS or k.startswith("read-")}
    response = await run_in_threadpool(_stop_service, request, values)
    for request_id in getattr(request.state, "completed_requests", []):
        await run_in_threadpool(
            jobs.defer,
            request.app.state.settings,
            "email.request_update",
            request.app.state.sessions,
            request_id=request_id,
        )
    return response


def _stop_service(request: Request, values: dict[str, str]) -> Response:
    number = request.path_params["number"]
    with db(request) as session:
        user = require_staff(request, session)
        if user.role not in FINAL_BILLERS:
            raise Forbidden("Only billing specialists and supervisors stop service and make final bills.")
        account = _account(session, number)
        state = FormState(values)
        try:
            try:
                stop_on = date.fromisoformat(values.get("stop_on", ""))
            except ValueError as exc:
                raise InvalidInput("Enter the stop date as YYYY-MM-DD.", "stop_on") from exc
            reads: dict[int, Decimal] = {}
            for meter in _meters(account):
                field = f"read-{meter.id}"
                try:
                    reads[meter.id] = Decimal(values.get(field, ""))
                except InvalidOperation as exc:
                    raise InvalidInput(f"Enter the final read of meter {meter.serial} as a number.", field) from exc
                if not reads[meter.id].is_finite() or reads[meter.id] < 0:
                    raise InvalidInput(f"Enter the final read of meter {meter.serial} as a number.", field)
            forward = customers.parse_mailing_address(
                values.get("mailing_line1", ""),
                values.get("mailing_city", ""),
                values.get("mailing_state", ""),
                values.get("mailing_zip", ""),
            )
            with session.begin_nested():  # the reads, the final bill and the address, or none of them
                if forward is not None:
                    customers.set_mailing_address(session, account.customer, forward, user, remote_addr(request))
                bill = bill_runs.final_bill(session, account, stop_on, reads, user, today(request))
                bill_number = bill.number
                done = service_requests.complete_stops_for(session, account, user, now(request))
        except InvalidInput as exc:
            session.expire_all()
            field = exc.field if exc.field in STOP_FIELDS or (exc.field or "").startswith("read-") else "final"
            state.errors[field] = exc.message[:1].upper() + exc.message[1:]
            return _account_page(request, session, user, _account(session, number), state)
    request.state.completed_requests = done  # the customers who asked are told, once this is saved
    return redirect(f"/staff/accounts/{number}/bills/{bill_number}")


def bill_view(request: Request) -> Response:
    with db(request) as session:
        user = require_staff(request, session)
        account = session.scalar(select(Account).where(Account.number == request.path_params["number"]))
        if account is None:
            raise PageNotFound()
        bill = accounts.bill_with_lines(session, account.id, request.path_params["bill"])
        if bill is None:
            raise PageNotFound()
        return request.app.state.templates.TemplateResponse(
            request,
            "staff/bill.html",
            {
                "account": account,
                "bill": bill,
                "groups": accounts.lines_by_service(bill),
                "can_void": user.role in bill_runs.APPROVERS,
                "void_error": None,
                "reason": "",
            },
        )


async def void_bill(request: Request) -> Response:
    form = await request.form()
    reason = str(form.get("reason", "")).strip()[:250]
    return await run_in_threadpool(_void_bill, request, reason)


def _void_bill(request: Request, reason: str) -> Response:
    number, bill_number = request.path_params["number"], request.path_params["bill"]
    with db(request) as session:
        user = require_staff(request, session)
        if user.role not in bill_runs.APPROVERS:
            raise Forbidden("Only a billing supervisor voids and rebills a bill.")
        account = session.scalar(select(Account).where(Account.number == number))
        bill = accounts.bill_with_lines(session, account.id, bill_number) if account else None
        if bill is None:
            raise PageNotFound()
        try:
            with session.begin_nested():  # all of it, or none of it
                new = bill_runs.void_and_rebill(
                    session, bill, user, reason, today(request), remote_addr=remote_addr(request)
                )
        except InvalidInput as exc:
            session.expire_all()
            bill = accounts.bill_with_lines(session, account.id, bill_number)
            return request.app.state.templates.TemplateResponse(
                request,
                "staff/bill.html",
                {
                    "account": account,
                    "bill": bill,
                    "groups": accounts.lines_by_service(bill),
                    "can_void": True,
                    "void_error": exc.message,
                    "reason": reason,
                },
                status_code=400,
            )
        new_number = new.number
    return redirect(f"/staff/accounts/{number}/bills/{new_number}")


def bill_document(request: Request) -> Response:
    from .customer import render_bill_document

    with db(request) as session:
        account, bill = _staff_bill(request, session)
        doc = accounts.bill_document(session, account, bill, today(request))
        return render_bill_document(request, doc, f"/staff/accounts/{account.number}/bills/{bill.number}/pdf")


async def bill_pdf(request: Request) -> Response:
    from .customer import bill_pdf_html, pdf_response

    def build() -> tuple[str, str]:
        with db(request) as session:
            account, bill = _staff_bill(request, session)
            return bill_pdf_html(request, accounts.bill_document(session, account, bill, today(request)))

    return await pdf_response(request, *await run_in_threadpool(build))


def _staff_bill(request: Request, session: Session) -> tuple[Account, Bill]:
    require_staff(request, session)
    account = session.scalar(select(Account).where(Account.number == request.path_params["number"]))
    bill = accounts.bill_with_lines(session, account.id, request.path_params["bill"]) if account else None
    if account is None or bill is None:
        raise PageNotFound()
    return account, bill
