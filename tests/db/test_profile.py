"""The customer's profile at the core: checked whole (every problem by field, nothing
changed), one phone number for the sign-in and its customers, and every change audited."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.billing_core import profile, users
from portal.billing_core.errors import FieldErrors
from portal.billing_core.models import Account, AuditEvent, User, UserAccountLink

from .factories import district

NOW = datetime(2026, 3, 2, 17, tzinfo=UTC)
LANGUAGES = ("en", "es")


def holder(session: Session) -> tuple[User, list[Account]]:
    """A sign-in holding two accounts of two customers (a landlord, say)."""
    first, second = district(session, 2)
    user = users.create_user(session, "pat@example.org", "a long password", "customer", first.number, now=NOW)
    session.add(UserAccountLink(user_id=user.id, account_id=second.id))
    session.flush()
    first.customer.phone, second.customer.phone = "(555) 010-1111", "(555) 010-2222"
    return user, [first, second]


def form(accounts: list[Account], **values: str) -> dict[str, str]:
    base = {
        "display_name": "Pat Resident",
        "phone": "(555) 010-1111",
        "language": "en",
        "notify_receipts": "on",
        "notify_updates": "on",
    }
    base |= {f"email-{a.number}": a.customer.email or "" for a in accounts}
    return base | values


def audits(session: Session, action: str) -> list[AuditEvent]:
    return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def test_every_problem_is_named_by_field(session: Session) -> None:
    user, accounts = holder(session)
    accounts[1].paperless = True
    values = form(
        accounts,
        display_name=" ",
        phone="12",
        language="fr",
        **{f"email-{accounts[0].number}": "not an email", f"email-{accounts[1].number}": ""},
    )
    with pytest.raises(FieldErrors) as caught:
        profile.check(values, accounts, LANGUAGES, user)
    assert set(caught.value.errors) == {
        "display_name",
        "phone",
        "language",
        f"email-{accounts[0].number}",
        f"email-{accounts[1].number}",
    }
    assert "Paperless" in caught.value.errors[f"email-{accounts[1].number}"].message


def test_the_phone_shown_is_the_sign_ins_or_the_first_accounts(session: Session) -> None:
    user, accounts = holder(session)
    assert profile.shown_phone(user, accounts) == "(555) 010-1111"
    user.phone = "(555) 010-9999"
    assert profile.shown_phone(user, accounts) == "(555) 010-9999"
    assert [key for key, _held in profile.contact_groups(accounts)] == [a.number for a in accounts]


def test_leaving_the_phone_as_shown_keeps_each_customers_own(session: Session) -> None:
    user, accounts = holder(session)
    change = profile.check(form(accounts, display_name="Pat R."), accounts, LANGUAGES, user)
    profile.apply(session, user, accounts, change, "192.0.2.1")
    assert user.display_name == "Pat R." and user.phone is None
    assert [a.customer.phone for a in accounts] == ["(555) 010-1111", "(555) 010-2222"]
    (event,) = audits(session, "user.profile")
    assert event.before["display_name"] is None and event.after["display_name"] == "Pat R."
    assert event.remote_addr == "192.0.2.1"
    assert audits(session, "customer.contact") == []


def test_a_new_phone_goes_on_the_sign_in_and_every_customer(session: Session) -> None:
    user, accounts = holder(session)
    values = form(accounts, phone="(555) 010-3333", **{f"email-{accounts[1].number}": "Owner@Example.org"})
    change = profile.check(values, accounts, LANGUAGES, user)
    profile.apply(session, user, accounts, change, None)
    assert user.phone == "(555) 010-3333"
    assert [a.customer.phone for a in accounts] == ["(555) 010-3333", "(555) 010-3333"]
    assert accounts[1].customer.email == "owner@example.org"
    contacts = audits(session, "customer.contact")
    assert len(contacts) == 2
    assert {e.before["phone"] for e in contacts} == {"(555) 010-1111", "(555) 010-2222"}


def test_saving_it_unchanged_writes_nothing(session: Session) -> None:
    user, accounts = holder(session)
    user.display_name = "Pat Resident"
    change = profile.check(form(accounts), accounts, LANGUAGES, user)
    profile.apply(session, user, accounts, change, None)
    assert audits(session, "user.profile") == [] and audits(session, "customer.contact") == []
