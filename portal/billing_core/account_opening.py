"""Opening an account, and moving a customer's balance when they transfer: the rules.

A new account is set up from one form (from a resident's start request or from scratch):
the customer (person or business, contacts, language, identity facts), the premise (its
address parsed with ``usaddress`` and reduced to an ``address_key``), the account (class,
cycle and route, billing address), its services (water, sewer, sanitation with carts), each
on an approved rate version in force, the deposit the money policy asks, and a turn-on work
order. ``check`` reads the whole form and reports every problem by field
(``FieldErrors``) before anything is written.

Duplicates: before writing, the customers with the same name and date of birth (or the
same email) and the premises with the same ``address_key`` are found
(``possible_duplicates``); the form is refused (``DuplicatesFound``) until staff choose to
reuse one or to make a new one. A premise with an active account taking a service is
refused a second active account for that service (stop or transfer the first).

Carts: a sanitation service is billed by cart size (the rate's ``fixed_by_option`` on
``cart_size``) once per cart: ``n`` carts of a size are one sanitation service with the
options ``cart_size`` and ``carts`` (the rate engine charges the size's price times the
count; a cart of another size is a second sanitation service, as account changes add it).

Balance transfer: the old account's balance (its receivables by service, and its credit
not already asked as a refund) moves to the new account in two balanced transactions, one
on each account, through the ``BALANCE_TRANSFERS`` clearing account, which nets to zero
over each pair (``transfer_problems`` is part of ``portal ledger check``).

No wall clock here: dates and moments are passed in.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import usaddress  # type: ignore[import-untyped]  # no stubs published
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from . import customers, ledger, rate_schedules, service_requests
from .deposits import months_before
from .errors import FieldErrors, InvalidInput
from .models import (
    Account,
    AccountStatus,
    BillingCycle,
    Customer,
    LedgerEntry,
    LedgerTransaction,
    Meter,
    MeterStatus,
    Premise,
    RateSchedule,
    RateScheduleVersion,
    Route,
    Service,
    User,
    WorkOrder,
)
from .numbers import account_number

CUSTOMER_KINDS = {"person": "Person", "business": "Business"}
LANGUAGES = {"en": "English", "es": "Spanish"}
#: The services an account is opened with, in the order the form shows them.
SERVICES = ("water", "sewer", "sanitation")
MAX_CARTS = 6
MAX_UNITS = 500
#: How far ahead an account may be opened.
MAX_DAYS_AHEAD = 90
#: The clearing account a balance transfer passes through (two transactions, one per account).
BALANCE_TRANSFERS = "CLEARING:BALANCE_TRANSFERS"
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
PHONE = service_requests.PHONE

# --- Addresses -------------------------------------------------------------------------------

#: Street types and directions reduced to the USPS abbreviations, for the address key.
_SUFFIXES = {
    "STREET": "ST", "STR": "ST", "AVENUE": "AVE", "AV": "AVE", "AVEN": "AVE", "ROAD": "RD",
    "DRIVE": "DR", "DRIV": "DR", "BOULEVARD": "BLVD", "BOUL": "BLVD", "LANE": "LN", "COURT": "CT",
    "PLACE": "PL", "CIRCLE": "CIR", "TERRACE": "TER", "PARKWAY": "PKWY", "HIGHWAY": "HWY",
    "WAY": "WAY", "TRAIL": "TRL", "SQUARE": "SQ", "LOOP": "LOOP",
}  # fmt: skip
_DIRECTIONS = {
    "NORTH": "N", "SOUTH": "S", "EAST": "E", "WEST": "W",
    "NORTHEAST": "NE", "NORTHWEST": "NW", "SOUTHEAST": "SE", "SOUTHWEST": "SW",
}  # fmt: skip
_UNIT_TYPES = {"APARTMENT": "APT", "SUITE": "STE", "UNIT": "UNIT", "BUILDING": "BLDG", "SPACE": "SPC"}


def _clean(text: str) -> str:
    """Upper case, letters (any alphabet: Peña), digits, ``#`` and single spaces."""
    return " ".join(re.sub(r"[^\w# ]+|_", "", text.upper().replace("-", " ")).split())


