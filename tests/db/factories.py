"""Small, explicit builders for database tests."""

from __future__ import annotations

from datetime import date

from sqlalchemy.orm import Session

from portal.billing_core.models import (
    Account,
    BillingCycle,
    Customer,
    Meter,
    Premise,
    RateSchedule,
    RateScheduleVersion,
    Service,
)
from portal.billing_core.numbers import account_number
from portal.demo import SEWER_RES, chino_water_definition


def district(session: Session, accounts: int = 2) -> list[Account]:
    cycle = BillingCycle(code="C1", name="Cycle 1", frequency="monthly", read_day=5)
    water = RateSchedule(code="W", name="Water", service_type="water", customer_class="RESIDENTIAL_SINGLE")
    sewer = RateSchedule(code="S", name="Sewer", service_type="sewer", customer_class="RESIDENTIAL_SINGLE")
    session.add_all([cycle, water, sewer])
    session.flush()
    session.add_all(
        [
            RateScheduleVersion(
                schedule_id=water.id,
                effective_on=date(2017, 10, 1),
                definition=chino_water_definition("RESIDENTIAL_SINGLE"),
            ),
            RateScheduleVersion(schedule_id=sewer.id, effective_on=date(2017, 10, 1), definition=SEWER_RES),
        ]
    )
    out = []
    for i in range(1, accounts + 1):
        customer = Customer(name=f"Customer {i}", email=f"c{i}@example.net")
        premise = Premise(address_line1=f"{100 + i} Oak St", city="Chino", state="CA", zip="91710")
        session.add_all([customer, premise])
        session.flush()
        meter = Meter(serial=f"T{i:06d}", size='5/8"', status="installed", premise_id=premise.id)
        session.add(meter)
        session.flush()
        account = Account(
            number=account_number(9000 + i),
            customer_id=customer.id,
            premise_id=premise.id,
            customer_class="RESIDENTIAL_SINGLE",
            cycle_id=cycle.id,
            opened_on=date(2020, 1, 1),
        )
        session.add(account)
        session.flush()
        session.add_all(
            [
                Service(
                    account_id=account.id,
                    service_type="water",
                    rate_schedule_id=water.id,
                    meter_id=meter.id,
                    options={},
                    started_on=date(2020, 1, 1),
                ),
                Service(
                    account_id=account.id,
                    service_type="sewer",
                    rate_schedule_id=sewer.id,
                    options={},
                    started_on=date(2020, 1, 1),
                ),
            ]
        )
        out.append(account)
    session.flush()
    return out
