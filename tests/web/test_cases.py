"""The cases pages on the shared demo district: staff open a case (the whole form checked,
errors next to fields), attach files (a refused type, then who may fetch it), and the
list shows it; a resident asks a question, follows it in English and Spanish, writes a
message, and another resident gets a 404. Each test removes the cases it made."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, String, delete, func, select
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from portal.app import create_app
from portal.billing_core.models import (
    Account,
    AuditEvent,
    Bill,
    CaseAttachment,
    CaseLetter,
    CaseNote,
    Dispute,
    ServiceCase,
)

from .conftest import CLOCK, SETTINGS, csrf_from, linked_numbers, sign_in


@pytest.fixture
def client(demo_engine: Engine, tmp_path: Path) -> Iterator[TestClient]:
    settings = dataclasses.replace(SETTINGS, files_dir=str(tmp_path))
    app = create_app(settings, engine=demo_engine, clock=CLOCK)
    with Session(demo_engine) as s:
        before = s.scalar(select(func.max(ServiceCase.id))) or 0
    with TestClient(app, base_url="https://testserver") as c:
        yield c
    with Session(demo_engine) as s, s.begin():
        ids = select(ServiceCase.id).where(ServiceCase.id > before)
        for model in (CaseNote, CaseAttachment, CaseLetter):
            s.execute(delete(model).where(model.case_id.in_(ids)))  # type: ignore[attr-defined]
        s.execute(delete(Dispute).where(Dispute.case_id.in_(ids)))
        s.execute(
            delete(AuditEvent).where(
                AuditEvent.entity_type == "service_case",
                AuditEvent.entity_id.in_(select(func.cast(ServiceCase.id, String)).where(ServiceCase.id > before)),
            )
        )
        s.execute(delete(ServiceCase).where(ServiceCase.id > before))


def _case_id(response) -> int:  # type: ignore[no-untyped-def]
    match = re.search(r"/cases/(\d+)$", response.headers["location"])
    assert match, response.headers.get("location")
    return int(match.group(1))


def test_staff_open_a_case_and_attach_files(client: TestClient, demo_engine: Engine) -> None:
    number = linked_numbers(demo_engine, "resident@demo.example")[0]
    sign_in(client, "csr@demo.example")
    new = client.get(f"/staff/cases/new?account={number}")
    assert new.status_code == 200 and "Open a case" in new.text
    token = csrf_from(new.text)
    bad = client.post(
        "/staff/cases",
        data={"kind": "complaint", "account": number, "channel": "phone", "subject": "", "csrf_token": token},
    )
    assert bad.status_code == 400
    assert 'id="case-subject-error"' in bad.text and 'id="case-description-error"' in bad.text
    done = client.post(
        "/staff/cases",
        data={
            "kind": "complaint",
            "account": number,
            "channel": "phone",
            "subject": "Low pressure",
            "description": "Low pressure in the mornings.",
            "csrf_token": token,
        },
        follow_redirects=False,
    )
    assert done.status_code == 303
    case_id = _case_id(done)
    page = client.get(f"/staff/cases/{case_id}")
    assert "Low pressure" in page.text and "10 business days" in page.text
    refused = client.post(
        f"/staff/cases/{case_id}/attachments",
        data={"csrf_token": token},
        files={"file": ("run.sh", b"#!/bin/sh\n", "text/x-sh")},
    )
    assert refused.status_code == 400 and 'id="file-file-error"' in refused.text and "Only PDF" in refused.text
    added = client.post(
        f"/staff/cases/{case_id}/attachments",
        data={"csrf_token": token},
        files={"file": ("notes.txt", b"Pressure 30 psi at 7am\n", "text/plain")},
        follow_redirects=False,
    )
    assert added.status_code == 303
    with Session(demo_engine) as s:
        attachment_id = s.scalar(select(CaseAttachment.id).where(CaseAttachment.case_id == case_id))
    got = client.get(f"/staff/cases/{case_id}/attachments/{attachment_id}")
    assert got.status_code == 200 and got.content == b"Pressure 30 psi at 7am\n"
    assert got.headers["content-type"].startswith("text/plain") and "attachment" in got.headers["content-disposition"]
    listing = client.get(f"/staff/cases?account={number}")
    assert "Low pressure" in listing.text and "On time" in listing.text
    panel = client.get(f"/staff/accounts/{number}/cases", headers={"HX-Request": "true"})
    assert "Low pressure" in panel.text
    # The resident of the account does not see a staff-only file.
    client.post("/sign-out", data={"csrf_token": csrf_from(page.text)})
    sign_in(client, "resident@demo.example")
    assert client.get(f"/my/cases/{case_id}/attachments/{attachment_id}").status_code == 404
    assert "Low pressure" in client.get(f"/my/cases/{case_id}").text


def test_a_resident_asks_and_follows_a_question(client: TestClient, demo_engine: Engine) -> None:
    number = linked_numbers(demo_engine, "resident@demo.example")[0]
    sign_in(client, "resident@demo.example")
    home = client.get("/my")
    assert "Questions and disputes" in home.text and "/my/cases/new" in home.text
    form = client.get("/my/cases/new")
    token = csrf_from(form.text)
    empty = client.post("/my/cases", data={"kind": "inquiry", "account": number, "reason": "", "csrf_token": token})
    assert empty.status_code == 400 and 'id="case-reason-error"' in empty.text
    asked = client.post(
        "/my/cases",
        data={"kind": "inquiry", "account": number, "reason": "Why is my bill higher?", "csrf_token": token},
        follow_redirects=False,
    )
    assert asked.status_code == 303
    case_id = _case_id(asked)
    page = client.get(f"/my/cases/{case_id}")
    assert "We received your question" in page.text and "Why is my bill higher?" in page.text
    client.post(f"/my/cases/{case_id}/messages", data={"body": "It doubled.", "csrf_token": token})
    assert "It doubled." in client.get(f"/my/cases/{case_id}").text
    assert f"/my/cases/{case_id}" in client.get("/my/cases").text
    client.post("/language", data={"csrf_token": token, "lang": "es", "next": "/my/cases"})
    try:
        spanish = client.get(f"/my/cases/{case_id}")
        assert "Lo estamos revisando" in spanish.text and "Le responderemos a más tardar el" in spanish.text
    finally:
        client.post("/language", data={"csrf_token": csrf_from(spanish.text), "lang": "en", "next": "/my"})
    # Another resident: no such page.
    client.post("/sign-out", data={"csrf_token": token})
    sign_in(client, "pastdue@demo.example")
    assert client.get(f"/my/cases/{case_id}").status_code == 404
    other = client.get("/my/cases")
    assert f"/my/cases/{case_id}" not in other.text
    posted = client.post(f"/my/cases/{case_id}/messages", data={"body": "hi", "csrf_token": csrf_from(other.text)})
    assert posted.status_code == 404


def test_a_bill_dispute_from_the_bill_page_is_a_case_decided_by_resolving_it(
    client: TestClient, demo_engine: Engine
) -> None:
    number = linked_numbers(demo_engine, "resident@demo.example")[0]
    with Session(demo_engine) as s:
        bill = s.scalar(
            select(Bill.number)
            .join(Account, Account.id == Bill.account_id)
            .where(Account.number == number, Bill.status == "posted")
            .order_by(Bill.id.desc())
        )
    sign_in(client, "resident@demo.example")
    page = client.get(f"/my/accounts/{number}/bills/{bill}")
    token = csrf_from(page.text)
    done = client.post(
        f"/my/accounts/{number}/bills/{bill}/dispute",
        data={"amount": "10.00", "reason": "Read looks wrong", "csrf_token": token},
        follow_redirects=True,
    )
    assert done.status_code == 200 and "Follow it and write to us" in done.text
    with Session(demo_engine) as s:
        dispute = s.scalar(
            select(Dispute).join(Account).where(Account.number == number, Dispute.reason == "Read looks wrong")
        )
        assert dispute is not None and dispute.case_id is not None and dispute.amount_cents == 1_000
        dispute_id, case_id = dispute.id, dispute.case_id
    assert "Bill dispute" in client.get(f"/my/cases/{case_id}").text
    client.post("/sign-out", data={"csrf_token": token})

    sign_in(client, "supervisor@demo.example")
    register = client.get(f"/staff/disputes?account={number}")
    assert f'href="/staff/cases/{case_id}"' in register.text and "Decided by resolving" in register.text
    assert f'action="/staff/disputes/{dispute_id}"' not in register.text  # decided on its case
    case_page = client.get(f"/staff/cases/{case_id}")
    assert "Decision on the dispute" in case_page.text
    token = csrf_from(case_page.text)
    no_decision = client.post(f"/staff/cases/{case_id}/resolve", data={"resolution": "Read ok", "csrf_token": token})
    assert no_decision.status_code == 400 and 'id="resolve-decision-error"' in no_decision.text
    client.post(
        f"/staff/cases/{case_id}/resolve",
        data={"resolution": "The read was confirmed.", "decision": "denied", "csrf_token": token},
    )
    with Session(demo_engine) as s:
        decided = s.get(Dispute, dispute_id)
        assert decided is not None and (decided.status, decided.decision) == ("denied", "The read was confirmed.")
