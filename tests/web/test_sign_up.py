"""Signing up, confirming the address, resetting a password and linking accounts."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from decimal import Decimal

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from portal.billing_core import users
from portal.billing_core.models import Account, AuditEvent, Bill, Premise, User, UserAccountLink, UserToken

from .conftest import CLOCK, csrf_from, link_in, linked_numbers, mail_to, sign_in

PASSWORD = "a long enough password"


def new_email() -> str:
    return f"new-{uuid.uuid4().hex[:10]}@example.net"


def sign_up(client: TestClient, email: str, password: str = PASSWORD, again: str | None = None):  # type: ignore[no-untyped-def]
    token = csrf_from(client.get("/sign-up").text)
    return client.post(
        "/sign-up",
        data={
            "csrf_token": token,
            "email": email,
            "name": "Pat Resident",
            "password": password,
            "password_again": password if again is None else again,
        },
    )


def confirm(client: TestClient, inbox: list, email: str):  # type: ignore[no-untyped-def]
    (message,) = [m for m in mail_to(inbox, email) if "Confirm" in m["Subject"]][-1:]
    page = client.get(link_in(message, "/confirm-email"))
    assert page.status_code == 200 and page.context["valid"]
    token = page.context["token"]
    return client.post(
        "/confirm-email", data={"csrf_token": csrf_from(page.text), "token": token}, follow_redirects=False
    )


def latest_bill_facts(engine: Engine, number: str) -> tuple[str, str]:
    with Session(engine) as s:
        zip_code = s.scalar(
            select(Premise.zip).join(Account, Account.premise_id == Premise.id).where(Account.number == number)
        )
        total = s.scalar(
            select(Bill.total_due_cents)
            .join(Account, Account.id == Bill.account_id)
            .where(Account.number == number, Bill.status == "posted")
            .order_by(Bill.bill_date.desc(), Bill.id.desc())
            .limit(1)
        )
    return zip_code, f"{Decimal(total) / 100:.2f}"


def link(client: TestClient, number: str, zip_code: str, amount: str):  # type: ignore[no-untyped-def]
    token = csrf_from(client.get("/my/link").text)
    return client.post(
        "/my/link",
        data={"csrf_token": token, "account_number": number, "service_zip": zip_code, "amount_due": amount},
        follow_redirects=False,
    )


def test_sign_up_confirm_and_link_an_account(client: TestClient, demo_engine: Engine, inbox: list) -> None:
    email = new_email()
    response = sign_up(client, email)
    assert response.status_code == 200 and response.template.name == "account/check_email.html"
    # Not signed in until the address is confirmed.
    assert client.get("/my", follow_redirects=False).status_code == 303
    with Session(demo_engine) as s:
        user = s.scalar(select(User).where(User.email == email))
        assert user.role == "customer" and user.email_verified_at is None and user.accounts == []
        token_hashes = list(s.scalars(select(UserToken.token_hash).where(UserToken.user_id == user.id)))
    message = mail_to(inbox, email)[-1]
    raw = link_in(message, "/confirm-email").split("token=")[1]
    assert raw not in token_hashes and len(token_hashes) == 1  # only its hash is kept

    # The password works but the address is not confirmed yet: a new link is sent.
    response = sign_in(client, email, PASSWORD)
    assert response.status_code == 400 and "confirm your email" in response.text
    assert len(mail_to(inbox, email)) == 2

    response = confirm(client, inbox, email)
    assert response.status_code == 303 and response.headers["location"] == "/my/link"
    assert "Your email address is confirmed" in client.get("/my/link").text
    # The link works once.
    old = client.get(link_in(mail_to(inbox, email)[-1], "/confirm-email"))
    assert old.status_code == 400 and not old.context["valid"]

    number = other_unlinked_account(demo_engine)
    zip_code, amount = latest_bill_facts(demo_engine, number)
    response = link(client, number, zip_code, "$" + amount)
    assert response.status_code == 303 and response.headers["location"] == f"/my/accounts/{number}"
    assert linked_numbers(demo_engine, email) == [number]
    assert client.get(f"/my/accounts/{number}").status_code == 200


def other_unlinked_account(engine: Engine) -> str:
    with Session(engine) as s:
        return s.scalars(
            select(Account.number)
            .where(Account.id.not_in(select(UserAccountLink.account_id)), Account.status == "active")
            .order_by(Account.number.desc())
        ).first()


def test_the_same_answer_whether_or_not_the_address_is_known(client: TestClient, inbox: list) -> None:
    known = sign_up(client, "resident@demo.example")
    unknown = sign_up(client, new_email())
    assert known.status_code == unknown.status_code == 200
    assert known.template.name == unknown.template.name == "account/check_email.html"
    # The owner of the known address is told, by email, that they already have a sign-in.
    told = mail_to(inbox, "resident@demo.example")[-1]
    assert "already have a sign-in" in told["Subject"]
    assert "/forgot-password" in link_in(told, "/forgot-password")


def test_sign_up_mistakes_are_shown_next_to_their_fields(client: TestClient, demo_engine: Engine) -> None:
    with Session(demo_engine) as s:
        before = s.scalar(select(func.count(User.id)))
    for email, password, again, field in [
        ("not-an-email", PASSWORD, None, "email"),
        (new_email(), "short", None, "password"),
        (new_email(), PASSWORD, "something else entirely", "password_again"),
    ]:
        response = sign_up(client, email, password, again)
        assert response.status_code == 400
        assert field in response.context["form"].errors
        assert f'id="{field}-error"' in response.text
        assert re.search(rf'aria-describedby="[^"]*{field}-error"', response.text)
    with Session(demo_engine) as s:
        assert s.scalar(select(func.count(User.id))) == before


def test_password_reset_by_emailed_link(client: TestClient, demo_engine: Engine, inbox: list) -> None:
    email = new_email()
    sign_up(client, email)
    confirm(client, inbox, email)
    client.post("/sign-out", data={"csrf_token": csrf_from(client.get("/my").text)})
    # Unknown addresses get the same page and no email.
    for address in (email, "nobody-" + email):
        page = client.get("/forgot-password")
        response = client.post("/forgot-password", data={"csrf_token": csrf_from(page.text), "email": address})
        assert response.status_code == 200 and response.context["sent"]
    assert mail_to(inbox, "nobody-" + email) == []
    path = link_in(mail_to(inbox, email)[-1], "/reset-password")
    page = client.get(path)
    assert page.status_code == 200 and page.context["valid"]
    token = page.context["token"]
    bad = client.post(
        "/reset-password",
        data={"csrf_token": csrf_from(page.text), "token": token, "password": "short", "password_again": "short"},
    )
    assert bad.status_code == 400 and "password" in bad.context["form"].errors
    done = client.post(
        "/reset-password",
        data={
            "csrf_token": csrf_from(page.text),
            "token": token,
            "password": "a brand new password",
            "password_again": "a brand new password",
        },
        follow_redirects=False,
    )
    assert done.status_code == 303 and done.headers["location"] == "/my"
    assert client.get("/my").status_code == 200
    again = client.get(path)
    assert again.status_code == 400 and not again.context["valid"]
    client.post("/sign-out", data={"csrf_token": csrf_from(client.get("/my").text)})
    assert sign_in(client, email, PASSWORD).status_code == 400
    assert sign_in(client, email, "a brand new password").status_code == 303


def test_a_password_reset_signs_out_other_browsers(client: TestClient, demo_engine: Engine, inbox: list) -> None:
    email = new_email()
    sign_up(client, email)
    confirm(client, inbox, email)
    assert client.get("/my").status_code == 200
    with Session(demo_engine) as s, s.begin():
        user = s.scalar(select(User).where(User.email == email))
        later = CLOCK() + timedelta(hours=1)
        raw = users.issue_token(s, user, users.RESET_PASSWORD, later)
        users.reset_password(s, raw, "another long password", later)
    # This browser signed in before the change: it is signed out.
    assert client.get("/my", follow_redirects=False).status_code == 303


def test_linking_needs_all_three_facts_and_is_slowed(client: TestClient, demo_engine: Engine, inbox: list) -> None:
    email = new_email()
    sign_up(client, email)
    confirm(client, inbox, email)
    number = other_unlinked_account(demo_engine)
    zip_code, amount = latest_bill_facts(demo_engine, number)
    wrong = [
        (number, "00000", amount),
        (number, zip_code, str(Decimal(amount) + 1)),
        ("00000000", zip_code, amount),
    ]
    for attempt in wrong:
        response = link(client, *attempt)
        assert response.status_code == 400
        assert response.context["form"].errors["account_number"] == users.LINK_FAILED
    bad_input = link(client, number, "9171", "lots")
    assert bad_input.status_code == 400 and set(bad_input.context["form"].errors) == {"service_zip"}
    assert linked_numbers(demo_engine, email) == []
    for _ in range(users.LINK_PER_USER - len(wrong)):
        link(client, number, zip_code, "0.01")
    # Past the limit, even the right facts are not checked.
    response = link(client, number, zip_code, amount)
    assert response.status_code == 400 and "Too many tries" in response.text
    assert linked_numbers(demo_engine, email) == []
    with Session(demo_engine) as s:
        assert (
            s.scalar(
                select(func.count(AuditEvent.id)).where(
                    AuditEvent.action == "account.link_failed", AuditEvent.actor_label == email
                )
            )
            >= 3
        )


def test_staff_cannot_use_the_customer_pages_to_link(client: TestClient) -> None:
    sign_in(client, "csr@demo.example")
    assert client.get("/my/link").status_code == 404
