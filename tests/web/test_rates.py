"""Staff rate pages: list, version in plain words, calculator, OWRS upload (supervisors and admins only)."""

from datetime import date

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from portal.app import create_app
from portal.billing_core import users
from portal.billing_core.models import Account, AuditEvent, RateSchedule, RateScheduleVersion
from tests.billing_core.test_owrs import SPEC_TIERED
from tests.db.factories import district

from .conftest import CLOCK, SETTINGS, csrf_from, sign_in

PASSWORD = "a long password"


@pytest.fixture
def office(engine: Engine) -> Engine:
    """A small district with two water versions (a rate increase in 2027) and staff sign-ins."""
    with Session(engine) as s, s.begin():
        district(s, 1)
        water = s.scalar(select(RateSchedule).where(RateSchedule.code == "W"))
        current = s.scalar(select(RateScheduleVersion).where(RateScheduleVersion.schedule_id == water.id))
        definition = dict(current.definition)
        definition["components"] = [
            {**definition["components"][0], "values": {'5/8"': "26.00"}},
            {"type": "uniform", "description": "Water usage", "price": "3.00"},
        ]
        s.add(RateScheduleVersion(schedule_id=water.id, effective_on=date(2027, 1, 1), definition=definition))
        for role in ("csr", "supervisor"):
            users.create_user(s, f"{role}@x.org", PASSWORD, role)
    return engine


@pytest.fixture
def staff(office: Engine) -> TestClient:
    app = create_app(SETTINGS, engine=office, clock=CLOCK)
    return TestClient(app, base_url="https://testserver")


def test_schedules_list_with_versions(staff: TestClient) -> None:
    sign_in(staff, "csr@x.org", PASSWORD)
    page = staff.get("/staff/rates")
    assert page.status_code == 200
    assert "Upload an OWRS rate file" not in page.text  # a CSR may look, not change
    (water_group,) = [g for g in page.context["groups"] if g[0] == ("water", "RESIDENTIAL_SINGLE")]
    (schedule,) = water_group[1]
    assert [str(v.effective_on) for v in schedule.versions] == ["2017-10-01", "2027-01-01"]
    assert str(page.context["in_force"][schedule.id].effective_on) == "2017-10-01"


def test_a_version_reads_in_plain_words(staff: TestClient, office: Engine) -> None:
    sign_in(staff, "csr@x.org", PASSWORD)
    with Session(office) as s:
        vid = s.scalar(select(RateScheduleVersion.id).order_by(RateScheduleVersion.id))
    page = staff.get(f"/staff/rates/versions/{vid}")
    assert page.status_code == 200
    titles = [t.title for t in page.context["tables"]]
    assert titles == ["Water service charge", "Water usage"]
    assert ('5/8"', "$24.61") in page.context["tables"][0].rows
    assert "$2.78" in page.text
    assert staff.get("/staff/rates/versions/999999").status_code == 404


def test_calculator_compares_current_and_proposed_for_an_account(staff: TestClient, office: Engine) -> None:
    sign_in(staff, "csr@x.org", PASSWORD)
    with Session(office) as s:
        proposed = s.scalar(select(RateScheduleVersion.id).where(RateScheduleVersion.effective_on == date(2027, 1, 1)))
        number = s.scalar(select(Account.number))
    page = staff.get("/staff/rates/calculator", params={"account": number, "usage": "18", "proposed": proposed})
    assert page.status_code == 200, page.text
    comparison = page.context["comparison"]
    # Current: $24.61 + 18 x $2.78 = $74.65; proposed: $26.00 + 18 x $3.00 = $80.00.
    assert comparison.current_cents == 7465 and comparison.proposed_cents == 8000
    assert comparison.difference_cents == 535
    assert "Difference: +$5.35" in page.text


def test_calculator_for_a_hypothetical_account_and_bad_input(staff: TestClient, office: Engine) -> None:
    sign_in(staff, "csr@x.org", PASSWORD)
    with Session(office) as s:
        schedule = s.scalar(select(RateSchedule.id).where(RateSchedule.code == "W"))
    ok = staff.get("/staff/rates/calculator", params={"schedule": schedule, "usage": "0", "meter_size": '5/8"'})
    assert ok.context["comparison"].current_cents == 2461
    bad = staff.get("/staff/rates/calculator", params={"schedule": schedule, "usage": "lots", "meter_size": '5/8"'})
    assert bad.status_code == 400
    assert bad.context["form"].errors["usage"].startswith("Enter the usage as a number")
    assert 'aria-invalid="true"' in bad.text
    no_size = staff.get("/staff/rates/calculator", params={"schedule": schedule, "usage": "3", "meter_size": '9"'})
    assert "no water service charge for meter size 9" in no_size.context["form"].errors["calculation"]
    unknown = staff.get("/staff/rates/calculator", params={"account": "12345674", "usage": "3"})
    assert unknown.context["form"].errors["account"] == "No account numbered 12345674."