def _title(street: str) -> str:
    """``123 N MAIN ST`` as ``123 N Main St`` (and ``1ST`` as ``1st``)."""
    return " ".join(w.lower() if w[:1].isdigit() else w.capitalize() for w in street.split())


def _word(text: str, table: Mapping[str, str]) -> str:
    word = _clean(text).replace(" ", "")
    return table.get(word, word)


@dataclass(frozen=True)
class PremiseAddress:
    """A service address as parsed: the street line as stored, the unit, and the key that
    finds the same premise typed another way (``123 North Main Street`` is ``123 N MAIN ST``)."""

    line1: str
    line2: str | None
    city: str
    state: str
    zip: str
    key: str


def parse_premise_address(line1: str, line2: str, city: str, state: str, zip_code: str) -> PremiseAddress:
    """The service address, parsed with ``usaddress``, or ``FieldErrors`` by field
    (``service_line1`` ... ``service_zip``): a street number and street name are needed (a
    post office box is not a place water is served)."""
    errors: dict[str, InvalidInput] = {}
    line1, line2, city = line1.strip(), line2.strip(), city.strip()
    try:
        mailing = customers.parse_mailing_address(line1 or "1 Main St", city or "City", state, zip_code, "service")
    except InvalidInput as exc:
        errors[exc.field or "service_line1"] = exc
        mailing = None
    if not city:
        errors["service_city"] = InvalidInput("Enter the city.", "service_city")
    tags: Mapping[str, str] = {}
    if not line1:
        errors["service_line1"] = InvalidInput("Enter the street address.", "service_line1")
    else:
        try:
            tags, kind = usaddress.tag(line1)
        except usaddress.RepeatedLabelError:
            kind = "Ambiguous"
        if kind == "PO Box" or "USPSBoxID" in tags:
            errors["service_line1"] = InvalidInput(
                "A post office box is not a service address: enter the street address of the premise.",
                "service_line1",
            )
        elif kind != "Street Address" or not tags.get("AddressNumber") or not tags.get("StreetName"):
            missing = "street number" if not tags.get("AddressNumber") else "street name"
            errors["service_line1"] = InvalidInput(
                f"This address could not be read: it needs a {missing}, like 1234 Oak Ave.", "service_line1"
            )
    if errors:
        raise FieldErrors(errors)
    assert mailing is not None
    street = " ".join(
        part
        for part in (
            _clean(tags.get("AddressNumber", "")).replace(" ", ""),
            _word(tags.get("StreetNamePreDirectional", ""), _DIRECTIONS),
            _clean(tags.get("StreetNamePreModifier", "")),
            _word(tags.get("StreetNamePreType", ""), _SUFFIXES),
            _clean(tags.get("StreetName", "")),
            _word(tags.get("StreetNamePostType", ""), _SUFFIXES),
            _word(tags.get("StreetNamePostDirectional", ""), _DIRECTIONS),
        )
        if part
    )
    unit_tags = tags
    if not tags.get("OccupancyIdentifier") and line2:
        try:  # the unit on its own line, read as if it followed a street
            unit_tags, _kind = usaddress.tag(f"1 Main St {line2}")
        except usaddress.RepeatedLabelError:
            unit_tags = {}
    unit_id = _clean(unit_tags.get("OccupancyIdentifier", "")).replace("#", "").replace(" ", "")
    unit_type = _word(unit_tags.get("OccupancyType", ""), _UNIT_TYPES) if unit_tags.get("OccupancyType") else ""
    unit = f"{unit_type or '#'} {unit_id}".replace("# ", "#") if unit_id else None
    if unit is None and line2:
        # A unit usaddress does not recognise ("Rear", "Lot 12 B") is kept as typed.
        unit = line2[:100]
        unit_id = _clean(line2).replace(" ", "")
    key = " ".join(p for p in (street, f"#{unit_id}" if unit_id else "", mailing.zip[:5]) if p)
    return PremiseAddress(_title(street), unit, mailing.city, mailing.state, mailing.zip, key)


