"""Sign-ins: creating them, checking passwords (argon2id), linking accounts."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from . import throttle, user_sessions
from .errors import N_, FieldErrors, InvalidInput
from .models import Account, Bill, Premise, Role, User, UserAccountLink, UserToken, stamp
from .money import ascii_number
from .numbers import normalise_account_number
from .status import BillStatus

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
        raise InvalidInput(N_("Use at least %(min)s characters for the password."), "password", min=MIN_PASSWORD)
    if len(password) > 1024:
        raise InvalidInput(N_("Use at most 1,024 characters for the password."), "password")


def validate_email(email: str) -> str:
    email = normalise_email(email)
    if not EMAIL_RE.match(email) or len(email) > 254:
        raise InvalidInput(N_("Enter an email address like name@example.org."), "email")
    return email


def parse_role(role: str) -> Role:
    """``role`` as a ``Role``, or ``InvalidInput`` on the field ``role`` naming the roles."""
    try:
        return Role(role)
    except ValueError as exc:
        raise InvalidInput(f"Unknown role {role!r}; one of {', '.join(r.value for r in Role)}.", "role") from exc


def user_by_email(session: Session, email: str) -> User | None:
    return session.scalar(select(User).where(func.lower(User.email) == normalise_email(email)))


def create_user(
    session: Session,
    email: str,
    password: str,
    role: str,
    account_number: str | None = None,
    display_name: str | None = None,
    now: datetime | None = None,
) -> User:
    """A sign-in made by the office (``portal users add``, the demo), its address taken as
    checked at ``now``. ``now`` is the caller's clock; it falls back to the wall clock only
    until every caller passes it (the command line, the demo, older tests)."""
    email = validate_email(email)
    role_enum = parse_role(role)
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
    user = User(
        email=email,
        password_hash=hash_password(password),
        role=role_enum.value,
        display_name=display_name,
        # Made by the office, which checked the address.
        email_verified_at=now or stamp(),
    )
    session.add(user)
    session.flush()
    if account is not None:
        session.add(UserAccountLink(user_id=user.id, account_id=account.id))
        session.flush()
    return user


def authenticate(session: Session, email: str, password: str, now: datetime) -> User | None:
    """The active user with this email and password, or None. Same work either way.
    The caller checks ``email_verified_at`` before letting a new sign-up in."""
    stored = stored_password(session, email)
    return signed_in(session, stored, password_matches(stored, password), password, now)


# The three steps of ``authenticate``, for a caller that checks the password (a fifth of a
# second of CPU, seconds on a busy machine) with no database connection held: under a
# sign-in rush the held connections were the whole pool, and every other page waited.


@dataclass(frozen=True)
class StoredPassword:
    """The hash to check a password against: the user's, or a dummy (same work) when the
    address has no sign-in or no password."""

    user_id: int | None
    hash: str


def stored_password(session: Session, email: str) -> StoredPassword:
    user = user_by_email(session, email)
    if user is None or not user.password_hash:
        return StoredPassword(None, _DUMMY_HASH)
    return StoredPassword(user.id, user.password_hash)


def password_matches(stored: StoredPassword, password: str) -> bool:
    """The slow part (argon2id); needs no database."""
    try:
        _hasher.verify(stored.hash, password or "")
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
    return stored.user_id is not None


def signed_in(session: Session, stored: StoredPassword, matched: bool, password: str, now: datetime) -> User | None:
    """The user a matched password signs in, or None: not matched, or turned off or given a
    new password since the hash was read. The hash is brought up to today's parameters."""
    if not matched or stored.user_id is None:
        return None
    user = session.get(User, stored.user_id)
    if user is None or not user.active or user.password_hash != stored.hash:
        return None
    if _hasher.check_needs_rehash(stored.hash):
        user.password_hash = hash_password(password)
    user.last_sign_in_at = now
    return user


# --- The office's tools: list, turn off, change role, sign out everywhere ----------------


def find_user(session: Session, email: str) -> User:
    user = user_by_email(session, email)
    if user is None:
        raise InvalidInput(f"No sign-in has the email address {normalise_email(email)}.", "email")
    return user


def list_users(session: Session, role: str | None = None, include_inactive: bool = True) -> list[User]:
    query = select(User).order_by(User.role, User.email)
    if role is not None:
        query = query.where(User.role == parse_role(role).value)
    if not include_inactive:
        query = query.where(User.active.is_(True))
    return list(session.scalars(query))


