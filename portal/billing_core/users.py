"""Sign-ins: creating them, checking passwords (argon2id), linking accounts."""

from __future__ import annotations

import re
from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .errors import InvalidInput
from .models import Account, Role, User, UserAccountLink
from .numbers import normalise_account_number

# argon2-cffi's defaults are argon2id with RFC 9106's low-memory profile.
_hasher = PasswordHasher()
# Verified against when the email is unknown, so both paths cost the same.
_DUMMY_HASH = _hasher.hash("not a real password")

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MIN_PASSWORD = 10


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def normalise_email(email: str) -> str:
    return (email or "").strip().lower()


def validate_new_password(password: str) -> None:
    if len(password or "") < MIN_PASSWORD:
        raise InvalidInput(f"Use at least {MIN_PASSWORD} characters for the password.", "password")


def create_user(
    session: Session,
    email: str,
    password: str,
    role: str,
    account_number: str | None = None,
    display_name: str | None = None,
) -> User:
    email = normalise_email(email)
    if not EMAIL_RE.match(email):
        raise InvalidInput("Enter an email address like name@example.org.", "email")
    try:
        role_enum = Role(role)
    except ValueError as exc:
        raise InvalidInput(f"Unknown role {role!r}; one of {', '.join(r.value for r in Role)}.", "role") from exc
    validate_new_password(password)
    if session.scalar(select(User.id).where(func.lower(User.email) == email)) is not None:
        raise InvalidInput(f"A sign-in for {email} already exists.", "email")
    account = None
    if role_enum is Role.CUSTOMER:
        if not account_number:
            raise InvalidInput("A customer sign-in needs the account it belongs to.", "account")
        account = session.scalar(select(Account).where(Account.number == normalise_account_number(account_number)))
        if account is None:
            raise InvalidInput(f"No account numbered {account_number}.", "account")
    elif account_number:
        raise InvalidInput("Only customer sign-ins are linked to an account.", "account")
    user = User(email=email, password_hash=hash_password(password), role=role_enum.value, display_name=display_name)
    session.add(user)
    session.flush()
    if account is not None:
        session.add(UserAccountLink(user_id=user.id, account_id=account.id))
        session.flush()
    return user


def authenticate(session: Session, email: str, password: str, now: datetime) -> User | None:
    """The active user with this email and password, or None. Same work either way."""
    user = session.scalar(select(User).where(func.lower(User.email) == normalise_email(email)))
    stored = user.password_hash if user is not None and user.password_hash else _DUMMY_HASH
    try:
        _hasher.verify(stored, password or "")
        ok = user is not None and user.active and user.password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        ok = False
    if not ok or user is None:
        return None
    if _hasher.check_needs_rehash(stored):
        user.password_hash = hash_password(password)
    user.last_sign_in_at = now
    return user
