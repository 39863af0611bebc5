"""Opening accounts and transferring service, one use case per function: the opening form
(from scratch or pre-filled from a resident's start request), opening the account (the
customer, premise, account, services, deposit, turn-on order, welcome letter and email, the
request done), the page of an account just opened, its welcome letter, and a transfer
(stop here with the final bill, open there, move the balance). The rules are in
``billing_core/account_opening.py``.

Each function works in the caller's transaction and takes its clock values from it; a
refusal writes nothing (the writes are in a savepoint undone before the error is raised).
The date of birth and ID digits are shown and taken only by roles that may see them
(``permissions.may_see``), and each showing is an audit event.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload, sessionmaker

from ..adapters.clock import Clock
from ..billing_core import account_opening as rules
from ..billing_core import audit, bill_runs, deposits, outbox, permissions, posting, refunds, service_requests
from ..billing_core.errors import FieldErrors, InvalidInput, NotFound
from ..billing_core.models import (
    Account,
    AccountStatus,
    Customer,
    Deposit,
    EmailOutbox,
    Meter,
    Premise,
    Service,
    ServiceRequest,
    User,
    UserAccountLink,
    WorkOrder,
)
from ..billing_core.money_policy import MoneyPolicy
from ..billing_core.permissions import Action, Field
from ..billing_core.status import RequestStatus
from ..emails import Mailer
from . import accounts as account_service


def _account(session: Session, number: str) -> Account:
    found = session.scalar(
        select(Account).where(Account.number == number.strip()).options(selectinload(Account.services))
    )
    if found is None:
        raise NotFound(f"account {number}")
    return found


#: The welcome email's job (``send_welcome``, registered in ``notifications.SENDERS``).
WELCOME = "email.welcome"
IDENTITY = (Field.CUSTOMER_BIRTH_DATE, Field.CUSTOMER_ID_LAST4)


def _identity_allowed(staff: User) -> bool:
    return all(permissions.may_see(staff.role, f) for f in IDENTITY)


def _show_identity(
    session: Session, staff: User, people: list[Customer], remote_addr: str | None
) -> dict[int, dict[str, str]]:
    """The identity facts of ``people`` this reader may see, by customer id; each customer
    whose facts are shown is one ``customer.identity_viewed`` event naming the fields."""
    out: dict[int, dict[str, str]] = {}
    for person in people:
        facts: dict[str, str] = {}
        if person.birth_date and permissions.may_see(staff.role, Field.CUSTOMER_BIRTH_DATE):
            facts["birth_date"] = person.birth_date.isoformat()
        if person.id_last4 and permissions.may_see(staff.role, Field.CUSTOMER_ID_LAST4):
            facts["id_last4"] = person.id_last4
        if facts:
            out[person.id] = facts
            audit.record(
                session,
                permissions.FIELDS[Field.CUSTOMER_BIRTH_DATE].audit_action,
                actor=staff,
                entity_type="customer",
                entity_id=person.id,
                after={"fields": sorted(facts)},
                remote_addr=remote_addr,
            )
    return out


# --- The form -----------------------------------------------------------------------------


@dataclass(frozen=True)
class OpeningForm:
    choices: rules.Choices
    #: What the form starts filled in with (from the request, when there is one).
    defaults: dict[str, str]
    request: ServiceRequest | None
    #: The reader may enter (and sees) the date of birth and ID digits.
    identity_allowed: bool
    #: sanitation schedule id -> the cart sizes its rate prices (empty: no carts).
    cart_sizes: dict[int, list[str]]
    duplicates: rules.Duplicates | None
    #: customer id -> the identity facts shown (audited).
    identity: dict[int, dict[str, str]]
    #: For a transfer: the account whose customer moves, and its meters needing a final read.
    old_account: Account | None = None
    stop_meters: tuple[Meter, ...] = ()


def _open_request(session: Session, request_id: str, kinds: tuple[str, ...] = ("start", "transfer")) -> ServiceRequest:
    """A start request (for opening) or a transfer request (for the transfer page)."""
    item = session.get(ServiceRequest, int(request_id)) if request_id.strip().isdigit() else None
    if item is None or item.kind not in kinds:
        raise NotFound(f"{' or '.join(kinds)} request {request_id}")
    return item


def _request_defaults(session: Session, staff: User, item: ServiceRequest, remote_addr: str | None) -> dict[str, str]:
    requester = session.get(User, item.user_id)
    out = {
        "request": str(item.id),
        "name": item.contact_name,
        "email": item.contact_email,
        "phone": item.contact_phone or "",
        "language": (requester.language if requester else "en") or "en",
        "service_line1": item.service_line1 or "",
        "service_line2": item.service_line2 or "",
        "service_city": item.service_city or "",
        "service_state": item.service_state or "",
        "service_zip": item.service_zip or "",
        "start_on": item.start_on.isoformat() if item.start_on else "",
        "turn_on_due": item.start_on.isoformat() if item.start_on else "",
        "stop_on": item.stop_on.isoformat() if item.stop_on else "",
    }
    shown = []
    if item.birth_date and permissions.may_see(staff.role, Field.BIRTH_DATE):
        out["birth_date"] = item.birth_date.isoformat()
        shown.append(Field.BIRTH_DATE.value)
    if item.id_last4 and permissions.may_see(staff.role, Field.ID_LAST4):
        out["id_last4"] = item.id_last4
        shown.append(Field.ID_LAST4.value)
    if shown:
        audit.record(
            session,
            permissions.FIELDS[Field.BIRTH_DATE].audit_action,
            actor=staff,
            entity_type="service_request",
            entity_id=item.id,
            after={"fields": shown, "for": "account opening"},
            remote_addr=remote_addr,
        )
    return out


def opening_form(
    session: Session,
    staff: User,
    *,
    request_id: str = "",
    today: date,
    duplicates: rules.Duplicates | None = None,
    remote_addr: str | None = None,
    transfer_from: str | None = None,
) -> OpeningForm:
    """The opening form: empty, or pre-filled from the start request ``request_id`` (its
    identity facts only for a role that may see them, audited), with the possible
    duplicates a refused submission found (their identity facts shown the same way)."""
    permissions.require(staff, Action.ACCOUNTS_OPEN)
    offered = rules.choices(session)
    defaults: dict[str, str] = {
        "customer_kind": "person",
        "language": "en",
        "dwelling_units": "1",
        "billing": "same",
        "start_on": today.isoformat(),
        "water": "on",
        "sewer": "on",
        "cart_count": "1",
    }
    item = None
    if request_id:
        item = _open_request(session, request_id)
        defaults.update(_request_defaults(session, staff, item, remote_addr))
    old = _account(session, transfer_from) if transfer_from else None
    if offered.cycles:
        defaults.setdefault("cycle", str(old.cycle_id if old else offered.cycles[0].id))
    if old is not None:
        defaults["customer_class"] = old.customer_class
    sizes = {s.id: rules.cart_sizes(rules.approved_version(s, today)) for s in offered.schedules["sanitation"]}
    identity = _show_identity(session, staff, duplicates.customers, remote_addr) if duplicates else {}
    meters = (
        tuple({s.meter_id: s.meter for s in old.services if s.meter and s.ended_on is None}.values()) if old else ()
    )
    return OpeningForm(offered, defaults, item, _identity_allowed(staff), sizes, duplicates, identity, old, meters)


# --- Opening ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Opened:
    account: Account
    deposit: Deposit | None
    order: WorkOrder
    #: The welcome email in the outbox (None: the customer has no email address).
    welcome_outbox_id: int | None
    #: The request moved on (its customer is told), when it came from one.
    request_id: int | None


def _bill_deposit(
    session: Session, policy: MoneyPolicy, staff: User, account: Account, on: date, now: datetime
) -> Deposit | None:
    """The deposit the policy asks of the new account (``deposits.suggest``), billed as the
    deposits page bills one (``deposits.billing_transaction``); None when it asks none."""
    suggestion = deposits.suggest(session, policy, account, on)
    if not suggestion.reasons:
        return None
    reason = suggestion.reasons[0]
    note = f"Billed when the account was opened ({suggestion.basis})"
    return deposits.bill(session, account, suggestion.amount_cents, reason, note, on, staff, now)


def _customer(session: Session, staff: User, plan: rules.Plan, remote_addr: str | None) -> Customer:
    if plan.reuse_customer is not None:
        customer = plan.reuse_customer
        if plan.mailing is not None:
            from ..billing_core import customers

            customers.set_mailing_address(session, customer, plan.mailing, staff, remote_addr)
        return customer
    customer = Customer(
        kind=plan.kind,
        name=plan.name,
        contact_name=plan.contact_name,
        email=plan.email,
        phone=plan.phone,
        alt_phone=plan.alt_phone,
        preferred_language=plan.language,
        birth_date=plan.birth_date,
        id_last4=plan.id_last4,
        mailing_line1=plan.mailing.line1 if plan.mailing else None,
        mailing_city=plan.mailing.city if plan.mailing else None,
        mailing_state=plan.mailing.state if plan.mailing else None,
        mailing_zip=plan.mailing.zip if plan.mailing else None,
    )
    session.add(customer)
    session.flush()
    audit.record(
        session,
        "customer.created",
        actor=staff,
        entity_type="customer",
        entity_id=customer.id,
        after={
            "kind": customer.kind,
            "name": customer.name,
            "contact_name": customer.contact_name,
            "email": customer.email,
            "phone": customer.phone,
            "alt_phone": customer.alt_phone,
            "language": customer.preferred_language,
            # Identity facts are never copied into the audit trail: only whether they were given.
            "birth_date_given": customer.birth_date is not None,
            "id_last4_given": customer.id_last4 is not None,
            "mailing_line1": customer.mailing_line1,
        },
        remote_addr=remote_addr,
    )
    return customer


def _premise(session: Session, staff: User, plan: rules.Plan, remote_addr: str | None) -> Premise:
    if plan.reuse_premise is not None:
        return plan.reuse_premise
    assert plan.address is not None
    sequence = None
    if plan.route is not None:
        from sqlalchemy import func

        sequence = (
            int(session.scalar(select(func.max(Premise.walk_sequence)).where(Premise.route_id == plan.route.id)) or 0)
            + 10
        )
    premise = Premise(
        address_line1=plan.address.line1,
        address_line2=plan.address.line2,
        city=plan.address.city,
        state=plan.address.state,
        zip=plan.address.zip,
        parcel_number=plan.parcel_number,
        dwelling_units=plan.dwelling_units,
        route_id=plan.route.id if plan.route else None,
        walk_sequence=sequence,
        address_key=plan.address.key,
    )
    session.add(premise)
    session.flush()
    audit.record(
        session,
        "premise.created",
        actor=staff,
        entity_type="premise",
        entity_id=premise.id,
        after={
            "address": premise.one_line,
            "address_key": premise.address_key,
            "parcel_number": premise.parcel_number,
            "dwelling_units": premise.dwelling_units,
            "route": plan.route.code if plan.route else None,
        },
        remote_addr=remote_addr,
    )
    return premise


def _refuse_taken(session: Session, plan: rules.Plan) -> None:
    """No second active account for a service at a premise (the one reused, or any premise
    with the same address key)."""
    if plan.reuse_premise is not None:
        rules.refuse_taken_services(session, plan.reuse_premise, plan)
        return
    assert plan.address is not None
    for same in session.scalars(select(Premise).where(Premise.address_key == plan.address.key)):
        rules.refuse_taken_services(session, same, plan, "service_line1")


def _write(
    session: Session,
    staff: User,
    plan: rules.Plan,
    policy: MoneyPolicy,
    *,
    origin: str,
    request: ServiceRequest | None,
    today: date,
    now: datetime,
    remote_addr: str | None,
) -> Opened:
    customer = _customer(session, staff, plan, remote_addr)
    premise = _premise(session, staff, plan, remote_addr)
    account = Account(
        number=rules.next_account_number(session),
        customer_id=customer.id,
        premise_id=premise.id,
        customer_class=plan.customer_class,
        cycle_id=plan.cycle.id,
        status=AccountStatus.ACTIVE.value,
        opened_on=plan.start_on,
    )
    session.add(account)
    session.flush()
    meter = rules.premise_meter(session, premise.id)
    for item in plan.services:
        session.add(
            Service(
                account_id=account.id,
                service_type=item.service_type,
                rate_schedule_id=item.schedule.id,
                meter_id=meter.id if meter is not None and item.service_type == "water" else None,
                options=dict(item.options),
                started_on=plan.start_on,
            )
        )
    session.flush()
    deposit = _bill_deposit(session, policy, staff, account, today, now)
    order = rules.turn_on_order(
        session, account, plan.turn_on_due, origin, request.id if request else None, meter, staff, now
    )
    welcome = outbox.queue(session, WELCOME, {"account_id": account.id}, now).id if customer.email else None
    audit.record(
        session,
        "account.opened",
        actor=staff,
        entity_type="account",
        entity_id=account.id,
        after={
            "number": account.number,
            "customer_id": customer.id,
            "customer_reused": plan.reuse_customer is not None,
            "premise_id": premise.id,
            "premise_reused": plan.reuse_premise is not None,
            "customer_class": account.customer_class,
            "cycle": plan.cycle.code,
            "route": plan.route.code if plan.route else None,
            "opened_on": account.opened_on.isoformat(),
            "services": [
                {"service": s.service_type, "rate_schedule": s.schedule.code, "rate_version": s.version.id, **s.options}
                for s in plan.services
            ],
            "deposit_cents": deposit.amount_cents if deposit else 0,
            "turn_on_order": order.id,
            "service_request": request.id if request else None,
            "origin": origin,
        },
        remote_addr=remote_addr,
    )
    return Opened(account, deposit, order, welcome, request.id if request else None)


def _finish_request(
    session: Session, staff: User, item: ServiceRequest, account: Account, today: date, now: datetime
) -> None:
    """The start request is done (or scheduled until its first day), with the new account
    linked to the resident's sign-in; the caller tells the resident (``email.request_update``)."""
    if item.kind == "start":
        item.account_id = account.id
    if session.get(UserAccountLink, (item.user_id, account.id)) is None:
        session.add(UserAccountLink(user_id=item.user_id, account_id=account.id, linked_at=now))
    starts = account.opened_on
    action = RequestStatus.COMPLETED if starts <= today else RequestStatus.SCHEDULED
    if action not in service_requests.staff_actions(item.status):
        return
    message = (
        f"Your account {account.number} is open. Service starts on {starts.isoformat()}."
        if action is RequestStatus.COMPLETED
        else f"Your account {account.number} is set up. Service starts on {starts.isoformat()}."
    )
    service_requests.handle(session, item, action.value, staff, now, message, f"Opened account {account.number}", today)


