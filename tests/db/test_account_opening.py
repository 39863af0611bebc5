"""Opening accounts and transfers on both databases: from a start request (a Spanish
customer: deposit billed, turn-on order, request done, welcome email in Spanish), from
scratch with duplicates found and reused, a premise's active service refused twice, the
address that usaddress cannot read, identity facts shown only where allowed and audited,
form errors that write nothing, and a transfer that moves the balance with the ledger sound."""

from __future__ import annotations

from datetime import UTC, date, datetime
from email.message import EmailMessage

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from portal.billing_core import account_opening as rules
from portal.billing_core import ledger_check, posting, users
from portal.billing_core.errors import FieldErrors
from portal.billing_core.models import (
    Account,
    AuditEvent,
    Customer,
    Deposit,
    EmailOutbox,
    Premise,
    RateSchedule,
    RateScheduleVersion,
    ServiceRequest,
    User,
    UserAccountLink,
    WorkOrder,
)
from portal.billing_core.money_policy import DEFAULT
from portal.demo import TRASH_RES
from portal.emails import Mailer
from portal.services import account_opening as service
from portal.services import accounts as account_service
from portal.settings import Settings

from .factories import district
from .test_final_bills import billed_through_november, meter_and_last_read

TODAY = date(2026, 11, 21)
NOW = datetime(2026, 11, 21, 17, tzinfo=UTC)


def _office(session: Session) -> dict[str, User]:
    district(session, 1)
    trash = RateSchedule(code="T", name="Trash carts", service_type="sanitation", customer_class="RESIDENTIAL_SINGLE")
    session.add(trash)
    session.flush()
    session.add(RateScheduleVersion(schedule_id=trash.id, effective_on=date(2017, 10, 1), definition=TRASH_RES))
    session.flush()
    return {r: users.create_user(session, f"{r}@x.org", "a long password", r) for r in ("csr", "cashier")}


def _form(session: Session, **extra: str) -> dict[str, str]:
    choices = rules.choices(session)
    values = {
        "customer_kind": "person",
        "name": "Rosa Díaz",
        "email": "rosa@example.net",
        "phone": "(909) 555-0142",
        "language": "es",
        "birth_date": "1980-04-30",
        "service_line1": "742 North Evergreen Terrace",
        "service_city": "Chino",
        "service_state": "CA",
        "service_zip": "91710",
        "dwelling_units": "1",
        "customer_class": "RESIDENTIAL_SINGLE",
        "cycle": str(choices.cycles[0].id),
        "start_on": TODAY.isoformat(),
        "billing": "same",
        "water": "on",
        "water_schedule": str(choices.schedules["water"][0].id),
        "sanitation": "on",
        "sanitation_schedule": str(choices.schedules["sanitation"][0].id),
        "cart_count": "2",
        "cart_size": "64",
    }
    values.update(extra)
    return values


def _counts(session: Session) -> tuple[int, ...]:
    return tuple(
        int(session.scalar(select(func.count()).select_from(m)) or 0)
        for m in (Customer, Premise, Account, WorkOrder, Deposit, AuditEvent, EmailOutbox)
    )


class Outbox:
    def __init__(self) -> None:
        self.sent: list[EmailMessage] = []

    def send(self, *messages: EmailMessage) -> None:
        self.sent.extend(messages)


