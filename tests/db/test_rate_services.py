"""portal.services.rates: the rate pages' use cases, without the web."""

from datetime import date

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from portal.billing_core.errors import NotAllowed, NotFound
from portal.billing_core.models import RateSchedule, RateScheduleVersion, User
from portal.services import rates
from tests.billing_core.test_owrs import SPEC_TIERED
from tests.db.factories import district

SEASONAL = {
    "unit": "CCF",
    "components": [
        {
            "type": "seasonal_uniform",
            "description": "Water usage",
            "prices": {"summer": "3.10", "winter": "2.50"},
            "seasons": {"summer": [5, 6, 7, 8, 9, 10], "winter": [11, 12, 1, 2, 3, 4]},
        }
    ],
}


def user(session: Session, role: str) -> User:
    found = User(email=f"{role}@example.org", role=role)
    session.add(found)
    session.flush()
    return found


def seasonal_schedule(session: Session) -> RateSchedule:
    schedule = RateSchedule(code="W-SEASON", name="Seasonal water", service_type="water", customer_class="X")
    session.add(schedule)
    session.flush()
    session.add(RateScheduleVersion(schedule_id=schedule.id, effective_on=date(2020, 1, 1), definition=SEASONAL))
    session.flush()
    return schedule


def test_the_calculator_takes_its_defaults_from_the_account(session: Session) -> None:
    (account, _other) = district(session)
    form = rates.CalculatorForm(account=account.number, extra={name: "" for name in rates.CALCULATOR_INPUTS})
    result = rates.calculate(session, form, date(2024, 3, 1), compute=True)
    water = next(s for s in account.services if s.service_type == "water")
    assert result.account is not None and result.account.id == account.id
    assert form.schedule_id == water.rate_schedule_id and result.schedule is not None
    assert form.meter_size == '5/8"' and form.extra["dwelling_units"] == "1"
    assert result.current is not None and form.current_id == result.current.id
    assert result.comparison is not None and result.comparison.current_cents > 0
    assert not form.errors


def test_the_calculator_names_an_unknown_account_and_a_missing_schedule(session: Session) -> None:
    district(session)
    form = rates.CalculatorForm(account="12345678", schedule_id=999_999)
    result = rates.calculate(session, form, date(2024, 3, 1), compute=True)
    assert form.errors == {"account": "No account numbered 12345678.", "schedule": "Choose a rate schedule."}
    assert result.comparison is None and result.schedule is None


@pytest.mark.parametrize("as_of, season", [(date(2024, 7, 15), "summer"), (date(2024, 1, 15), "winter")])
def test_the_calculators_season_is_the_day_it_is_asked_for_not_the_server_clock(
    session: Session, as_of: date, season: str
) -> None:
    schedule = seasonal_schedule(session)
    form = rates.CalculatorForm(schedule_id=schedule.id, usage="10")
    result = rates.calculate(session, form, as_of, compute=True)
    assert result.comparison is not None, form.errors
    (line,) = result.comparison.current
    assert f"({season})" in line.description


def test_the_calculator_checks_numbers_without_computing(session: Session) -> None:
    schedule = seasonal_schedule(session)
    form = rates.CalculatorForm(schedule_id=schedule.id, usage="1E+9", days="0")
    result = rates.calculate(session, form, date(2024, 7, 1), compute=True)
    assert result.comparison is None
    assert form.errors["usage"] == "Enter the usage as a number, like 18 or 18.5."
    assert form.errors["days"] == "The days in the period cannot be below 1."


def test_an_upload_needs_a_rate_editor_and_imports_whole(session: Session) -> None:
    with pytest.raises(NotAllowed, match="Only billing supervisors and administrators change rates."):
        rates.import_upload(session, user(session, "specialist"), "a.owrs", SPEC_TIERED.encode(), None)
    supervisor = user(session, "supervisor")
    bad = rates.import_upload(session, supervisor, "b.owrs", SPEC_TIERED.replace("20.10", ".nan").encode(), None)
    assert not bad.ok and bad.problems[0].reason == "NaN (not a number) is not a rate"
    assert session.scalar(select(func.count(RateScheduleVersion.id))) == 0
    good = rates.import_upload(session, supervisor, "u - 1/a.owrs", SPEC_TIERED.encode(), date(2026, 7, 1))
    assert good.ok and good.created_versions == 1


def test_the_schedule_list_and_a_versions_page(session: Session) -> None:
    schedule = seasonal_schedule(session)
    listing = rates.schedule_list(session, date(2019, 12, 31))
    assert [key for key, _ in listing.groups] == [("water", "X")]
    assert listing.in_force == {schedule.id: None}
    (version,) = rates.schedule_list(session, date(2020, 1, 1)).in_force.values()
    assert version is not None
    page = rates.version_page(session, version.id)
    assert page.schedule.id == schedule.id and [v.id for v in page.siblings] == [version.id]
    assert page.tables and page.needs == []
    with pytest.raises(NotFound):
        rates.version_page(session, version.id + 1000)
