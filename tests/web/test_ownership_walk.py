# ruff: noqa: F811  (the fixtures below come from test_requests: a district of its own)
"""Walk every customer route with another customer's identifiers: each answers 404, for
every method it takes, and changes nothing. The walk is built from the route table, so a
new customer route with a new kind of identifier fails here until it is walked too."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session
from starlette.routing import Route
from starlette.testclient import TestClient

from portal.app import ROUTES
from portal.billing_core.models import (
    Account,
    ArrangementRequest,
    AuditEvent,
    Bill,
    CaseAttachment,
    CaseLetter,
    CaseNote,
    LedgerTransaction,
    Payment,
    ServiceCase,
    ServiceRequest,
    User,
)

from .conftest import csrf_from, linked_numbers, sign_in
from .test_requests import client, district  # noqa: F401

ME = "resident@demo.example"
OTHER = "pastdue@demo.example"
#: Identifiers that say whose something is; each must be walked with someone else's.
OWNED = {"number", "bill", "payment", "request", "attempt", "case", "letter", "attachment"}
#: Path parameters that name no one's data (what kind of request form to show).
UNOWNED = {"kind"}


def customer_routes() -> list[Route]:
    return [r for r in ROUTES if isinstance(r, Route) and r.path.startswith("/my/") and r.param_convertors]


def others_things(engine: Engine) -> dict[str, str]:
    """One of everything belonging to OTHER (made here when the demo has none)."""
    (number,) = linked_numbers(engine, OTHER)
    with Session(engine) as s, s.begin():
        account = s.scalar(select(Account).where(Account.number == number))
        owner = s.scalar(select(User).where(User.email == OTHER))
        bill = s.scalar(select(Bill.number).where(Bill.account_id == account.id, Bill.status == "posted").limit(1))
        payment = s.scalar(select(Payment.id).where(Payment.account_id == account.id).limit(1))
        now = datetime(2026, 11, 22, tzinfo=UTC)
        request = ServiceRequest(
            kind="stop",
            user_id=owner.id,
            account_id=account.id,
            stop_on=date(2026, 12, 1),
            contact_name="Other",
            contact_email=OTHER,
            created_at=now,
            updated_at=now,
        )
        plan = ArrangementRequest(
            account_id=account.id,
            user_id=owner.id,
            total_cents=10_000,
            installments=3,
            first_due_on=date(2026, 12, 5),
            created_at=now,
        )
        case = ServiceCase(  # issue 16: a case of theirs, with a letter and a shared file
            number="C-OTHER",
            kind="inquiry",
            account_id=account.id,
            channel="web",
            subject="Theirs",
            description="Theirs",
            due_on=date(2026, 12, 1),
            opened_by_user_id=owner.id,
        )
        s.add_all([request, plan, case])
        s.flush()
        letter = CaseLetter(case_id=case.id, template="general", language="en", body="x", pdf_path="/nonexistent")
        attachment = CaseAttachment(
            case_id=case.id, filename="a.txt", content_type="text/plain", size_bytes=1, path="/x/shared/a.txt"
        )
        s.add_all([letter, attachment])
        s.flush()
        return {
            "case": str(case.id),
            "letter": str(letter.id),
            "attachment": str(attachment.id),
            "number": number,
            "bill": bill,
            "payment": str(payment),
            "request": str(request.id),
            "plan": str(plan.id),
            "attempt": "x" * 24,
        }


def fill(route: Route, values: dict[str, str]) -> str:
    path = route.path
    for name in route.param_convertors:
        key = "plan" if name == "request" and "/arrangement/" in path else name
        path = path.replace("{" + name + "}", values[key])
    return path


def snapshot(engine: Engine) -> tuple[int, ...]:
    with Session(engine) as s:
        return tuple(
            s.scalar(select(func.count()).select_from(t))
            for t in (Payment, LedgerTransaction, ServiceRequest, ArrangementRequest, ServiceCase, CaseNote)
        ) + (
            s.scalar(select(func.count(ServiceRequest.id)).where(ServiceRequest.status != "submitted")),
            s.scalar(select(func.count(ArrangementRequest.id)).where(ArrangementRequest.status != "submitted")),
        )


def test_every_customer_route_answers_404_for_someone_elses_identifiers(client: TestClient, district: Engine) -> None:
    routes = customer_routes()
    unknown = {p for r in routes for p in r.param_convertors} - OWNED - UNOWNED
    assert not unknown, f"walk these identifiers too: {unknown}"
    theirs = others_things(district)
    (mine,) = linked_numbers(district, ME)[:1]
    sign_in(client, ME)
    token = csrf_from(client.get("/my").text)
    before = snapshot(district)
    walked: set[tuple[str, str]] = set()
    for route in routes:
        owned = set(route.param_convertors) & OWNED
        if not owned:
            continue
        # Someone else's everything, and (where more than the account is named) their
        # things under my own account number.
        variants = [theirs]
        if owned - {"number"} and "number" in owned:
            variants.append({**theirs, "number": mine})
        for values, method in itertools.product(variants, sorted(route.methods - {"HEAD"})):
            if owned == {"number", "attempt"} and values["number"] == mine:
                continue  # an attempt is kept in the signed-in session: none exists to steal
            path = fill(route, values)
            if method == "GET":
                response = client.get(path)
            else:
                response = client.post(path, data={"csrf_token": token}, headers={"X-CSRF-Token": token})
            assert response.status_code == 404, f"{method} {path} answered {response.status_code}"
            walked.add((route.path, method))
    owned_routes = {(r.path, m) for r in routes if set(r.param_convertors) & OWNED for m in r.methods - {"HEAD"}}
    assert walked == owned_routes and len(walked) >= 20
    assert snapshot(district) == before
    with Session(district) as s:
        assert s.scalar(select(func.count(AuditEvent.id)).where(AuditEvent.action.like("autopay.%"))) == 0
