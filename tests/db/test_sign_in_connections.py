"""The password check holds no database connection (found by ``bench/load/run.py``): each
sign-in kept its connection idle in a transaction for the whole argon2 hash, and in a
due-date rush the sign-ins held the whole pool while every other page waited for one."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine, event, func, select
from sqlalchemy.orm import Session, sessionmaker

from portal.billing_core import users
from portal.billing_core.models import AuditEvent, AuthFailure
from portal.services import signin

NOW = datetime(2026, 3, 1, tzinfo=UTC)
PASSWORD = "correct horse battery"


class Watched:
    """argon2's hasher, noting how many database connections were checked out at each check."""

    def __init__(self, inner: object, held: list[int]) -> None:
        self.inner, self.held, self.out = inner, [], held

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def verify(self, stored: str, password: str) -> bool:
        self.held.append(self.out[0])
        return self.inner.verify(stored, password)  # type: ignore[attr-defined]


def test_the_password_is_checked_with_no_connection_held(
    engine: Engine, sessions: sessionmaker[Session], monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    with sessions() as s, s.begin():
        users.create_user(s, "csr@example.org", PASSWORD, "csr")
    out = [0]
    event.listen(engine, "checkout", lambda *_: out.__setitem__(0, out[0] + 1))
    event.listen(engine, "checkin", lambda *_: out.__setitem__(0, out[0] - 1))
    watched = Watched(users._hasher, out)
    monkeypatch.setattr(users, "_hasher", watched)

    good = signin.check_password(sessions, "CSR@example.org", PASSWORD, False, NOW, "192.0.2.1")
    wrong = signin.check_password(sessions, "csr@example.org", "not the password", False, NOW, "192.0.2.1")
    nobody = signin.check_password(sessions, "nobody@example.org", PASSWORD, False, NOW, "192.0.2.1")

    assert good.user is not None and good.user.email == "csr@example.org" and good.user.last_sign_in_at is not None
    assert wrong.user is None and nobody.user is None
    assert watched.held == [0, 0, 0]  # the same work either way, and never with a connection
    with sessions() as s:
        actions = s.scalars(select(AuditEvent.action).order_by(AuditEvent.id)).all()
        assert actions[-3:] == ["sign_in.success", "sign_in.failure", "sign_in.failure"]
        assert s.scalar(select(func.count(AuthFailure.id))) == 4  # two failures, by email and by address
