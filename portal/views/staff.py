"""The office's pages: account search and the account view."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from .. import jobs
from ..billing_core import accounts, arrangements, autopay, bill_runs, customers, payments, reads, service_requests
from ..billing_core.errors import InvalidInput
from ..billing_core.models import Account, Bill, Meter, MeterRead, Service, User
from ..web import (
    Forbidden,
    FormState,
    PageNotFound,
    db,
    flash,
    now,
    pop_flash,
    redirect,
    remote_addr,
    require_staff,
    today,
)

FINAL_BILLERS = bill_runs.FINAL_BILLERS


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
    request: Request,
    session: Session,
    user: User,
    account: Account,
    stop_form: FormState | None = None,
    review_form: FormState | None = None,
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
    held = bill_runs.held_for_account(session, account.id)
    checks = []
    if held is not None:
        try:
            checks = bill_runs.review_checks(session, held)
        except InvalidInput as exc:  # the meter's reads changed since: the reviewer corrects the read
            review_form = review_form or FormState()
            review_form.errors.setdefault(exc.field or "review", _sentence(exc.message))
    errors = bool(stop_form and stop_form.errors) or bool(review_form and review_form.errors)
    return request.app.state.templates.TemplateResponse(
        request,
        "staff/account.html",
        {
            "account": account,
            "summary": accounts.summarise(session, account, as_of),
            "enrollment": autopay.active_enrollment(session, account.id),
            "service_requests": service_requests.for_account(session, account.id),
            "status_label": service_requests.status_label,
            "plans": arrangements.for_account(session, account.id),
            "refund_review": payments.to_review(session, account.id),
            "meters": meters,
            "active_meters": _meters(account),
            "last_reads": last_reads,
            "last_days": {s.id: s.ended_on - timedelta(days=1) for s in account.services if s.ended_on},
            "bills": accounts.bills_for_account(session, account.id, limit=24),
            "ledger": accounts.ledger_with_running_balance(session, account.id),
            "as_of": as_of,
            "can_stop": user.role in FINAL_BILLERS and account.status == "active" and held is None,
            "stop_form": stop_form or FormState({"stop_on": as_of.isoformat()}),
            "held": held,
            "held_checks": checks,
            "held_by": session.get(User, held.entered_by_id) if held else None,
            "held_serials": {
                str(meter_id): serial
                for meter_id, serial in session.execute(
                    select(Meter.id, Meter.serial).where(Meter.id.in_([int(k) for k in held.reads]))
                )
            }
            if held
            else {},
            "final_bill_date": bill_runs.final_bill_date,
            "reason_labels": bill_runs.FINAL_REASONS,
            "can_correct": user.role in FINAL_BILLERS,
            "can_approve": user.role in bill_runs.APPROVERS,
            "review_form": review_form or FormState(),
            "flash": pop_flash(request),
        },
        status_code=400 if errors else 200,
    )


def _sentence(message: str) -> str:
    return message[:1].upper() + message[1:] + ("" if message.endswith(".") else ".")


def _meters(account: Account) -> list[Meter]:
    """The meters of the account's services still running: each needs a final read."""
    return list({s.meter.id: s.meter for s in account.services if s.meter is not None and s.ended_on is None}.values())


STOP_FIELDS = ("stop_on", "mailing_line1", "mailing_city", "mailing_state", "mailing_zip")


async def stop_service(request: Request) -> Response:
    """Stop an account's service and post its final bill, from the final reads entered here;
    a forwarding address, when given, is where the final bill goes. The same address takes
    the actions on a final bill held for review (``action``: ``approve`` or ``correct``)."""
    form = await request.form()
    values = {
        k: str(v).strip()[:200]
        for k, v in form.items()
        if k in STOP_FIELDS or k in ("action", "reason") or k.startswith(("read-", "correct-"))
    }
    if values.get("action") in ("approve", "correct"):
        response = await run_in_threadpool(_review_action, request, values)
    else:
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


