# ruff: noqa: F811  (the fixtures below come from test_requests: a district of its own)
"""The profile: checked whole, audited, the language follows, and the emails the
customer turned off are not sent."""

from __future__ import annotations

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from portal.billing_core.models import Account, AuditEvent, Customer, User

from .conftest import csrf_from, linked_numbers, mail_to, sign_in
from .test_requests import CONTACT, FORWARD, ask, client, day, district  # noqa: F401

EMAIL = "landlord@demo.example"


def profile_form(client: TestClient) -> dict[str, str]:
    page = client.get("/my/profile")
    assert page.status_code == 200
    return {"csrf_token": csrf_from(page.text), **page.context["form"].values}


def test_the_profile_is_checked_whole_and_saved_with_an_audit_trail(client: TestClient, district: Engine) -> None:
    sign_in(client, EMAIL)
    numbers = linked_numbers(district, EMAIL)
    assert len(numbers) > 1
    form = profile_form(client)
    bad = client.post(
        "/my/profile",
        data={**form, "display_name": "", f"email-{numbers[0]}": "not-an-email", "phone": "123"},
    )
    assert bad.status_code == 400
    assert set(bad.context["form"].errors) == {"display_name", f"email-{numbers[0]}", "phone"}
    with Session(district) as s:
        assert s.scalar(select(User.display_name).where(User.email == EMAIL)) != ""
    form.pop("notify_updates")  # unticked
    saved = client.post(
        "/my/profile",
        data={
            **form,
            "display_name": "Lee Landlord",
            "phone": "555-010-9999",
            "language": "es",
            "notify_receipts": "on",
            f"email-{numbers[0]}": "Rentals@Example.org",
        },
    )
    assert saved.status_code == 200 and "Su perfil está guardado." in saved.text
    assert '<html lang="es">' in saved.text
    with Session(district) as s:
        user = s.scalar(select(User).where(User.email == EMAIL))
        assert (user.display_name, user.language, user.notify_receipts, user.notify_updates) == (
            "Lee Landlord",
            "es",
            True,
            False,
        )
        email = s.scalar(
            select(Customer.email).join(Account, Account.customer_id == Customer.id).where(Account.number == numbers[0])
        )
        assert email == "rentals@example.org"
        actions = list(s.scalars(select(AuditEvent.action).where(AuditEvent.actor_id == user.id)))
        assert "user.profile" in actions and "customer.contact" in actions


def test_updates_turned_off_are_not_emailed(client: TestClient, district: Engine, inbox: list) -> None:
    sign_in(client, EMAIL)
    number = linked_numbers(district, EMAIL)[0]
    form = profile_form(client)
    form.pop("notify_updates", None)
    assert client.post("/my/profile", data=form).status_code == 200
    detail = ask(client, "stop", account=number, stop_on=day(5), **FORWARD, **CONTACT).headers["location"]
    request_id = detail.rsplit("/", 1)[1]
    client.cookies.clear()
    sign_in(client, "csr@demo.example")
    page = client.get(f"/staff/requests/{request_id}")
    before = len(mail_to(inbox, EMAIL))
    client.post(f"/staff/requests/{request_id}", data={"csrf_token": csrf_from(page.text), "action": "scheduled"})
    assert len(mail_to(inbox, EMAIL)) == before


def _phones(engine: Engine, numbers: list[str]) -> list[str | None]:
    with Session(engine) as s:
        return [
            s.scalar(
                select(Customer.phone).join(Account, Account.customer_id == Customer.id).where(Account.number == n)
            )
            for n in numbers
        ]


def test_the_profile_has_one_phone_number(client: TestClient, district: Engine) -> None:
    sign_in(client, EMAIL)
    numbers = linked_numbers(district, EMAIL)
    page = client.get("/my/profile")
    assert page.text.count('type="tel"') == 1
    assert '<label for="phone">Phone number (optional)</label>' in page.text
    with Session(district) as s, s.begin():
        # The office has different numbers for the customers this sign-in holds.
        for n, number in enumerate(numbers):
            customer = s.scalar(
                select(Customer).join(Account, Account.customer_id == Customer.id).where(Account.number == number)
            )
            customer.phone = f"(555) 010-300{n}"
    before = _phones(district, numbers)
    # Saved as shown: nobody's number changes.
    assert client.post("/my/profile", data=profile_form(client)).status_code == 200
    assert _phones(district, numbers) == before
    # Changed: the one number goes on the sign-in and on every account it holds.
    form = profile_form(client)
    assert client.post("/my/profile", data={**form, "phone": "555-010-7777"}).status_code == 200
    assert _phones(district, numbers) == ["555-010-7777"] * len(numbers)
    with Session(district) as s:
        assert s.scalar(select(User.phone).where(User.email == EMAIL)) == "555-010-7777"
    assert profile_form(client)["phone"] == "555-010-7777"


def test_sign_out_of_every_other_device(client: TestClient, district: Engine) -> None:
    sign_in(client, EMAIL)
    elsewhere = TestClient(client.app, base_url="https://testserver")
    sign_in(elsewhere, EMAIL)
    copy = TestClient(client.app, base_url="https://testserver")
    copy.cookies.set("portal_session", elsewhere.cookies["portal_session"], domain="testserver.local")
    page = client.get("/my/profile")
    assert "You are also signed in on 1 other device or browser." in page.text
    done = client.post("/my/profile", data={"csrf_token": csrf_from(page.text), "action": "sign_out_others"})
    assert done.status_code == 200 and "You are signed out on 1 other device." in done.text
    assert "You are not signed in anywhere else." in done.text
    assert client.get("/my").status_code == 200  # this one stays
    for other in (elsewhere, copy):
        assert other.get("/my", follow_redirects=False).status_code == 303
    with Session(district) as s:
        assert s.scalar(select(AuditEvent.id).where(AuditEvent.action == "user.sign_out_others"))