#: What anyone who would leave the portal without an administrator is told.
LAST_ADMIN = (
    "{email} is the last active administrator. Make another administrator first (invite one, or give "
    "an existing sign-in the administrator role), then change this one."
)


def usable_admin_ids(session: Session, lock: bool = False) -> list[int]:
    """The administrators who can sign in now: active, with a password or an outside
    identity (an invitation not yet accepted does not count). ``lock`` holds them until the
    transaction ends (their rows on PostgreSQL, the database's write lock on SQLite), so two
    administrators removing each other at the same moment cannot both succeed."""
    query = select(User.id).where(
        User.role == Role.ADMIN.value,
        User.active.is_(True),
        (User.password_hash.is_not(None)) | (User.oidc_subject.is_not(None)),
    )
    if lock and session.get_bind().dialect.name == "sqlite":
        # SQLite has no row locks and its reads take none: a write first (changing nothing)
        # makes this transaction wait for any other writer, and read what it committed.
        session.execute(
            update(User)
            .where(User.role == Role.ADMIN.value)
            .values(active=User.active)
            .execution_options(synchronize_session=False)
        )
    elif lock:
        query = query.with_for_update()
    return list(session.scalars(query.order_by(User.id)))


def refuse_last_admin(session: Session, user: User) -> None:
    """``InvalidInput`` when ``user`` is the last administrator who can sign in: turning it
    off or giving it another role would leave nobody to manage sign-ins."""
    if user.role != Role.ADMIN.value or not user.active:
        return
    others = [i for i in usable_admin_ids(session, lock=True) if i != user.id]
    if not others:
        raise InvalidInput(LAST_ADMIN.format(email=user.email), "role")


def set_active(session: Session, user: User, active: bool, now: datetime) -> int:
    """Turn a sign-in off (every session ends) or back on; how many sessions ended. The
    last administrator cannot be turned off (``refuse_last_admin``)."""
    if not active:
        refuse_last_admin(session, user)
    user.active = active
    return 0 if active else user_sessions.end_all(session, user, now, "deactivated")


def set_role(session: Session, user: User, role: str, now: datetime) -> int:
    """Give a staff sign-in another staff role; its sessions end, so the new role starts
    with a fresh sign-in. Customers and staff do not trade places: a customer's sign-in
    holds their accounts, so make a separate sign-in instead. The last administrator keeps
    the role (``refuse_last_admin``)."""
    new = parse_role(role)
    if new.is_staff != Role(user.role).is_staff:
        raise InvalidInput(
            "A customer sign-in cannot become staff, nor staff a customer: create a separate sign-in.", "role"
        )
    if new.value == user.role:
        return 0
    if new is not Role.ADMIN:
        refuse_last_admin(session, user)
    user.role = new.value
    return user_sessions.end_all(session, user, now, "role_changed")


def sign_out_everywhere(session: Session, user: User, now: datetime) -> int:
    """End every session of the sign-in (an administrator's "sign out everywhere")."""
    return user_sessions.end_all(session, user, now, "sign_out_everywhere")


# --- Signing up, confirming the address, resetting the password -------------------------

VERIFY_EMAIL = "verify_email"
RESET_PASSWORD = "reset_password"
#: An administrator invited a staff member: the link sets the first password.
INVITE = "invite"
INVITE_HOURS = 72
TOKEN_LIFETIME = {
    VERIFY_EMAIL: timedelta(days=2),
    RESET_PASSWORD: timedelta(hours=1),
    INVITE: timedelta(hours=INVITE_HOURS),
}


@dataclass(frozen=True)
class SignUp:
    """What a sign-up did. ``new`` is False when the address already had a sign-in: the
    page says the same either way, and the email tells the owner what happened."""

    user: User
    new: bool


def sign_up(session: Session, email: str, password: str, language: str, name: str | None = None) -> SignUp:
    """A customer sign-in with no account linked yet, waiting for its address to be
    confirmed. An address that already has a sign-in is left as it is."""
    email = validate_email(email)
    validate_new_password(password)
    existing = user_by_email(session, email)
    if existing is not None:
        _hasher.hash(password)  # the same work as a new sign-up: the answer takes as long
        return SignUp(existing, new=False)
    user = User(
        email=email,
        password_hash=hash_password(password),
        role=Role.CUSTOMER.value,
        display_name=(name or "").strip()[:200] or None,
        language=language,
    )
    session.add(user)
    session.flush()
    return SignUp(user, new=True)


