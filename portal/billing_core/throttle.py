"""Slowing down guessing: failed attempts counted per key over a window.

Sign-in counts failures per email address and per network address. A browser that
has signed in to an address before carries a signed "known device" mark, and the
per-email limit does not apply to it: someone guessing a resident's password cannot
lock the resident out of their own browser. The per-address limit still applies to
everyone, and a password reset clears the email's count.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from .models import AuthFailure

WINDOW = timedelta(minutes=15)
PER_EMAIL = 5
PER_ADDRESS = 20


def email_key(email: str) -> str:
    return f"email:{email.strip().lower()}"[:300]


def address_key(address: str | None) -> str:
    return f"ip:{address or 'unknown'}"[:300]


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
