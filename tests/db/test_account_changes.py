"""Maintaining an account: each change with its effective date and its audit, the refusals,
the history, and the next bill prorating the old and the new terms by days."""

from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.adapters.clock import system_clock
from portal.billing_core import audit, bill_runs, rating, users
from portal.billing_core.errors import FieldErrors, NotAllowed
from portal.billing_core.models import (
    AuditEvent,
    Bill,
    BillLine,
    Meter,
    MeterRead,
    RateSchedule,
    RateScheduleVersion,
    Service,
)
from portal.demo import SEWER_COM, TRASH_RES
from portal.services import account_changes as service

from .factories import district

D = Decimal
TODAY = date(2026, 10, 10)


def office(session: Session):  # type: ignore[no-untyped-def]
    (account,) = district(session, 1)
    trash = RateSchedule(code="T", name="Trash carts", service_type="sanitation", customer_class="RESIDENTIAL_SINGLE")
    water2 = RateSchedule(
        code="W2", name="Water, new tariff", service_type="water", customer_class="RESIDENTIAL_SINGLE"
    )
    sewer_com = RateSchedule(code="S-COM", name="Sewer, commercial", service_type="sewer", customer_class="COMMERCIAL")
    session.add_all([trash, water2, sewer_com])
    session.flush()
    new_water = {
        "unit": "CCF",
        "components": [
            {"type": "fixed", "description": "Water service charge", "amount": "31.00"},
            {"type": "uniform", "description": "Water usage", "price": "3.10"},
        ],
    }
    session.add_all(
        [
            RateScheduleVersion(schedule_id=trash.id, effective_on=date(2017, 10, 1), definition=TRASH_RES),
            RateScheduleVersion(schedule_id=water2.id, effective_on=date(2017, 10, 1), definition=new_water),
            RateScheduleVersion(schedule_id=sewer_com.id, effective_on=date(2017, 10, 1), definition=SEWER_COM),
            Service(
                account_id=account.id,
                service_type="sanitation",
                rate_schedule_id=trash.id,
                options={"cart_size": "64"},
                started_on=date(2020, 1, 1),
            ),
        ]
    )
    meter = session.scalar(select(Meter))
    value = D(1000)
    for month in range(8, 12):  # reads on the 5th: 11 CCF a month
        session.add(MeterRead(meter_id=meter.id, read_on=date(2026, month, 5), value=value, source="amr"))
        value += 11
    # September is billed (posted): the account is billed through October 4.
    session.add(
        Bill(
            number="000000001",
            account_id=account.id,
            period_start=date(2026, 9, 5),
            period_end=date(2026, 10, 5),
            bill_date=date(2026, 10, 7),
            due_date=date(2026, 10, 28),
            previous_balance_cents=0,
            current_charges_cents=0,
            total_due_cents=0,
        )
    )
    csr = users.create_user(session, "csr@x.org", "a long password", "csr")
    specialist = users.create_user(session, "spec@x.org", "a long password", "specialist")
    session.flush()
    session.expire_all()
    return account, csr, specialist, trash, water2


def change(session: Session, actor, number: str, kind: str, **values: str) -> str:  # type: ignore[no-untyped-def]
    return service.apply_change(session, actor, number, kind, values, today=TODAY, remote_addr="10.0.0.9")


def services(session: Session, account_id: int, kind: str) -> list[Service]:
    return list(
        session.scalars(
            select(Service).where(Service.account_id == account_id, Service.service_type == kind).order_by(Service.id)
        )
    )


PRORATED = sorted(
    [
        ("water", 'Water service charge (5/8" meter), prorated 64.5% (10/05 to 10/24, 20 days)', 1588),
        ("water", "Water usage: 7.1 CCF × $2.78 (10/05 to 10/24, 20 days)", 1973),
        ("water", "Water service charge, prorated 35.5% (10/25 to 11/04, 11 days)", 1100),
        ("water", "Water usage: 3.9 CCF × $3.10 (10/25 to 11/04, 11 days)", 1210),
        ("sewer", "Sewer service charge", 3852),
        (
            "sanitation",
            "Trash, recycling and green waste (64-gallon carts), prorated 48.4% (10/05 to 10/19, 15 days)",
            1386,
        ),
        (
            "sanitation",
            "Trash, recycling and green waste (96-gallon carts), prorated 51.6% (10/20 to 11/04, 16 days)",
            1899,
        ),
    ]
)