def _token_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def issue_token(session: Session, user: User, purpose: str, now: datetime) -> str:
    """A new single-use link token for ``purpose``; earlier unused ones stop working.
    Only its hash is stored: the token itself goes into the email and nowhere else."""
    if purpose not in TOKEN_LIFETIME:
        raise ValueError(f"unknown token purpose {purpose!r}")
    session.execute(
        update(UserToken)
        .where(UserToken.user_id == user.id, UserToken.purpose == purpose, UserToken.used_at.is_(None))
        .values(used_at=now)
    )
    raw = secrets.token_urlsafe(32)
    session.add(
        UserToken(
            user_id=user.id,
            purpose=purpose,
            token_hash=_token_hash(raw),
            created_at=now,
            expires_at=now + TOKEN_LIFETIME[purpose],
        )
    )
    session.flush()
    return raw


def valid_token(session: Session, raw: str, purpose: str, now: datetime) -> UserToken | None:
    if not raw or len(raw) > 200:
        return None
    token = session.scalar(
        select(UserToken).where(UserToken.token_hash == _token_hash(raw), UserToken.purpose == purpose)
    )
    if token is None or token.used_at is not None or token.expires_at <= now:
        return None
    return token


def confirm_email(session: Session, raw: str, now: datetime) -> User | None:
    """Use a confirmation link: the address is confirmed and the sign-in may be used."""
    token = valid_token(session, raw, VERIFY_EMAIL, now)
    if token is None:
        return None
    token.used_at = now
    user = session.get(User, token.user_id)
    if user is None or not user.active:
        return None
    if user.email_verified_at is None:
        user.email_verified_at = now
    return user


def reset_password(session: Session, raw: str, password: str, now: datetime) -> User:
    """Use a reset link to set a new password. Opening the link also shows the person reads
    mail at the address, so it confirms it. Failed sign-ins counted against it are cleared."""
    token = valid_token(session, raw, RESET_PASSWORD, now)
    if token is None:
        raise InvalidInput(N_("This link has expired or was already used. Ask for a new one."), "token")
    validate_new_password(password)
    user = session.get(User, token.user_id)
    if user is None or not user.active:
        raise InvalidInput(N_("This link has expired or was already used. Ask for a new one."), "token")
    token.used_at = now
    user.password_hash = hash_password(password)
    user.password_changed_at = now
    if user.email_verified_at is None:
        user.email_verified_at = now
    throttle.clear(session, throttle.email_key(user.email))
    # Whoever else was signed in with the old password is signed out everywhere.
    user_sessions.end_all(session, user, now, "password")
    return user


def change_password(
    session: Session, user: User, current: str, new: str, now: datetime, keep_session: str | None = None
) -> None:
    """Change the password; every other session of the sign-in ends (``keep_session``, the
    raw id of the one making the change, goes on)."""
    try:
        _hasher.verify(user.password_hash or _DUMMY_HASH, current or "")
    except (VerifyMismatchError, VerificationError, InvalidHashError) as exc:
        raise InvalidInput(N_("That is not your current password."), "current_password") from exc
    validate_new_password(new)
    user.password_hash = hash_password(new)
    user.password_changed_at = now
    user_sessions.end_all(session, user, now, "password", keep=keep_session)


# --- Inviting staff: a sign-in without a password, and a link that sets the first one --------

#: How a staff sign-in stands, for the administrators' list.
ACTIVE, INVITED, INVITE_EXPIRED, TURNED_OFF = "active", "invited", "invitation expired", "turned off"
INVITE_USED = "This invitation has expired or was already used. Ask an administrator to send a new one."


def staff_role(role: str) -> Role:
    """``role`` as a staff role, or ``InvalidInput`` on ``role``."""
    found = parse_role((role or "").strip())
    if not found.is_staff:
        raise InvalidInput("Choose a staff role: residents sign up for themselves.", "role")
    return found


def check_invite(session: Session, email: str, role: str, display_name: str) -> FieldErrors | None:
    """Every problem with an invitation form, by field, or None."""
    errors: dict[str, InvalidInput] = {}
    try:
        address = validate_email(email)
        if user_by_email(session, address) is not None:
            errors["email"] = InvalidInput(f"A sign-in for {address} already exists.", "email")
    except InvalidInput as exc:
        errors["email"] = exc
    try:
        staff_role(role)
    except InvalidInput as exc:
        errors["role"] = exc
    if len((display_name or "").strip()) > 200:
        errors["name"] = InvalidInput("Use at most 200 characters for the name.", "name")
    return FieldErrors(errors) if errors else None