def _check_request(session: Session, values: dict[str, str], kind: str) -> ServiceRequest | None:
    text = values.get("request", "").strip()
    if not text:
        return None
    item = _open_request(session, text, (kind,))
    if item.status not in service_requests.OPEN:
        raise FieldErrors.one("request", f"Request {item.id} is {service_requests.status_label(item).lower()} already.")
    return item


def open_account(
    session: Session,
    staff: User,
    values: dict[str, str],
    *,
    policy: MoneyPolicy,
    today: date,
    now: datetime,
    remote_addr: str | None = None,
) -> Opened:
    """Open an account from the form (``values``; with ``request``, from that start request).
    The form is checked whole first (``FieldErrors`` by field, nothing written); possible
    duplicates not yet seen refuse it with ``DuplicatesFound`` (staff choose, and send it
    again with ``duplicates_seen``)."""
    permissions.require(staff, Action.ACCOUNTS_OPEN)
    request = _check_request(session, values, "start")
    plan = rules.check(session, values, today, identity_allowed=_identity_allowed(staff))
    if values.get("duplicates_seen") != "1":
        found = rules.possible_duplicates(
            session,
            plan.name if plan.reuse_customer is None else "",
            plan.birth_date,
            plan.email if plan.reuse_customer is None else None,
            plan.address.key if plan.address else None,
        )
        if found:
            raise rules.DuplicatesFound(found)
    _refuse_taken(session, plan)
    with session.begin_nested():
        opened = _write(
            session,
            staff,
            plan,
            policy,
            origin="request" if request else "account",
            request=request,
            today=today,
            now=now,
            remote_addr=remote_addr,
        )
        if request is not None:
            _finish_request(session, staff, request, opened.account, today, now)
    return opened