# --- Choices the form offers -----------------------------------------------------------------


def approved_version(schedule: RateSchedule, on: date) -> RateScheduleVersion | None:
    """The approved version of ``schedule`` in force on ``on`` (a proposed or rejected one
    never bills): ``rate_schedules.version_in_force``."""
    return rate_schedules.version_in_force(schedule, on)


def cart_sizes(version: RateScheduleVersion | None) -> list[str]:
    """The cart sizes a sanitation rate prices (empty for a rate without carts)."""
    return rate_schedules.cart_sizes(version.definition if version is not None else None)


# --- The form ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServicePlan:
    service_type: str
    schedule: RateSchedule
    version: RateScheduleVersion
    options: dict[str, str] = field(default_factory=dict)


@dataclass
class Plan:
    """What the form asks for, checked: nothing here is written yet."""

    kind: str
    name: str
    contact_name: str | None
    email: str | None
    phone: str | None
    alt_phone: str | None
    language: str
    birth_date: date | None
    id_last4: str | None
    address: PremiseAddress | None
    parcel_number: str | None
    dwelling_units: int
    customer_class: str
    cycle: BillingCycle
    route: Route | None
    start_on: date
    turn_on_due: date
    mailing: customers.MailingAddress | None
    services: list[ServicePlan]
    reuse_customer: Customer | None = None
    reuse_premise: Premise | None = None


@dataclass(frozen=True)
class Choices:
    cycles: list[BillingCycle]
    routes: list[Route]
    schedules: dict[str, list[RateSchedule]]
    classes: list[str]


def choices(session: Session) -> Choices:
    cycles = list(session.scalars(select(BillingCycle).order_by(BillingCycle.code)))
    routes = list(session.scalars(select(Route).order_by(Route.code)))
    found = list(session.scalars(select(RateSchedule).order_by(RateSchedule.service_type, RateSchedule.name)))
    by_service: dict[str, list[RateSchedule]] = {s: [] for s in SERVICES}
    for schedule in found:
        if schedule.service_type in by_service:
            by_service[schedule.service_type].append(schedule)
    classes = sorted({s.customer_class for s in found})
    return Choices(cycles, routes, by_service, classes)


def _day(text: str, name: str, what: str, errors: dict[str, InvalidInput]) -> date | None:
    try:
        return service_requests.parse_day(text.strip(), "en")
    except ValueError:
        errors[name] = InvalidInput(f"Enter {what} as the date field shows it, for example 03/15/2027.", name)
        return None


def _int(text: str, name: str, low: int, high: int, what: str, errors: dict[str, InvalidInput]) -> int | None:
    text = text.strip()
    if not text.isdigit() or not low <= int(text) <= high:
        errors[name] = InvalidInput(f"Enter {what}: a whole number from {low} to {high}.", name)
        return None
    return int(text)


def _by_id(items: Iterable[Any], text: str) -> Any:
    """The item whose id (as the form sends it) or code (as the command line gives it) is ``text``."""
    text = text.strip()
    return next((i for i in items if text in (str(i.id), getattr(i, "code", None))), None) if text else None