def invite(session: Session, email: str, role: str, display_name: str, now: datetime) -> User:
    """A staff sign-in with no password yet (nobody can sign in with it) for ``email``; the
    invitation email (``issue_token(..., INVITE, ...)``, sent by the caller's job) carries
    the link that sets the first password. ``FieldErrors`` for the whole form, nothing written."""
    problems = check_invite(session, email, role, display_name)
    if problems is not None:
        raise problems
    user = User(
        email=validate_email(email),
        password_hash=None,
        role=staff_role(role).value,
        display_name=(display_name or "").strip() or None,
        created_at=now,
    )
    session.add(user)
    session.flush()
    return user


def invited_ids(session: Session, user_ids: list[int], now: datetime) -> set[int]:
    """Which of ``user_ids`` have an invitation link that still works."""
    if not user_ids:
        return set()
    return set(
        session.scalars(
            select(UserToken.user_id).where(
                UserToken.user_id.in_(user_ids),
                UserToken.purpose == INVITE,
                UserToken.used_at.is_(None),
                UserToken.expires_at > now,
            )
        )
    )


def open_invite(session: Session, user: User, now: datetime) -> UserToken | None:
    """The invitation link of ``user`` that still works, if any."""
    return session.scalar(
        select(UserToken)
        .where(
            UserToken.user_id == user.id,
            UserToken.purpose == INVITE,
            UserToken.used_at.is_(None),
            UserToken.expires_at > now,
        )
        .order_by(UserToken.id.desc())
        .limit(1)
    )


def staff_status(user: User, invite_open: bool) -> str:
    """``ACTIVE``, ``INVITED`` (no password yet, the link works), ``INVITE_EXPIRED`` or ``TURNED_OFF``."""
    if not user.active:
        return TURNED_OFF
    if user.password_hash is None and user.oidc_subject is None:
        return INVITED if invite_open else INVITE_EXPIRED
    return ACTIVE


def refuse_if_accepted(user: User) -> None:
    """An invitation is sent again only while the sign-in has no password."""
    if user.password_hash is not None:
        raise InvalidInput(
            f"{user.email} already set a password: send a password reset instead of an invitation.", "user"
        )


def accept_invite(session: Session, raw: str, password: str, now: datetime) -> User:
    """Use an invitation link to set the first password (the existing password rules). The
    link works once, and only until it expires; it also confirms the address."""
    token = valid_token(session, raw, INVITE, now)
    user = session.get(User, token.user_id) if token is not None else None
    if token is None or user is None or not user.active or user.password_hash is not None:
        raise InvalidInput(INVITE_USED, "token")
    validate_new_password(password)
    token.used_at = now
    user.password_hash = hash_password(password)
    user.password_changed_at = now
    user.email_verified_at = user.email_verified_at or now
    return user


# --- Linking an account with facts printed on its bill ---------------------------------

LINK_PER_USER = 5
LINK_PER_ACCOUNT = 10
LINK_PER_ADDRESS = throttle.LINK_PER_ADDRESS
#: The one answer to every refused link, whether the facts did not match or a limit was
#: reached (per sign-in, per account number or per network address): nobody learns which
#: limit, that someone else is trying the same account, or how close they are.
LINK_FAILED = N_(
    "We could not link an account with those details. Check the account number, the ZIP code of "
    "the service address and the amount due on your latest bill. After several tries we stop "
    "checking for a while: if the details are right, try again in 15 minutes or call customer service."
)


def link_user_key(user: User) -> str:
    return f"link:{user.id}"


def link_account_key(number: str) -> str:
    return f"account:{number}"


@dataclass(frozen=True)
class LinkAttempt:
    account: Account | None
    #: Set when the attempt was refused without checking: too many failures lately.
    retry_after: timedelta | None = None


def parse_amount(text: str) -> int | None:
    """ "$1,234.56", "1234.5" or "12" as cents; None when it is not an amount."""
    cleaned = (text or "").strip().replace("$", "").replace(",", "").replace(" ", "")
    if not ascii_number(cleaned) or not re.fullmatch(r"-?\d{1,9}(\.\d{1,2})?", cleaned):
        return None
    whole, _dot, frac = cleaned.lstrip("-").partition(".")
    cents = int(whole) * 100 + int((frac + "00")[:2])
    return -cents if cleaned.startswith("-") else cents


