"""Staff administration in the browser: list staff, invite, change role, turn off and on,
send a password reset, and accept an invitation (``/staff/admin/users``, ``/set-password``).

Each function is one use case in the caller's transaction, with the clock and the network
address handed in. The rules are ``billing_core/users.py``'s, the same the ``portal users``
commands use (the last administrator is never removed, a role change and turning off end
every session). Only staff sign-ins are reached here: a resident's is "not found". Every
change is audited with before and after. Emails are queued by the caller once the
transaction has committed (the token is made in the email job, ``notifications``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..billing_core import audit, permissions, user_sessions, users
from ..billing_core.errors import FieldErrors, InvalidInput, NotFound
from ..billing_core.models import Role, User, UserSession
from ..billing_core.permissions import Action

#: The roles an administrator may give, in the order the form offers them.
STAFF_ROLES = list(permissions.COLUMNS)


def role_choices() -> list[tuple[str, str]]:
    return [(r.value, permissions.ROLE_NAMES[r]) for r in STAFF_ROLES]


@dataclass(frozen=True)
class StaffRow:
    user: User
    role_name: str
    status: str
    open_sessions: int


@dataclass(frozen=True)
class UsersPage:
    rows: list[StaffRow]
    roles: list[tuple[str, str]]
    admins: int


def _staff_user(session: Session, user_id: object, lock: bool = False) -> User:
    """The staff sign-in ``user_id``; a resident's sign-in (or none) is not found here.
    ``lock``: the administrators' rows first, in id order, then this one, so two changes at
    once wait for each other instead of deadlocking (``users.refuse_last_admin`` locks the
    same rows)."""
    try:
        key = int(str(user_id))
    except ValueError:
        raise NotFound(str(user_id)) from None
    if lock:
        users.usable_admin_ids(session, lock=True)
    user = session.get(User, key, with_for_update=lock)
    if user is None or not user.role_enum.is_staff:
        raise NotFound(str(user_id))
    return user


def _open_counts(session: Session, ids: list[int], now: datetime) -> dict[int, int]:
    """Sessions that could still be used now, per staff sign-in (staff timeouts)."""
    if not ids:
        return {}
    rows = session.execute(
        select(UserSession.user_id, func.count(UserSession.id))
        .where(
            UserSession.user_id.in_(ids),
            UserSession.ended_at.is_(None),
            UserSession.created_at > now - user_sessions.STAFF_ABSOLUTE,
            UserSession.last_seen_at > now - user_sessions.STAFF_IDLE,
        )
        .group_by(UserSession.user_id)
    ).all()
    return {int(uid): int(n) for uid, n in rows}


def users_page(session: Session, admin: User, now: datetime) -> UsersPage:
    """Every staff sign-in: role, how it stands, open sessions, last sign-in."""
    permissions.require(admin, Action.USERS_MANAGE)
    staff = list(session.scalars(select(User).where(User.role != Role.CUSTOMER.value).order_by(User.role, User.email)))
    ids = [u.id for u in staff]
    counts, invited = _open_counts(session, ids, now), users.invited_ids(session, ids, now)
    rows = [
        StaffRow(
            user=u,
            role_name=permissions.ROLE_NAMES[u.role_enum],
            status=users.staff_status(u, u.id in invited),
            open_sessions=counts.get(u.id, 0),
        )
        for u in staff
    ]
    return UsersPage(rows, role_choices(), len(users.usable_admin_ids(session)))


@dataclass(frozen=True)
class UserPage:
    row: StaffRow
    roles: list[tuple[str, str]]
    is_self: bool
    invite_expires_at: datetime | None


def user_page(session: Session, admin: User, user_id: object, now: datetime) -> UserPage:
    """One staff sign-in and what an administrator can do to it."""
    permissions.require(admin, Action.USERS_MANAGE)
    user = _staff_user(session, user_id)
    token = users.open_invite(session, user, now)
    row = StaffRow(
        user=user,
        role_name=permissions.ROLE_NAMES[user.role_enum],
        status=users.staff_status(user, token is not None),
        open_sessions=_open_counts(session, [user.id], now).get(user.id, 0),
    )
    return UserPage(row, role_choices(), user.id == admin.id, token.expires_at if token else None)


def _record(
    session: Session,
    admin: User,
    action: str,
    user: User,
    before: dict | None,
    after: dict | None,
    remote_addr: str | None,
) -> None:
    audit.record(
        session,
        action,
        actor=admin,
        entity_type="user",
        entity_id=user.id,
        before=before,
        after=after,
        remote_addr=remote_addr,
        detail=user.email,
    )


def invite(session: Session, admin: User, values: dict[str, str], now: datetime, remote_addr: str | None) -> User:
    """Invite a staff member: a sign-in without a password (``users.invite``); the caller
    queues the invitation email ("email.account", kind "invite"). ``FieldErrors`` for the form."""
    permissions.require(admin, Action.USERS_MANAGE)
    user = users.invite(session, values.get("email", ""), values.get("role", ""), values.get("name", ""), now)
    _record(
        session,
        admin,
        "user.invite",
        user,
        None,
        {"email": user.email, "role": user.role, "name": user.display_name},
        remote_addr,
    )
    return user


def resend_invite(session: Session, admin: User, user_id: object, now: datetime, remote_addr: str | None) -> User:
    """Send the invitation again: the new link replaces the old one (made in the email job).
    Only while no password was set."""
    permissions.require(admin, Action.USERS_MANAGE)
    user = _staff_user(session, user_id)
    users.refuse_if_accepted(user)
    if not user.active:
        raise InvalidInput(f"{user.email} is turned off: turn it back on first.", "user")
    _record(session, admin, "user.invite_resent", user, None, {"email": user.email}, remote_addr)
    return user


@dataclass(frozen=True)
class Changed:
    user: User
    sessions_ended: int
    #: The role before, in words (a role change).
    before: str = ""


def role_name(role: str) -> str:
    return permissions.ROLE_NAMES[Role(role)]


def change_role(
    session: Session, admin: User, user_id: object, role: str, now: datetime, remote_addr: str | None
) -> Changed:
    """Give a staff sign-in another staff role; its sessions end (``users.set_role``). The last
    administrator keeps the role. ``FieldErrors`` on ``role``."""
    permissions.require(admin, Action.USERS_MANAGE)
    user = _staff_user(session, user_id, lock=True)
    before = user.role
    try:
        users.staff_role(role)
        ended = users.set_role(session, user, role, now)
    except InvalidInput as exc:
        raise FieldErrors({"role": exc}) from exc
    if user.role != before:
        _record(
            session,
            admin,
            "user.role",
            user,
            {"role": before},
            {"role": user.role, "sessions_ended": ended},
            remote_addr,
        )
    return Changed(user, ended, role_name(before))


def set_active(
    session: Session, admin: User, user_id: object, active: bool, now: datetime, remote_addr: str | None
) -> Changed:
    """Turn a staff sign-in off (every session ends at once) or back on (``users.set_active``).
    The last administrator cannot be turned off."""
    permissions.require(admin, Action.USERS_MANAGE)
    user = _staff_user(session, user_id, lock=True)
    if user.active == active:
        return Changed(user, 0)
    ended = users.set_active(session, user, active, now)
    _record(
        session,
        admin,
        "user.activate" if active else "user.deactivate",
        user,
        {"active": not active},
        {"active": active, **({} if active else {"sessions_ended": ended})},
        remote_addr,
    )
    return Changed(user, ended)


def sign_out_everywhere(
    session: Session, admin: User, user_id: object, now: datetime, remote_addr: str | None
) -> Changed:
    """End every session of a staff sign-in now (a lost phone, a shared computer), as
    ``portal users sign-out`` does; the sign-in itself stays on."""
    permissions.require(admin, Action.USERS_MANAGE)
    user = _staff_user(session, user_id)
    ended = users.sign_out_everywhere(session, user, now)
    _record(session, admin, "user.sign_out_everywhere", user, None, {"sessions_ended": ended}, remote_addr)
    return Changed(user, ended)


def send_reset(session: Session, admin: User, user_id: object, now: datetime, remote_addr: str | None) -> User:
    """An administrator sends a staff member the password reset email (the caller queues
    "email.account", kind "reset_password"). Nobody, the administrator included, ever sees
    a password. A sign-in with no password yet gets its invitation again instead."""
    permissions.require(admin, Action.USERS_MANAGE)
    user = _staff_user(session, user_id)
    if not user.active:
        raise InvalidInput(f"{user.email} is turned off: turn it back on first.", "user")
    if user.password_hash is None:
        raise InvalidInput(f"{user.email} has not chosen a password yet: send the invitation again instead.", "user")
    _record(session, admin, "user.reset_sent", user, None, {"email": user.email}, remote_addr)
    return user


# --- The invitation link -----------------------------------------------------------------


def invite_valid(session: Session, token: str, now: datetime) -> bool:
    return users.valid_token(session, token, users.INVITE, now) is not None


def accept_invite(session: Session, token: str, password: str, now: datetime, remote_addr: str | None) -> User:
    """Set the first password with an invitation link (``users.accept_invite``). ``InvalidInput``
    on ``token`` (expired, used, replaced) or ``password``. Audited."""
    user = users.accept_invite(session, token, password, now)
    audit.record(
        session,
        "user.invite_accepted",
        actor=user,
        entity_type="user",
        entity_id=user.id,
        remote_addr=remote_addr,
    )
    return user
