"""The collections pages on the shared demo (both databases): who sees and may do what, and
bad input answered next to its field with nothing changed. (Previewing and posting change
data, so they are tested on their own databases: tests/db/test_collection_run.py and the
Chromium journey e2e/test_delinquency_run.py.)"""

from __future__ import annotations

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from portal.billing_core.models import Account, CollectionHold, CollectionRun

from .conftest import csrf_from, sign_in


def _number(engine: Engine) -> str:
    with Session(engine) as s:
        return s.scalars(select(Account.number).order_by(Account.number)).all()[5]


def _counts(engine: Engine) -> tuple[int, int]:
    with Session(engine) as s:
        return (
            s.scalar(select(func.count()).select_from(CollectionRun)) or 0,
            s.scalar(select(func.count()).select_from(CollectionHold)) or 0,
        )


def test_staff_see_the_action_list_and_only_the_roles_allowed_get_the_buttons(
    client: TestClient, demo_engine: Engine
) -> None:
    sign_in(client, "csr@demo.example")
    page = client.get("/staff/collections")
    assert page.status_code == 200 and "Collections: the daily run" in page.text
    assert "is not a business day" in page.text  # the demo's today is a Sunday
    assert "Preview the run" not in page.text and "Post the run" not in page.text
    panel = client.get(f"/staff/accounts/{_number(demo_engine)}/collections", headers={"HX-Request": "true"})
    assert panel.status_code == 200 and panel.text.lstrip().startswith("<section")
    assert "Hold out of collections" not in panel.text
    before = _counts(demo_engine)
    refused = client.post("/staff/collections/run", data={"action": "preview", "csrf_token": csrf_from(page.text)})
    assert refused.status_code == 403 and _counts(demo_engine) == before

    client.post("/sign-out", data={"csrf_token": csrf_from(page.text)})
    sign_in(client, "specialist@demo.example")
    page = client.get("/staff/collections")
    assert "Preview the run" in page.text and "Post the run" not in page.text


def test_bad_input_is_answered_next_to_the_field_and_changes_nothing(client: TestClient, demo_engine: Engine) -> None:
    number = _number(demo_engine)
    sign_in(client, "supervisor@demo.example")
    page = client.get("/staff/collections")
    token = csrf_from(page.text)
    before = _counts(demo_engine)
    future = client.post("/staff/collections/run", data={"action": "post", "run_on": "2027-01-04", "csrf_token": token})
    assert future.status_code == 400 and "A day still to come cannot be run." in future.text
    assert 'id="run_on-error"' in future.text
    old = client.post("/staff/collections/run", data={"action": "post", "run_on": "2026-10-01", "csrf_token": token})
    assert old.status_code == 400 and "Only the last 7 days can still be run." in old.text
    panel = client.get(f"/staff/accounts/{number}/collections")
    assert "Hold out of collections" in panel.text
    held = client.post(
        f"/staff/accounts/{number}/collections/hold",
        data={"action": "hold", "reason": " ", "until": "tomorrow", "csrf_token": csrf_from(panel.text)},
    )
    assert held.status_code == 400
    assert "Say why the account is held out of collections." in held.text
    assert "Give the date as YYYY-MM-DD, or leave it empty." in held.text
    assert 'id="hold-reason-error"' in held.text and 'id="hold-until-error"' in held.text
    assert _counts(demo_engine) == before
