"""Server-side sessions: one record per signed-in browser, checked on every request.

The signed session cookie carries a random id (``secrets.token_urlsafe(32)``); the
database keeps only its SHA-256 hash. A session is good while its record has not
ended and neither timeout has passed:

=========  ==========  =========
who        idle        absolute
=========  ==========  =========
staff      30 minutes  12 hours
customers  2 hours     8 hours (what the cookie lasted before records existed)
=========  ==========  =========

Sign-out ends the one record; a password reset or change, deactivation and
"sign out everywhere" end every record of the sign-in; a customer can end every
record but the one they are using. ``last_seen_at`` is written at most once a minute,
so the idle timeout is exact to a minute and a busy page does not write on every
request.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from typing import Any, NamedTuple, cast

from sqlalchemy import CursorResult, bindparam, delete, or_, select, update
from sqlalchemy.orm import Session

from . import audit, statements
from .models import Role, User, UserSession

STAFF_IDLE = timedelta(minutes=30)
STAFF_ABSOLUTE = timedelta(hours=12)
CUSTOMER_IDLE = timedelta(hours=2)
CUSTOMER_ABSOLUTE = timedelta(hours=8)
#: The longest any session can last: the cookie's own lifetime.
LONGEST = max(STAFF_ABSOLUTE, CUSTOMER_ABSOLUTE)
SEEN_EVERY = timedelta(minutes=1)
#: Ended and expired records are deleted this long after they could last have been used.
KEEP = timedelta(days=30)


def timeouts(user: User) -> tuple[timedelta, timedelta]:
    """(idle, absolute) for this sign-in's role."""
    if Role(user.role).is_staff:
        return STAFF_IDLE, STAFF_ABSOLUTE
    return CUSTOMER_IDLE, CUSTOMER_ABSOLUTE


def _hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def start(session: Session, user: User, now: datetime, remote_addr: str | None = None) -> str:
    """A new session for ``user``; returns the raw id for the cookie (kept nowhere else)."""
    raw = secrets.token_urlsafe(32)
    session.add(
        UserSession(
            user_id=user.id,
            token_hash=_hash(raw),
            created_at=now,
            last_seen_at=now,
            remote_addr=(remote_addr or None) and remote_addr[:64],
        )
    )
    # Keep the table small: this sign-in's records that can no longer be used.
    session.execute(
        delete(UserSession).where(
            UserSession.user_id == user.id,
            or_(UserSession.ended_at < now - KEEP, UserSession.created_at < now - LONGEST - KEEP),
        )
    )
    session.flush()
    return raw


def find(session: Session, raw: str | None) -> UserSession | None:
    if not raw or not isinstance(raw, str) or len(raw) > 200:
        return None
    return session.scalar(select(UserSession).where(UserSession.token_hash == _hash(raw)))


class Checked(NamedTuple):
    #: The active user whose session this is, or None.
    user: User | None
    #: Why the session must end now (it timed out, or its sign-in was turned off), or None.
    end: str | None = None
    #: Last seen more than a minute ago: the caller writes ``touch``.
    touch: bool = False


def check(session: Session, raw: str | None, user_id: object, now: datetime) -> Checked:
    """Whether the session named by the cookie's ``raw`` id for ``user_id`` may be used now.
    Reads only: ending a timed-out session and touching ``last_seen_at`` are left to the
    caller, each in a short transaction of its own (``end``, ``touch``), so the request's
    own transaction writes nothing it did not mean to and a rollback (the visitor sent to
    sign in) loses nothing."""
    if not raw or not isinstance(raw, str) or len(raw) > 200:
        return Checked(None)
    # The session and its sign-in in one query (as ``find`` and then ``session.get``).
    stmt = statements.once(
        ("user_sessions.check",),
        lambda: (
            select(UserSession, User)
            .outerjoin(User, User.id == UserSession.user_id)
            .where(UserSession.token_hash == bindparam("token_hash"))
        ),
    )
    row = session.execute(stmt, {"token_hash": _hash(raw)}).first()
    if row is None:
        return Checked(None)
    record, user = row
    if record.ended_at is not None or record.user_id != user_id:
        return Checked(None)
    if user is None or not user.active:
        return Checked(None, "deactivated")
    idle, absolute = timeouts(user)
    if now - record.created_at >= absolute:
        return Checked(None, "expired")
    if now - record.last_seen_at >= idle:
        return Checked(None, "idle")
    return Checked(user, touch=now - record.last_seen_at >= SEEN_EVERY)


def touch(session: Session, raw: str, now: datetime) -> None:
    """Note that the session was used now (at most once a minute: see ``check``)."""
    session.execute(
        update(UserSession)
        .where(
            UserSession.token_hash == _hash(raw),
            UserSession.ended_at.is_(None),
            UserSession.last_seen_at <= now - SEEN_EVERY,
        )
        .values(last_seen_at=now)
    )


def _end(record: UserSession, now: datetime, reason: str) -> None:
    record.ended_at = now
    record.end_reason = reason


def end(session: Session, raw: str | None, now: datetime, reason: str = "sign_out") -> bool:
    """End one session (signing out). False when there was none to end."""
    record = find(session, raw)
    if record is None or record.ended_at is not None:
        return False
    _end(record, now, reason)
    session.flush()
    return True


def end_all(session: Session, user: User, now: datetime, reason: str, keep: str | None = None) -> int:
    """End every open session of ``user`` (but the one whose raw id is ``keep``); how many."""
    query = update(UserSession).where(UserSession.user_id == user.id, UserSession.ended_at.is_(None))
    if keep:
        query = query.where(UserSession.token_hash != _hash(keep))
    # An UPDATE's result is a CursorResult (it has rowcount); Session.execute is typed for any statement.
    result = cast(CursorResult[Any], session.execute(query.values(ended_at=now, end_reason=reason)))
    return int(result.rowcount or 0)


def open_sessions(session: Session, user: User, now: datetime) -> int:
    """How many sessions of ``user`` could still be used now (not ended, not timed out)."""
    idle, absolute = timeouts(user)
    return len(
        session.scalars(
            select(UserSession.id).where(
                UserSession.user_id == user.id,
                UserSession.ended_at.is_(None),
                UserSession.created_at > now - absolute,
                UserSession.last_seen_at > now - idle,
            )
        ).all()
    )


def record_sign_out(session: Session, user_id: int | None, ended: bool, remote_addr: str | None) -> None:
    """The audit event of a sign-out (``ended`` False: the session had already ended)."""
    if not user_id:
        return
    audit.record(
        session,
        "sign_out",
        actor=session.get(User, user_id),
        entity_type="user",
        entity_id=user_id,
        remote_addr=remote_addr,
        detail=None if ended else "session had already ended",
    )
