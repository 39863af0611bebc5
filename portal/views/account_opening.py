"""Opening an account (from scratch, or from a resident's start request), the page of the
account just opened with its welcome letter (PDF), and a transfer of service
(``services/account_opening.py``). Staff pages: English; the letter and the email are in
the customer's language."""

from __future__ import annotations

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from .. import i18n, jobs
from ..billing_core import account_opening as rules
from ..billing_core import money_policy
from ..billing_core.errors import FieldErrors
from ..billing_core.money import format_money as money
from ..documents import bill_css
from ..services import account_opening as service
from ..web import FormState, db, error_text, flash, now, pop_flash, redirect, remote_addr, require_staff, today

#: Every field the opening and transfer forms send (besides ``read-<meter id>``).
FIELDS = (
    "request",
    "duplicates_seen",
    "customer_choice",
    "premise_choice",
    "customer_kind",
    "name",
    "contact_name",
    "email",
    "phone",
    "alt_phone",
    "language",
    "birth_date",
    "id_last4",
    "service_line1",
    "service_line2",
    "service_city",
    "service_state",
    "service_zip",
    "parcel_number",
    "dwelling_units",
    "customer_class",
    "cycle",
    "route",
    "start_on",
    "turn_on_due",
    "billing",
    "mailing_line1",
    "mailing_city",
    "mailing_state",
    "mailing_zip",
    "water",
    "water_schedule",
    "sewer",
    "sewer_schedule",
    "sanitation",
    "sanitation_schedule",
    "cart_count",
    "cart_size",
    "stop_on",
)


def _policy(request: Request) -> money_policy.MoneyPolicy:
    return money_policy.load(request.app.state.settings.money_policy_file)


def _render(request: Request, template: str, context: dict, status: int = 200) -> Response:
    return request.app.state.templates.TemplateResponse(
        request, template, {**context, "flash": pop_flash(request)}, status_code=status
    )


def _context(page: service.OpeningForm, form: FormState) -> dict:
    return {
        "page": page,
        "form": form,
        "kinds": rules.CUSTOMER_KINDS,
        "languages": rules.LANGUAGES,
        "services": rules.SERVICES,
        "max_carts": rules.MAX_CARTS,
    }


async def _values(request: Request) -> dict[str, str]:
    data = await request.form()
    values = {k: str(data.get(k, "")).strip()[:300] for k in FIELDS}
    values.update({k: str(v).strip()[:40] for k, v in data.items() if k.startswith("read-")})
    return values


def _errors(form: FormState, exc: FieldErrors) -> None:
    form.errors.update({k: error_text(e) for k, e in exc.errors.items()})


async def _tell(request: Request, opened: service.Opened) -> None:
    """After the commit: the welcome email goes, and the resident hears about the request."""
    settings, sessions = request.app.state.settings, request.app.state.sessions
    await run_in_threadpool(jobs.send_outbox_soon, settings, sessions, opened.welcome_outbox_id)
    if opened.request_id is not None:
        await run_in_threadpool(jobs.defer, settings, "email.request_update", sessions, request_id=opened.request_id)


# --- Opening ---------------------------------------------------------------------------------


def open_page(request: Request) -> Response:
    with db(request) as session:
        user = require_staff(request, session)
        page = service.opening_form(
            session,
            user,
            request_id=request.query_params.get("request", ""),
            today=today(request),
            remote_addr=remote_addr(request),
        )
        return _render(request, "staff/accounts_open/open.html", _context(page, FormState(page.defaults)))


async def open_submit(request: Request) -> Response:
    values = await _values(request)
    form = FormState(values)

    def act() -> Response | service.Opened:
        with db(request) as session:
            user = require_staff(request, session)
            try:
                return service.open_account(
                    session,
                    user,
                    values,
                    policy=_policy(request),
                    today=today(request),
                    now=now(request),
                    remote_addr=remote_addr(request),
                )
            except FieldErrors as exc:
                _errors(form, exc)
                found = exc.found if isinstance(exc, rules.DuplicatesFound) else None
                page = service.opening_form(
                    session,
                    user,
                    request_id=values.get("request", ""),
                    today=today(request),
                    duplicates=found,
                    remote_addr=remote_addr(request),
                )
                return _render(request, "staff/accounts_open/open.html", _context(page, form), 400)

    outcome = await run_in_threadpool(act)
    if isinstance(outcome, Response):
        return outcome
    number = outcome.account.number
    deposit = f" A deposit of {money(outcome.deposit.amount_cents)} is billed." if outcome.deposit else ""
    flash(
        request, f"Account {number} is open. Turn-on order {outcome.order.id} is due {outcome.order.due_on}.{deposit}"
    )
    await _tell(request, outcome)
    return redirect(f"/staff/accounts/{number}/opened")