def test_a_period_spanning_a_cart_and_a_rate_change_is_prorated_by_days(session: Session) -> None:
    account, csr, specialist, trash, water2 = office(session)
    (cart,) = services(session, account.id, "sanitation")
    (water,) = services(session, account.id, "water")
    change(
        session,
        csr,
        account.number,
        "carts",
        service=str(cart.id),
        cart_size="96",
        carts="1",
        effective_on="2026-10-20",
    )
    change(
        session,
        csr,
        account.number,
        "rate",
        service=str(water.id),
        rate_schedule=str(water2.id),
        effective_on="2026-10-25",
    )
    old_cart, new_cart = services(session, account.id, "sanitation")
    assert (old_cart.ended_on, new_cart.started_on, new_cart.options) == (
        date(2026, 10, 20),
        date(2026, 10, 20),
        {"cart_size": "96"},
    )
    old_water, new_water = services(session, account.id, "water")
    assert (old_water.ended_on, new_water.started_on, new_water.rate_schedule_id, new_water.meter_id) == (
        date(2026, 10, 25),
        date(2026, 10, 25),
        water2.id,
        water.meter_id,
    )

    run = bill_runs.create_run(session, "C1", date(2026, 10, 5), date(2026, 11, 5), actor=specialist)
    bill_runs.calculate(session, run, now=system_clock())
    bill = session.scalar(select(Bill).where(Bill.bill_run_id == run.id))
    lines = list(session.scalars(select(BillLine).where(BillLine.bill_id == bill.id).order_by(BillLine.sequence)))
    # A 31-day period. Carts: 64 gallons for Oct 5-19 (15 days), 96 gallons Oct 20 - Nov 4 (16 days).
    #   $28.65 x 15/31 = $13.8629 -> $13.86;  $36.80 x 16/31 = $18.9935 -> $18.99.
    # Water: the old tariff Oct 5-24 (20 days), the new one Oct 25 - Nov 4 (11 days); 11 CCF used,
    # shared by days: 11 x 20/31 = 7.0968 CCF and 11 x 11/31 = 3.9032 CCF.
    #   $24.61 x 20/31 = $15.8774 -> $15.88;  7.0968 x $2.78 = $19.7290 -> $19.73;
    #   $31.00 x 11/31 = $11.00;              3.9032 x $3.10 = $12.10.
    # Sewer ran the whole period: $38.52.
    assert sorted((ln.service_type, ln.description, ln.amount_cents) for ln in lines) == PRORATED
    assert bill.current_charges_cents == 1386 + 1899 + 1588 + 1973 + 1100 + 1210 + 3852
    usage_lines = [ln for ln in lines if ln.description.startswith("Water usage")]
    assert sorted(ln.quantity.quantize(D("0.001")) for ln in usage_lines) == [D("3.903"), D("7.097")]