def test_a_start_request_becomes_an_account_in_spanish(session: Session, sessions) -> None:  # type: ignore[no-untyped-def]
    staff = _office(session)
    resident = User(email="rosa@example.net", role="customer", language="es", created_at=NOW)
    session.add(resident)
    session.flush()
    item = ServiceRequest(
        kind="start", status="submitted", user_id=resident.id, start_on=TODAY, contact_name="Rosa Díaz",
        contact_phone="(909) 555-0142", contact_email="rosa@example.net", service_line1="742 N Evergreen Ter",
        service_city="Chino", service_state="CA", service_zip="91710", occupancy="tenant",
        birth_date=date(1980, 4, 30), id_last4="K123", created_at=NOW, updated_at=NOW,
    )  # fmt: skip
    session.add(item)
    session.flush()
    form = service.opening_form(session, staff["csr"], request_id=str(item.id), today=TODAY)
    # Pre-filled from the request; the identity facts shown to the CSR are audited.
    assert form.defaults["service_line1"] == "742 N Evergreen Ter" and form.defaults["birth_date"] == "1980-04-30"
    assert form.defaults["language"] == "es" and form.identity_allowed
    assert session.scalar(select(AuditEvent).where(AuditEvent.action == "start_request.identity_viewed"))
    values = {**_form(session), **{k: v for k, v in form.defaults.items() if k in ("request", "service_line1")}}
    opened = service.open_account(session, staff["csr"], values, policy=DEFAULT, today=TODAY, now=NOW)
    account = opened.account
    customer = account.customer
    assert (customer.name, customer.preferred_language, customer.birth_date) == ("Rosa Díaz", "es", date(1980, 4, 30))
    assert account.premise.address_key == "742 N EVERGREEN TER 91710"
    assert sorted((s.service_type, s.options.get("cart_size"), s.options.get("carts")) for s in account.services) == [
        ("sanitation", "64", "2"), ("water", None, None),
    ]  # fmt: skip
    # New to the district: the policy's deposit, billed; the turn-on order from the request.
    assert opened.deposit is not None and opened.deposit.amount_cents == DEFAULT.deposit_minimum_cents
    assert posting.account_balance(session, account.id) == DEFAULT.deposit_minimum_cents
    order = opened.order
    assert (order.kind, order.status, order.origin, order.service_request_id, order.due_on) == (
        "turn_on", "open", "request", item.id, TODAY,
    )  # fmt: skip
    # The request is done, the account linked to the resident's sign-in.
    assert (item.status, item.account_id) == ("completed", account.id)
    assert session.get(UserAccountLink, (resident.id, account.id)) is not None
    opened_event = session.scalar(select(AuditEvent).where(AuditEvent.action == "account.opened"))
    assert opened_event is not None and opened_event.after["deposit_cents"] == DEFAULT.deposit_minimum_cents
    assert ledger_check.run(session) == []
    session.commit()
    # The welcome email, in Spanish, with Babel's amounts and dates.
    mailer = Mailer(Settings(database_url="sqlite://", secret_key="x"), transport=Outbox())  # type: ignore[arg-type]
    assert service.send_welcome(mailer, sessions, lambda: NOW, account.id) == "rosa@example.net"
    message = mailer.transport.sent[0]  # type: ignore[attr-defined]
    body = message.get_content()
    assert message["Content-Language"] == "es" and account.number in message["Subject"]
    assert "21 de noviembre de 2026" in body and "$50.00" in body and "2 contenedores" in body


def test_duplicates_are_found_and_reused_and_a_served_premise_is_refused(session: Session) -> None:
    staff = _office(session)
    first = service.open_account(session, staff["csr"], _form(session), policy=DEFAULT, today=TODAY, now=NOW).account
    # The same person (name and date of birth) at the same address typed another way.
    again = _form(session, email="", service_line1="742 N. Evergreen Ter.")
    with pytest.raises(rules.DuplicatesFound) as found:
        service.open_account(session, staff["csr"], again, policy=DEFAULT, today=TODAY, now=NOW)
    assert [c.id for c in found.value.found.customers] == [first.customer_id]
    assert [p.id for p in found.value.found.premises] == [first.premise_id]
    assert found.value.found.active_at[first.premise_id]["water"] == first.number
    # Reusing the premise for water again is refused until that service stops.
    reuse = {**again, "duplicates_seen": "1", "customer_choice": str(first.customer_id)}
    with pytest.raises(FieldErrors) as refused:
        service.open_account(
            session,
            staff["csr"],
            {**reuse, "premise_choice": str(first.premise_id)},
            policy=DEFAULT,
            today=TODAY,
            now=NOW,
        )
    assert "Stop that service or transfer" in refused.value.errors["premise_choice"].message
    # "A new premise" at the same address is refused the same way.
    with pytest.raises(FieldErrors) as refused:
        service.open_account(session, staff["csr"], reuse, policy=DEFAULT, today=TODAY, now=NOW)
    assert "already has active service" in refused.value.errors["service_line1"].message
    # The same customer at another address: reused, no second customer, no deposit asked twice.
    moved = {**reuse, "service_line1": "9 Oak Ave", "sanitation": ""}
    second = service.open_account(session, staff["csr"], moved, policy=DEFAULT, today=TODAY, now=NOW)
    assert second.account.customer_id == first.customer_id and second.account.number != first.number
    assert session.scalar(select(func.count()).select_from(Customer).where(Customer.name == "Rosa Díaz")) == 1
    # The CSR sees the possible duplicate's date of birth: that view is an audit event.
    page = service.opening_form(session, staff["csr"], today=TODAY, duplicates=found.value.found)
    assert page.identity[first.customer_id]["birth_date"] == "1980-04-30"