def check(
    session: Session,
    values: Mapping[str, str],
    today: date,
    *,
    identity_allowed: bool,
    fixed_customer: Customer | None = None,
) -> Plan:
    """The whole form, checked: a ``Plan`` to write, or ``FieldErrors`` naming every field
    that is wrong (nothing written). ``identity_allowed``: the reader may enter the date of
    birth and ID digits (``permissions.may_see``); else they are ignored. ``fixed_customer``:
    a transfer, whose customer is the old account's."""

    def get(name: str) -> str:
        return str(values.get(name, "") or "").strip()

    errors: dict[str, InvalidInput] = {}
    offered = choices(session)

    # The customer: reused, or new.
    reuse_customer = fixed_customer
    if reuse_customer is None and get("customer_choice") not in ("", "new"):
        reuse_customer = (
            session.get(Customer, int(get("customer_choice"))) if get("customer_choice").isdigit() else None
        )
        if reuse_customer is None:
            errors["customer_choice"] = InvalidInput(
                "Choose one of the customers listed, or a new customer.", "customer_choice"
            )
    kind = get("customer_kind") or "person"
    if kind not in CUSTOMER_KINDS:
        errors["customer_kind"] = InvalidInput("Choose a person or a business.", "customer_kind")
    name = get("name")[:200]
    contact_name = get("contact_name")[:200] or None
    email = get("email").lower()[:254] or None
    phone = get("phone")[:40] or None
    alt_phone = get("alt_phone")[:40] or None
    language = get("language") or "en"
    birth_date: date | None = None
    id_last4: str | None = None
    if reuse_customer is None:
        if not name:
            errors["name"] = InvalidInput(
                "Enter the business's name." if kind == "business" else "Enter the customer's full name.", "name"
            )
        if kind == "business" and not contact_name:
            errors["contact_name"] = InvalidInput("Enter the person to ask for at the business.", "contact_name")
        if email and not EMAIL.fullmatch(email):
            errors["email"] = InvalidInput("Enter an email address like name@example.com, or leave it empty.", "email")
        for key, value in (("phone", phone), ("alt_phone", alt_phone)):
            if value and (not PHONE.fullmatch(value) or len(re.sub(r"\D", "", value)) < 10):
                errors[key] = InvalidInput("Enter a phone number with its area code, like (555) 010-2000.", key)
        if not phone:
            errors["phone"] = InvalidInput("Enter a phone number with its area code, like (555) 010-2000.", "phone")
        if language not in LANGUAGES:
            errors["language"] = InvalidInput("Choose English or Spanish.", "language")
        if identity_allowed and kind == "person":
            if get("birth_date"):
                birth_date = _day(get("birth_date"), "birth_date", "the date of birth", errors)
                if birth_date and (birth_date > months_before(today, 18 * 12) or birth_date.year < 1900):
                    errors["birth_date"] = InvalidInput(
                        "The account holder must be 18 or older. Check the date of birth.", "birth_date"
                    )
            if get("id_last4"):
                if not re.fullmatch(r"[0-9A-Za-z]{4}", get("id_last4")):
                    errors["id_last4"] = InvalidInput("Enter the last 4 characters of the photo ID.", "id_last4")
                id_last4 = get("id_last4").upper()
    else:
        kind, name, language = reuse_customer.kind, reuse_customer.name, reuse_customer.preferred_language

    # The premise: reused, or a new address.
    reuse_premise = None
    address = None
    if get("premise_choice") not in ("", "new"):
        reuse_premise = session.get(Premise, int(get("premise_choice"))) if get("premise_choice").isdigit() else None
        if reuse_premise is None:
            errors["premise_choice"] = InvalidInput(
                "Choose one of the premises listed, or a new premise.", "premise_choice"
            )
    else:
        try:
            address = parse_premise_address(
                get("service_line1"),
                get("service_line2"),
                get("service_city"),
                get("service_state"),
                get("service_zip"),
            )
        except FieldErrors as exc:
            errors.update(exc.errors)
    units = _int(get("dwelling_units") or "1", "dwelling_units", 1, MAX_UNITS, "the dwelling units", errors) or 1
    parcel = get("parcel_number")[:30] or None
    if parcel and not re.fullmatch(r"[0-9A-Za-z-]{5,30}", parcel):
        errors["parcel_number"] = InvalidInput(
            "Enter the parcel number as on the tax roll, like 1016-371-05.", "parcel_number"
        )

    # The account.
    customer_class = get("customer_class")
    if customer_class not in offered.classes:
        errors["customer_class"] = InvalidInput("Choose the customer class.", "customer_class")
    cycle = _by_id(offered.cycles, get("cycle"))
    if cycle is None:
        errors["cycle"] = InvalidInput("Choose the billing cycle.", "cycle")
    route = _by_id(offered.routes, get("route"))
    if get("route") and (route is None or (cycle is not None and route.cycle_id != cycle.id)):
        errors["route"] = InvalidInput("Choose a route of the billing cycle chosen, or none.", "route")
    start_on = _day(get("start_on"), "start_on", "the first day of service", errors)
    if start_on and start_on > today + timedelta(days=MAX_DAYS_AHEAD):
        errors["start_on"] = InvalidInput(f"Choose a day within {MAX_DAYS_AHEAD} days.", "start_on")
    if start_on and start_on < today - timedelta(days=31):
        errors["start_on"] = InvalidInput("Choose a day no more than a month back.", "start_on")
    if get("turn_on_due"):
        turn_on_due = _day(get("turn_on_due"), "turn_on_due", "the turn-on date", errors)
        if turn_on_due and turn_on_due < today:
            errors["turn_on_due"] = InvalidInput("The turn-on cannot be due before today.", "turn_on_due")
    else:
        turn_on_due = max(start_on, today) if start_on else None
    mailing = None
    if get("billing") == "other":
        try:
            mailing = customers.parse_mailing_address(
                get("mailing_line1"), get("mailing_city"), get("mailing_state"), get("mailing_zip")
            )
        except InvalidInput as exc:
            errors[exc.field or "mailing_line1"] = exc
        else:
            if mailing is None:
                errors["mailing_line1"] = InvalidInput(
                    "Enter the billing address, or choose the service address.", "mailing_line1"
                )
    elif get("billing") not in ("", "same"):
        errors["billing"] = InvalidInput("Choose where the bills go.", "billing")

    # The services, each on an approved rate in force on the first day.
    plans: list[ServicePlan] = []
    on = start_on or today
    for service in SERVICES:
        if get(service) != "on":
            continue
        schedule = _by_id(offered.schedules[service], get(f"{service}_schedule"))
        version = approved_version(schedule, on) if schedule is not None else None
        if schedule is None:
            errors[f"{service}_schedule"] = InvalidInput(f"Choose the {service} rate.", f"{service}_schedule")
            continue
        if version is None:
            errors[f"{service}_schedule"] = InvalidInput(
                f"{schedule.name} has no approved rate in force on the first day of service.", f"{service}_schedule"
            )
            continue
        if service == "sanitation" and (sizes := cart_sizes(version)):
            count = _int(get("cart_count") or "1", "cart_count", 1, MAX_CARTS, "the number of carts", errors)
            size = get("cart_size")
            if size not in sizes:
                errors["cart_size"] = InvalidInput(f"Choose a cart size: {', '.join(sizes)} gallons.", "cart_size")
            elif count:
                options = {"cart_size": size} if count == 1 else {"cart_size": size, "carts": str(count)}
                plans.append(ServicePlan(service, schedule, version, options))
            continue
        plans.append(ServicePlan(service, schedule, version))
    if not plans and not any(k.endswith("_schedule") or k.startswith("cart_") for k in errors):
        errors["services"] = InvalidInput("Choose at least one service.", "services")
    if errors:
        raise FieldErrors(errors)
    assert cycle is not None and start_on is not None and turn_on_due is not None
    return Plan(
        kind=kind,
        name=name,
        contact_name=contact_name if kind == "business" else None,
        email=email,
        phone=phone,
        alt_phone=alt_phone,
        language=language,
        birth_date=birth_date,
        id_last4=id_last4,
        address=address,
        parcel_number=parcel,
        dwelling_units=units,
        customer_class=customer_class,
        cycle=cycle,
        route=route,
        start_on=start_on,
        turn_on_due=turn_on_due,
        mailing=mailing,
        services=plans,
        reuse_customer=reuse_customer,
        reuse_premise=reuse_premise,
    )


