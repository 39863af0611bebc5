# ruff: noqa: F811  (the district fixture comes from test_requests: a district of its own)
"""Sign-in through an outside OpenID Connect provider, against oidc-provider-mock run in a
thread: a new resident, a resident who already has a password, an address the provider
does not vouch for, and a refusal at the provider."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest
from oidc_provider_mock import run_server_in_thread
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from portal.app import create_app
from portal.billing_core.models import User

from .conftest import CLOCK, SETTINGS
from .test_requests import district  # noqa: F401


@pytest.fixture(scope="module")
def provider() -> Iterator[str]:
    with run_server_in_thread(port=0) as server:
        yield f"http://localhost:{server.server_port}"


@pytest.fixture
def client(district: Engine, provider: str, smtp) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    config = dataclasses.replace(
        SETTINGS,
        smtp_host="127.0.0.1",
        smtp_port=smtp[0],
        oidc_issuer=provider,
        oidc_client_id="portal",
        oidc_client_secret="portal-secret",
        oidc_name="Example ID",
    )
    with TestClient(create_app(config, engine=district, clock=CLOCK), base_url="https://testserver") as c:
        yield c


def person(provider: str, **claims: object) -> str:
    sub = uuid.uuid4().hex
    httpx.put(f"{provider}/users/{sub}", json=claims).raise_for_status()
    return sub


def through_provider(client: TestClient, sub: str, action: str = "allow"):  # type: ignore[no-untyped-def]
    page = client.get("/sign-in")
    assert 'href="/sign-in/outside"' in page.text and "Sign in with Example ID" in page.text
    start = client.get("/sign-in/outside", follow_redirects=False)
    assert start.status_code == 302
    answer = httpx.post(start.headers["location"], data={"sub": sub, "action": action})
    assert answer.status_code == 302, answer.text
    back = urlsplit(answer.headers["location"])
    assert back.path == "/sign-in/outside/callback"
    return client.get(f"{back.path}?{back.query}", follow_redirects=False)


def users_named(engine: Engine, email: str) -> list[User]:
    with Session(engine) as s:
        return list(s.scalars(select(User).where(func.lower(User.email) == email)))


def test_a_new_resident_signs_in_with_the_provider_and_is_asked_to_link(
    client: TestClient, district: Engine, provider: str
) -> None:
    email = f"new-{uuid.uuid4().hex[:6]}@example.net"
    sub = person(provider, email=email, email_verified=True, name="Ada Outside")
    response = through_provider(client, sub)
    assert response.status_code == 303 and response.headers["location"] == "/my/link"
    assert client.get("/my/link").status_code == 200  # signed in
    (user,) = users_named(district, email)
    assert user.role == "customer" and user.password_hash is None and user.display_name == "Ada Outside"
    assert user.oidc_subject == f"{provider}|{sub}" and user.email_verified_at is not None
    # Next time the same identity finds the same sign-in, whatever its email says now.
    client.cookies.clear()
    httpx.put(f"{provider}/users/{sub}", json={"email": "changed@example.net", "email_verified": True})
    again = through_provider(client, sub)
    assert again.status_code == 303 and len(users_named(district, email)) == 1


def test_a_resident_with_a_password_is_found_by_a_vouched_email(
    client: TestClient, district: Engine, provider: str
) -> None:
    sub = person(provider, email="Resident@demo.example", email_verified=True)
    response = through_provider(client, sub)
    assert response.status_code == 303 and response.headers["location"] == "/my"
    (user,) = users_named(district, "resident@demo.example")
    assert user.oidc_subject == f"{provider}|{sub}" and user.password_hash is not None


def test_an_address_the_provider_does_not_vouch_for_signs_no_one_in(
    client: TestClient, district: Engine, provider: str
) -> None:
    sub = person(provider, email="resident@demo.example", email_verified=False)
    response = through_provider(client, sub)
    assert response.status_code == 400 and "did not confirm your email address" in response.text
    assert users_named(district, "resident@demo.example")[0].oidc_subject is None
    assert client.get("/my", follow_redirects=False).status_code == 303  # still signed out


def test_a_refusal_at_the_provider_comes_back_as_a_plain_message(client: TestClient, provider: str) -> None:
    sub = person(provider, email="x@example.net", email_verified=True)
    response = through_provider(client, sub, action="deny")
    assert response.status_code == 400 and "cancelled or did not work" in response.text


def test_without_settings_there_is_no_outside_sign_in(district: Engine) -> None:
    with TestClient(create_app(SETTINGS, engine=district, clock=CLOCK), base_url="https://testserver") as c:
        assert "/sign-in/outside" not in c.get("/sign-in").text
        assert c.get("/sign-in/outside").status_code == 404
