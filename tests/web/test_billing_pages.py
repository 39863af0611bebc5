"""Staff pages for reads and bill runs."""

import re
from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from portal.adapters.clock import system_clock
from portal.app import create_app
from portal.billing_core import bill_runs, users
from portal.billing_core.models import Account, AuditEvent, Bill, BillRun, Meter, MeterRead, ReadImport, Service
from portal.settings import Settings
from tests.db.factories import district

from .conftest import CLOCK, csrf_from, sign_in

PASSWORD = "a long password"


@pytest.fixture
def office(engine: Engine) -> Engine:
    with Session(engine) as s, s.begin():
        district(s, 2)
        for meter in s.scalars(select(Meter).order_by(Meter.id)):
            value = Decimal(1000)
            for month in range(5, 12):
                s.add(MeterRead(meter_id=meter.id, read_on=date(2026, month, 5), value=value, source="amr"))
                value += 10
        high = s.scalar(select(MeterRead).where(MeterRead.read_on == date(2026, 11, 5)).order_by(MeterRead.id))
        high.status, high.exception, high.value = "exception", "high", high.value + 100
        for role in ("cashier", "specialist", "supervisor"):
            users.create_user(s, f"{role}@x.org", PASSWORD, role)
    return engine


@pytest.fixture
def client(office: Engine) -> TestClient:
    settings = Settings(secret_key="t", jobs_in_process=True)
    return TestClient(create_app(settings, engine=office, clock=CLOCK), base_url="https://testserver")


def post(client: TestClient, url: str, data: dict, page: str = "/staff/reads", **kw):  # type: ignore[no-untyped-def]
    token = csrf_from(client.get(page).text)
    return client.post(url, data={"csrf_token": token, **data}, follow_redirects=False, **kw)


def test_review_queue_approve_and_correct(client: TestClient, office: Engine) -> None:
    sign_in(client, "specialist@x.org", PASSWORD)
    page = client.get("/staff/reads")
    (read,) = page.context["queue"]
    assert "Use is much higher than this account" in page.text
    bad = post(client, f"/staff/reads/{read.id}", {"action": "correct", "value": "1065", "reason": ""})
    assert bad.status_code == 400 and "say why the read is corrected" in bad.text
    ok = post(client, f"/staff/reads/{read.id}", {"action": "correct", "value": "1065", "reason": "misread dial"})
    assert ok.status_code == 303
    with Session(office) as s:
        fixed = s.get(MeterRead, read.id)
        assert (fixed.value, fixed.status, fixed.note) == (Decimal(1065), "approved", "Corrected: misread dial")
    assert client.get("/staff/reads").context["queue"] == []


def test_a_cashier_cannot_review_reads(client: TestClient, office: Engine) -> None:
    sign_in(client, "cashier@x.org", PASSWORD)
    read = client.get("/staff/reads").context["queue"][0]
    assert post(client, f"/staff/reads/{read.id}", {"action": "approve"}).status_code == 403


def test_each_refusal_says_who_may(client: TestClient, office: Engine) -> None:
    """The 403 page says who may take the step (the permission table's refusal texts)."""
    sign_in(client, "cashier@x.org", PASSWORD)
    read = client.get("/staff/reads").context["queue"][0]
    meter = "/staff/meters/T000001"
    refusals = [
        (f"/staff/reads/{read.id}", {"action": "approve"}, "/staff/reads", "review reads."),
        ("/staff/reads/upload", {"format": "csv"}, "/staff/reads", "load reads."),
        ("/staff/bill-runs", {"cycle": "C1"}, "/staff/bill-runs", "start bill runs."),
        (meter, {"action": "read"}, meter, "change meters."),
    ]
    for url, data, page, says in refusals:
        refused = post(client, url, data, page=page)
        assert refused.status_code == 403 and f"Only billing specialists and supervisors {says}" in refused.text


def test_read_upload_reports_every_bad_line_and_loads_nothing(client: TestClient, office: Engine) -> None:
    sign_in(client, "specialist@x.org", PASSWORD)
    bad = b"meter_serial,read_value,read_time\nT000002,1075,2026-11-20\nNOPE,5,2026-11-20\nT000002,x,2026-11-21\n"
    response = post(client, "/staff/reads/upload", {"format": "csv"}, files={"read_file": ("bad.csv", bad, "text/csv")})
    assert response.status_code == 400
    assert [(r.line, r.reason) for r in response.context["report"].rejected] == [
        (3, "no meter with this serial"),
        (4, "the read value is not a number"),
    ]
    with Session(office) as s:
        assert s.scalar(select(func.count(MeterRead.id)).where(MeterRead.read_on == date(2026, 11, 20))) == 0
    good = b"meter_serial,read_value,read_time\nT000002,1075,2026-11-20\n"
    response = post(
        client, "/staff/reads/upload", {"format": "csv"}, files={"read_file": ("good.csv", good, "text/csv")}
    )
    assert response.status_code == 200 and "Loaded 1 reads" in response.text