# --- The account just opened, and its welcome letter ---------------------------------------


@dataclass(frozen=True)
class OpenedPage:
    account: Account
    deposits: list[Deposit]
    orders: list[WorkOrder]
    emails: list[EmailOutbox]
    #: The identity facts shown to this reader (audited): ``birth_date``, ``id_last4``.
    identity: dict[str, str]
    #: The customer's other accounts (a transfer's old one among them).
    other_accounts: list[Account]


def opened_page(session: Session, staff: User, number: str, remote_addr: str | None = None) -> OpenedPage:
    """The summary of a new account for staff: what was set up, the deposit, the turn-on
    order, the welcome email; identity facts only for a role that may see them (audited)."""
    permissions.require(staff, Action.STAFF_VIEW)
    account = _account(session, number)
    identity = _show_identity(session, staff, [account.customer], remote_addr).get(account.customer_id, {})
    return OpenedPage(
        account=account,
        deposits=list(session.scalars(select(Deposit).where(Deposit.account_id == account.id).order_by(Deposit.id))),
        orders=list(
            session.scalars(select(WorkOrder).where(WorkOrder.account_id == account.id).order_by(WorkOrder.id))
        ),
        emails=outbox.about(session, "account", account.id),
        identity=identity,
        other_accounts=list(
            session.scalars(
                select(Account)
                .where(Account.customer_id == account.customer_id, Account.id != account.id)
                .order_by(Account.id)
            )
        ),
    )