# --- Duplicates -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Duplicates:
    customers: list[Customer]
    premises: list[Premise]
    #: premise id -> the active services there: service type -> account number.
    active_at: dict[int, dict[str, str]]

    def __bool__(self) -> bool:
        return bool(self.customers or self.premises)


class DuplicatesFound(FieldErrors):
    """Possible duplicates were found and staff have not said what to do with them yet."""

    def __init__(self, found: Duplicates) -> None:
        super().__init__(
            {
                "duplicates": InvalidInput(
                    "Possible duplicates found: choose below whether to use an existing customer or premise, "
                    "or to make new ones.",
                    "duplicates",
                )
            }
        )
        self.found = found


def active_services_at(session: Session, premise_ids: Iterable[int]) -> dict[int, dict[str, str]]:
    ids = sorted(set(premise_ids))
    out: dict[int, dict[str, str]] = {i: {} for i in ids}
    if not ids:
        return out
    rows = session.execute(
        select(Account.premise_id, Service.service_type, Account.number)
        .join(Service, Service.account_id == Account.id)
        .where(
            Account.premise_id.in_(ids),
            Account.status.in_((AccountStatus.ACTIVE.value, AccountStatus.PENDING.value)),
            Service.ended_on.is_(None),
        )
    )
    for premise_id, service, number in rows:
        out[premise_id].setdefault(service, number)
    return out


