"""Issue 16's "done when" on both databases, through the services the staff pages call: a new
customer is set up (a meter received into stock, the account opened with its deposit and
turn-on order, the meter installed, the turn-on completed in the field with the read-in),
served (a high-bill case with an owner and an age, resolved; a change of contacts),
billed (the bill run prorates the first, partial period), moved (a transfer: the final
bill and the balance move to the new account) and closed (the last stop: the final bill,
the deposit applied), with the ledger sound at the end."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.billing_core import account_opening as opening_rules
from portal.billing_core import bill_runs, field_orders, ledger_check, posting, users
from portal.billing_core import meter_inventory as inventory
from portal.billing_core.models import Account, Bill, Deposit, MeterRead, Premise, ServiceCase, WorkOrder
from portal.billing_core.money_policy import DEFAULT
from portal.services import account_changes, accounts, cases
from portal.services import account_opening as opening
from portal.services import field_orders as field_service

from .factories import district

TZ = field_orders.AGENCY_TZ


def at(day: date, hour: int = 18) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def test_a_customer_set_up_served_billed_moved_and_closed_through_the_staff_services(session: Session) -> None:
    district(session, 1)  # the cycle, the water and sewer rates, a neighbour
    staff = {r: users.create_user(session, f"{r}@x.org", "a long password", r) for r in ("csr", "specialist", "field")}
    staff["supervisor"] = users.create_user(session, "sup@x.org", "a long password", "supervisor")
    csr, specialist, crew, supervisor = staff["csr"], staff["specialist"], staff["field"], staff["supervisor"]
    choices = opening_rules.choices(session)

    # --- Set up: a meter into stock, the account, the meter set, the turn-on in the field ---
    (meter,) = inventory.receive(
        session, [inventory.parse_meter({"serial": "LC0001", "size": '5/8"'})], date(2026, 10, 8), specialist,
        at(date(2026, 10, 8)),
    )  # fmt: skip
    start = date(2026, 10, 12)
    values = {
        "customer_kind": "person", "name": "Ana Ruiz", "email": "ana@example.net", "phone": "(909) 555-0101",
        "language": "en", "birth_date": "1985-02-14", "service_line1": "742 North Evergreen Terrace",
        "service_city": "Chino", "service_state": "CA", "service_zip": "91710", "dwelling_units": "1",
        "customer_class": "RESIDENTIAL_SINGLE", "cycle": str(choices.cycles[0].id), "start_on": start.isoformat(),
        "billing": "same", "water": "on", "water_schedule": str(choices.schedules["water"][0].id),
        "sewer": "on", "sewer_schedule": str(choices.schedules["sewer"][0].id),
    }  # fmt: skip
    opened = opening.open_account(session, csr, values, policy=DEFAULT, today=start, now=at(start, 16))
    account = opened.account
    assert opened.deposit is not None
    deposit_cents = opened.deposit.amount_cents
    turn_on = session.scalar(select(WorkOrder).where(WorkOrder.account_id == account.id, WorkOrder.kind == "turn_on"))
    assert turn_on is not None and turn_on.status == "open"
    premise = session.get(Premise, account.premise_id)
    assert premise is not None
    inventory.install(session, meter, premise, Decimal(500), start, specialist, at(start, 17))
    assert meter.status == "installed" and any(s.meter_id == meter.id for s in account.services)
    turn_on.assigned_to_id = crew.id
    on_day = date(2026, 10, 13)
    field_service.mark_done(
        session, crew, turn_on.id, {"time": "09:30", "meter_read": "501", "serial": "LC0001"}, on_day, at(on_day), TZ
    )
    assert (turn_on.status, turn_on.meter_id, account.status) == ("done", meter.id, "active")
    read_in = session.get(MeterRead, turn_on.read_id)
    assert read_in is not None and read_in.value == Decimal(501)

    # --- Served: a high-bill case with an owner and an age; a change of contacts ---
    case = cases.open_by_staff(
        session, csr,
        {"kind": "high_bill", "account": account.number, "channel": "phone", "subject": "Bill seems high",
         "description": "Asks why the first bill is so high.", "assignee": str(specialist.id)},
        on_day, at(on_day),
    )  # fmt: skip
    assert (case.assigned_to_id, case.status) == (specialist.id, "open") and case.due_on > on_day
    said = account_changes.apply_change(
        session, csr, account.number, "contacts",
        {"email": "ana@example.net", "phone": "(909) 555-0199", "alt_phone": "", "contact_name": "",
         "preferred_language": "es", "paperless": "", "mailing_line1": "742 N Evergreen Ter",
         "mailing_city": "Chino", "mailing_state": "CA", "mailing_zip": "91710"},
        today=on_day, remote_addr=None,
    )  # fmt: skip
    assert "contacts" in said and account.customer.phone == "(909) 555-0199"

    # --- Billed: the first period, from the turn-on to the read on November 5 ---
    session.add(MeterRead(meter_id=meter.id, read_on=date(2026, 11, 5), value=Decimal(520), source="amr"))
    session.flush()
    run = bill_runs.create_run(session, "C1", date(2026, 10, 5), date(2026, 11, 5), actor=specialist)
    bill_runs.calculate(session, run, now=at(date(2026, 11, 6)))
    bill_runs.approve(session, run, supervisor, now=at(date(2026, 11, 6)))
    bill_runs.post(session, run, supervisor, now=at(date(2026, 11, 6)))
    bill = session.scalar(select(Bill).where(Bill.account_id == account.id, Bill.status == "posted"))
    assert bill is not None and bill.current_charges_cents > 0
    assert posting.account_balance(session, account.id) == deposit_cents + bill.current_charges_cents
    resolved_on = date(2026, 11, 9)
    cases.resolve(session, specialist, case.id, {"resolution": "Explained the partial first period."}, at(resolved_on))
    assert session.get(ServiceCase, case.id).status == "resolved"  # type: ignore[union-attr]

    # --- Moved: a transfer to another premise; the final bill and the balance move ---
    owed = posting.account_balance(session, account.id)
    moved = opening.transfer(
        session, specialist, account.number,
        {"stop_on": "2026-11-20", f"read-{meter.id}": "530", "service_line1": "55 Pine St",
         "service_city": "Chino", "service_state": "CA", "service_zip": "91710",
         "customer_class": "RESIDENTIAL_SINGLE", "cycle": str(choices.cycles[0].id), "start_on": "2026-11-21",
         "sewer": "on", "sewer_schedule": str(choices.schedules["sewer"][0].id)},
        policy=DEFAULT, today=date(2026, 11, 20), now=at(date(2026, 11, 20)),
    )  # fmt: skip
    assert moved.final_bill is not None and account.status == "final"
    new = moved.opened.account
    assert new.customer_id == account.customer_id
    assert posting.account_balance(session, account.id) == 0
    # The new account owes what moved (the final bill's included) and, for a customer with
    # less than the policy's history, the deposit the policy asks at the new premise.
    new_deposit = moved.opened.deposit.amount_cents if moved.opened.deposit else 0
    assert sum(moved.moved.values()) > owed - deposit_cents
    assert posting.account_balance(session, new.id) == sum(moved.moved.values()) + new_deposit
    assert ledger_check.run(session) == []

    # --- Closed: the last stop; the final bill posts and nothing is left unexplained ---
    new.status = "active"  # sewer only: no meter, no turn-on read to wait for
    accounts.stop_service(
        session, specialist, new.number, {"stop_on": "2026-12-20"},
        now=at(date(2026, 12, 21)), today=date(2026, 12, 21), remote_addr=None,
    )  # fmt: skip
    closed = session.get(Account, new.id)
    assert closed is not None and closed.status in ("final", "closed")
    finals = session.scalars(
        select(Bill).where(
            Bill.account_id.in_([account.id, new.id]), Bill.bill_run_id.is_(None), Bill.status == "posted"
        )
    )
    assert len(list(finals)) == 2  # the two final bills (outside a bill run)
    held = session.scalars(select(Deposit).where(Deposit.account_id.in_([account.id, new.id]))).all()
    assert all(d.status != "held" for d in held)
    assert ledger_check.run(session) == []
