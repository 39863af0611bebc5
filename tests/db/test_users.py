from datetime import UTC, datetime

import pytest
from sqlalchemy.orm import Session

from portal.billing_core import users
from portal.billing_core.errors import InvalidInput

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