def test_bill_run_pages_from_start_to_posted(client: TestClient, office: Engine) -> None:
    sign_in(client, "specialist@x.org", PASSWORD)
    wrong = post(
        client,
        "/staff/bill-runs",
        {"cycle": "C1", "period_start": "Oct 5", "period_end": "2026-11-05"},
        page="/staff/bill-runs",
    )
    assert wrong.status_code == 400 and wrong.context["errors"]["period_start"] == "Enter the date as YYYY-MM-DD."
    made = post(
        client,
        "/staff/bill-runs",
        {"cycle": "C1", "period_start": "2026-10-05", "period_end": "2026-11-05"},
        page="/staff/bill-runs",
    )
    assert made.status_code == 303
    url = made.headers["location"]
    assert post(client, url, {"action": "calculate"}, page=url).status_code == 303
    page = client.get(url)
    assert page.context["run"].status == "calculated"
    assert page.context["register"].held == 1 and "Read waiting for review" in page.text
    assert post(client, url, {"action": "approve"}, page=url).status_code == 403  # a specialist cannot approve
    fragment = client.get(url, headers={"HX-Request": "true"})
    assert fragment.template.name == "staff/_bill_run_status.html" and "<html" not in fragment.text
    client.post("/sign-out", data={"csrf_token": csrf_from(client.get(url).text)})
    sign_in(client, "supervisor@x.org", PASSWORD)
    assert post(client, url, {"action": "approve"}, page=url).status_code == 303
    assert post(client, url, {"action": "post"}, page=url).status_code == 303
    with Session(office) as s:
        run = s.scalar(select(BillRun))
        assert run.status == "posted"
        assert s.scalar(select(func.count(Bill.id)).where(Bill.status == "posted")) == 1


def test_meter_page_has_a_chart_and_the_same_figures_in_a_table(client: TestClient) -> None:
    sign_in(client, "cashier@x.org", PASSWORD)
    page = client.get("/staff/meters/T000002")
    assert page.status_code == 200 and "<svg" in page.text
    assert [q for _d, q in page.context["uses"]] == [Decimal(10)] * 6
    assert client.get("/staff/meters/NOPE").status_code == 404


def test_a_supervisor_voids_and_rebills_from_the_bill_page(client: TestClient, office: Engine) -> None:
    sign_in(client, "supervisor@x.org", PASSWORD)
    made = post(
        client,
        "/staff/bill-runs",
        {"cycle": "C1", "period_start": "2026-10-05", "period_end": "2026-11-05"},
        page="/staff/bill-runs",
    )
    url = made.headers["location"]
    post(client, url, {"action": "calculate"}, page=url)
    post(client, url, {"action": "approve"}, page=url)
    post(client, url, {"action": "post"}, page=url)
    with Session(office) as s:
        bill = s.scalar(select(Bill).where(Bill.status == "posted"))
        number = s.scalar(select(Account.number).where(Account.id == bill.account_id))
    page_url = f"/staff/accounts/{number}/bills/{bill.number}"
    assert "Void and rebill" in client.get(page_url).text
    missing = post(client, page_url + "/void", {"reason": ""}, page=page_url)
    assert missing.status_code == 400 and "say why the bill is voided" in missing.text
    done = post(client, page_url + "/void", {"reason": "customer disputed the read"}, page=page_url)
    assert done.status_code == 303
    with Session(office) as s:
        assert s.get(Bill, bill.id).status == "voided"
        assert s.scalar(select(func.count(Bill.id)).where(Bill.status == "posted")) == 1


