from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, delete, select
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from portal.app import create_app
from portal.billing_core.models import Account, AuthFailure, User, UserAccountLink
from portal.demo import DEMO_PASSWORD
from portal.settings import Settings
from tests.smtp import smtp_server

# The demo was built "today" = 2026-11-22; the portal's clock agrees.
CLOCK = lambda: datetime(2026, 11, 22, 18, 0, tzinfo=UTC)  # noqa: E731
SETTINGS = Settings(secret_key="test-secret", development=False, agency_name="Demo Water District")


@pytest.fixture(scope="session")
def smtp() -> Iterator[tuple[int, list]]:
    """One SMTP server for the web tests; tests read what arrived for their own address."""
    with smtp_server() as (port, inbox):
        yield port, inbox


@pytest.fixture
def inbox(smtp: tuple[int, list]) -> list:
    return smtp[1]


@pytest.fixture
def client(demo_engine: Engine, smtp: tuple[int, list]) -> Iterator[TestClient]:
    settings = dataclasses.replace(SETTINGS, smtp_host="127.0.0.1", smtp_port=smtp[0])
    app = create_app(settings, engine=demo_engine, clock=CLOCK)
    with TestClient(app, base_url="https://testserver") as c:
        yield c
    forget_failed_sign_ins(demo_engine)


def forget_failed_sign_ins(engine: Engine) -> None:
    """The demo district is shared by every test: a test's failed sign-ins must not
    slow down the next test's."""
    with Session(engine) as s, s.begin():
        s.execute(delete(AuthFailure))


def csrf_from(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "page has no CSRF field"
    return match.group(1)


def sign_in(client: TestClient, email: str, password: str = DEMO_PASSWORD, next_url: str = ""):  # type: ignore[no-untyped-def]
    token = csrf_from(client.get("/sign-in").text)
    return client.post(
        "/sign-in",
        data={"email": email, "password": password, "csrf_token": token, "next": next_url},
        follow_redirects=False,
    )


def linked_numbers(engine: Engine, email: str) -> list[str]:
    with Session(engine) as s:
        return list(
            s.scalars(
                select(Account.number)
                .join(UserAccountLink, UserAccountLink.account_id == Account.id)
                .join(User, User.id == UserAccountLink.user_id)
                .where(User.email == email)
                .order_by(Account.number)
            )
        )


def other_account(engine: Engine, email: str) -> str:
    mine = set(linked_numbers(engine, email))
    with Session(engine) as s:
        return next(n for n in s.scalars(select(Account.number).order_by(Account.number)) if n not in mine)


def mail_to(inbox: list, address: str) -> list:
    return [m for m in inbox if m["To"] == address]


def body_of(message) -> str:  # type: ignore[no-untyped-def]
    return message.get_content() if hasattr(message, "get_content") else message.get_payload(decode=True).decode()


def link_in(message, path: str) -> str:  # type: ignore[no-untyped-def]
    """The path and query of the first link to ``path`` in an email."""
    body = body_of(message)
    match = re.search(r"https?://[^/\s]+(" + re.escape(path) + r"[^\s]*)", body)
    assert match, f"no link to {path} in: {body}"
    return match.group(1)