@dataclass(frozen=True)
class WelcomeLetter:
    account: Account
    customer: Customer
    services: list[str]
    carts: list[str]
    deposit: Deposit | None
    deposit_due: date | None
    read_day: int
    language: str


def _letter(session: Session, account: Account) -> WelcomeLetter:
    deposit = session.scalar(
        select(Deposit).where(Deposit.account_id == account.id).order_by(Deposit.id.desc()).limit(1)
    )
    services = []
    for s in account.services:
        if s.ended_on is None and s.service_type not in services:
            services.append(s.service_type)
    carts = [  # one size per cart: a service of ``carts`` carts counts each of them
        str(s.options["cart_size"])
        for s in account.services
        if s.ended_on is None and s.options.get("cart_size")
        for _ in range(int(str(s.options.get("carts", "1")) or "1"))
    ]
    return WelcomeLetter(
        account=account,
        customer=account.customer,
        services=services,
        carts=carts,
        deposit=deposit,
        deposit_due=deposit.billed_on + timedelta(days=deposits.DUE_DAYS) if deposit else None,
        read_day=account.cycle.read_day,
        language=account.customer.preferred_language
        if account.customer.preferred_language in rules.LANGUAGES
        else "en",
    )


def welcome_letter(session: Session, staff: User, number: str) -> WelcomeLetter:
    """What the welcome letter says (the page renders it, the printer makes the PDF)."""
    permissions.require(staff, Action.STAFF_VIEW)
    return _letter(session, _account(session, number))