def test_meter_exchange_from_the_meter_page(client: TestClient, office: Engine) -> None:
    with Session(office) as s, s.begin():
        s.add(Meter(serial="NEW1", size='5/8"', status="in_stock"))
    sign_in(client, "specialist@x.org", PASSWORD)
    page = client.get("/staff/meters/T000002")
    assert "Exchange meter T000002" in page.text
    bad = post(
        client,
        "/staff/meters/T000002",
        {"action": "exchange", "new_serial": "NOPE", "on": "2026-11-10", "final_read": "1070", "first_read": "0"},
        page="/staff/meters/T000002",
    )
    assert bad.status_code == 400 and "Nothing was changed: No meter with serial NOPE." in bad.text
    assert field_error(bad.text, "new_serial") == "No meter with serial NOPE."
    ok = post(
        client,
        "/staff/meters/T000002",
        {"action": "exchange", "new_serial": "new1", "on": "2026-11-10", "final_read": "1070", "first_read": "0"},
        page="/staff/meters/T000002",
    )
    assert "Meter updated." in client.get(ok.headers["location"]).text
    with Session(office) as s:
        assert s.scalar(select(Meter.status).where(Meter.serial == "T000002")) == "removed"
        assert s.scalar(select(Meter.status).where(Meter.serial == "NEW1")) == "installed"


def billed_cycle(office: Engine) -> str:
    """Cycle C1 billed to November 5; the number of an account whose read was not held."""
    with Session(office) as s, s.begin():
        supervisor = s.scalar(select(users.User).where(users.User.email == "supervisor@x.org"))
        run = bill_runs.create_run(s, "C1", date(2026, 10, 5), date(2026, 11, 5))
        s.execute(MeterRead.__table__.update().where(MeterRead.status == "exception").values(status="approved"))
        bill_runs.calculate(s, run, now=system_clock())
        bill_runs.approve(s, run, supervisor, now=system_clock())
        bill_runs.post(s, run, supervisor, now=system_clock())
        return s.scalars(select(Account.number).order_by(Account.id)).all()[1]


def test_a_specialist_stops_service_with_final_reads_and_a_forwarding_address(
    client: TestClient, office: Engine
) -> None:
    number = billed_cycle(office)
    with Session(office) as s:
        account = s.scalar(select(Account).where(Account.number == number))
        meter = s.scalar(
            select(Meter).join(Service, Service.meter_id == Meter.id).where(Service.account_id == account.id)
        )
        reads_before = s.scalar(select(func.count(MeterRead.id)))
    sign_in(client, "specialist@x.org", PASSWORD)
    page_url = f"/staff/accounts/{number}"
    page = client.get(page_url)
    assert "Stop service and send the final bill" in page.text
    assert f'<label for="read-{meter.id}">Final read of meter {meter.serial}' in page.text
    url = f"{page_url}/stop"
    good = {"stop_on": "2026-11-20", f"read-{meter.id}": "1065"}
    wrong = [
        ({**good, "stop_on": "20/11/2026"}, "stop_on", "as the date field shows it, for example 11/22/2026."),
        ({**good, f"read-{meter.id}": "ten"}, f"read-{meter.id}", f"Enter the final read of meter {meter.serial}"),
        ({**good, f"read-{meter.id}": "1000"}, f"read-{meter.id}", "is below its last read"),
        ({**good, "stop_on": "2026-11-01"}, "stop_on", "cannot be before 2026-11-05"),
        ({**good, "mailing_line1": "9 Elm St", "mailing_state": "CA"}, "mailing_city", "Enter the city."),
        (
            {**good, "mailing_line1": "9 Elm St", "mailing_city": "Ames", "mailing_state": "Iowa"},
            "mailing_state",
            "two letters",
        ),
    ]
    for data, field, message in wrong:
        answer = post(client, url, data, page=page_url)
        assert answer.status_code == 400, data
        error = re.search(rf'<p class="field-error" id="{field}-error"[^>]*>([^<]*)</p>', answer.text)
        assert error and message in error.group(1), (field, answer.text[:0])
        assert 'aria-invalid="true"' in answer.text or field == "final"
    with Session(office) as s:  # nothing was written by any of them
        account = s.scalar(select(Account).where(Account.number == number))
        assert account.status == "active" and account.customer.mailing_line1 is None
        assert s.scalar(select(func.count(MeterRead.id))) == reads_before
    done = post(
        client,
        url,
        {**good, "mailing_line1": "9 Elm St", "mailing_city": "Ames", "mailing_state": "ia", "mailing_zip": "50010"},
        page=page_url,
    )
    assert done.status_code == 303
    final = client.get(done.headers["location"])
    # Billed through the last day of service, the 20th.
    assert final.status_code == 200 and final.context["bill"].period_end == date(2026, 11, 21)
    with Session(office) as s:
        account = s.scalar(select(Account).where(Account.number == number))
        assert (account.status, account.closed_on) == ("final", date(2026, 11, 20))
        c = account.customer
        assert (c.mailing_line1, c.mailing_city, c.mailing_state, c.mailing_zip) == ("9 Elm St", "Ames", "IA", "50010")
        bill = s.scalar(select(Bill).where(Bill.account_id == account.id, Bill.bill_run_id.is_(None)))
        assert (bill.period_start, bill.period_end, bill.status) == (date(2026, 11, 5), date(2026, 11, 21), "posted")
        actions = set(s.scalars(select(AuditEvent.action).where(AuditEvent.actor_id.is_not(None))))
        assert {"account.final_bill", "customer.mailing_address"} <= actions
    assert "Stop service and send the final bill" not in client.get(page_url).text  # it is final now