def opened_view(request: Request) -> Response:
    with db(request) as session:
        user = require_staff(request, session)
        page = service.opened_page(session, user, request.path_params["number"], remote_addr(request))
        return _render(request, "staff/accounts_open/opened.html", {"page": page})


def _letter_html(request: Request, letter: service.WelcomeLetter) -> str:
    settings = request.app.state.settings
    with i18n.use(letter.language):
        return request.app.state.templates.env.get_template("welcome_letter.html").render(
            letter=letter,
            today=today(request),
            print_css=bill_css(),
            agency_name=settings.agency_name,
            agency_phone=settings.agency_phone,
        )


async def welcome_pdf(request: Request) -> Response:
    """The welcome letter, printed to PDF by the printer adapter, in the customer's language."""
    from .customer import pdf_response

    def build() -> tuple[str, str]:
        with db(request) as session:
            user = require_staff(request, session)
            letter = service.welcome_letter(session, user, request.path_params["number"])
            return _letter_html(request, letter), f"welcome-{letter.account.number}.pdf"

    return await pdf_response(request, *await run_in_threadpool(build))


# --- Transfer --------------------------------------------------------------------------------


def transfer_page(request: Request) -> Response:
    number = request.path_params["number"]
    with db(request) as session:
        user = require_staff(request, session)
        page = service.transfer_form(
            session, user, number, today=today(request), request_id=request.query_params.get("request", "")
        )
        form = FormState({**page.defaults, "stop_on": page.defaults.get("stop_on") or today(request).isoformat()})
        return _render(request, "staff/accounts_open/transfer.html", _context(page, form))


async def transfer_submit(request: Request) -> Response:
    number = request.path_params["number"]
    values = await _values(request)
    form = FormState(values)

    def act() -> Response | service.Transferred:
        with db(request) as session:
            user = require_staff(request, session)
            try:
                return service.transfer(
                    session,
                    user,
                    number,
                    values,
                    policy=_policy(request),
                    today=today(request),
                    now=now(request),
                    remote_addr=remote_addr(request),
                )
            except FieldErrors as exc:
                _errors(form, exc)
                page = service.transfer_form(session, user, number, today=today(request))
                return _render(request, "staff/accounts_open/transfer.html", _context(page, form), 400)

    outcome = await run_in_threadpool(act)
    if isinstance(outcome, Response):
        return outcome
    new = outcome.opened.account.number
    moved = sum(outcome.moved.values())
    final = (
        f"Final bill {outcome.final_bill} posted."
        if outcome.final_bill
        else f"The final bill is held for review: once it is approved, move what it adds from account {number}'s"
        f" set-up page (/staff/accounts/{number}/opened)."
    )
    flash(request, f"Service moved from account {number} to account {new}. {final} Balance moved: {money(moved)}.")
    await _tell(request, outcome.opened)
    for request_id in outcome.completed_requests:
        await run_in_threadpool(
            jobs.defer,
            request.app.state.settings,
            "email.request_update",
            request.app.state.sessions,
            request_id=request_id,
        )
    return redirect(f"/staff/accounts/{new}/opened")


async def move_balance(request: Request) -> Response:
    number = request.path_params["number"]
    data = await request.form()
    to_number = str(data.get("to_account", "")).strip()[:20]

    def act() -> str:
        with db(request) as session:
            user = require_staff(request, session)
            try:
                moved = service.move_balance(session, user, number, to_number, today=today(request), now=now(request))
            except FieldErrors as exc:
                return next(iter(exc.errors.values())).message
            return f"Moved {money(sum(moved.values()))} from account {number} to account {to_number}."

    flash(request, await run_in_threadpool(act))
    return redirect(f"/staff/accounts/{number}/opened")