def possible_duplicates(
    session: Session, name: str, birth_date: date | None, email: str | None, key: str | None
) -> Duplicates:
    """Customers with the same name and date of birth, or the same email; premises with the
    same address key."""
    found: dict[int, Customer] = {}
    if name and birth_date:
        for c in session.scalars(
            select(Customer)
            .where(func.lower(Customer.name) == name.lower(), Customer.birth_date == birth_date)
            .limit(10)
        ):
            found[c.id] = c
    if email:
        for c in session.scalars(select(Customer).where(func.lower(Customer.email) == email.lower()).limit(10)):
            found[c.id] = c
    premises = list(session.scalars(select(Premise).where(Premise.address_key == key).limit(10))) if key else []
    return Duplicates(
        sorted(found.values(), key=lambda c: c.id),
        premises,
        active_at=active_services_at(session, (p.id for p in premises)),
    )


def refuse_taken_services(session: Session, premise: Premise, plan: Plan, field_name: str = "premise_choice") -> None:
    """A premise with an active account for a service takes no second active account for it."""
    taken = active_services_at(session, [premise.id])[premise.id]
    clash = sorted({s.service_type for s in plan.services} & set(taken))
    if clash:
        numbers = ", ".join(f"{s} on account {taken[s]}" for s in clash)
        raise FieldErrors.one(
            field_name,
            f"{premise.one_line} already has active service ({numbers}). Stop that service or transfer that "
            "account first.",
        )


# --- Writing ----------------------------------------------------------------------------------


def next_account_number(session: Session) -> str:
    """The next free account number (serial + Luhn check digit) after the highest in use."""
    highest = session.scalar(select(func.max(Account.number)))  # the unique index's last entry
    if highest is not None and not (len(highest) == 8 and highest.isdigit()):
        highest = session.scalar(select(func.max(Account.number)).where(func.length(Account.number) == 8))
    serial = int(highest[:-1]) + 1 if highest and highest.isdigit() else 1
    while session.scalar(select(Account.id).where(Account.number == account_number(serial))) is not None:
        serial += 1  # pragma: no cover - only when numbers were made out of order
    return account_number(serial)


def premise_meter(session: Session, premise_id: int) -> Meter | None:
    """The meter installed at the premise, when there is one."""
    return session.scalar(
        select(Meter)
        .where(Meter.premise_id == premise_id, Meter.status == MeterStatus.INSTALLED.value)
        .order_by(Meter.installed_on.desc(), Meter.id.desc())
        .limit(1)
    )