def link_account(
    session: Session,
    user: User,
    account_number: str,
    service_zip: str,
    amount_due: str,
    now: datetime,
    remote_addr: str | None = None,
) -> LinkAttempt:
    """Link an account to a customer sign-in when the account number, the service address's
    ZIP code and the amount due on the latest bill all match. Every refusal reads the same.
    Failures are counted per sign-in, per account number and per network address, every
    limit is checked before the facts are, and a success clears none of the counts (or one
    account a person can link would buy them fresh guesses at others)."""
    if user.role != Role.CUSTOMER.value:
        raise InvalidInput(N_("Only customer sign-ins link accounts."), "account_number")
    number = normalise_account_number(account_number)
    if not number:
        raise InvalidInput(N_("Enter the account number printed on your bill."), "account_number")
    zip5 = re.sub(r"\D", "", service_zip or "")[:5]
    if len(zip5) != 5:
        raise InvalidInput(N_("Enter the 5-digit ZIP code of the service address."), "service_zip")
    cents = parse_amount(amount_due)
    if cents is None:
        raise InvalidInput(N_("Enter the amount due from your latest bill, like 84.20."), "amount_due")
    limits = [
        (link_user_key(user), LINK_PER_USER),
        (link_account_key(number), LINK_PER_ACCOUNT),
        (throttle.link_address_key(remote_addr), LINK_PER_ADDRESS),
    ]
    keys = [key for key, _limit in limits]
    wait = throttle.longest_wait(session, limits, now)
    if wait is not None:
        return LinkAttempt(None, wait)
    found = session.execute(
        select(Account, Premise.zip).join(Premise, Premise.id == Account.premise_id).where(Account.number == number)
    ).first()
    matched = None
    account = found[0] if found else None
    if account is not None and found is not None and (found[1] or "")[:5] == zip5:
        latest = session.scalar(
            select(Bill.total_due_cents)
            .where(Bill.account_id == account.id, Bill.status == BillStatus.POSTED)
            .order_by(Bill.bill_date.desc(), Bill.id.desc())
            .limit(1)
        )
        if latest is not None and latest == cents:
            matched = account
    if matched is None:
        throttle.record(session, keys, now)
        return LinkAttempt(None)
    if session.get(UserAccountLink, (user.id, matched.id)) is None:
        session.add(UserAccountLink(user_id=user.id, account_id=matched.id, linked_at=now))
        session.flush()
    return LinkAttempt(matched)


def unlink_account(session: Session, user: User, account: Account) -> None:
    link = session.get(UserAccountLink, (user.id, account.id))
    if link is not None:
        session.delete(link)
        session.flush()


# --- Sign-in through an outside OpenID Connect provider -----------------------------------


class OutsideSignInRefused(Exception):
    """The provider's answer cannot sign anyone in here; ``reason`` says why (for the audit)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def outside_sign_in(session: Session, issuer: str, claims: dict, language: str, now: datetime) -> tuple[User, bool]:
    """The sign-in for an outside identity: the one already tied to it; else the one with
    the same email address, tied to it now, only when the provider vouches for the address
    (``email_verified``); else a new customer sign-in, with no password, that still has to
    link its accounts with facts from a bill. Returns (user, made now)."""
    sub = str(claims.get("sub") or "")
    if not sub:
        raise OutsideSignInRefused("no subject in the ID token")
    subject = f"{issuer}|{sub}"[:300]
    user = session.scalar(select(User).where(User.oidc_subject == subject))
    if user is not None:
        if not user.active:
            raise OutsideSignInRefused("sign-in is turned off")
        user.last_sign_in_at = now
        return user, False
    email = normalise_email(str(claims.get("email") or ""))
    if not email or not EMAIL_RE.match(email) or claims.get("email_verified") is not True:
        raise OutsideSignInRefused("the provider did not vouch for an email address")
    user = user_by_email(session, email)
    if user is not None:
        if not user.active:
            raise OutsideSignInRefused("sign-in is turned off")
        if user.oidc_subject is not None:
            raise OutsideSignInRefused("this email is already tied to another outside identity")
        user.oidc_subject = subject
        user.email_verified_at = user.email_verified_at or now
        user.last_sign_in_at = now
        return user, False
    name = str(claims.get("name") or "").strip()[:200] or None
    user = User(
        email=email,
        password_hash=None,
        role=Role.CUSTOMER.value,
        display_name=name,
        email_verified_at=now,
        language=language,
        oidc_subject=subject,
        last_sign_in_at=now,
        created_at=now,
    )
    session.add(user)
    session.flush()
    return user, True
