"""Start, stop and transfer of service, as the customer asks for them and staff work them.

A request is checked whole before anything is written: every field's problem is reported
at once (``errors.FieldErrors``), and a request with any problem writes nothing. Staff move a
request on from a queue (scheduled, completed, declined) with a message the customer
sees; the customer may cancel it while it is still only submitted.

One vocabulary: ``STATUS_LABELS`` names each status for residents (translated) and staff
alike. A request is "Done" only when its work is: not before its date (the last day of
service of a stop, the first day of a start), and a stop only once service has stopped (the
final bill posted from the staff account page completes it). ``stop_on`` is always the
last day of service.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from babel.dates import format_date, get_date_format
from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from . import audit, customers, statements
from .errors import N_, FieldErrors, InvalidInput
from .models import Account, AccountStatus, Role, ServiceRequest, User
from .status import REQUEST_TRANSITIONS, RequestStatus, allowed, move

KINDS = ("start", "stop", "transfer")
OPEN = (RequestStatus.SUBMITTED, RequestStatus.SCHEDULED)
DONE = (RequestStatus.COMPLETED, RequestStatus.DECLINED, RequestStatus.CANCELLED)
#: How far ahead a customer may ask for a start or stop date.
MAX_DAYS_AHEAD = 60
PHONE = re.compile(r"\+?[\d\s().-]{10,20}")

#: The name of each status, the same for residents (in their language) and staff.
STATUS_LABELS: dict[str, str] = {
    RequestStatus.SUBMITTED: N_("Received"),
    RequestStatus.SCHEDULED: N_("Scheduled"),
    RequestStatus.COMPLETED: N_("Done"),
    RequestStatus.DECLINED: N_("Declined"),
    RequestStatus.CANCELLED: N_("Cancelled"),
}


def status_label(request: ServiceRequest | str) -> str:
    """The status's name (English; customer pages translate it)."""
    status = request if isinstance(request, str) else request.status
    return STATUS_LABELS.get(status, status)


def work_date(request: ServiceRequest) -> date | None:
    """The day the asked-for work happens: the later of the last day of service and the first."""
    days = [d for d in (request.stop_on, request.start_on) if d is not None]
    return max(days) if days else None


@dataclass(frozen=True)
class DepositPolicy:
    """When a new service asks for a deposit (California practice: only of tenants new to
    the utility; owners and customers with a good record here pay none)."""

    tenant_cents: int = 10_000
    #: A linked account this old, with nothing past due, shows a good record.
    good_record_months: int = 12


DEPOSIT = DepositPolicy()


@dataclass
class Form:
    """What the customer typed, as text, and the language of the page it was typed on."""

    values: dict[str, str]
    locale: str = "en"

    def get(self, name: str) -> str:
        return self.values.get(name, "").strip()


def date_pattern(locale: str) -> str:
    """The numeric date pattern a browser's date field shows in this language, from Babel's
    short pattern with the day and month in two digits and the year in four (``MM/dd/yyyy``
    in English, ``dd/MM/yyyy`` in Spanish)."""
    pattern = get_date_format("short", locale=locale).pattern
    pattern = re.sub(r"y+", "yyyy", pattern)
    pattern = re.sub(r"M+", "MM", pattern)
    return re.sub(r"d+", "dd", pattern)


def date_example(day: date, locale: str) -> str:
    """``day`` written the way the date field shows it (Babel)."""
    return format_date(day, date_pattern(locale), locale=locale)