def turn_on_order(
    session: Session,
    account: Account,
    due_on: date,
    origin: str,
    request_id: int | None,
    meter: Meter | None,
    actor: User | None,
    now: datetime,
) -> WorkOrder:
    """The turn-on order of a new account (``field_orders.open_order``): the field completes it
    with the read-in."""
    from . import field_orders

    order = field_orders.open_order(
        session,
        account,
        "turn_on",
        due_on,
        None,
        None,
        None,
        now,
        actor.id if actor else None,
        meter_id=meter.id if meter else None,
        origin=origin,
        service_request_id=request_id,
    )
    order.reason = "Turn on service for a new account" + ("" if meter else ": no meter at the premise, set one")
    return order


# --- Balance transfer -------------------------------------------------------------------------


def movable_balance(session: Session, account_id: int, asked_refund_cents: int) -> dict[str, int]:
    """What a transfer moves: each receivable by service, and the credit (key ``credit``)
    less the credit already asked as a refund (that goes out as the refund)."""
    rows = session.execute(
        select(LedgerEntry.service_type, LedgerEntry.gl_account, func.sum(LedgerEntry.amount_cents))
        .where(LedgerEntry.account_id == account_id)
        .group_by(LedgerEntry.service_type, LedgerEntry.gl_account)
    ).all()
    out: dict[str, int] = {}
    for service, gl, cents in rows:
        key = "credit" if gl == ledger.UNAPPLIED_CREDIT else (service or "credit")
        out[key] = out.get(key, 0) + int(cents)
    if "credit" in out:
        out["credit"] = min(out["credit"] + asked_refund_cents, 0)
    return {k: v for k, v in out.items() if v}


def _line(service: str, cents: int, account_id: int) -> ledger.Entry:
    if service == "credit":
        return ledger.Entry(ledger.UNAPPLIED_CREDIT, cents, account_id)
    return ledger.Entry(ledger.receivable(service), cents, account_id, service)


def transfer_transactions(
    old_id: int, new_id: int, old_number: str, new_number: str, on: date, amounts: Mapping[str, int]
) -> tuple[ledger.Transaction, ledger.Transaction]:
    """The pair of transactions that move ``amounts`` (by service, ``credit`` for the
    credit) from the old account to the new: each balanced through ``BALANCE_TRANSFERS``."""
    total = sum(amounts.values())
    out_entries = tuple(_line(s, -c, old_id) for s, c in sorted(amounts.items())) + (
        ledger.Entry(BALANCE_TRANSFERS, total),
    )
    in_entries = tuple(_line(s, c, new_id) for s, c in sorted(amounts.items())) + (
        ledger.Entry(BALANCE_TRANSFERS, -total),
    )
    memo_out = f"Balance transferred to account {new_number}"
    memo_in = f"Balance transferred from account {old_number}"
    return (
        ledger.Transaction(ledger.Kind.ADJUSTMENT, on, out_entries, memo=memo_out),
        ledger.Transaction(ledger.Kind.ADJUSTMENT, on, in_entries, due_date=on if total > 0 else None, memo=memo_in),
    )


def transfer_problems(session: Session) -> list[str]:
    """``portal ledger check``: the balance-transfer clearing account nets to zero."""
    left = session.scalar(
        select(func.coalesce(func.sum(LedgerEntry.amount_cents), 0)).where(LedgerEntry.gl_account == BALANCE_TRANSFERS)
    )
    left_ids = session.scalars(
        select(LedgerTransaction.id)
        .join(LedgerEntry, LedgerEntry.transaction_id == LedgerTransaction.id)
        .where(LedgerEntry.gl_account == BALANCE_TRANSFERS, LedgerTransaction.kind != ledger.Kind.ADJUSTMENT.value)
        .limit(20)
    ).all()
    out = [f"transaction {t} uses the balance-transfer clearing account but is not a transfer" for t in left_ids]
    if int(left or 0) != 0:
        out.append(f"balance transfers do not net to zero: {int(left or 0)} cents are left in {BALANCE_TRANSFERS}")
    return out