def send_welcome(mailer: Mailer, factory: sessionmaker[Session], clock: Clock, account_id: int) -> str | None:
    """The welcome email, in the customer's language, to the customer's address (None:
    none on file)."""
    with factory() as session:
        account = session.get(Account, account_id)
        if account is None or not account.customer.email:
            return None
        letter = _letter(session, account)
        to = account.customer.email
        message = mailer.build(
            to, letter.language, "welcome", letter=letter, url=mailer.link(f"/my/accounts/{account.number}")
        )
    mailer.send(message)
    return to


# --- Transfer: stop here, start there, the balance moves --------------------------------------


@dataclass(frozen=True)
class Transferred:
    old_number: str
    opened: Opened
    #: The final bill's number; None when it is held for review.
    final_bill: str | None
    held_reasons: list[str]
    #: What moved to the new account (cents, by service; ``credit`` for the credit).
    moved: dict[str, int]
    completed_requests: list[int]


def _move(session: Session, staff: User, old: Account, new: Account, on: date, now: datetime) -> dict[str, int]:
    asked = refunds.asked_cents(session, old.id)
    amounts = rules.movable_balance(session, old.id, asked)
    if not amounts:
        return {}
    out_txn, in_txn = rules.transfer_transactions(old.id, new.id, old.number, new.number, on, amounts)
    first = posting.post(session, out_txn, old.id, staff.id, posted_at=now)
    second = posting.post(session, in_txn, new.id, staff.id, posted_at=now)
    audit.record(
        session,
        "account.balance_transferred",
        actor=staff,
        entity_type="account",
        entity_id=old.id,
        before={"account": old.number, "balance_cents": sum(amounts.values())},
        after={
            "to_account": new.number,
            "amounts": amounts,
            "ledger_transactions": [first.id, second.id],
            "old_balance_cents": posting.account_balance(session, old.id),
        },
    )
    return amounts