def test_each_change_is_audited_with_before_and_after_and_shown_in_the_history(session: Session) -> None:
    account, csr, _specialist, trash, _water2 = office(session)
    said = change(
        session,
        csr,
        account.number,
        "contacts",
        email="new@example.com",
        phone="(909) 555-0100",
        alt_phone="",
        contact_name="",
        preferred_language="es",
        paperless="yes",
        mailing_line1="PO Box 12",
        mailing_city="Chino",
        mailing_state="ca",
        mailing_zip="91710",
    )
    assert said == "Changed the contacts and mailing address and paperless."
    customer = account.customer
    assert (customer.email, customer.phone, customer.preferred_language, customer.mailing_state, account.paperless) == (
        "new@example.com",
        "(909) 555-0100",
        "es",
        "CA",
        True,
    )
    said = change(session, csr, account.number, "class", customer_class="COMMERCIAL", effective_on="2026-10-15")
    assert said == "The account is Commercial from 10/15/2026; 1 service(s) move to that class's rates."
    old_sewer, sewer = services(session, account.id, "sewer")
    assert (old_sewer.ended_on, sewer.started_on, sewer.rate_schedule.code) == (
        date(2026, 10, 15),
        date(2026, 10, 15),
        "S-COM",
    )
    change(session, csr, account.number, "stop", service=str(sewer.id), last_day="2026-10-31")
    change(
        session,
        csr,
        account.number,
        "start",
        service_type="sanitation",
        rate_schedule=str(trash.id),
        cart_size="35",
        carts="2",
        effective_on="2026-11-01",
    )

    events = {e.action: e for e in session.scalars(select(AuditEvent).where(AuditEvent.actor_id == csr.id))}
    assert events["customer.contacts"].before == {"email": "c1@example.net", "phone": None, "preferred_language": "en"}
    assert events["customer.contacts"].after == {
        "email": "new@example.com",
        "phone": "(909) 555-0100",
        "preferred_language": "es",
    }
    assert events["customer.mailing_address"].after == {
        "line1": "PO Box 12",
        "city": "Chino",
        "state": "CA",
        "zip": "91710",
    }
    assert (events["account.paperless"].before, events["account.paperless"].after) == (
        {"paperless": False},
        {"paperless": True},
    )
    assert events["account.class"].before == {"customer_class": "RESIDENTIAL_SINGLE"}
    assert events["account.class"].after == {"customer_class": "COMMERCIAL", "effective_on": "2026-10-15"}
    assert events["service.stopped"].after == {"last_day": "2026-10-31"} and sewer.ended_on == date(2026, 11, 1)
    assert events["service.started"].after["options"] == {"cart_size": "35", "carts": "2"}
    assert all(e.remote_addr == "10.0.0.9" for e in events.values())

    page = service.history(session, account.number)
    assert (
        events["service.changed"].before["rate_schedule"] == "Sewer"
        and events["service.changed"].detail == "customer class changed"
    )
    assert page.total == 7 and page.pages == 1
    words = [(r.words.what, r.words.before, r.words.after) for r in page.rows]
    assert words[0] == (
        "Service started",
        "",
        "service: sanitation; rate: Trash carts; carts: 2 × 35 gallons; meter: none; from: 11/01/2026",
    )
    assert ("Customer class changed", "class: Residential Single", "class: Commercial; from: 10/15/2026") in words
    assert (
        "Contacts changed",
        "email: c1@example.net; phone: none; language: English",
        "email: new@example.com; phone: (909) 555-0100; language: Spanish",
    ) in words
    assert [r.event.actor_label for r in page.rows] == ["csr@x.org"] * 7


def test_the_history_is_newest_first_fifty_a_page(session: Session) -> None:
    account, csr, *_ = office(session)
    other = session.scalar(select(Service.id).where(Service.account_id == account.id))
    for n in range(53):
        audit.record(
            session,
            "customer.contacts",
            actor=csr,
            entity_type="customer",
            entity_id=account.customer_id,
            after={"email": f"n{n}@example.com"},
        )
    audit.record(session, "service.stopped", entity_type="service", entity_id=other + 100)  # not this account's
    session.flush()
    first, last = service.history(session, account.number, 1), service.history(session, account.number, 2)
    assert (first.total, first.pages, len(first.rows), len(last.rows)) == (53, 2, 50, 3)
    assert (
        first.rows[0].words.after == "email: n52@example.com" and last.rows[-1].words.after == "email: n0@example.com"
    )
    assert service.history(session, account.number, 9).page == 2