def _number(text: str, field: str, what: str) -> Decimal:
    """A read typed on a staff form: plain ASCII digits, as every read (``reads.parse_read``;
    the meter's dials are checked where the read is used)."""
    try:
        return reads.parse_read(text, field)
    except InvalidInput as exc:
        raise InvalidInput(f"Enter {what} as a number, 0 or more ({exc.message}).", field) from exc


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
                stop_on = service_requests.parse_day(values.get("stop_on", ""), "en")
            except ValueError as exc:
                example = service_requests.date_example(today(request), "en")
                raise InvalidInput(
                    f"Enter the last day of service as the date field shows it, for example {example}.", "stop_on"
                ) from exc
            reads: dict[int, Decimal] = {}
            for meter in _meters(account):
                field = f"read-{meter.id}"
                reads[meter.id] = _number(values.get(field, ""), field, f"the final read of meter {meter.serial}")
            forward = customers.parse_mailing_address(
                values.get("mailing_line1", ""),
                values.get("mailing_city", ""),
                values.get("mailing_state", ""),
                values.get("mailing_zip", ""),
            )
            with session.begin_nested():  # the reads, the final bill and the address, or none of them
                stop = bill_runs.stop_service(
                    session,
                    account,
                    stop_on,
                    reads,
                    user,
                    today(request),
                    forward=forward,
                    remote_addr=remote_addr(request),
                )
                done = []
                if stop.status == "posted":
                    bill_number = session.get(Bill, stop.bill_id).number
                    done = service_requests.complete_stops_for(session, account, user, now(request), today(request))
        except InvalidInput as exc:
            session.expire_all()
            field = exc.field if exc.field in STOP_FIELDS or (exc.field or "").startswith("read-") else "final"
            state.errors[field] = _sentence(exc.message)
            return _account_page(request, session, user, _account(session, number), state)
        if stop.status == "held":
            reasons = "; ".join(bill_runs.FINAL_REASONS.get(r, r).lower() for r in stop.reasons.split(","))
            flash(request, f"The final bill is held for review ({reasons}). Nothing is posted until it is approved.")
            return redirect(f"/staff/accounts/{number}#held-heading")
    request.state.completed_requests = done  # the customers who asked are told, once this is saved
    return redirect(f"/staff/accounts/{number}/bills/{bill_number}")


def _review_action(request: Request, values: dict[str, str]) -> Response:
    """Approve and post a held final bill, or correct one of its reads."""
    number = request.path_params["number"]
    action = values.get("action")
    with db(request) as session:
        user = require_staff(request, session)
        if user.role not in (bill_runs.APPROVERS if action == "approve" else FINAL_BILLERS):
            raise Forbidden(
                "Only a billing supervisor approves and posts a held final bill."
                if action == "approve"
                else "Only billing specialists and supervisors correct final reads."
            )
        account = _account(session, number)
        review = bill_runs.held_for_account(session, account.id)
        if review is None:
            raise PageNotFound()
        state = FormState(values)
        done: list[int] = []
        try:
            with session.begin_nested():
                if action == "approve":
                    bill = bill_runs.approve_final(
                        session, review, user, today(request), remote_addr=remote_addr(request)
                    )
                    bill_number = bill.number
                    done = service_requests.complete_stops_for(session, account, user, now(request), today(request))
                else:
                    corrections = {}
                    for meter_id in review.reads:
                        field = f"correct-{meter_id}"
                        if values.get(field, ""):
                            corrections[int(meter_id)] = _number(values[field], field, "the corrected read")
                    if not corrections:
                        raise InvalidInput("Enter the corrected read of a meter.", f"correct-{min(review.reads)}")
                    for meter_id, value in corrections.items():
                        try:
                            bill_runs.correct_final_read(
                                session,
                                review,
                                meter_id,
                                value,
                                values.get("reason", ""),
                                user,
                                today(request),
                                remote_addr(request),
                            )
                        except InvalidInput as exc:
                            raise InvalidInput(
                                exc.message, "reason" if exc.field == "reason" else f"correct-{meter_id}"
                            ) from exc
        except InvalidInput as exc:
            session.expire_all()
            state.errors[
                exc.field if (exc.field or "").startswith("correct-") or exc.field == "reason" else "review"
            ] = _sentence(exc.message)
            return _account_page(request, session, user, _account(session, number), review_form=state)
        if action == "correct":
            flash(request, "The final read is corrected. The final bill stays held until a supervisor approves it.")
            return redirect(f"/staff/accounts/{number}#held-heading")
    request.state.completed_requests = done
    return redirect(f"/staff/accounts/{number}/bills/{bill_number}")