def upload(client: TestClient, content: str, name: str = "rates.owrs", effective: str = ""):  # type: ignore[no-untyped-def]
    token = csrf_from(client.get("/staff/rates").text)
    return client.post(
        "/staff/rates/upload",
        data={"csrf_token": token, "effective": effective},
        files={"owrs_file": (name, content.encode(), "application/x-yaml")},
        follow_redirects=False,
    )


def test_only_supervisors_and_admins_upload(staff: TestClient, office: Engine) -> None:
    sign_in(staff, "csr@x.org", PASSWORD)
    assert staff.get("/staff/rates/upload").status_code == 403
    response = upload(staff, SPEC_TIERED)
    assert response.status_code == 403
    assert "Only billing supervisors and administrators change rates." in response.text
    with Session(office) as s:
        assert s.scalar(select(func.count(RateScheduleVersion.id))) == 3


def test_a_bad_file_shows_each_problem_and_imports_nothing(staff: TestClient, office: Engine) -> None:
    sign_in(staff, "supervisor@x.org", PASSWORD)
    bad = SPEC_TIERED.replace("commodity_charge+service_charge", "commodity_charge+service_charge x:1")
    response = upload(staff, bad)
    assert response.status_code == 400
    (problem,) = response.context["problems"]
    assert (problem.cust_class, problem.field_name) == ("RESIDENTIAL_SINGLE", "bill")
    assert "cannot read formula" in response.text
    assert (
        upload(staff, "rate_structure: [", name="broken.owrs")
        .context["problems"][0]
        .reason.startswith("not valid YAML")
    )
    missing = upload(staff, SPEC_TIERED, effective="July 1")
    assert missing.context["errors"]["effective"].startswith("Enter the date as YYYY-MM-DD")
    with Session(office) as s:
        assert s.scalar(select(func.count(RateScheduleVersion.id))) == 3


def test_a_supervisor_uploads_a_file_and_it_is_audited(staff: TestClient, office: Engine) -> None:
    sign_in(staff, "supervisor@x.org", PASSWORD)
    response = upload(staff, SPEC_TIERED, name="example.owrs")
    assert response.status_code == 303 and response.headers["location"] == "/staff/rates?imported=1"
    with Session(office) as s:
        assert s.scalar(select(func.count(RateScheduleVersion.id))) == 4
        event = s.scalar(select(AuditEvent).where(AuditEvent.action == "rates.import_owrs"))
        assert event.actor_label == "supervisor@x.org" and event.after["classes"] == ["RESIDENTIAL_SINGLE"]
    assert "File imported: 1 new version" in staff.get("/staff/rates?imported=1").text


# --------------------------------------------------------------------------- hostile and broken uploads


def version_count(engine: Engine) -> tuple[int, int, int]:
    with Session(engine) as s:
        return (
            s.scalar(select(func.count(RateSchedule.id))),
            s.scalar(select(func.count(RateScheduleVersion.id))),
            s.scalar(select(func.count(AuditEvent.id)).where(AuditEvent.action == "rates.import_owrs")),
        )


def refused(response, engine: Engine, before: tuple[int, int, int]) -> str:  # type: ignore[no-untyped-def]
    """The page says why next to the file field, and nothing was written."""
    assert response.status_code == 400
    assert 'aria-describedby="owrs_file-error"' in response.text
    message = response.context["errors"]["owrs_file"]
    assert message.startswith("Nothing was imported.")
    assert '<p class="field-error" id="owrs_file-error">' in response.text
    assert version_count(engine) == before
    return message


def test_an_alias_bomb_upload_is_refused_quickly_and_writes_nothing(staff: TestClient, office: Engine) -> None:
    import time

    from tests.billing_core.test_owrs import ALIAS_BOMB

    sign_in(staff, "supervisor@x.org", PASSWORD)
    before = version_count(office)
    started = time.monotonic()
    response = upload(staff, ALIAS_BOMB, name="bomb.owrs")
    assert time.monotonic() - started < 2
    message = refused(response, office, before)
    assert message == (
        "Nothing was imported. line 4: YAML aliases (*a) are not allowed in a rate file: "
        "write the value out where it is used"
    )


@pytest.mark.parametrize(
    "text, shown",
    [
        (
            SPEC_TIERED.replace("    bill: commodity_charge+service_charge", "    bill: 1\n    bill: 2"),
            "line 15: the key 'bill' is given twice in the same mapping (first at line 14)",
        ),
        (
            SPEC_TIERED.replace("tier_prices: [2.87, 4.29, 6.44, 10.07]", "tier_prices: [2.87, 4.29, 6.44, 10.07/0]"),
            "class RESIDENTIAL_SINGLE, field commodity_charge: cannot compute '10.07/0': division by zero",
        ),
        (
            SPEC_TIERED.replace("20.10", ".nan"),
            "class RESIDENTIAL_SINGLE, field service_charge: NaN (not a number) is not a rate",
        ),
        (
            SPEC_TIERED.replace("20.10", "1.0e+300"),
            "class RESIDENTIAL_SINGLE, field service_charge: the number 1e+300 is over the limit of 1,000,000,000",
        ),
        (
            SPEC_TIERED.replace("commodity_charge+service_charge", "+".join(["commodity_charge"] * 30)),
            "class RESIDENTIAL_SINGLE, field bill: cannot read formula",
        ),
    ],
)
def test_an_upload_that_cannot_be_computed_says_why_by_the_file_field_and_writes_nothing(
    staff: TestClient, office: Engine, text: str, shown: str
) -> None:
    sign_in(staff, "supervisor@x.org", PASSWORD)
    before = version_count(office)
    message = refused(upload(staff, text), office, before)
    assert shown in message


