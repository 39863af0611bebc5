"""Maintaining an account from the staff account page: its contacts and billing address,
class, a service's rate or carts, starting a service or stopping one while the account stays
open (``billing_core.account_changes``), and the account's history (its audit events).

Each change is one use case in the caller's transaction, checked whole: a refusal raises
``FieldErrors`` by the form's field and writes nothing (the writes are in a savepoint undone
before the error is raised). Who may change an account: ``Action.ACCOUNTS_CHANGE``."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from ..billing_core import account_changes as rules
from ..billing_core import permissions
from ..billing_core.errors import FieldErrors, InvalidInput, NotFound
from ..billing_core.models import Account, AuditEvent, Meter, MeterStatus, RateSchedule, Service, User
from ..billing_core.permissions import Action

#: The changes, by the page's address (``/staff/accounts/N/change/<kind>``): heading, and
#: the form's fields.
KINDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "contacts": ("Contacts and billing address", rules.CONTACT_FIELDS),
    "class": ("Customer class", ("customer_class", "effective_on")),
    "rate": ("Rate schedule of a service", ("service", "rate_schedule", "effective_on")),
    "carts": ("Carts of a sanitation service", ("service", "cart_size", "carts", "effective_on")),
    "start": ("Start a service", ("service_type", "rate_schedule", "meter", "cart_size", "carts", "effective_on")),
    "stop": ("Stop one service", ("service", "last_day")),
}
HISTORY_PAGE = 50


def _account(session: Session, number: str) -> Account:
    account = session.scalars(
        select(Account)
        .where(Account.number == number)
        .options(
            selectinload(Account.customer),
            selectinload(Account.services).selectinload(Service.meter),
            selectinload(Account.services).selectinload(Service.rate_schedule),
        )
        .execution_options(populate_existing=True)
    ).first()
    if account is None:
        raise NotFound(f"account {number}")
    return account


@dataclass(frozen=True)
class ChangePage:
    account: Account
    kind: str
    heading: str
    #: The first day a change may take effect (the day after the last billed period), or None.
    earliest: date | None
    #: The services a change may apply to: those with no end date.
    services: list[Service]
    #: Rate schedules by service type, named.
    schedules: dict[str, list[RateSchedule]]
    classes: list[str]
    #: Meters installed at the premise (for starting water).
    meters: list[Meter]
    #: schedule id -> the cart sizes its rates price (sanitation).
    cart_sizes: dict[int, list[str]] = field(default_factory=dict)
    #: What the form starts with.
    values: dict[str, str] = field(default_factory=dict)


def change_page(session: Session, actor: User, number: str, kind: str, *, today: date) -> ChangePage:
    """What a change form shows, filled in as the account stands."""
    permissions.require(actor, Action.ACCOUNTS_CHANGE)
    if kind not in KINDS:
        raise NotFound(f"change {kind}")
    account = _account(session, number)
    earliest = rules.billed_through(session, account.id)
    schedules: dict[str, list[RateSchedule]] = {}
    for schedule in session.scalars(select(RateSchedule).order_by(RateSchedule.service_type, RateSchedule.name)):
        schedules.setdefault(schedule.service_type, []).append(schedule)
    sizes: dict[int, list[str]] = {}
    for schedule in schedules.get("sanitation", []):
        version = rules.version_on(session, schedule, max(today, earliest or today))
        if version is not None:
            sizes[schedule.id] = rules.cart_sizes(version.definition)
    classes = sorted({s.customer_class for group in schedules.values() for s in group} | {account.customer_class})
    meters = list(
        session.scalars(
            select(Meter)
            .where(Meter.premise_id == account.premise_id, Meter.status == MeterStatus.INSTALLED.value)
            .order_by(Meter.serial)
        )
    )
    services = rules.current_services(account)
    start_day = max(today, earliest or today).isoformat()
    values: dict[str, str] = {"effective_on": start_day, "last_day": today.isoformat()}
    if kind == "contacts":
        values = rules.contact_values(account)
    elif kind == "class":
        values["customer_class"] = account.customer_class
    elif kind == "carts":
        carts = [s for s in services if s.service_type == "sanitation"]
        if carts:
            values |= {
                "service": str(carts[0].id),
                "cart_size": str(carts[0].options.get("cart_size", "")),
                "carts": str(carts[0].options.get("carts", "1")),
            }
    elif kind == "start":
        values["carts"] = "1"
    return ChangePage(
        account,
        kind,
        KINDS[kind][0],
        earliest,
        services,
        schedules,
        classes,
        meters,
        sizes,
        values,
    )


def _service(account: Account, text: str, kind: str | None = None) -> Service:
    for service in rules.current_services(account):
        if str(service.id) == text and (kind is None or service.service_type == kind):
            return service
    raise InvalidInput(
        "Choose one of the account's services." if kind is None else f"Choose a {kind} service.", "service"
    )


def _schedule(session: Session, text: str) -> RateSchedule | None:
    return session.get(RateSchedule, int(text)) if text.isdigit() else None


def apply_change(
    session: Session,
    actor: User,
    number: str,
    kind: str,
    values: dict[str, str],
    *,
    today: date,
    remote_addr: str | None,
) -> str:
    """Make one change from its form; what was done, in a sentence for the account page.
    ``FieldErrors`` by field (``form`` for the whole) and nothing written when refused."""
    permissions.require(actor, Action.ACCOUNTS_CHANGE)
    if kind not in KINDS:
        raise NotFound(f"change {kind}")
    account = _account(session, number)
    try:
        with session.begin_nested():
            return _apply(session, actor, account, kind, values, today, remote_addr)
    except InvalidInput as exc:
        session.expire_all()
        named = exc.field if exc.field in KINDS[kind][1] else "form"
        raise FieldErrors({named: exc}) from exc
    except FieldErrors:
        session.expire_all()
        raise


def _effective(values: dict[str, str], earliest: date | None, today: date, errors: dict[str, InvalidInput]) -> date:
    try:
        return rules.parse_effective(values.get("effective_on", ""), "effective_on", earliest=earliest, today=today)
    except InvalidInput as exc:
        errors["effective_on"] = exc
        return today


def _apply(
    session: Session,
    actor: User,
    account: Account,
    kind: str,
    values: dict[str, str],
    today: date,
    remote_addr: str | None,
) -> str:
    if kind == "contacts":
        done = rules.change_contacts(session, account, rules.check_contacts(values), actor, remote_addr)
        return f"Changed the {' and '.join(done)}." if done else "Nothing to change: the contacts are as entered."
    if account.status != "active":
        raise InvalidInput(f"The account is {account.status}: only an active account's services change.", "form")
    earliest = rules.billed_through(session, account.id)
    errors: dict[str, InvalidInput] = {}
    if kind == "class":
        day = _effective(values, earliest, today, errors)
        new_class = values.get("customer_class", "")
        known = set(session.scalars(select(RateSchedule.customer_class).distinct()))
        if new_class not in known:
            errors["customer_class"] = InvalidInput("Choose a class that has rate schedules.", "customer_class")
        elif new_class == account.customer_class:
            errors["customer_class"] = InvalidInput("The account is in that class already.", "customer_class")
        if errors:
            raise FieldErrors(errors)
        moved = rules.change_class(session, account, new_class, day, actor, remote_addr)
        label = new_class.replace("_", " ").title()
        rates = f"; {len(moved)} service(s) move to that class's rates" if moved else ""
        return f"The account is {label} from {day:%m/%d/%Y}{rates}."
    if kind == "stop":
        try:
            service = _service(account, values.get("service", ""))
        except InvalidInput as exc:
            errors["service"] = exc
            service = None
        try:
            last = date.fromisoformat(values.get("last_day", "").strip())
        except ValueError:
            errors["last_day"] = InvalidInput(
                f"Enter the date as the date field shows it, for example {today:%Y-%m-%d}."
            )
            last = None
        if last is not None:
            if earliest is not None and last < earliest - timedelta(days=1):
                errors["last_day"] = InvalidInput(
                    f"The account is billed through {earliest - timedelta(days=1):%m/%d/%Y}: stop the service on "
                    "or after that day. A billed period is corrected by voiding and rebilling the bill, not by "
                    "back-dating a change."
                )
            elif last > today + timedelta(days=rules.MAX_AHEAD_DAYS):
                errors["last_day"] = InvalidInput("Enter a date within a year from today.")
        if errors:
            raise FieldErrors(errors)
        assert service is not None and last is not None
        rules.stop_service(session, account, service, last, actor, remote_addr)
        return f"{service.service_type.capitalize()} service stops after {last:%m/%d/%Y}; the account stays open."
    day = _effective(values, earliest, today, errors)
    if kind == "rate":
        try:
            service = _service(account, values.get("service", ""))
        except InvalidInput as exc:
            errors["service"] = exc
            service = None
        schedule = _schedule(session, values.get("rate_schedule", ""))
        if service is not None:
            try:
                rules.check_schedule(session, schedule, service.service_type, day, "rate_schedule")
                if schedule is not None and schedule.id == service.rate_schedule_id:
                    raise InvalidInput("The service is billed by that schedule already.", "rate_schedule")
            except InvalidInput as exc:
                errors["rate_schedule"] = exc
            if "effective_on" not in errors and day < service.started_on:
                errors["effective_on"] = InvalidInput(f"The service starts on {service.started_on:%m/%d/%Y}.")
        if errors:
            raise FieldErrors(errors)
        assert service is not None and schedule is not None
        rules.change_terms(session, service, day, actor, remote_addr, schedule=schedule)
        return f"{service.service_type.capitalize()} is billed by {schedule.name} from {day:%m/%d/%Y}."
    if kind == "carts":
        try:
            service = _service(account, values.get("service", ""), "sanitation")
        except InvalidInput as exc:
            errors["service"] = exc
            service = None
        options: dict[str, str] = {}
        if service is not None:
            try:
                options = rules.check_carts(
                    session, service.rate_schedule, day, values.get("cart_size", ""), values.get("carts", "")
                )
            except FieldErrors as exc:
                errors.update(exc.errors)
            if not errors and options == (service.options or {}):
                errors["cart_size"] = InvalidInput("The carts are as entered already: change the size or the count.")
            if "effective_on" not in errors and day < service.started_on:
                errors["effective_on"] = InvalidInput(f"The service starts on {service.started_on:%m/%d/%Y}.")
        if errors:
            raise FieldErrors(errors)
        assert service is not None
        rules.change_terms(session, service, day, actor, remote_addr, options=options)
        return f"The carts change from {day:%m/%d/%Y}: {rules.shown('options', options)}."
    # start
    service_type = values.get("service_type", "")
    if service_type not in rules.SERVICE_TYPES:
        errors["service_type"] = InvalidInput("Choose water, sewer or sanitation.")
    schedule = _schedule(session, values.get("rate_schedule", ""))
    options = {}
    meter = None
    if "service_type" not in errors:
        try:
            rules.check_schedule(session, schedule, service_type, day, "rate_schedule")
        except InvalidInput as exc:
            errors["rate_schedule"] = exc
        if service_type == "sanitation" and schedule is not None and "rate_schedule" not in errors:
            try:
                options = rules.check_carts(
                    session, schedule, day, values.get("cart_size", ""), values.get("carts", "")
                )
            except FieldErrors as exc:
                errors.update(exc.errors)
        if service_type == "water":
            meter = next(
                (
                    m
                    for m in session.scalars(
                        select(Meter).where(
                            Meter.premise_id == account.premise_id,
                            Meter.status == MeterStatus.INSTALLED.value,
                            Meter.id == (int(values["meter"]) if values.get("meter", "").isdigit() else -1),
                        )
                    )
                ),
                None,
            )
            if meter is None:
                errors["meter"] = InvalidInput("Choose a meter installed at the premise.")
        if service_type != "sanitation" and any(
            s.service_type == service_type for s in rules.current_services(account)
        ):
            errors["service_type"] = InvalidInput(f"The account has {service_type} service already.")
    if errors:
        raise FieldErrors(errors)
    assert schedule is not None
    rules.start_service(session, account, service_type, schedule, day, options, meter, actor, remote_addr)
    return f"{service_type.capitalize()} service starts on {day:%m/%d/%Y}, billed by {schedule.name}."


@dataclass(frozen=True)
class HistoryRow:
    event: AuditEvent
    words: rules.Described


@dataclass(frozen=True)
class HistoryPage:
    account: Account
    rows: list[HistoryRow]
    page: int
    pages: int
    total: int


def history(session: Session, number: str, page: int = 1) -> HistoryPage:
    """The account's audit events (its own, its customer's, premise's and services'),
    newest first, 50 a page."""
    account = session.scalar(select(Account).where(Account.number == number))
    if account is None:
        raise NotFound(f"account {number}")
    service_ids = list(session.scalars(select(Service.id).where(Service.account_id == account.id)))
    where = rules.history_filter(account, service_ids)
    total = session.scalar(select(func.count(AuditEvent.id)).where(where)) or 0
    pages = max(1, -(-total // HISTORY_PAGE))
    page = min(max(page, 1), pages)
    events = session.scalars(
        select(AuditEvent)
        .where(where)
        .order_by(AuditEvent.occurred_at.desc(), AuditEvent.id.desc())
        .offset((page - 1) * HISTORY_PAGE)
        .limit(HISTORY_PAGE)
    )
    return HistoryPage(account, [HistoryRow(e, rules.describe(e)) for e in events], page, pages, total)
