"""Changing an open account: its contacts and billing address, its class, a service's rate
schedule or carts, starting one more service or stopping one while the account stays open.

What bills depends on (class, rate, carts, services) changes on an **effective date**: the
service row in force then ends that day and a new row with the new terms starts it
(``Service`` runs over ``[started_on, ended_on)``), so the next bill rates the old terms up to
the date and the new ones after it, by days (``bill_runs.drafting`` and ``rating.rate_period``).
A date inside a period already billed is refused: a billed period is corrected by
void-and-rebill, never by back-dating. Contacts change at once.

Every change is audited with what it was before and after (``audit``), on the entity it
changed: ``customer`` (contacts, mailing address), ``account`` (class, paperless) or
``service`` (terms changed, started, stopped). ``describe`` puts an event in plain words for
the account's history.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select
from sqlalchemy.orm import Session

from . import audit, customers, rate_schedules
from .errors import FieldErrors, InvalidInput
from .models import Account, AuditEvent, Bill, Customer, Meter, RateSchedule, RateScheduleVersion, Service, User
from .profile import PHONE
from .status import BillStatus
from .users import EMAIL_RE

LANGUAGES = {"en": "English", "es": "Spanish"}
#: Services that may be started on an account (what the bill run rates).
SERVICE_TYPES = ("water", "sewer", "sanitation")
#: How far ahead a change may be dated.
MAX_AHEAD_DAYS = 366
MAX_CARTS = 9


# --------------------------------------------------------------------------- dates


def billed_through(session: Session, account_id: int) -> date | None:
    """The first day no posted bill covers (the latest posted bill's period end), or None."""
    return session.scalar(
        select(func.max(Bill.period_end)).where(Bill.account_id == account_id, Bill.status == BillStatus.POSTED.value)
    )


def parse_effective(text: str, field: str, *, earliest: date | None, today: date, what: str = "The change") -> date:
    """The effective date typed on a form: a real date, not inside a billed period, at most a
    year ahead."""
    try:
        day = date.fromisoformat(text.strip())
    except ValueError:
        example = today.isoformat()
        raise InvalidInput(f"Enter the date as the date field shows it, for example {example}.", field) from None
    if earliest is not None and day < earliest:
        raise InvalidInput(
            f"{what} cannot take effect before {earliest:%m/%d/%Y}: the account is billed through "
            f"{earliest - timedelta(days=1):%m/%d/%Y}. A billed period is corrected by voiding and rebilling "
            "the bill, not by back-dating a change.",
            field,
        )
    if day > today + timedelta(days=MAX_AHEAD_DAYS):
        raise InvalidInput("Enter a date within a year from today.", field)
    return day


def running_on(service: Service, day: date) -> bool:
    return service.started_on <= day and (service.ended_on is None or day < service.ended_on)


def current_services(account: Account) -> list[Service]:
    """The services not ended, or ending on a day still to come being among them: what a
    change may apply to (any still without an end date)."""
    return [s for s in account.services if s.ended_on is None]


# --------------------------------------------------------------------------- contacts


@dataclass(frozen=True)
class Contacts:
    email: str | None
    phone: str | None
    alt_phone: str | None
    contact_name: str | None
    language: str
    paperless: bool
    mailing: customers.MailingAddress | None


CONTACT_FIELDS = (
    "email",
    "phone",
    "alt_phone",
    "contact_name",
    "preferred_language",
    "paperless",
    "mailing_line1",
    "mailing_city",
    "mailing_state",
    "mailing_zip",
)


def check_contacts(values: Mapping[str, str]) -> Contacts:
    """The contacts form, checked whole: ``FieldErrors`` by field."""
    errors: dict[str, InvalidInput] = {}
    email = values.get("email", "").strip() or None
    if email and (len(email) > 254 or not EMAIL_RE.match(email)):
        errors["email"] = InvalidInput("Enter an email address like name@example.com, or leave it blank.", "email")
    phones: dict[str, str | None] = {}
    for name in ("phone", "alt_phone"):
        text = values.get(name, "").strip()
        if text and (not PHONE.fullmatch(text) or len(re.sub(r"\D", "", text)) < 10):
            errors[name] = InvalidInput("Enter a phone number with its area code, for example (555) 010-2000.", name)
        phones[name] = text[:40] or None
    contact = values.get("contact_name", "").strip() or None
    if contact and len(contact) > 200:
        errors["contact_name"] = InvalidInput("The contact name is too long (200 characters at most).", "contact_name")
    language = values.get("preferred_language", "")
    if language not in LANGUAGES:
        errors["preferred_language"] = InvalidInput("Choose English or Spanish.", "preferred_language")
    paperless = values.get("paperless", "") == "yes"
    if paperless and not email and "email" not in errors:
        errors["paperless"] = InvalidInput("Paperless bills need an email address: enter one first.", "paperless")
    try:
        mailing = customers.parse_mailing_address(
            values.get("mailing_line1", ""),
            values.get("mailing_city", ""),
            values.get("mailing_state", ""),
            values.get("mailing_zip", ""),
        )
    except InvalidInput as exc:
        errors[exc.field or "mailing_line1"] = exc
        mailing = None
    if errors:
        raise FieldErrors(errors)
    return Contacts(email, phones["phone"], phones["alt_phone"], contact, language, paperless, mailing)


def contact_values(account: Account) -> dict[str, str]:
    """The contacts form filled in as the records stand."""
    c = account.customer
    return {
        "email": c.email or "",
        "phone": c.phone or "",
        "alt_phone": c.alt_phone or "",
        "contact_name": c.contact_name or "",
        "preferred_language": c.preferred_language,
        "paperless": "yes" if account.paperless else "no",
        "mailing_line1": c.mailing_line1 or "",
        "mailing_city": c.mailing_city or "",
        "mailing_state": c.mailing_state or "",
        "mailing_zip": c.mailing_zip or "",
    }


def _customer_contacts(c: Customer) -> dict[str, Any]:
    return {
        "email": c.email,
        "phone": c.phone,
        "alt_phone": c.alt_phone,
        "contact_name": c.contact_name,
        "preferred_language": c.preferred_language,
    }


def change_contacts(
    session: Session, account: Account, new: Contacts, actor: User, remote_addr: str | None
) -> list[str]:
    """Record the contacts as the office was told them; what changed (plain words), each
    part audited with before and after. Nothing changed: nothing recorded."""
    done: list[str] = []
    customer = account.customer
    before = _customer_contacts(customer)
    after = {
        "email": new.email,
        "phone": new.phone,
        "alt_phone": new.alt_phone,
        "contact_name": new.contact_name,
        "preferred_language": new.language,
    }
    changed = [k for k in after if before[k] != after[k]]
    if changed:
        for key in changed:
            setattr(customer, key, after[key])
        audit.record(
            session,
            "customer.contacts",
            actor=actor,
            entity_type="customer",
            entity_id=customer.id,
            before={k: before[k] for k in changed},
            after={k: after[k] for k in changed},
            remote_addr=remote_addr,
        )
        done.append("contacts")
    address_before = (customer.mailing_line1, customer.mailing_city, customer.mailing_state, customer.mailing_zip)
    customers.set_mailing_address(session, customer, new.mailing, actor, remote_addr)
    if address_before != (customer.mailing_line1, customer.mailing_city, customer.mailing_state, customer.mailing_zip):
        done.append("mailing address")
    if account.paperless != new.paperless:
        audit.record(
            session,
            "account.paperless",
            actor=actor,
            entity_type="account",
            entity_id=account.id,
            before={"paperless": account.paperless},
            after={"paperless": new.paperless},
            remote_addr=remote_addr,
            detail="recorded by the office",
        )
        account.paperless = new.paperless
        done.append("paperless")
    return done


# --------------------------------------------------------------------------- terms of a service


cart_sizes = rate_schedules.cart_sizes


def version_on(session: Session, schedule: RateSchedule, day: date) -> RateScheduleVersion | None:
    """The approved version of ``schedule`` in force on ``day``."""
    return session.scalar(
        select(RateScheduleVersion)
        .where(
            RateScheduleVersion.schedule_id == schedule.id,
            RateScheduleVersion.effective_on <= day,
            RateScheduleVersion.status == "approved",
        )
        .order_by(RateScheduleVersion.effective_on.desc(), RateScheduleVersion.id.desc())
        .limit(1)
    )


def check_schedule(session: Session, schedule: RateSchedule | None, service_type: str, day: date, field: str) -> None:
    if schedule is None or schedule.service_type != service_type:
        raise InvalidInput(f"Choose a {service_type} rate schedule.", field)
    if version_on(session, schedule, day) is None:
        raise InvalidInput(f"{schedule.name} has no approved rates in force on {day:%m/%d/%Y}.", field)


def check_carts(session: Session, schedule: RateSchedule, day: date, size: str, count: str) -> dict[str, str]:
    """A sanitation service's cart options (``cart_size``, ``carts``), checked against the
    sizes its rates price; ``FieldErrors`` on ``cart_size`` and ``carts``."""
    errors: dict[str, InvalidInput] = {}
    version = version_on(session, schedule, day)
    sizes = cart_sizes(version.definition) if version else []
    options: dict[str, str] = {}
    if sizes:
        if size not in sizes:
            errors["cart_size"] = InvalidInput(f"Choose a cart size the rates price: {', '.join(sizes)} gallons.")
        options["cart_size"] = size
    count = count.strip() or "1"
    if not count.isdigit() or not 1 <= int(count) <= MAX_CARTS:
        errors["carts"] = InvalidInput(f"Enter how many carts, 1 to {MAX_CARTS}.")
    elif int(count) > 1:
        options["carts"] = str(int(count))
    if errors:
        raise FieldErrors(errors)
    return options


def terms(service: Service) -> dict[str, Any]:
    """What a service row is billed by, as its audit shows it."""
    return {
        "service": service.service_type,
        "rate_schedule": service.rate_schedule.name if service.rate_schedule else service.rate_schedule_id,
        "options": dict(service.options or {}),
        "meter": service.meter.serial if service.meter else None,
    }


def change_terms(
    session: Session,
    service: Service,
    day: date,
    actor: User,
    remote_addr: str | None,
    *,
    schedule: RateSchedule | None = None,
    options: dict[str, str] | None = None,
    why: str = "",
) -> Service:
    """From ``day`` on, bill ``service`` by ``schedule`` and/or ``options``: the row in
    force ends the day before and a row with the new terms starts on ``day`` (on the row's
    own first day, the row itself changes). The row in force afterwards."""
    if not running_on(service, day):
        raise InvalidInput(f"That service does not run on {day:%m/%d/%Y}.", "service")
    before = terms(service)
    if day == service.started_on:
        new = service
    else:
        new = Service(
            account_id=service.account_id,
            service_type=service.service_type,
            rate_schedule_id=service.rate_schedule_id,
            meter_id=service.meter_id,
            options=dict(service.options or {}),
            started_on=day,
            ended_on=service.ended_on,
        )
        service.ended_on = day
        session.add(new)
    if schedule is not None:
        new.rate_schedule_id, new.rate_schedule = schedule.id, schedule
    if options is not None:
        new.options = options
    new.meter = service.meter
    session.flush()
    after = terms(new)
    audit.record(
        session,
        "service.changed",
        actor=actor,
        entity_type="service",
        entity_id=new.id,
        before={**before, "service_id": service.id},
        after={**after, "effective_on": day.isoformat()},
        remote_addr=remote_addr,
        detail=why or None,
    )
    return new


def change_class(
    session: Session, account: Account, new_class: str, day: date, actor: User, remote_addr: str | None
) -> list[Service]:
    """The account's customer class from ``day``; each service still running that is billed
    by another class's schedule moves to the one schedule of its kind for the new class
    (when there is exactly one). The services moved."""
    before = account.customer_class
    moved: list[Service] = []
    for service in current_services(account):
        if service.rate_schedule.customer_class == new_class:
            continue
        found = list(
            session.scalars(
                select(RateSchedule).where(
                    RateSchedule.service_type == service.service_type, RateSchedule.customer_class == new_class
                )
            )
        )
        if len(found) == 1:
            on = max(day, service.started_on)
            check_schedule(session, found[0], service.service_type, on, "effective_on")
            moved.append(
                change_terms(session, service, on, actor, remote_addr, schedule=found[0], why="customer class changed")
            )
    account.customer_class = new_class
    audit.record(
        session,
        "account.class",
        actor=actor,
        entity_type="account",
        entity_id=account.id,
        before={"customer_class": before},
        after={"customer_class": new_class, "effective_on": day.isoformat()},
        remote_addr=remote_addr,
    )
    return moved


def start_service(
    session: Session,
    account: Account,
    service_type: str,
    schedule: RateSchedule,
    day: date,
    options: dict[str, str],
    meter: Meter | None,
    actor: User,
    remote_addr: str | None,
) -> Service:
    """A new service on the account from ``day`` (a sanitation service is a set of carts:
    a second one is another cart of its own size)."""
    if service_type != "sanitation" and any(s.service_type == service_type for s in current_services(account)):
        raise InvalidInput(f"The account has {service_type} service already.", "service_type")
    if service_type == "water" and meter is None:
        raise InvalidInput("Water service needs a meter installed at the premise.", "meter")
    service = Service(
        account_id=account.id,
        service_type=service_type,
        rate_schedule_id=schedule.id,
        meter_id=meter.id if meter else None,
        options=options,
        started_on=day,
    )
    session.add(service)
    session.flush()
    service.rate_schedule, service.meter = schedule, meter
    audit.record(
        session,
        "service.started",
        actor=actor,
        entity_type="service",
        entity_id=service.id,
        before=None,
        after={**terms(service), "started_on": day.isoformat()},
        remote_addr=remote_addr,
    )
    return service


def stop_service(
    session: Session, account: Account, service: Service, last_day: date, actor: User, remote_addr: str | None
) -> None:
    """End one service after ``last_day`` while the account stays open (stopping the
    account's last service is stopping the account: its final bill)."""
    ended_on = last_day + timedelta(days=1)
    if ended_on <= service.started_on:
        raise InvalidInput(
            f"The service started on {service.started_on:%m/%d/%Y}: stop it on or after that day.", "last_day"
        )
    others = [s for s in current_services(account) if s.id != service.id]
    if not others:
        raise InvalidInput(
            "This is the account's last service: stop service for the account instead (its final bill).", "service"
        )
    before = {**terms(service), "ended_on": None}
    service.ended_on = ended_on
    audit.record(
        session,
        "service.stopped",
        actor=actor,
        entity_type="service",
        entity_id=service.id,
        before=before,
        after={"last_day": last_day.isoformat()},
        remote_addr=remote_addr,
    )


# --------------------------------------------------------------------------- the history


def history_filter(account: Account, service_ids: list[int]) -> ColumnElement[bool]:
    """Which audit events belong to an account's history: its own, its customer's, its
    premise's and its services'."""
    parts = [
        and_(AuditEvent.entity_type == "account", AuditEvent.entity_id == str(account.id)),
        and_(AuditEvent.entity_type == "customer", AuditEvent.entity_id == str(account.customer_id)),
        and_(AuditEvent.entity_type == "premise", AuditEvent.entity_id == str(account.premise_id)),
    ]
    if service_ids:
        parts.append(and_(AuditEvent.entity_type == "service", AuditEvent.entity_id.in_([str(i) for i in service_ids])))
    return or_(*parts)


ACTION_LABELS = {
    "customer.contacts": "Contacts changed",
    "customer.mailing_address": "Mailing address changed",
    "account.paperless": "Paperless bills changed",
    "account.class": "Customer class changed",
    "service.changed": "Service terms changed",
    "service.started": "Service started",
    "service.stopped": "Service stopped",
}
FIELD_LABELS = {
    "email": "email",
    "phone": "phone",
    "alt_phone": "other phone",
    "contact_name": "contact name",
    "preferred_language": "language",
    "line1": "street",
    "city": "city",
    "state": "state",
    "zip": "ZIP code",
    "paperless": "paperless",
    "customer_class": "class",
    "effective_on": "from",
    "started_on": "from",
    "last_day": "last day",
    "ended_on": "ended",
    "rate_schedule": "rate",
    "options": "carts",
    "meter": "meter",
    "service": "service",
    "service_id": "service row",
}


def shown(key: str, value: Any) -> str:
    if value is None or value == "" or value == {}:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if key == "preferred_language":
        return LANGUAGES.get(str(value), str(value))
    if key == "customer_class":
        return str(value).replace("_", " ").title()
    if key == "options" and isinstance(value, dict):
        size, carts = value.get("cart_size"), value.get("carts", "1")
        if size:
            return f"{carts} × {size} gallons"
        return ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in value.items())
    if isinstance(value, dict):
        return ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in value.items())
    if key in ("effective_on", "started_on", "last_day", "ended_on"):
        try:
            return date.fromisoformat(str(value)).strftime("%m/%d/%Y")
        except ValueError:
            return str(value)
    return str(value)


def _words(data: Mapping[str, Any] | None, skip: tuple[str, ...] = ()) -> str:
    if not data:
        return ""
    return "; ".join(
        f"{FIELD_LABELS.get(k, k.replace('_', ' '))}: {shown(k, v)}" for k, v in data.items() if k not in skip
    )


@dataclass(frozen=True)
class Described:
    what: str
    before: str
    after: str


def describe(event: AuditEvent) -> Described:
    """An audit event in plain words: what happened, and before → after."""
    what = ACTION_LABELS.get(event.action) or event.action.replace(".", " ").replace("_", " ").capitalize()
    if event.entity_type and event.action not in ACTION_LABELS and event.entity_type not in ("account", "customer"):
        what = f"{what} ({event.entity_type.replace('_', ' ')} {event.entity_id})"
    if event.detail:
        what = f"{what}: {event.detail}"
    return Described(what, _words(event.before, ("service_id",)), _words(event.after))