def parse_day(text: str, locale: str) -> date:
    """A date as the date field sends it (ISO, year-month-day) or as its picture shows it
    (``date_pattern``) when a browser without a date picker shows a plain text field."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        pass
    strptime = date_pattern(locale).replace("yyyy", "%Y").replace("MM", "%m").replace("dd", "%d")
    return datetime.strptime(text, strptime).date()


def _date(form: Form, name: str, today: date, errors: dict[str, InvalidInput]) -> date | None:
    text = form.get(name)
    try:
        day = parse_day(text, form.locale)
    except ValueError:
        errors[name] = InvalidInput(
            N_("Enter the date as the date field shows it, for example %(example)s."),
            name,
            example=date_example(today + timedelta(days=14), form.locale),
        )
        return None
    if day < today:
        errors[name] = InvalidInput(N_("Choose today or a later day."), name)
    elif day > today + timedelta(days=MAX_DAYS_AHEAD):
        errors[name] = InvalidInput(
            N_("Choose a day within %(days)s days. For a later date, ask again nearer the time."),
            name,
            days=MAX_DAYS_AHEAD,
        )
    return day


ADDRESS_PARTS = (
    ("line1", N_("Enter the street address.")),
    ("city", N_("Enter the city.")),
    ("state", N_("Enter the state as two letters, for example CA.")),
    ("zip", N_("Enter the ZIP code as five digits (or ZIP+4, 12345-6789).")),
)


def _address(form: Form, prefix: str, errors: dict[str, InvalidInput]) -> customers.MailingAddress | None:
    """The address, or None with a message on every part left empty (and on the first part
    that is filled in wrongly)."""
    empty = [(part, message) for part, message in ADDRESS_PARTS if not form.get(f"{prefix}_{part}")]
    for part, message in empty:
        errors[f"{prefix}_{part}"] = InvalidInput(message, f"{prefix}_{part}")
    filled = {f"{prefix}_{part}" for part, _ in ADDRESS_PARTS} - {f"{prefix}_{part}" for part, _ in empty}
    if empty:
        # Still check what was filled in, so a wrong state is flagged beside an empty city.
        try:
            line1, city, state, zip_code = (
                form.get(f"{prefix}_{part}") or _PLACEHOLDER[part] for part, _ in ADDRESS_PARTS
            )
            customers.parse_mailing_address(line1, city, state, zip_code, prefix=prefix)
        except InvalidInput as exc:
            if exc.field in filled:
                errors[exc.field] = exc
        return None
    try:
        address = customers.parse_mailing_address(
            form.get(f"{prefix}_line1"),
            form.get(f"{prefix}_city"),
            form.get(f"{prefix}_state"),
            form.get(f"{prefix}_zip"),
            prefix=prefix,
        )
    except InvalidInput as exc:
        errors[exc.field or f"{prefix}_line1"] = exc
        return None
    return address


#: Stand-ins for the empty parts, so the parts filled in are checked on their own.
_PLACEHOLDER = {"line1": "1 Main St", "city": "City", "state": "CA", "zip": "00000"}


def deposit_for(session: Session, user: User, occupancy: str, today: date, policy: DepositPolicy = DEPOSIT) -> int:
    """The deposit a new service asks of this customer, in cents."""
    from . import accounts

    if occupancy != "tenant":
        return 0
    cutoff = today - timedelta(days=round(policy.good_record_months * 30.44))
    for account in accounts.accounts_for_user(session, user):
        if account.opened_on <= cutoff and accounts.summarise(session, account, today).past_due_cents <= 0:
            return 0
    return policy.tenant_cents


def submit(
    session: Session, user: User, kind: str, form: Form, today: date, now: datetime, remote_addr: str | None
) -> ServiceRequest:
    """Check a request whole and write it, or raise ``FieldErrors`` and write nothing."""
    from . import accounts

    if kind not in KINDS:
        raise ValueError(f"unknown request kind {kind!r}")
    errors: dict[str, InvalidInput] = {}
    request = ServiceRequest(
        kind=kind, status=RequestStatus.SUBMITTED.value, user_id=user.id, created_at=now, updated_at=now
    )

    name = form.get("contact_name")
    if not name or len(name) > 200:
        errors["contact_name"] = InvalidInput(N_("Enter your full name."), "contact_name")
    phone = form.get("contact_phone")
    if not PHONE.fullmatch(phone) or len(re.sub(r"\D", "", phone)) < 10:
        errors["contact_phone"] = InvalidInput(
            N_("Enter a phone number with its area code, for example (555) 010-2000."), "contact_phone"
        )
    request.contact_name, request.contact_phone, request.contact_email = name[:200], phone[:40], user.email

    if kind in ("stop", "transfer"):
        account = accounts.account_for_user(session, user, form.get("account"))
        if account is None:
            errors["account"] = InvalidInput(N_("Choose one of your accounts."), "account")
        elif account.status != AccountStatus.ACTIVE.value:
            errors["account"] = InvalidInput(N_("Service on this account has already stopped."), "account")
        elif session.scalar(
            select(ServiceRequest.id).where(
                ServiceRequest.account_id == account.id,
                ServiceRequest.kind.in_(("stop", "transfer")),
                ServiceRequest.status.in_(OPEN),
            )
        ):
            errors["account"] = InvalidInput(
                N_("There is already a request to stop service on this account. You can see it under My requests."),
                "account",
            )
        request.account_id = account.id if account else None
        request.stop_on = _date(form, "stop_on", today, errors)
        forward = _address(form, "forward", errors)
        if forward:
            request.forward_line1, request.forward_city = forward.line1, forward.city
            request.forward_state, request.forward_zip = forward.state, forward.zip

    if kind in ("start", "transfer"):
        request.start_on = _date(form, "start_on", today, errors)
        if (
            kind == "transfer"
            and request.start_on
            and request.stop_on
            and request.start_on < request.stop_on - timedelta(days=30)
        ):
            errors["start_on"] = InvalidInput(
                N_("Start the new service no more than 30 days before the old one stops."), "start_on"
            )
        service = _address(form, "service", errors)
        if service:
            request.service_line1, request.service_city = service.line1, service.city
            request.service_state, request.service_zip = service.state, service.zip
        request.service_line2 = form.get("service_line2")[:100] or None
        occupancy = form.get("occupancy")
        if occupancy not in ("owner", "tenant"):
            errors["occupancy"] = InvalidInput(N_("Tell us whether you own or rent the home."), "occupancy")
        request.occupancy = occupancy if occupancy in ("owner", "tenant") else None
        if kind == "start":
            # Identity for someone new to us: checked by staff against a photo ID.
            try:
                born = parse_day(form.get("birth_date"), form.locale)
                if born > today.replace(year=today.year - 18) or born.year < 1900:
                    errors["birth_date"] = InvalidInput(
                        N_("The account holder must be 18 or older. Check the date of birth."), "birth_date"
                    )
                request.birth_date = born
            except ValueError:
                errors["birth_date"] = InvalidInput(
                    N_("Enter the date as the date field shows it, for example %(example)s."),
                    "birth_date",
                    example=date_example(date(1985, 4, 30), form.locale),
                )
            last4 = form.get("id_last4")
            if not re.fullmatch(r"[0-9A-Za-z]{4}", last4):
                errors["id_last4"] = InvalidInput(
                    N_("Enter the last 4 characters of your driver's license or state ID."), "id_last4"
                )
            request.id_last4 = last4.upper()[:4]
        if request.occupancy:
            request.deposit_cents = deposit_for(session, user, request.occupancy, today)

    if errors:
        raise FieldErrors(errors)
    session.add(request)
    session.flush()
    audit.record(
        session,
        "service_request.submitted",
        actor=user,
        entity_type="service_request",
        entity_id=request.id,
        after={
            "kind": kind,
            "account": request.account_id,
            "stop_on": str(request.stop_on or ""),
            "start_on": str(request.start_on or ""),
            "deposit_cents": request.deposit_cents,
        },
        remote_addr=remote_addr,
    )
    return request


def for_user(session: Session, user: User) -> list[ServiceRequest]:
    return list(
        session.scalars(
            select(ServiceRequest).where(ServiceRequest.user_id == user.id).order_by(ServiceRequest.id.desc())
        )
    )


def for_account(session: Session, account_id: int) -> list[ServiceRequest]:
    stmt = statements.once(
        ("service_requests.for_account",),
        lambda: (
            select(ServiceRequest)
            .where(ServiceRequest.account_id == bindparam("account_id"))
            .order_by(ServiceRequest.id.desc())
        ),
    )
    return list(session.scalars(stmt, {"account_id": account_id}))


def one_for_user(session: Session, user: User, request_id: str) -> ServiceRequest | None:
    """A request by id, only if this sign-in made it."""
    try:
        rid = int(request_id)
    except ValueError:
        return None
    return session.scalar(select(ServiceRequest).where(ServiceRequest.id == rid, ServiceRequest.user_id == user.id))


def may_cancel(request: ServiceRequest) -> bool:
    """May the customer still cancel it? Only while it is still only submitted."""
    return allowed(REQUEST_TRANSITIONS, request.status, RequestStatus.CANCELLED)


def cancel(session: Session, request: ServiceRequest, user: User, now: datetime) -> None:
    """The customer cancels their request: only while it is still only submitted."""
    if not may_cancel(request):
        raise InvalidInput(N_("Staff are already working on this request. Call us to change it."), "status")
    _move(session, request, RequestStatus.CANCELLED, user, now, None)


def staff_actions(current: str) -> tuple[RequestStatus, ...]:
    """What staff may do next with a request in ``current`` state (cancelling is the customer's)."""
    try:
        moves = REQUEST_TRANSITIONS.get(RequestStatus(current), ())
    except ValueError:
        return ()
    return tuple(s for s in moves if s is not RequestStatus.CANCELLED)


def handle(
    session: Session,
    request: ServiceRequest,
    action: str,
    staff: User,
    now: datetime,
    message: str,
    note: str,
    today: date | None = None,
) -> None:
    """Staff move a request on. Declining needs a reason the customer will read. Done only when
    the work is: not before the request's date, and a stop only once service has stopped."""
    if action not in staff_actions(request.status):
        raise InvalidInput(
            f"A request that is {status_label(request).lower()} cannot be marked {status_label(action).lower()}.",
            "action",
        )
    new = RequestStatus(action)
    message = message.strip()[:500]
    if new is RequestStatus.DECLINED and not message:
        raise InvalidInput("Tell the customer why the request is declined.", "message")
    if new is RequestStatus.COMPLETED:
        today = today or now.date()
        day = work_date(request)
        if day is not None and day > today:
            raise InvalidInput(
                f"This request is for {day.isoformat()}: it is done on or after that day, not before. "
                "Mark it scheduled until then.",
                "action",
            )
        account = session.get(Account, request.account_id) if request.account_id else None
        if request.kind in ("stop", "transfer") and account is not None and account.status == AccountStatus.ACTIVE:
            raise InvalidInput(
                "Service on the account has not stopped: stop it on the account page, and the final bill "
                "marks this request done.",
                "action",
            )
    if note.strip():
        stamp = f"{now:%Y-%m-%d %H:%M} {staff.email}: {note.strip()}"
        request.staff_note = f"{request.staff_note}\n{stamp}" if request.staff_note else stamp
    _move(session, request, new, staff, now, message or request.message)


def _move(
    session: Session, request: ServiceRequest, new: RequestStatus, actor: User, now: datetime, message: str | None
) -> None:
    before = request.status
    move(REQUEST_TRANSITIONS, request, new)
    request.message = message
    request.updated_at = now
    if actor.role != Role.CUSTOMER:
        request.handled_by_id = actor.id
    audit.record(
        session,
        f"service_request.{new.value}",
        actor=actor,
        entity_type="service_request",
        entity_id=request.id,
        before={"status": before},
        after={"status": new.value, "message": message},
    )


def complete_stops_for(
    session: Session, account: Account, staff: User, now: datetime, today: date | None = None
) -> list[int]:
    """Service on the account was stopped by staff (its final bill posted): its open stop
    requests are done. A move whose new service starts later is only scheduled until then.
    Returns the ids of the requests that changed (the customers are told)."""
    today = today or now.date()
    changed: list[int] = []
    for request in session.scalars(
        select(ServiceRequest).where(
            ServiceRequest.account_id == account.id,
            ServiceRequest.kind.in_(("stop", "transfer")),
            ServiceRequest.status.in_(OPEN),
        )
    ):
        day = work_date(request)
        if day is None or day <= today:
            _move(session, request, RequestStatus.COMPLETED, staff, now, request.message)
        elif request.status == RequestStatus.SUBMITTED:
            _move(session, request, RequestStatus.SCHEDULED, staff, now, request.message)
        else:
            continue
        changed.append(request.id)
    return changed


def queue(session: Session, statuses: tuple[str, ...] = OPEN, kind: str | None = None) -> list[ServiceRequest]:
    """The staff queue: oldest first, so nobody waits longest by accident."""
    stmt = select(ServiceRequest).where(ServiceRequest.status.in_(statuses))
    if kind in KINDS:
        stmt = stmt.where(ServiceRequest.kind == kind)
    return list(session.scalars(stmt.order_by(ServiceRequest.created_at, ServiceRequest.id).limit(500)))
