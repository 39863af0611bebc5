"""Staff administration and the audit trail through the web: invite by email, set the
password, sign in; turning off ends a session at once; the last administrator; 403s; the
audit search and its CSV download."""

from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from portal.app import create_app
from portal.billing_core import users
from portal.billing_core.models import AuditEvent, User
from tests.db.factories import district

from .conftest import CLOCK, SETTINGS, body_of, csrf_from, link_in, mail_to, sign_in

PASSWORD = "a long password"


@pytest.fixture
def office(engine: Engine, smtp: tuple[int, list]):  # type: ignore[no-untyped-def]
    with Session(engine) as s, s.begin():
        users.create_user(s, "admin@x.org", PASSWORD, "admin", now=CLOCK())
        users.create_user(s, "clerk@x.org", PASSWORD, "csr", now=CLOCK())
    settings = dataclasses.replace(SETTINGS, smtp_host="127.0.0.1", smtp_port=smtp[0])
    return engine, create_app(settings, engine=engine, clock=CLOCK)


def _client(office) -> TestClient:  # type: ignore[no-untyped-def]
    return TestClient(office[1], base_url="https://testserver")


def _post(client: TestClient, url: str, data: dict, page: str):  # type: ignore[no-untyped-def]
    return client.post(url, data={"csrf_token": csrf_from(client.get(page).text), **data}, follow_redirects=False)


def _user_id(engine: Engine, email: str) -> int:
    with Session(engine) as s:
        return s.scalar(select(User.id).where(User.email == email))


def test_invite_email_set_password_and_sign_in(office, inbox: list) -> None:  # type: ignore[no-untyped-def]
    engine, _app = office
    admin = _client(office)
    sign_in(admin, "admin@x.org", PASSWORD)
    page = admin.get("/staff/admin/users")
    assert page.status_code == 200 and "clerk@x.org" in page.text and "Customer service" in page.text
    bad = _post(admin, "/staff/admin/users", {"email": "nope", "role": "customer"}, "/staff/admin/users")
    assert bad.status_code == 400 and 'id="email-error"' in bad.text and 'id="role-error"' in bad.text
    assert admin.post("/staff/admin/users", data={"email": "new@x.org", "role": "csr"}).status_code == 403  # CSRF
    email = f"invited-{engine.dialect.name}@x.org"
    invite = {"email": email, "role": "specialist", "name": "Sam"}
    done = _post(admin, "/staff/admin/users", invite, "/staff/admin/users")
    assert done.status_code == 303
    assert "invitation" in admin.get(done.headers["location"]).text

    (message,) = mail_to(inbox, email)
    body = body_of(message)
    assert "Billing specialist" in body and "72 hours" in body and "staff portal" in message["Subject"]
    path = link_in(message, "/set-password")
    invitee = _client(office)
    form = invitee.get(path)
    assert form.status_code == 200 and form.context["valid"]
    token = form.context["token"]
    short = invitee.post(
        "/set-password",
        data={"csrf_token": csrf_from(form.text), "token": token, "password": "short", "password_again": "short"},
    )
    assert short.status_code == 400 and 'id="password-error"' in short.text
    ok = invitee.post(
        "/set-password",
        data={
            "csrf_token": csrf_from(form.text),
            "token": token,
            "password": "my own long password",
            "password_again": "my own long password",
        },
        follow_redirects=False,
    )
    assert ok.status_code == 303 and invitee.get("/staff").status_code == 200
    assert invitee.get(path).status_code == 400  # used once
    other = _client(office)
    assert sign_in(other, email, "my own long password").status_code == 303
    with Session(engine) as s:
        invited = s.scalar(select(AuditEvent).where(AuditEvent.action == "user.invite"))
        assert invited.remote_addr == "testclient" and invited.after["role"] == "specialist"


def test_turning_off_refuses_the_next_request_and_the_last_admin_stays(office) -> None:  # type: ignore[no-untyped-def]
    engine, _app = office
    clerk, admin = _client(office), _client(office)
    sign_in(clerk, "clerk@x.org", PASSWORD)
    assert clerk.get("/staff").status_code == 200
    assert clerk.get("/staff/admin/users").status_code == 403  # not an administrator
    assert clerk.get("/staff/audit").status_code == 403
    sign_in(admin, "admin@x.org", PASSWORD)
    clerk_page = f"/staff/admin/users/{_user_id(engine, 'clerk@x.org')}"
    off = _post(admin, clerk_page + "/deactivate", {}, clerk_page)
    assert off.status_code == 303 and "1 session ended" in admin.get(clerk_page).text
    refused = clerk.get("/staff", follow_redirects=False)
    assert refused.status_code == 303 and refused.headers["location"].startswith("/sign-in")
    assert sign_in(clerk, "clerk@x.org", PASSWORD).status_code == 400

    me = f"/staff/admin/users/{_user_id(engine, 'admin@x.org')}"
    demote = _post(admin, me + "/role", {"role": "supervisor"}, me)
    assert demote.status_code == 400 and "last active administrator" in demote.text and 'id="role-error"' in demote.text
    leave = _post(admin, me + "/deactivate", {}, me)
    assert leave.status_code == 400 and "last active administrator" in leave.text
    with Session(engine) as s, s.begin():
        (account,) = district(s, 1)
        resident_id = users.create_user(s, "res@x.org", PASSWORD, "customer", account.number, now=CLOCK()).id
    assert admin.get(f"/staff/admin/users/{resident_id}").status_code == 404
    assert _post(admin, f"/staff/admin/users/{resident_id}/deactivate", {}, me).status_code == 404


def test_the_audit_trail_lists_searches_and_downloads(office) -> None:  # type: ignore[no-untyped-def]
    engine, _app = office
    admin = _client(office)
    sign_in(admin, "admin@x.org", PASSWORD)
    clerk_page = f"/staff/admin/users/{_user_id(engine, 'clerk@x.org')}"
    _post(admin, clerk_page + "/role", {"role": "cashier"}, clerk_page)
    # An event whose writer passes no address records the request's all the same.
    _post(admin, "/language", {"lang": "es", "next": "/staff"}, "/staff")
    with Session(engine) as s:
        language = s.scalar(select(AuditEvent).where(AuditEvent.action == "user.language"))
        assert language.remote_addr == "testclient"
    page = admin.get("/staff/audit?kind=user.role")
    assert page.status_code == 200 and "Role changed" in page.text and "cashier" in page.text
    assert "admin@x.org" in page.text and "testclient" in page.text
    assert admin.get("/staff/audit?since=yesterday").status_code == 400
    download = admin.get("/staff/audit/export.csv?person=admin@x.org")
    assert download.status_code == 200 and download.headers["content-type"].startswith("text/csv")
    lines = download.text.splitlines()
    assert lines[0].startswith("when,who,kind") and any(",user.role," in line for line in lines)
