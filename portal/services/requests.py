"""Start, stop and transfer requests: the customer asks and follows them, staff work them
from a queue (``billing_core/service_requests.py`` holds the rules).

Each function is one use case in the caller's transaction; the clock (``now``, ``today``)
comes from the caller. Staff steps check the permission table first
(``Action.REQUESTS_HANDLE``), and the applicant's date of birth and ID digits are shown only
to roles that may see them, each showing written to the audit trail.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy.orm import Session

from ..billing_core import accounts, audit, bill_runs, outbox, permissions, service_requests
from ..billing_core.errors import NotFound
from ..billing_core.models import Account, AccountStatus, EmailOutbox, ServiceRequest, User
from ..billing_core.permissions import Action, Field
from ..billing_core.status import RequestStatus
from .customers import account_numbers

#: The staff queue's filters: what is still to do, and what is finished.
SHOW = {"open": service_requests.OPEN, "done": service_requests.DONE}


# --- The customer's side -----------------------------------------------------------------


@dataclass(frozen=True)
class MyRequests:
    requests: list[ServiceRequest]
    #: account id -> number, for the accounts linked to the sign-in
    numbers: dict[int, str]


def my_requests(session: Session, user: User) -> MyRequests:
    mine = service_requests.for_user(session, user)
    return MyRequests(mine, {a.id: a.number for a in accounts.accounts_for_user(session, user)})


@dataclass(frozen=True)
class RequestForm:
    """What the request form offers: the accounts whose service can stop or move, and what
    the form starts filled in with."""

    accounts: list[Account]
    defaults: dict[str, str]
    max_days: int = service_requests.MAX_DAYS_AHEAD


def request_form(session: Session, user: User, account_number: str | None = None) -> RequestForm:
    """The form for a new request; ``account_number`` preselects an account (else the first)."""
    linked = accounts.accounts_for_user(session, user)
    first = linked[0] if linked else None
    defaults = {
        "account": account_number if account_number is not None else (first.number if first else ""),
        "contact_name": user.display_name or (first.customer.name if first else ""),
        "contact_phone": (first.customer.phone or "") if first else "",
    }
    active = [a for a in linked if a.status == AccountStatus.ACTIVE]
    return RequestForm(active, defaults)


def submit(
    session: Session,
    user: User,
    kind: str,
    values: dict[str, str],
    locale: str,
    today: date,
    now: datetime,
    remote_addr: str | None,
) -> ServiceRequest:
    """Check the request whole and write it, or raise ``FieldErrors`` and write nothing."""
    return service_requests.submit(session, user, kind, service_requests.Form(values, locale), today, now, remote_addr)


def _mine(session: Session, user: User, request_id: str) -> ServiceRequest:
    item = service_requests.one_for_user(session, user, request_id)
    if item is None:
        raise NotFound(request_id)
    return item


@dataclass(frozen=True)
class MyRequest:
    item: ServiceRequest
    #: The account's number (None for a start, which has no account yet)
    number: str | None


def my_request(session: Session, user: User, request_id: str) -> MyRequest:
    """One of ``user``'s own requests, or ``NotFound`` (someone else's does not exist)."""
    item = _mine(session, user, request_id)
    numbers = {a.id: a.number for a in accounts.accounts_for_user(session, user)}
    return MyRequest(item, numbers.get(item.account_id) if item.account_id else None)


def cancel(session: Session, user: User, request_id: str, now: datetime) -> ServiceRequest:
    """The customer cancels their own request; ``InvalidInput`` once staff work on it."""
    item = _mine(session, user, request_id)
    service_requests.cancel(session, item, user, now)
    return item


# --- The staff queue -----------------------------------------------------------------------


@dataclass(frozen=True)
class Queue:
    items: list[ServiceRequest]
    numbers: dict[int, str]
    #: Final bills held for a supervisor (shown above the queue), and their accounts' numbers
    held: list
    held_numbers: dict[int, str]


def queue(session: Session, show: str, kind: str | None) -> Queue:
    """The requests to work (``show`` "open") or finished ("done"), oldest first."""
    items = service_requests.queue(session, SHOW.get(show, service_requests.OPEN), kind or None)
    held = bill_runs.held_final_bills(session)
    return Queue(
        items=items,
        numbers=account_numbers(session, (i.account_id for i in items)),
        held=held,
        held_numbers=account_numbers(session, (h.account_id for h in held)),
    )


@dataclass(frozen=True)
class StaffRequest:
    item: ServiceRequest
    account: Account | None
    requester: User | None
    #: What staff may mark it next
    actions: tuple[RequestStatus, ...]
    can_act: bool
    emails: list[EmailOutbox]
    #: The sensitive fields this reader may see (``permissions.Field``)
    shown: frozenset[Field]
    #: This reader may open the account a start asks for (or the transfer's new one) from it:
    #: the opening form is pre-filled from the request (issue 16, ``services/account_opening``).
    can_open: bool = False


def _get(session: Session, request_id: int | str, lock: bool = False) -> ServiceRequest:
    """The request by its id (as a number or as the page's address has it), or ``NotFound``."""
    try:
        number = int(request_id)
    except ValueError:
        raise NotFound(str(request_id)) from None
    item = session.get(ServiceRequest, number, with_for_update=lock)
    if item is None:
        raise NotFound(str(request_id))
    return item


def staff_request(session: Session, staff: User, request_id: int | str, remote_addr: str | None = None) -> StaffRequest:
    """A request as staff see it. Any staff role may read it; the applicant's date of birth
    and ID digits only a role that may see them (``permissions.may_see``), and each showing
    is audited (one row per audit action, naming the fields shown)."""
    return _staff_page(session, staff, _get(session, request_id), remote_addr)


def _staff_page(session: Session, staff: User, item: ServiceRequest, remote_addr: str | None) -> StaffRequest:
    present = {Field.BIRTH_DATE: item.birth_date is not None, Field.ID_LAST4: bool(item.id_last4)}
    shown = frozenset(f for f, there in present.items() if there and permissions.may_see(staff.role, f))
    by_action: dict[str, list[str]] = {}
    for field in sorted(shown, key=lambda f: f.value):
        by_action.setdefault(permissions.FIELDS[field].audit_action, []).append(field.value)
    for action, fields in by_action.items():
        audit.record(
            session,
            action,
            actor=staff,
            entity_type="service_request",
            entity_id=item.id,
            after={"fields": fields},
            remote_addr=remote_addr,
        )
    return StaffRequest(
        item=item,
        account=session.get(Account, item.account_id) if item.account_id else None,
        requester=session.get(User, item.user_id),
        actions=service_requests.staff_actions(item.status),
        can_act=permissions.can(staff.role, Action.REQUESTS_HANDLE),
        emails=outbox.about(session, "service_request", item.id),
        shown=shown,
        can_open=item.kind in ("start", "transfer")
        and item.status in service_requests.OPEN
        and permissions.can(staff.role, Action.ACCOUNTS_OPEN)
        and (
            item.kind == "start"
            or (permissions.can(staff.role, Action.ACCOUNTS_CHANGE) and permissions.can(staff.role, Action.BILLS_FINAL))
        ),
    )


def handle(
    session: Session,
    staff: User,
    request_id: int | str,
    action: str,
    message: str,
    note: str,
    now: datetime,
    today: date,
) -> ServiceRequest:
    """Staff mark a request scheduled, done or declined (``service_requests.handle``):
    ``NotAllowed`` for a role that does not work requests, ``InvalidInput`` for a step the
    request cannot take (the caller shows the page again with ``staff_request``)."""
    permissions.require(staff, Action.REQUESTS_HANDLE)
    item = _get(session, request_id, lock=True)
    service_requests.handle(session, item, action, staff, now, message, note, today)
    return item