def test_form_errors_and_unreadable_addresses_write_nothing(session: Session) -> None:
    staff = _office(session)
    before = _counts(session)
    bad = _form(
        session,
        name="",
        email="not-an-email",
        service_line1="Evergreen Terrace",
        cart_size="200",
        cycle="",
        start_on="x",
    )
    with pytest.raises(FieldErrors) as caught:
        service.open_account(session, staff["csr"], bad, policy=DEFAULT, today=TODAY, now=NOW)
    errors = caught.value.errors
    assert {"name", "email", "service_line1", "cart_size", "cycle", "start_on"} <= set(errors)
    assert "street number" in errors["service_line1"].message
    with pytest.raises(FieldErrors) as caught:
        service.open_account(
            session, staff["csr"], _form(session, service_line1="PO Box 12"), policy=DEFAULT, today=TODAY, now=NOW
        )
    assert "post office box" in caught.value.errors["service_line1"].message
    with pytest.raises(FieldErrors) as caught:
        service.open_account(
            session, staff["csr"], _form(session, water="", sanitation=""), policy=DEFAULT, today=TODAY, now=NOW
        )
    assert set(caught.value.errors) == {"services"}
    # A rate whose only version is still proposed (in the approvals queue) never bills.
    proposed = RateSchedule(code="W2", name="Water, new", service_type="water", customer_class="RESIDENTIAL_SINGLE")
    session.add(proposed)
    session.flush()
    session.add(
        RateScheduleVersion(schedule_id=proposed.id, effective_on=date(2026, 1, 1), definition={}, status="proposed")
    )
    session.flush()
    before = _counts(session)
    with pytest.raises(FieldErrors) as caught:
        service.open_account(
            session, staff["csr"], _form(session, water_schedule=str(proposed.id)), policy=DEFAULT, today=TODAY, now=NOW
        )
    assert "no approved rate" in caught.value.errors["water_schedule"].message
    assert _counts(session) == before


def test_identity_facts_only_for_roles_that_may_see_them(session: Session) -> None:
    staff = _office(session)
    opened = service.open_account(
        session, staff["csr"], _form(session, id_last4="k123"), policy=DEFAULT, today=TODAY, now=NOW
    )
    number = opened.account.number
    viewed = select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "customer.identity_viewed")
    assert session.scalar(viewed) == 0
    assert service.opened_page(session, staff["cashier"], number).identity == {}
    assert session.scalar(viewed) == 0
    assert service.opened_page(session, staff["csr"], number, "10.0.0.9").identity == {
        "birth_date": "1980-04-30",
        "id_last4": "K123",
    }
    event = session.scalar(select(AuditEvent).where(AuditEvent.action == "customer.identity_viewed"))
    assert event is not None and event.actor_id == staff["csr"].id and event.remote_addr == "10.0.0.9"
    # The facts themselves never go into the audit trail.
    created = session.scalar(select(AuditEvent).where(AuditEvent.action == "customer.created"))
    assert created is not None and "1980" not in str(created.after) and "K123" not in str(created.after)


