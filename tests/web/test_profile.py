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
        data={**form, "display_name": "", f"email-{numbers[0]}": "not-an-email", f"phone-{numbers[0]}": "123"},
    )
    assert bad.status_code == 400
    assert set(bad.context["form"].errors) == {"display_name", f"email-{numbers[0]}", f"phone-{numbers[0]}"}
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
