from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.billing_core import user_sessions, users
from portal.billing_core.errors import InvalidInput
from portal.billing_core.models import UserSession

from .factories import district

NOW = datetime(2026, 3, 1, tzinfo=UTC)


def test_passwords_are_argon2id_and_check(session: Session) -> None:
    (acct,) = district(session, 1)
    user = users.create_user(session, "Resident@Example.org ", "correct horse battery", "customer", acct.number)
    assert user.email == "resident@example.org"
    assert user.password_hash.startswith("$argon2id$")
    assert [a.number for a in user.accounts] == [acct.number]
    assert users.authenticate(session, "RESIDENT@example.org", "correct horse battery", NOW) is user
    assert user.last_sign_in_at == NOW
    assert users.authenticate(session, "resident@example.org", "wrong password!!", NOW) is None
    assert users.authenticate(session, "nobody@example.org", "correct horse battery", NOW) is None


def test_inactive_users_cannot_sign_in(session: Session) -> None:
    user = users.create_user(session, "csr@example.org", "a long password", "csr")
    user.active = False
    assert users.authenticate(session, "csr@example.org", "a long password", NOW) is None


@pytest.mark.parametrize(
    "email, password, role, account, field",
    [
        ("not-an-email", "a long password", "csr", None, "email"),
        ("a@example.org", "short", "csr", None, "password"),
        ("a@example.org", "a long password", "wizard", None, "role"),
        ("a@example.org", "a long password", "customer", None, "account"),
        ("a@example.org", "a long password", "customer", "99999999", "account"),
        ("a@example.org", "a long password", "csr", "00000018", "account"),
    ],
)
def test_bad_input_names_the_field(session: Session, email, password, role, account, field) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidInput) as info:
        users.create_user(session, email, password, role, account)
    assert info.value.field == field


def test_one_sign_in_per_email(session: Session) -> None:
    users.create_user(session, "a@example.org", "a long password", "csr")
    with pytest.raises(InvalidInput, match="already exists"):
        users.create_user(session, "A@example.org", "a long password", "admin")


# --- Server-side sessions (billing_core/user_sessions.py) ----------------------------------


def _open(session: Session, raw: str, user) -> bool:  # type: ignore[no-untyped-def]
    return user_sessions.check(session, raw, user.id, NOW).user is not None


def test_sessions_are_stored_as_hashes_and_end_one_or_all(session: Session) -> None:
    user = users.create_user(session, "csr@example.org", "a long password", "csr")
    here, there, elsewhere = (user_sessions.start(session, user, NOW) for _ in range(3))
    assert len({here, there, elsewhere}) == 3
    stored = set(session.scalars(select(UserSession.token_hash)))
    assert not stored & {here, there, elsewhere}
    assert user_sessions.open_sessions(session, user, NOW) == 3
    assert user_sessions.end(session, here, NOW) and not user_sessions.end(session, here, NOW)
    assert not _open(session, here, user) and _open(session, there, user)
    assert user_sessions.end_all(session, user, NOW, "sign_out_others", keep=there) == 1
    assert _open(session, there, user) and not _open(session, elsewhere, user)
    # A session id names its own sign-in only.
    other = users.create_user(session, "other@example.org", "a long password", "csr")
    assert user_sessions.check(session, there, other.id, NOW) == (None, None, False)
    assert user_sessions.check(session, "made-up", user.id, NOW) == (None, None, False)


def test_sessions_time_out_by_role(session: Session) -> None:
    (acct,) = district(session, 1)
    staff = users.create_user(session, "csr@example.org", "a long password", "csr")
    customer = users.create_user(session, "pat@example.org", "a long password", "customer", acct.number)
    for user, idle, absolute in [(staff, 30, 12 * 60), (customer, 120, 8 * 60)]:
        raw = user_sessions.start(session, user, NOW)
        at = NOW + timedelta(minutes=idle - 1)
        assert user_sessions.check(session, raw, user.id, at) == (user, None, True)
        assert user_sessions.check(session, raw, user.id, at + timedelta(minutes=idle)).end == "idle"
        raw = user_sessions.start(session, user, NOW)
        at = NOW
        while at + timedelta(minutes=idle - 1) < NOW + timedelta(minutes=absolute):
            at += timedelta(minutes=idle - 1)
            assert user_sessions.check(session, raw, user.id, at).touch
            user_sessions.touch(session, raw, at)
        assert user_sessions.check(session, raw, user.id, NOW + timedelta(minutes=absolute)).end == "expired"


def test_turning_off_reset_and_role_changes_end_sessions(session: Session) -> None:
    user = users.create_user(session, "csr@example.org", "a long password", "csr")
    raw = user_sessions.start(session, user, NOW)
    assert users.set_role(session, user, "supervisor", NOW) == 1 and not _open(session, raw, user)
    with pytest.raises(InvalidInput, match="cannot become"):
        users.set_role(session, user, "customer", NOW)
    raw = user_sessions.start(session, user, NOW)
    assert users.sign_out_everywhere(session, user, NOW) == 1 and not _open(session, raw, user)
    raw = user_sessions.start(session, user, NOW)
    token = users.issue_token(session, user, users.RESET_PASSWORD, NOW)
    users.reset_password(session, token, "another long password", NOW)
    assert not _open(session, raw, user)
    raw = user_sessions.start(session, user, NOW)
    assert users.set_active(session, user, False, NOW) == 1 and not _open(session, raw, user)
    users.set_active(session, user, True, NOW)
    assert not _open(session, raw, user)


def test_old_session_records_are_cleared_away(session: Session) -> None:
    user = users.create_user(session, "csr@example.org", "a long password", "csr")
    old = user_sessions.start(session, user, NOW)
    user_sessions.end(session, old, NOW)
    user_sessions.start(session, user, NOW + user_sessions.KEEP + timedelta(days=1))
    assert user_sessions.find(session, old) is None
    assert len(session.scalars(select(UserSession.id)).all()) == 1


def test_production_hashes_passwords_with_argon2id_at_rfc_9106_low_memory() -> None:
    """The suite hashes with cheap parameters (conftest.py); the portal itself does not."""
    import conftest

    hasher = conftest.PRODUCTION_HASHER
    assert (hasher.type.name, hasher.memory_cost, hasher.time_cost, hasher.parallelism) == ("ID", 65536, 3, 4)
    stored = hasher.hash("a long enough password")
    assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=4$") and hasher.verify(stored, "a long enough password")