def test_a_transfer_moves_the_balance_and_the_ledger_stays_sound(session: Session) -> None:
    accts, _supervisor, specialist = billed_through_november(session)
    old = accts[0]
    meter, last = meter_and_last_read(session, old)
    owed_before = posting.account_balance(session, old.id)
    assert owed_before > 0
    choices = rules.choices(session)
    values = {
        "stop_on": "2026-11-20",
        f"read-{meter.id}": str(last + 5),
        "service_line1": "55 Pine St",
        "service_city": "Chino",
        "service_state": "CA",
        "service_zip": "91710",
        "customer_class": "RESIDENTIAL_SINGLE",
        "cycle": str(choices.cycles[0].id),
        "start_on": "2026-11-21",
        "water": "on",
        "water_schedule": str(choices.schedules["water"][0].id),
    }
    # A wrong part refuses the whole: the stop is undone with it.
    with pytest.raises(FieldErrors) as caught:
        service.transfer(
            session, specialist, old.number, {**values, "service_line1": "Pine St", f"read-{meter.id}": "x"},
            policy=DEFAULT, today=TODAY, now=NOW,
        )  # fmt: skip
    assert {"service_line1", f"read-{meter.id}"} <= set(caught.value.errors)
    assert old.status == "active"
    done = service.transfer(session, specialist, old.number, values, policy=DEFAULT, today=TODAY, now=NOW)
    new = done.opened.account
    assert done.final_bill is not None and old.status == "final"
    assert new.customer_id == old.customer_id and new.premise.address_key == "55 PINE ST 91710"
    # The whole balance, the final bill's included, moved; the customer has history: no deposit.
    assert posting.account_balance(session, old.id) == 0
    assert posting.account_balance(session, new.id) == sum(done.moved.values()) > owed_before
    assert done.opened.deposit is None
    # The final bill went to the new address, where the new account's bills go too.
    assert (old.customer.mailing_line1, old.customer.mailing_zip) == ("55 Pine St", "91710")
    assert ledger_check.run(session) == []
    event = session.scalar(select(AuditEvent).where(AuditEvent.action == "account.transferred"))
    assert event is not None and event.after["to_account"] == new.number
    # Nothing is left to move afterwards.
    with pytest.raises(FieldErrors, match="nothing left"):
        service.move_balance(session, specialist, old.number, new.number, today=TODAY, now=NOW)
    # A final read far beyond the history holds the final bill: the balance as it stands moves
    # now, and what the approved final bill adds moves afterwards.
    other = accts[1]
    meter, last = meter_and_last_read(session, other)
    owed = posting.account_balance(session, other.id)
    held = service.transfer(
        session,
        specialist,
        other.number,
        {**values, f"read-{meter.id}": str(last + 5000), "service_line1": "56 Pine St"},
        policy=DEFAULT,
        today=TODAY,
        now=NOW,
    )
    assert held.final_bill is None and held.held_reasons and sum(held.moved.values()) == owed
    assert posting.account_balance(session, other.id) == 0
    account_service.review_final_bill(
        session, _supervisor, other.number, "approve", {}, now=NOW, today=TODAY, remote_addr=None
    )
    final_charges = posting.account_balance(session, other.id)
    assert final_charges > 0
    moved = service.move_balance(session, specialist, other.number, held.opened.account.number, today=TODAY, now=NOW)
    assert sum(moved.values()) == final_charges and posting.account_balance(session, other.id) == 0
    assert posting.account_balance(session, held.opened.account.id) == owed + final_charges
    assert ledger_check.run(session) == []


def test_the_command_line_opens_an_account_from_a_request(
    session: Session, engine, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    from portal.cli import main

    staff = _office(session)
    resident = User(email="lee@example.net", role="customer", created_at=NOW)
    session.add(resident)
    session.flush()
    item = ServiceRequest(
        kind="start", status="submitted", user_id=resident.id, start_on=TODAY, contact_name="Lee Park",
        contact_phone="(909) 555-0177", contact_email="lee@example.net", service_line1="8 Elm St",
        service_city="Chino", service_state="CA", service_zip="91710", created_at=NOW, updated_at=NOW,
    )  # fmt: skip
    session.add(item)
    session.commit()
    monkeypatch.setenv("DATABASE_URL", engine.url.render_as_string(hide_password=False))
    args = ["accounts", "open", "--from-request", str(item.id), "--class", "RESIDENTIAL_SINGLE", "--water-rate", "W"]
    args += ["--on", TODAY.isoformat()]
    assert main([*args, "--as", staff["cashier"].email]) != 0  # a cashier opens no accounts
    assert main([*args, "--as", staff["csr"].email]) == 0
    assert "is open; turn-on order" in capsys.readouterr().out
    session.expire_all()
    assert session.get(ServiceRequest, item.id).status == "completed"  # type: ignore[union-attr]
