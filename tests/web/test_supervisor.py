"""The supervisor dashboard: open work by queue and by person with the oldest age, the
approvals waiting, today's bill runs; reassigning a work order or a case (audited); and the
approvals queue's filters on the page (issue 16)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from portal.app import create_app
from portal.billing_core import users
from portal.billing_core.models import (
    Adjustment,
    AuditEvent,
    BillRun,
    FinalBillReview,
    MeterRead,
    ServiceCase,
    ServiceRequest,
    User,
    WorkOrder,
)
from portal.settings import Settings
from tests.db.adjust_helpers import staff
from tests.db.factories import district

from .conftest import CLOCK, csrf_from, sign_in

PASSWORD = "a long password"
TODAY = CLOCK().date()


def _at(day: int) -> datetime:
    return datetime(2026, 11, day, 9, tzinfo=UTC)


@pytest.fixture
def office(engine: Engine) -> dict[str, int]:
    with Session(engine) as s, s.begin():
        first, second = district(s, 2)
        people = staff(s)
        field = users.create_user(s, "field@x.org", PASSWORD, "field")
        other = users.create_user(s, "field2@x.org", PASSWORD, "field")
        order = WorkOrder(
            kind="re_read",
            account_id=first.id,
            premise_id=first.premise_id,
            due_on=date(2026, 11, 20),
            assigned_to_id=field.id,
            created_at=_at(12),
        )
        late_case = ServiceCase(
            number="C-1",
            kind="complaint",
            account_id=second.id,
            channel="phone",
            subject="Low pressure",
            description="Since Monday",
            due_on=date(2026, 11, 21),
            assigned_to_id=people["specialist"].id,
            opened_at=_at(2),
        )
        new_case = ServiceCase(
            number="C-2",
            kind="inquiry",
            channel="web",
            subject="Autopay",
            description="How?",
            due_on=date(2026, 12, 1),
            opened_at=_at(21),
        )
        s.add_all([order, late_case, new_case])
        s.add(
            ServiceRequest(
                kind="stop",
                user_id=people["csr"].id,
                account_id=first.id,
                contact_name="Pat",
                contact_email="pat@example.net",
                created_at=_at(19),
            )
        )
        s.add(
            Adjustment(
                account_id=first.id,
                service_type="water",
                amount_cents=30_000,
                reason_code="billing_error",
                prepared_by_id=people["specialist"].id,
                prepared_at=_at(15),
            )
        )
        s.add(
            FinalBillReview(
                account_id=second.id,
                stop_on=TODAY,
                reads={},
                reasons="future_stop",
                entered_by_id=people["specialist"].id,
                entered_at=_at(20),
            )
        )
        meter_id = next(x.meter_id for x in first.services if x.meter_id)
        s.add(MeterRead(meter_id=meter_id, read_on=date(2026, 11, 5), value=5, source="amr", status="exception"))
        s.add(
            BillRun(
                cycle_id=first.cycle_id,
                period_start=date(2026, 10, 22),
                period_end=date(2026, 11, 22),
                bill_date=TODAY,
                due_date=date(2026, 12, 13),
                status="calculated",
                accounts_total=2,
                accounts_done=2,
            )
        )
        s.flush()
        return {"order": order.id, "case": late_case.id, "field": field.id, "other": other.id}


@pytest.fixture
def client(engine: Engine, office: dict[str, int]) -> TestClient:
    return TestClient(create_app(Settings(secret_key="t"), engine=engine, clock=CLOCK), base_url="https://testserver")


def test_the_dashboard_counts_open_work_and_reassigns_it(client: TestClient, engine: Engine, office) -> None:  # type: ignore[no-untyped-def]
    sign_in(client, "csr@x.org", PASSWORD)
    assert client.get("/staff/supervisor").status_code == 403
    client.post("/sign-out", data={"csrf_token": csrf_from(client.get("/staff").text)})
    sign_in(client, "supervisor@x.org", PASSWORD)
    page = client.get("/staff/supervisor")
    assert page.status_code == 200
    queues = {q.key: q for q in page.context["page"].queues}
    assert (queues["work_orders"].count, queues["work_orders"].oldest_days, queues["work_orders"].overdue) == (1, 10, 1)
    assert (queues["cases"].count, queues["cases"].oldest_days, queues["cases"].overdue) == (2, 20, 1)
    assert (queues["service_requests"].count, queues["read_exceptions"].count, queues["final_bills"].count) == (1, 1, 1)
    approvals = {a.kind: (a.count, a.oldest_days) for a in page.context["page"].approvals}
    assert approvals["adjustment"] == (1, 7) and approvals["final_bill"] == (1, 2) and approvals["refund"] == (0, None)
    people = {p.name: (p.work_orders, p.cases, p.oldest_days, p.overdue) for p in page.context["page"].people}
    assert people == {"Unassigned": (0, 1, 1, 0), "field@x.org": (1, 0, 10, 1), "specialist@x.org": (0, 1, 20, 1)}
    assert [r.status for r in page.context["page"].runs] == ["calculated"]
    assert "Move work order " in page.text and "Run " in page.text
    # Reassign: a field order only to someone who works field orders; audited before and after.
    token = csrf_from(page.text)
    url = "/staff/supervisor/reassign"
    bad = client.post(url, data={"csrf_token": token, "kind": "work_order", "id": office["order"], "to": 1})
    assert bad.status_code == 400 and "Choose someone who works work orders." in bad.text
    ok = client.post(
        url,
        data={"csrf_token": token, "kind": "work_order", "id": office["order"], "to": office["other"]},
        follow_redirects=False,
    )
    assert ok.status_code == 303
    with Session(engine) as s:
        specialist = s.scalar(select(User.id).where(User.email == "specialist@x.org"))
        csr = s.scalar(select(User.id).where(User.email == "csr@x.org"))
    field_case = {"csrf_token": token, "kind": "case", "id": office["case"], "to": office["field"]}
    assert "Choose someone who works cases." in client.post(url, data=field_case).text  # field staff do not
    moved = client.post(url + "?person=" + str(specialist), data={**field_case, "to": csr}, follow_redirects=False)
    assert moved.status_code == 303 and moved.headers["location"] == f"/staff/supervisor?person={specialist}"
    with Session(engine) as s:
        assert s.get(WorkOrder, office["order"]).assigned_to_id == office["other"]
        assert s.get(ServiceCase, office["case"]).assigned_to_id == csr
        events = s.scalars(select(AuditEvent).where(AuditEvent.action.like("%.reassigned")).order_by(AuditEvent.id))
        assert [(e.action, e.before, e.after["assigned_to"]) for e in events] == [
            ("work_order.reassigned", {"assigned_to": office["field"]}, office["other"]),
            ("case.reassigned", {"assigned_to": specialist}, csr),
        ]
    theirs = client.get(f"/staff/supervisor?person={csr}")
    assert [w.label for w in theirs.context["page"].work] == ["Case C-1"]
    nobody = client.get("/staff/supervisor?person=none")
    assert [w.label for w in nobody.context["page"].work] == ["Case C-2"]


def test_the_approvals_page_filters_and_asks_why_on_a_reject(client: TestClient, engine: Engine) -> None:
    sign_in(client, "supervisor@x.org", PASSWORD)
    page = client.get("/staff/approvals")
    assert page.status_code == 200
    assert [r.item.kind for r in page.context["items"]] == ["adjustment", "service_request", "final_bill"]
    assert "Approve and post final bill" in page.text and 'href="/staff/accounts/' in page.text
    old = client.get("/staff/approvals?age=7&preparer=specialist@x.org")
    assert [r.item.kind for r in old.context["items"]] == ["adjustment"]
    assert [r.item.kind for r in client.get("/staff/approvals?kind=final_bill").context["items"]] == ["final_bill"]
    with Session(engine) as s:
        review = s.scalar(select(FinalBillReview.id))
    url = f"/staff/approvals/final_bill/{review}?kind=final_bill"
    token = csrf_from(page.text)
    bad = client.post(url, data={"csrf_token": token, "decision": "reject", "decision_note": ""})
    assert bad.status_code == 400 and f'id="note-final_bill-{review}-error"' in bad.text
    done = client.post(
        url, data={"csrf_token": token, "decision": "reject", "decision_note": "wrong read"}, follow_redirects=False
    )
    assert done.status_code == 303 and done.headers["location"] == "/staff/approvals?kind=final_bill"
    assert "the stop is withdrawn" in client.get(done.headers["location"]).text
    with Session(engine) as s:
        assert s.get(FinalBillReview, review) is None
        event = s.scalar(select(AuditEvent).where(AuditEvent.action == "account.final_bill_rejected"))
        assert event.after["note"] == "wrong read" and event.before["reasons"] == "future_stop"
