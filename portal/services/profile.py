"""The customer's profile: their name, phone, language, which emails they want, the email on
file for each customer record they hold, and their sign-in's sessions elsewhere
(``billing_core/profile.py`` holds the rules). One use case per function, in the caller's
transaction; the clock comes from the caller."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from ..billing_core import accounts, audit, profile, user_sessions
from ..billing_core.models import Account, User
from ..billing_core.profile import Change


@dataclass(frozen=True)
class ProfilePage:
    user: User
    linked: list[Account]
    #: Accounts grouped by the customer who holds them (``profile.contact_groups``)
    groups: list[tuple[str, list[Account]]]
    #: Sessions of this sign-in still open in other browsers (this one not counted)
    other_sessions: int
    #: What the form starts filled in with
    defaults: dict[str, str]


def _defaults(user: User, linked: list[Account]) -> dict[str, str]:
    values = {
        "display_name": user.display_name or (linked[0].customer.name if linked else ""),
        "phone": profile.shown_phone(user, linked),
        "language": user.language,
        "notify_receipts": "on" if user.notify_receipts else "",
        "notify_updates": "on" if user.notify_updates else "",
    }
    for key, held in profile.contact_groups(linked):
        values[f"email-{key}"] = held[0].customer.email or ""
    return values


def page(session: Session, user: User, now: datetime) -> ProfilePage:
    linked = accounts.accounts_for_user(session, user)
    return ProfilePage(
        user=user,
        linked=linked,
        groups=profile.contact_groups(linked),
        other_sessions=max(0, user_sessions.open_sessions(session, user, now) - 1),
        defaults=_defaults(user, linked),
    )


def save(
    session: Session, user: User, values: dict[str, str], languages: tuple[str, ...], remote_addr: str | None
) -> Change:
    """Check the profile whole (``FieldErrors``, nothing changed) and save it, audited."""
    linked = accounts.accounts_for_user(session, user)
    change = profile.check(values, linked, languages, user)
    profile.apply(session, user, linked, change, remote_addr)
    return change


def sign_out_others(session: Session, user: User, now: datetime, keep: str | None, remote_addr: str | None) -> int:
    """End every session of this sign-in but ``keep`` (this browser's); how many ended. Audited."""
    ended = user_sessions.end_all(session, user, now, SIGN_OUT_OTHERS, keep=keep)
    audit.record(
        session,
        "user.sign_out_others",
        actor=user,
        entity_type="user",
        entity_id=user.id,
        after={"sessions_ended": ended},
        remote_addr=remote_addr,
    )
    return ended


#: Why the sessions ended (``user_session.ended_reason``), and the profile form's action.
SIGN_OUT_OTHERS = "sign_out_others"