def test_refusals_name_the_field_and_write_nothing(session: Session) -> None:
    account, csr, specialist, trash, water2 = office(session)
    (cart,) = services(session, account.id, "sanitation")
    (water,) = services(session, account.id, "water")
    sewer = services(session, account.id, "sewer")[0]
    with pytest.raises(FieldErrors) as bad:
        change(
            session,
            csr,
            account.number,
            "contacts",
            email="not-an-email",
            phone="123",
            preferred_language="fr",
            paperless="yes",
            mailing_line1="1 Elm",
            mailing_city="",
            mailing_state="",
            mailing_zip="",
        )
    assert set(bad.value.errors) == {"email", "phone", "preferred_language", "mailing_city"}
    with pytest.raises(FieldErrors) as bad:  # a billed period is not back-dated
        change(
            session,
            csr,
            account.number,
            "carts",
            service=str(cart.id),
            cart_size="96",
            carts="1",
            effective_on="2026-10-04",
        )
    assert set(bad.value.errors) == {"effective_on"}
    assert "billed through 10/04/2026" in bad.value.errors["effective_on"].message
    assert "void" in bad.value.errors["effective_on"].message
    with pytest.raises(FieldErrors) as bad:
        change(
            session,
            csr,
            account.number,
            "carts",
            service=str(cart.id),
            cart_size="50",
            carts="12",
            effective_on="2026-10-20",
        )
    assert set(bad.value.errors) == {"cart_size", "carts"}
    with pytest.raises(FieldErrors) as bad:  # the right kind of schedule, and a real date
        change(
            session,
            csr,
            account.number,
            "rate",
            service=str(water.id),
            rate_schedule=str(trash.id),
            effective_on="soon",
        )
    assert set(bad.value.errors) == {"rate_schedule", "effective_on"}
    with pytest.raises(FieldErrors) as bad:
        change(session, csr, account.number, "stop", service=str(sewer.id), last_day="2026-10-01")
    assert set(bad.value.errors) == {"last_day"}
    with pytest.raises(FieldErrors) as bad:
        change(
            session,
            csr,
            account.number,
            "start",
            service_type="water",
            rate_schedule=str(water2.id),
            meter="",
            effective_on="2026-10-20",
        )
    assert set(bad.value.errors) == {"meter", "service_type"}
    with pytest.raises(FieldErrors) as bad:
        change(session, csr, account.number, "contacts", email="", preferred_language="en", paperless="yes")
    assert set(bad.value.errors) == {"paperless"}
    # The last service is not stopped here: that is the account's final bill.
    change(session, csr, account.number, "stop", service=str(sewer.id), last_day="2026-10-31")
    change(session, csr, account.number, "stop", service=str(cart.id), last_day="2026-10-31")
    with pytest.raises(FieldErrors) as bad:
        change(session, csr, account.number, "stop", service=str(water.id), last_day="2026-10-31")
    assert "last service" in bad.value.errors["service"].message
    assert water.ended_on is None
    actions = list(session.scalars(select(AuditEvent.action).where(AuditEvent.actor_id == csr.id)))
    assert actions == ["service.stopped", "service.stopped"]
    assert len(services(session, account.id, "sanitation")) == 1
    cashier = users.create_user(session, "cash@x.org", "a long password", "cashier")
    with pytest.raises(NotAllowed):
        change(session, cashier, account.number, "contacts", email="", preferred_language="en", paperless="no")


def test_carts_are_charged_per_cart_for_the_days_served() -> None:
    """(No database.) Two 35-gallon carts started on Oct 20 in a 31-day period: 16 days."""
    usage = rating.Usage(options={"cart_size": "35", "carts": "2"})
    versions = [(date(2017, 10, 1), None, TRASH_RES)]
    (line,) = rating.rate_period(
        "sanitation", versions, usage, date(2026, 10, 5), date(2026, 11, 5), served=(date(2026, 10, 20), None)
    )
    # $24.10 x 2 carts x 16/31 = $24.8774 -> $24.88
    assert (line.amount_cents, line.unit_price, line.quantity) == (2488, D("24.10"), D(32) / 31)
    assert (
        line.description
        == "Trash, recycling and green waste (2 × 35-gallon carts, prorated 51.6%) (10/20 to 11/04, 16 days)"
    )
    (whole,) = rating.rate_period(
        "sanitation", versions, usage._replace(options={"cart_size": "35"}), date(2026, 10, 5), date(2026, 11, 5)
    )
    assert whole.amount_cents == 2410
