"""The applicant's date of birth and ID digits on a start request: shown on the staff page
only to roles the permission table lets see them, and each showing audited."""

from __future__ import annotations

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from portal.billing_core.models import AuditEvent
from portal.billing_core.permissions import FIELDS, Field, may_see

from .conftest import sign_in
from .test_requests import CONTACT, EMAIL, NEW_HOME, ask, client, day, district  # noqa: F401  (fixtures)

VIEWED = FIELDS[Field.BIRTH_DATE].audit_action


def views(engine: Engine, request_id: str) -> list[AuditEvent]:
    with Session(engine) as s:
        return list(
            s.scalars(select(AuditEvent).where(AuditEvent.action == VIEWED, AuditEvent.entity_id == request_id))
        )


def test_identity_fields_are_shown_to_roles_that_may_see_them_and_audited(
    client: TestClient,  # noqa: F811
    district: Engine,  # noqa: F811
) -> None:
    assert FIELDS[Field.ID_LAST4].audit_action == VIEWED
    assert may_see("csr", Field.BIRTH_DATE) and not may_see("cashier", Field.BIRTH_DATE)
    assert not may_see("cashier", Field.ID_LAST4)
    sign_in(client, EMAIL)
    made = ask(client, "start", start_on=day(5), birth_date="1985-04-30", id_last4="d123", **NEW_HOME, **CONTACT)
    assert made.status_code == 303
    request_id = made.headers["location"].rsplit("/", 1)[1]

    client.cookies.clear()
    sign_in(client, "cashier@demo.example")
    page = client.get(f"/staff/requests/{request_id}")
    assert page.status_code == 200 and "First day of service" in page.text
    assert "Date of birth" not in page.text and "1985-04-30" not in page.text
    assert "Photo ID ends in" not in page.text and "D123" not in page.text
    assert views(district, request_id) == []

    client.cookies.clear()
    sign_in(client, "csr@demo.example")
    page = client.get(f"/staff/requests/{request_id}")
    assert page.status_code == 200
    assert "<dt>Date of birth</dt><dd>1985-04-30</dd>" in page.text
    assert "<dt>Photo ID ends in</dt><dd>D123</dd>" in page.text
    (seen,) = views(district, request_id)
    assert seen.entity_type == "service_request" and seen.actor_label == "csr@demo.example"
    assert seen.after == {"fields": [Field.BIRTH_DATE.value, Field.ID_LAST4.value]}
    # Every showing is written, not only the first.
    client.get(f"/staff/requests/{request_id}")
    assert len(views(district, request_id)) == 2