def _bill_page(
    request: Request, account: Account, bill: Bill, user: User, form: FormState | None = None, error: str | None = None
) -> Response:
    return request.app.state.templates.TemplateResponse(
        request,
        "staff/bill.html",
        {
            "account": account,
            "bill": bill,
            "groups": accounts.lines_by_service(bill),
            "usages": [u for u in bill.usages if u.current_read_id is not None],
            "can_void": user.role in bill_runs.APPROVERS,
            "void_error": error,
            "form": form or FormState(),
            "reason": (form or FormState()).get("reason"),
        },
        status_code=400 if error or (form and form.errors) else 200,
    )


def bill_view(request: Request) -> Response:
    with db(request) as session:
        user = require_staff(request, session)
        account = session.scalar(select(Account).where(Account.number == request.path_params["number"]))
        if account is None:
            raise PageNotFound()
        bill = accounts.bill_with_lines(session, account.id, request.path_params["bill"])
        if bill is None:
            raise PageNotFound()
        return _bill_page(request, account, bill, user)


async def void_bill(request: Request) -> Response:
    form = await request.form()
    values = {k: str(v).strip()[:250] for k, v in form.items() if k == "reason" or k.startswith("read-")}
    return await run_in_threadpool(_void_bill, request, values)


def _void_bill(request: Request, values: dict[str, str]) -> Response:
    number, bill_number = request.path_params["number"], request.path_params["bill"]
    reason = values.get("reason", "")
    with db(request) as session:
        user = require_staff(request, session)
        if user.role not in bill_runs.APPROVERS:
            raise Forbidden("Only a billing supervisor voids and rebills a bill.")
        account = session.scalar(select(Account).where(Account.number == number))
        bill = accounts.bill_with_lines(session, account.id, bill_number) if account else None
        if bill is None:
            raise PageNotFound()
        form = FormState(values)
        try:
            corrected: dict[int, Decimal] = {}
            for usage in bill.usages:
                field = f"read-{usage.meter_id}"
                if usage.current_read_id is not None and values.get(field):
                    corrected[usage.meter_id] = _number(values[field], field, "the corrected read")
            with session.begin_nested():  # all of it, or none of it
                new = bill_runs.void_and_rebill(
                    session,
                    bill,
                    user,
                    reason,
                    today(request),
                    remote_addr=remote_addr(request),
                    corrected_reads=corrected,
                )
        except InvalidInput as exc:
            session.expire_all()
            bill = accounts.bill_with_lines(session, account.id, bill_number)
            if (exc.field or "").startswith("read-"):
                form.errors[exc.field] = _sentence(exc.message)
            return _bill_page(request, account, bill, user, form, exc.message)
        new_number = new.number
    return redirect(f"/staff/accounts/{number}/bills/{new_number}")


def bill_document(request: Request) -> Response:
    from .customer import render_bill_document

    with db(request) as session:
        account, bill = _staff_bill(request, session)
        doc = accounts.bill_document(session, account, bill)
        return render_bill_document(request, doc, f"/staff/accounts/{account.number}/bills/{bill.number}/pdf")


async def bill_pdf(request: Request) -> Response:
    from .customer import bill_pdf_html, pdf_response

    def build() -> tuple[str, str]:
        with db(request) as session:
            account, bill = _staff_bill(request, session)
            return bill_pdf_html(request, accounts.bill_document(session, account, bill))

    return await pdf_response(request, *await run_in_threadpool(build))


def _staff_bill(request: Request, session: Session) -> tuple[Account, Bill]:
    require_staff(request, session)
    account = session.scalar(select(Account).where(Account.number == request.path_params["number"]))
    bill = accounts.bill_with_lines(session, account.id, request.path_params["bill"]) if account else None
    if account is None or bill is None:
        raise PageNotFound()
    return account, bill