def _forward(plan: rules.Plan) -> dict[str, str]:
    """The stop form's forwarding address (``mailing_*``) for a transfer's final bill."""
    if plan.mailing is not None:
        line1, city, state, zip_code = plan.mailing.line1, plan.mailing.city, plan.mailing.state, plan.mailing.zip
    elif plan.reuse_premise is not None:
        p = plan.reuse_premise
        line1, city, state, zip_code = (
            " ".join(filter(None, (p.address_line1, p.address_line2))),
            p.city,
            p.state,
            p.zip,
        )
    else:
        assert plan.address is not None
        a = plan.address
        line1, city, state, zip_code = " ".join(filter(None, (a.line1, a.line2))), a.city, a.state, a.zip
    return {"mailing_line1": line1, "mailing_city": city, "mailing_state": state, "mailing_zip": zip_code}


def transfer_form(session: Session, staff: User, number: str, *, today: date, request_id: str = "") -> OpeningForm:
    """The transfer form of an active account: its stop (on the account page's terms) and
    the opening of the new account for the same customer."""
    permissions.require(staff, Action.ACCOUNTS_CHANGE)
    permissions.require(staff, Action.BILLS_FINAL)
    form = opening_form(session, staff, request_id=request_id, today=today, transfer_from=number)
    assert form.old_account is not None
    return form


