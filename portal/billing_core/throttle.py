"""Slowing down guessing and flooding: attempts counted per key over a window.

Each thing slowed has keys of its own, so one never locks a person out of another:

===================  ==================================  =========================
what                 counted per (key)                   limit in 15 minutes
===================  ==================================  =========================
signing in           email (``email:``), network         5 failures, 20 failures
                     address (``ip:``)
linking an account   sign-in (``link:``), account        5, 10, 20 failures
                     number (``account:``), network
                     address (``link-ip:``)
asking for a reset   email (``reset-email:``), network   3, 10 requests
                     address (``reset-ip:``)
signing up           email (``signup-email:``), network  3, 10 requests
                     address (``signup-ip:``)
===================  ==================================  =========================

Failed sign-ins and failed links count only failures (a success clears the sign-in's
email count, never a link count); resets and sign-ups count every request, known
address or not, so the limit says nothing about which addresses have a sign-in.
Asking for many reset links from one address never slows signing in from it.

A browser that has signed in to an address before carries a signed "known device" mark,
and the per-email sign-in limit does not apply to it: someone guessing a resident's
password cannot lock the resident out of their own browser. The per-address limit still
applies to everyone, and a password reset clears the email's count.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from .models import AuthFailure

WINDOW = timedelta(minutes=15)
PER_EMAIL = 5
PER_ADDRESS = 20
LINK_PER_ADDRESS = 20
RESET_PER_EMAIL = 3
RESET_PER_ADDRESS = 10
SIGN_UP_PER_EMAIL = 3
SIGN_UP_PER_ADDRESS = 10


def _normal(email: str) -> str:
    return (email or "").strip().lower()


def email_key(email: str) -> str:
    return f"email:{_normal(email)}"[:300]


def address_key(address: str | None) -> str:
    return f"ip:{address or 'unknown'}"[:300]


def link_address_key(address: str | None) -> str:
    return f"link-ip:{address or 'unknown'}"[:300]


def reset_keys(email: str, address: str | None) -> list[tuple[str, int]]:
    """(key, limit) for asking for a password reset link."""
    return [
        (f"reset-ip:{address or 'unknown'}"[:300], RESET_PER_ADDRESS),
        (f"reset-email:{_normal(email)}"[:300], RESET_PER_EMAIL),
    ]


def sign_up_keys(email: str, address: str | None) -> list[tuple[str, int]]:
    """(key, limit) for signing up."""
    return [
        (f"signup-ip:{address or 'unknown'}"[:300], SIGN_UP_PER_ADDRESS),
        (f"signup-email:{_normal(email)}"[:300], SIGN_UP_PER_EMAIL),
    ]


def longest_wait(session: Session, limits: list[tuple[str, int]], now: datetime) -> timedelta | None:
    """The longest wait any of ``limits`` imposes, or None when none is reached. Every
    limit is checked, so the answer does not depend on which one was reached first."""
    waits = [w for key, limit in limits if (w := retry_after(session, key, limit, now)) is not None]
    return max(waits) if waits else None


def failures(session: Session, key: str, now: datetime, window: timedelta = WINDOW) -> int:
    return (
        session.scalar(select(func.count(AuthFailure.id)).where(AuthFailure.key == key, AuthFailure.at > now - window))
        or 0
    )


def retry_after(session: Session, key: str, limit: int, now: datetime, window: timedelta = WINDOW) -> timedelta | None:
    """None while ``key`` has had fewer than ``limit`` failures in the window; else how long
    until the oldest of the last ``limit`` ages out."""
    times = session.scalars(
        select(AuthFailure.at)
        .where(AuthFailure.key == key, AuthFailure.at > now - window)
        .order_by(AuthFailure.at.desc())
        .limit(limit)
    ).all()
    if len(times) < limit:
        return None
    return max(times[-1] + window - now, timedelta(seconds=1))


def record(session: Session, keys: list[str], now: datetime) -> None:
    session.add_all(AuthFailure(key=k, at=now) for k in keys)
    # Old failures count for nothing: keep the table small.
    session.execute(delete(AuthFailure).where(AuthFailure.key.in_(keys), AuthFailure.at <= now - WINDOW * 4))


def clear(session: Session, key: str) -> None:
    session.execute(delete(AuthFailure).where(AuthFailure.key == key))