def test_a_cashier_cannot_stop_service(client: TestClient, office: Engine) -> None:
    number = billed_cycle(office)
    sign_in(client, "cashier@x.org", PASSWORD)
    page_url = f"/staff/accounts/{number}"
    assert "Stop service and send the final bill" not in client.get(page_url).text
    answer = post(client, f"{page_url}/stop", {"stop_on": "2026-11-20"}, page=page_url)
    assert answer.status_code == 403
    with Session(office) as s:
        assert s.scalar(select(Account.status).where(Account.number == number)) == "active"


ABSURD = [
    ("Infinity", "the read value is not a number"),
    ("NaN", "the read value is not a number"),
    ("-1", "a meter read cannot be negative"),
    ("1E+1000000", "write the read with the digits 0-9 and a decimal point only"),
    ("1000000", "a 6-dial meter reads at most 999999"),
]


def field_error(html: str, field: str) -> str | None:
    found = re.search(rf'<p class="field-error" id="{field}-error"[^>]*>([^<]*)</p>', html)
    return found.group(1) if found else None


@pytest.mark.parametrize("value, message", ABSURD)
def test_the_review_queue_refuses_an_absurd_correction_next_to_the_field(
    client: TestClient, office: Engine, value: str, message: str
) -> None:
    sign_in(client, "specialist@x.org", PASSWORD)
    (read,) = client.get("/staff/reads").context["queue"]
    answer = post(client, f"/staff/reads/{read.id}", {"action": "correct", "value": value, "reason": "misread"})
    assert answer.status_code == 400
    assert field_error(answer.text, f"value-{read.id}") == message
    assert (
        f'id="value-{read.id}" name="value" type="text" inputmode="decimal" required aria-invalid="true"' in answer.text
    )
    assert f'value="{value}"' in answer.text and 'value="misread"' in answer.text  # what was typed stays
    with Session(office) as s:
        kept = s.get(MeterRead, read.id)
        assert (kept.value, kept.status, kept.note) == (read.value, "exception", None)
        assert s.scalar(select(func.count(AuditEvent.id)).where(AuditEvent.action == "read.correct")) == 0


@pytest.mark.parametrize("value, message", ABSURD)
def test_a_meter_exchange_refuses_absurd_reads_and_keeps_what_was_typed(
    client: TestClient, office: Engine, value: str, message: str
) -> None:
    with Session(office) as s, s.begin():
        s.add(Meter(serial="NEW1", size='5/8"', status="in_stock"))
    sign_in(client, "specialist@x.org", PASSWORD)
    for field in ("final_read", "first_read"):
        good = {"action": "exchange", "new_serial": "new1", "on": "2026-11-10", "final_read": "1070", "first_read": "0"}
        answer = post(client, "/staff/meters/T000002", {**good, field: value}, page="/staff/meters/T000002")
        assert answer.status_code == 400, field
        assert field_error(answer.text, field) == message
        assert 'aria-invalid="true"' in answer.text
        assert (
            'value="new1"' in answer.text and 'value="2026-11-10"' in answer.text and f'value="{value}"' in answer.text
        )
    with Session(office) as s:
        assert s.scalar(select(Meter.status).where(Meter.serial == "T000002")) == "installed"
        assert s.scalar(select(Meter.status).where(Meter.serial == "NEW1")) == "in_stock"
        assert s.scalar(select(func.count(MeterRead.id)).where(MeterRead.read_on == date(2026, 11, 10))) == 0


