"""Signing in, up and out: the password check with its throttle, signing up, confirming the
address, asking for and using a reset link, the language a sign-in reads, and sign-in
through an outside provider.

Each function is one use case in the caller's transaction, with the clock (``now``) and the
network address handed in. Every answer that could tell a stranger whether an address has a
sign-in does the same work and the same writes either way (``billing_core/users.py``,
``throttle.py``); what differs goes into the email, which the caller queues.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from ..adapters.database import transaction
from ..billing_core import audit, throttle, users
from ..billing_core.models import User


@dataclass(frozen=True)
class SignInCheck:
    """The user when the password was right (None otherwise), and the seconds to wait when
    there were too many tries (0 when not throttled)."""

    user: User | None
    wait_seconds: int = 0


def check_password(
    factory: sessionmaker[Session],
    email: str,
    password: str,
    known_device: bool,
    now: datetime,
    remote_addr: str | None,
) -> SignInCheck:
    """Check a sign-in. A throttled attempt does not check the password at all; the email's
    count is skipped for a browser that signed in to it before (``known_device``). Audited.

    Two short transactions with the password check between them, holding no database
    connection: the throttle and the stored hash are read, the hash is checked, then the
    outcome is written (the audit, the throttle's count, the sign-in's time)."""
    by_email, by_address = throttle.email_key(email), throttle.address_key(remote_addr)
    with transaction(factory) as session:
        wait = throttle.retry_after(session, by_address, throttle.PER_ADDRESS, now)
        if wait is None and not known_device:
            wait = throttle.retry_after(session, by_email, throttle.PER_EMAIL, now)
        if wait is not None:
            audit.record(
                session,
                "sign_in.throttled",
                actor_label=users.normalise_email(email),
                remote_addr=remote_addr,
                detail="too many failed attempts",
            )
            return SignInCheck(None, int(wait.total_seconds()))
        stored = users.stored_password(session, email)
    matched = users.password_matches(stored, password)
    with transaction(factory) as session:
        user = users.signed_in(session, stored, matched, password, now)
        audit.record(
            session,
            "sign_in.success" if user else "sign_in.failure",
            actor=user,
            actor_label=users.normalise_email(email),
            entity_type="user",
            entity_id=user.id if user else None,
            remote_addr=remote_addr,
            detail=None if user else "wrong email or password",
        )
        if user is None:
            throttle.record(session, [by_email, by_address], now)
            return SignInCheck(None)
        throttle.clear(session, by_email)
        return SignInCheck(user)


@dataclass(frozen=True)
class SignUp:
    """What a sign-up led to: the sign-in's id and whether to send the confirmation link
    (else "you already have a sign-in"), or the seconds to wait after too many sign-ups."""

    user_id: int | None = None
    confirm: bool = False
    wait_seconds: int | None = None


def sign_up(
    session: Session, email: str, password: str, name: str, language: str, now: datetime, remote_addr: str | None
) -> SignUp:
    """Sign up a customer (``users.sign_up``); ``InvalidInput`` for a form filled in wrongly.
    Slowed per network address and per email. Audited either way, so a new address and one
    that already has a sign-in do the same writes."""
    limits = throttle.sign_up_keys(email, remote_addr)
    wait = throttle.longest_wait(session, limits, now)
    if wait is not None:
        audit.record(
            session, "user.sign_up_throttled", actor_label=users.normalise_email(email), remote_addr=remote_addr
        )
        return SignUp(wait_seconds=int(wait.total_seconds()))
    result = users.sign_up(session, email, password, language, name)
    throttle.record(session, [key for key, _limit in limits], now)
    audit.record(
        session,
        "user.sign_up" if result.new else "user.sign_up_existing",
        actor=result.user if result.new else None,
        actor_label=result.user.email,
        entity_type="user",
        entity_id=result.user.id,
        remote_addr=remote_addr,
    )
    # Signed up before and never confirmed: the confirmation link again.
    confirm = result.new or result.user.email_verified_at is None
    return SignUp(result.user.id, confirm)


def token_valid(session: Session, token: str, purpose: str, now: datetime) -> bool:
    return users.valid_token(session, token, purpose, now) is not None


def confirm_email(session: Session, token: str, now: datetime, remote_addr: str | None) -> User | None:
    """Confirm the address with the emailed link: the user, or None for a link that is not
    (or no longer) good. Audited."""
    user = users.confirm_email(session, token, now)
    if user is not None:
        audit.record(
            session, "user.email_confirmed", actor=user, entity_type="user", entity_id=user.id, remote_addr=remote_addr
        )
    return user


@dataclass(frozen=True)
class ResetAsked:
    """Whom to email a reset link (None: nobody, the same answer either way), or the
    seconds to wait after too many asks."""

    user_id: int | None = None
    wait_seconds: int | None = None


def ask_reset(session: Session, email: str, now: datetime, remote_addr: str | None) -> ResetAsked:
    """Someone asks for a reset link. Slowed per network address and per email, so nobody
    floods a mailbox; counted apart from failed sign-ins, so it never slows signing in."""
    limits = throttle.reset_keys(email, remote_addr)
    wait = throttle.longest_wait(session, limits, now)
    if wait is not None:
        return ResetAsked(wait_seconds=int(wait.total_seconds()))
    throttle.record(session, [key for key, _limit in limits], now)
    user = users.user_by_email(session, email)
    audit.record(
        session,
        "user.reset_requested",
        actor=user,
        actor_label=users.normalise_email(email),
        remote_addr=remote_addr,
    )
    return ResetAsked(user.id if user is not None and user.active else None)


def reset_password(session: Session, token: str, password: str, now: datetime, remote_addr: str | None) -> User:
    """Set a new password with a reset link; every session of the sign-in ends
    (``users.reset_password``). ``InvalidInput`` for a bad link or password. Audited."""
    user = users.reset_password(session, token, password, now)
    audit.record(
        session, "user.password_reset", actor=user, entity_type="user", entity_id=user.id, remote_addr=remote_addr
    )
    return user


def set_language(session: Session, user: User | None, code: str) -> None:
    """Remember the language for the sign-in (nothing to do for a visitor). Audited."""
    if user is None or user.language == code:
        return
    audit.record(
        session,
        "user.language",
        actor=user,
        entity_type="user",
        entity_id=user.id,
        before={"language": user.language},
        after={"language": code},
    )
    user.language = code


@dataclass(frozen=True)
class OutsideSignIn:
    """The sign-in an outside identity reached (None: refused, ``reason`` says why) and
    whether it was made now."""

    user: User | None
    made: bool = False
    reason: str = ""


def outside_sign_in(
    session: Session, issuer: str, claims: dict, language: str, now: datetime, remote_addr: str | None
) -> OutsideSignIn:
    """Who an outside provider's answer signs in (``users.outside_sign_in``). Audited."""
    try:
        user, made = users.outside_sign_in(session, issuer, claims, language, now)
    except users.OutsideSignInRefused as exc:
        audit.record(
            session,
            "sign_in.failure",
            actor_label=str(claims.get("email") or "")[:254],
            remote_addr=remote_addr,
            detail=f"outside provider: {exc.reason}",
        )
        return OutsideSignIn(None, False, exc.reason)
    audit.record(
        session,
        "sign_in.success",
        actor=user,
        entity_type="user",
        entity_id=user.id,
        remote_addr=remote_addr,
        detail="outside provider" + (": new sign-in" if made else ""),
    )
    return OutsideSignIn(user, made)
