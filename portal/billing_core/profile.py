"""The customer's own details: their name and phone, language, which emails they want,
and the email on file for each account they hold (where bills and notices go).

There is one phone number: the sign-in's own, which is also the phone on file for every
account it holds. The page shows the sign-in's number, or the one on file for its first
account when it has none; when the person changes it, the new number goes on the sign-in
and on every customer record it holds, and when they leave it as it was, nothing changes
(a landlord's customers keep the numbers the office has for them).

Checked whole: every problem by field, and nothing changes unless all is right. Every
change is audited with what it was before.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy.orm import Session

from . import audit
from .errors import N_, FieldErrors, InvalidInput
from .models import Account, User
from .users import EMAIL_RE, normalise_email

PHONE = re.compile(r"\+?[\d\s().-]{10,20}")


def _phone(text: str, field: str, errors: dict[str, InvalidInput]) -> str | None:
    text = text.strip()
    if not text:
        return None
    if not PHONE.fullmatch(text) or len(re.sub(r"\D", "", text)) < 10:
        errors[field] = InvalidInput(N_("Enter a phone number with its area code, for example (555) 010-2000."), field)
    return text[:40]


@dataclass(frozen=True)
class Change:
    name: str
    phone: str | None
    language: str
    notify_receipts: bool
    notify_updates: bool
    #: first account number of each customer -> (email, phone) on file for that customer;
    #: the phone is the one above when it was changed, else the customer's own as it was
    contacts: dict[str, tuple[str | None, str | None]]


def contact_groups(accounts: list[Account]) -> list[tuple[str, list[Account]]]:
    """Accounts grouped by the customer who holds them (one email and phone each), named
    by the first account's number."""
    groups: dict[int, list[Account]] = {}
    for account in accounts:
        groups.setdefault(account.customer_id, []).append(account)
    return [(held[0].number, held) for held in groups.values()]


def shown_phone(user: User, accounts: list[Account]) -> str:
    """The one phone number the profile shows."""
    return user.phone or next((a.customer.phone for a in accounts if a.customer.phone), None) or ""


def check(values: dict[str, str], accounts: list[Account], languages: tuple[str, ...], user: User) -> Change:
    errors: dict[str, InvalidInput] = {}
    name = values.get("display_name", "").strip()
    if not name or len(name) > 200:
        errors["display_name"] = InvalidInput(N_("Enter your full name."), "display_name")
    typed = values.get("phone", "").strip()
    phone_changed = typed != shown_phone(user, accounts).strip()
    phone = _phone(typed, "phone", errors) if phone_changed else user.phone
    language = values.get("language", "")
    if language not in languages:
        errors["language"] = InvalidInput(N_("Choose a language."), "language")
    contacts: dict[str, tuple[str | None, str | None]] = {}
    for key, held in contact_groups(accounts):
        email_field = f"email-{key}"
        email = normalise_email(values.get(email_field, "")) or None
        if email and (not EMAIL_RE.match(email) or len(email) > 254):
            errors[email_field] = InvalidInput(N_("Enter an email address like name@example.org."), email_field)
        elif not email and any(a.paperless for a in held):
            errors[email_field] = InvalidInput(
                N_("Paperless billing is on for this account, so it needs an email address."), email_field
            )
        contacts[key] = (email, phone if phone_changed else held[0].customer.phone)
    if errors:
        raise FieldErrors(errors)
    return Change(
        name,
        phone,
        language,
        values.get("notify_receipts") == "on",
        values.get("notify_updates") == "on",
        contacts,
    )


def apply(session: Session, user: User, accounts: list[Account], change: Change, remote_addr: str | None) -> None:
    before = {
        "display_name": user.display_name,
        "phone": user.phone,
        "language": user.language,
        "notify_receipts": user.notify_receipts,
        "notify_updates": user.notify_updates,
    }
    after = {
        "display_name": change.name,
        "phone": change.phone,
        "language": change.language,
        "notify_receipts": change.notify_receipts,
        "notify_updates": change.notify_updates,
    }
    if before != after:
        user.display_name, user.phone, user.language = change.name, change.phone, change.language
        user.notify_receipts, user.notify_updates = change.notify_receipts, change.notify_updates
        audit.record(
            session,
            "user.profile",
            actor=user,
            entity_type="user",
            entity_id=user.id,
            before=before,
            after=after,
            remote_addr=remote_addr,
        )
    for key, held in contact_groups(accounts):
        email, phone = change.contacts[key]
        customer = held[0].customer
        if (customer.email, customer.phone) == (email, phone):
            continue
        audit.record(
            session,
            "customer.contact",
            actor=user,
            entity_type="customer",
            entity_id=customer.id,
            before={"email": customer.email, "phone": customer.phone},
            after={"email": email, "phone": phone, "accounts": [a.number for a in held]},
            remote_addr=remote_addr,
        )
        customer.email, customer.phone = email, phone