def test_the_meter_page_links_to_its_account_before_and_after_an_exchange(client: TestClient, office: Engine) -> None:
    with Session(office) as s, s.begin():
        s.add(Meter(serial="NEW1", size='5/8"', status="in_stock"))
        number = s.scalar(
            select(Account.number)
            .join(Service)
            .join(Meter, Meter.id == Service.meter_id)
            .where(Meter.serial == "T000002")
        )
    sign_in(client, "specialist@x.org", PASSWORD)
    link = f'<a href="/staff/accounts/{number}">{number}</a>'
    assert link in client.get("/staff/meters/T000002").text
    post(
        client,
        "/staff/meters/T000002",
        {"action": "exchange", "new_serial": "NEW1", "on": "2026-11-10", "final_read": "1070", "first_read": "0"},
        page="/staff/meters/T000002",
    )
    assert link in client.get("/staff/meters/NEW1").text
    assert link in client.get("/staff/meters/T000002").text  # the removed meter still says where it served


def test_any_stored_value_renders_on_the_meter_page_and_the_review_queue(client: TestClient, office: Engine) -> None:
    """Values no check lets in now, written straight into the database as older code or a
    hand edit could have: the pages show them and never answer 500."""
    from sqlalchemy import text

    with Session(office) as s, s.begin():
        meter_id = s.scalar(select(Meter.id).where(Meter.serial == "T000002"))
        sqlite = s.get_bind().dialect.name == "sqlite"
        odd = ["NaN", "Infinity", "-Infinity", "1E+1000000", "1E-1000000"] if sqlite else ["NaN"]
        for day, value in enumerate(odd, start=12):
            s.execute(
                text(
                    "INSERT INTO meter_read (meter_id, read_on, value, source, status, created_at, exception) "
                    f"VALUES (:m, :d, {'CAST(:v AS NUMERIC)' if not sqlite else ':v'}, 'amr', 'exception', :c, 'high')"
                ),
                {"m": meter_id, "d": date(2026, 11, day), "v": value, "c": CLOCK()},
            )
    sign_in(client, "specialist@x.org", PASSWORD)
    page = client.get("/staff/meters/T000002")
    assert page.status_code == 200 and "NaN" in page.text
    queue = client.get("/staff/reads")
    assert queue.status_code == 200 and "NaN" in queue.text
    if len(odd) > 1:
        assert "\u221e" in page.text and "1e+1000000" in page.text
    with Session(office) as s:
        number = s.scalar(
            select(Account.number)
            .join(Service)
            .join(Meter, Meter.id == Service.meter_id)
            .where(Meter.serial == "T000002")
        )
    assert client.get(f"/staff/accounts/{number}").status_code == 200


@pytest.mark.parametrize(
    "value, shown",
    [
        (None, ""),
        ("12.500", "12.5"),
        ("1060", "1060"),
        ("1.06E+3", "1060"),
        ("0E+5", "0"),
        ("-0", "0"),
        ("NaN", "NaN"),
        ("sNaN", "NaN"),
        ("Infinity", "\u221e"),
        ("-Infinity", "-\u221e"),
        ("1E+1000000", "1e+1000000"),
        ("1E-1000000", "1e-1000000"),
        ("99999999999.999", "99999999999.999"),
    ],
)
def test_the_qty_filter_renders_any_decimal(value: str | None, shown: str) -> None:
    from portal.templating import _quantity

    assert _quantity(None if value is None else Decimal(value)) == shown


def test_charts_draw_no_bar_for_a_value_they_cannot_scale() -> None:
    from portal.charts import compare_chart, usage_bars, usage_chart, usage_labels

    uses = [(date(2026, 1, 5), Decimal("NaN")), (date(2026, 2, 5), Decimal("1E+1000000")), (date(2026, 3, 5), D10)]
    assert "M" in usage_chart(uses, "CCF") and usage_bars(uses).count("h6v") == 1
    assert usage_labels(uses).split("\n")[1].strip() == "10"
    assert compare_chart([("Jan", Decimal("Infinity"), Decimal("NaN")), ("Feb", D10, None)], "t", ("a", "b"))


D10 = Decimal(10)