def worst_file() -> str:
    """The worst file the limits accept: as many values as a file may hold, the longest and
    deepest formulas, fields referring to fields as deep as allowed, the largest map and lists,
    numbers up to the bound, and as many classes as the limits allow, under the upload's 256 KB."""
    from portal.billing_core import owrs

    term = "(usage_ccf*0.123456789+999.5)"
    deep = "+".join([term] * 13)  # 389 characters, 14 levels
    assert len(deep) <= owrs.MAX_FORMULA_LENGTH
    linked = "+".join([term] * 12)
    notes = ", ".join(f"note_{i}: {'n' * 90}" for i in range(36))  # metadata of about 3,900 characters
    lines = [f"metadata: {{effective_date: 2026-07-01, utility_name: Worst Case Water, {notes}}}", "rate_structure:"]
    lines += ["  WORST:"]
    # c0 -> c1 -> ... -> c14: as deep as fields may refer to fields.
    lines += [f"    c{i}: c{i + 1}*1.0001+{linked}" for i in range(owrs.MAX_REFERENCE_DEPTH - 2)]
    lines += [f"    c{owrs.MAX_REFERENCE_DEPTH - 2}: {deep}"]
    shorter = "+".join([term] * 9)
    lines += ["    zone_charge:", "      depends_on: meter_size", "      values:"]
    lines += [f"        z{i}: {shorter}" for i in range(owrs.MAX_MAP_VALUES)]
    lines += ["    tier_starts: [" + ", ".join(str(i * 10) for i in range(owrs.MAX_LIST_ITEMS)) + "]"]
    lines += ["    tier_prices: [" + ", ".join(f"{999_999_999 - i}.5" for i in range(owrs.MAX_LIST_ITEMS)) + "]"]
    lines += [f"    p{i}: {deep}" for i in range(owrs.MAX_PARTS - 24)]
    lines += ["    commodity_charge: Tiered"]
    lines += ["    bill: c0+zone_charge+commodity_charge+" + "+".join(f"p{i}" for i in range(8))]
    small = f"    service_charge: {deep}\n    bill: service_charge"
    lines += [f"  SMALL_{i}:\n{small}" for i in range(owrs.MAX_CLASSES - 1)]
    text = "\n".join(lines) + "\n"
    assert len(text.encode()) < 256 * 1024, len(text.encode())
    return text


def test_every_rate_page_stays_fast_after_the_worst_accepted_upload(staff: TestClient, office: Engine) -> None:
    import time

    sign_in(staff, "supervisor@x.org", PASSWORD)
    text = worst_file()
    started = time.monotonic()
    response = upload(staff, text, name="worst.owrs")
    assert response.status_code == 303, response.context and response.context["errors"]
    assert time.monotonic() - started < 10
    with Session(office) as s:
        worst = s.scalar(select(RateSchedule).where(RateSchedule.customer_class == "WORST"))
        version = s.scalar(select(RateScheduleVersion).where(RateScheduleVersion.schedule_id == worst.id))
        assert (
            s.scalar(select(func.count(RateSchedule.id)).where(RateSchedule.source == "OWRS: Worst Case Water")) == 50
        )
    pages = [
        "/staff/rates",
        f"/staff/rates/versions/{version.id}",
        f"/staff/rates/calculator?schedule={worst.id}",
        f"/staff/rates/calculator?schedule={worst.id}&usage=10000000&meter_size=z1",
        f"/staff/rates/calculator?schedule={worst.id}&usage=0",
    ]
    for page in pages:
        started = time.monotonic()
        shown = staff.get(page)
        assert shown.status_code in (200, 400), (page, shown.status_code)
        assert time.monotonic() - started < 3, page
    calculated = staff.get(f"/staff/rates/calculator?schedule={worst.id}&usage=18&meter_size=z499")
    assert calculated.status_code == 200 and calculated.context["comparison"].current_cents > 0


@pytest.mark.parametrize("usage", ["1E+1000000", "Infinity", "NaN", "99999999999"])
def test_the_calculator_refuses_absurd_usage_with_a_message(staff: TestClient, office: Engine, usage: str) -> None:
    sign_in(staff, "csr@x.org", PASSWORD)
    with Session(office) as s:
        schedule = s.scalar(select(RateSchedule.id).where(RateSchedule.code == "W"))
    page = staff.get("/staff/rates/calculator", params={"schedule": schedule, "usage": usage, "meter_size": '5/8"'})
    assert page.status_code == 400
    assert page.context["form"].errors["usage"] in (
        "Enter the usage as a number, like 18 or 18.5.",
        "The usage cannot be over 10,000,000.",
    )