def transfer(
    session: Session,
    staff: User,
    number: str,
    values: dict[str, str],
    *,
    policy: MoneyPolicy,
    today: date,
    now: datetime,
    remote_addr: str | None = None,
) -> Transferred:
    """Stop service at account ``number`` (``accounts.stop_service``: the last day, the final
    reads, the final bill), open the new account for the same customer from the opening
    form's premise, account and services parts, and move the old account's balance to it.

    When the final bill posts now, the whole balance moves (after the final bill and the
    deposit applied to it; a credit already asked as a refund stays and goes out as that
    refund). When it is held for review, the balance as it stands moves now, and what the
    final bill adds moves with ``move_balance`` once it is approved. A refusal of any part
    writes nothing (``FieldErrors``, the stop form's fields among them)."""
    for action in (Action.ACCOUNTS_CHANGE, Action.ACCOUNTS_OPEN, Action.BILLS_FINAL):
        permissions.require(staff, action)
    old = _account(session, number)
    if old.status != AccountStatus.ACTIVE.value or bill_runs.held_for_account(session, old.id) is not None:
        raise FieldErrors.one("final", f"Account {number} is not active, or its final bill is already held.")
    request = _check_request(session, values, "transfer")
    if request is not None and request.account_id != old.id:
        raise FieldErrors.one("request", f"Request {request.id} is not about account {number}.")
    errors: dict[str, InvalidInput] = {}
    plan = None
    try:
        plan = rules.check(session, values, today, identity_allowed=False, fixed_customer=old.customer)
        _refuse_taken(session, plan)
    except FieldErrors as exc:
        errors.update(exc.errors)
    stop_values = {k: v for k, v in values.items() if k == "stop_on" or k.startswith("read-")}
    if plan is not None:
        # The final bill goes where the customer will be: the new billing address, or the new premise.
        stop_values.update(_forward(plan))
    with session.begin_nested():
        # The stop is tried even when the new account's part is wrong, so every problem of the
        # form is said at once; any problem undoes the stop with the rest.
        try:
            stopped = account_service.stop_service(
                session, staff, number, stop_values, now=now, today=today, remote_addr=remote_addr
            )
        except FieldErrors as exc:
            errors.update(exc.errors)
        if errors:
            raise FieldErrors(errors)
        assert plan is not None
        # The final bill was sent to the new address (``_forward``), which stays the customer's
        # mailing address: the new account's bills go there too, and so would a reprinted final bill.
        opened = _write(
            session,
            staff,
            plan,
            policy,
            origin="account",
            request=request,
            today=today,
            now=now,
            remote_addr=remote_addr,
        )
        if request is not None and session.get(UserAccountLink, (request.user_id, opened.account.id)) is None:
            session.add(UserAccountLink(user_id=request.user_id, account_id=opened.account.id, linked_at=now))
        moved = _move(session, staff, old, opened.account, today, now)
        audit.record(
            session,
            "account.transferred",
            actor=staff,
            entity_type="account",
            entity_id=old.id,
            before={"account": old.number, "premise": old.premise.one_line},
            after={
                "to_account": opened.account.number,
                "premise": opened.account.premise.one_line,
                "final_bill": stopped.bill_number,
                "final_bill_held": stopped.bill_number is None,
                "moved": moved,
            },
            remote_addr=remote_addr,
        )
    return Transferred(number, opened, stopped.bill_number, stopped.held_reasons, moved, stopped.completed_requests)


def move_balance(
    session: Session, staff: User, number: str, to_number: str, *, today: date, now: datetime
) -> dict[str, int]:
    """Move what is left on a stopped account (a final bill approved after the transfer) to
    another account of the same customer that is active."""
    permissions.require(staff, Action.ACCOUNTS_CHANGE)
    old = _account(session, number)
    new = _account(session, to_number)
    if old.status == AccountStatus.ACTIVE.value or bill_runs.held_for_account(session, old.id) is not None:
        raise FieldErrors.one("to_account", "Move the balance once service has stopped and the final bill is posted.")
    if new.customer_id != old.customer_id or new.status != AccountStatus.ACTIVE.value or new.id == old.id:
        raise FieldErrors.one("to_account", "Choose an active account of the same customer.")
    with session.begin_nested():
        moved = _move(session, staff, old, new, today, now)
    if not moved:
        raise FieldErrors.one("to_account", f"Account {number} has nothing left to move.")
    return moved