def test_an_upload_with_an_over_long_field_or_absurd_values_is_refused_clearly(
    client: TestClient, office: Engine
) -> None:
    sign_in(client, "specialist@x.org", PASSWORD)
    with Session(office) as s:
        before = s.scalar(select(func.count(MeterRead.id)))
    long = b"meter_serial,read_value,read_time\nT000002,1075,2026-11-20\nT000001," + b"7" * 200_000 + b",2026-11-20\n"
    answer = post(client, "/staff/reads/upload", {"format": "csv"}, files={"read_file": ("long.csv", long, "text/csv")})
    assert answer.status_code == 400
    assert "line 3: a field is longer than 131,072 characters" in field_error(answer.text, "read_file")
    absurd = b"meter_serial,read_value,read_time\n" + b"".join(
        b"T000002,%s,2026-11-%d\n" % (v.encode(), 10 + i) for i, (v, _m) in enumerate(ABSURD)
    )
    answer = post(
        client, "/staff/reads/upload", {"format": "csv"}, files={"read_file": ("absurd.csv", absurd, "text/csv")}
    )
    assert answer.status_code == 400
    assert [r.reason for r in answer.context["report"].rejected] == [
        "the read value is not a number",
        "the read value is not a number",
        "the read value is negative",
        "write the read with the digits 0-9 and a decimal point only",
        "meter T000002: a 6-dial meter reads at most 999999",
    ]
    with Session(office) as s:
        assert s.scalar(select(func.count(MeterRead.id))) == before


def test_an_upload_that_loses_a_race_to_another_load_is_refused_not_a_500(
    client: TestClient, office: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another load writes the same read between this load's checks and its write: the
    database's unique key refuses the write, and the page says so, nothing half-loaded."""
    from portal.billing_core import read_import

    real = read_import._known_reads

    def racing(session, lines, rules):  # type: ignore[no-untyped-def]
        known = real(session, lines, rules)
        with Session(office) as other, other.begin():
            other.add(MeterRead(meter_id=lines[0][1].id, read_on=date(2026, 11, 20), value=Decimal(1075), source="amr"))
        return known

    monkeypatch.setattr(read_import, "_known_reads", racing)
    sign_in(client, "specialist@x.org", PASSWORD)
    good = b"meter_serial,read_value,read_time\nT000002,1075,2026-11-20\nT000001,1072,2026-11-20\n"
    answer = post(client, "/staff/reads/upload", {"format": "csv"}, files={"read_file": ("race.csv", good, "text/csv")})
    assert answer.status_code == 400
    assert "another load of this file or of some of its reads finished" in field_error(answer.text, "read_file")
    with Session(office) as s:
        assert s.scalar(select(func.count(MeterRead.id)).where(MeterRead.read_on == date(2026, 11, 20))) == 1
        assert s.scalar(select(func.count(ReadImport.id))) == 0


def test_a_read_recorded_by_hand_on_the_meter_page(client: TestClient, office: Engine) -> None:
    sign_in(client, "specialist@x.org", PASSWORD)
    page_url = "/staff/meters/T000002"
    assert "Record read of T000002" in client.get(page_url).text
    wrong = [*ABSURD, ("", "Enter the read.")]
    for value, message in wrong:
        answer = post(client, page_url, {"action": "read", "read_on": "2026-11-20", "read_value": value}, page=page_url)
        assert answer.status_code == 400, value
        assert field_error(answer.text, "read_value") == message
        assert 'value="2026-11-20"' in answer.text and (not value or f'value="{value}"' in answer.text)
    future = post(client, page_url, {"action": "read", "read_on": "2026-12-20", "read_value": "1075"}, page=page_url)
    assert future.status_code == 400 and field_error(future.text, "read_on") == "The read date is in the future."
    with Session(office) as s:
        assert s.scalar(select(func.count(MeterRead.id)).where(MeterRead.read_on > date(2026, 11, 5))) == 0
    ok = post(client, page_url, {"action": "read", "read_on": "2026-11-20", "read_value": "1,075"}, page=page_url)
    assert ok.status_code == 303 and "Read recorded." in client.get(page_url).text
    high = post(client, page_url, {"action": "read", "read_on": "2026-11-21", "read_value": "1500"}, page=page_url)
    assert "Read recorded; it waits for review." in client.get(high.headers["location"]).text
    with Session(office) as s:
        got = s.execute(
            select(MeterRead.value, MeterRead.status, MeterRead.source).where(MeterRead.read_on > date(2026, 11, 5))
        ).all()
        assert sorted(got) == [(Decimal(1075), "valid", "field"), (Decimal(1500), "exception", "field")]
        assert s.scalar(select(func.count(AuditEvent.id)).where(AuditEvent.action == "meter.read")) == 2
    sign_in(client, "cashier@x.org", PASSWORD)
    refused = post(client, page_url, {"action": "read", "read_on": "2026-11-22", "read_value": "1501"}, page=page_url)
    assert refused.status_code == 403
