"""Staff administration (services/staff_admin.py, billing_core/users.py): invitations, role
changes and turning off end sessions, the last administrator is kept, residents are out of reach."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from portal.billing_core import user_sessions, users
from portal.billing_core.errors import FieldErrors, InvalidInput, NotAllowed, NotFound
from portal.billing_core.models import AuditEvent, User
from portal.services import staff_admin as service

from .factories import district

NOW = datetime(2026, 11, 22, 18, 0, tzinfo=UTC)
ADDR = "192.0.2.7"


def _admin(session: Session, email: str = "admin@x.org"):  # type: ignore[no-untyped-def]
    return users.create_user(session, email, "a long password", "admin", now=NOW)


def _events(session: Session, action: str) -> list[AuditEvent]:
    session.flush()
    return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)))


def test_an_invitation_sets_the_first_password_once_and_expires(session: Session) -> None:
    admin = _admin(session)
    with pytest.raises(FieldErrors) as bad:
        service.invite(session, admin, {"email": "not an email", "role": "customer"}, NOW, ADDR)
    assert set(bad.value.errors) == {"email", "role"}  # the whole form, nothing written
    with pytest.raises(FieldErrors) as taken:
        service.invite(session, admin, {"email": "ADMIN@x.org", "role": "csr"}, NOW, ADDR)
    assert "already exists" in taken.value.errors["email"].message

    user = service.invite(session, admin, {"email": " Pat@X.org", "role": "csr", "name": "Pat Lee"}, NOW, ADDR)
    assert (user.email, user.role, user.password_hash, user.display_name) == ("pat@x.org", "csr", None, "Pat Lee")
    assert users.authenticate(session, "pat@x.org", "", NOW) is None  # nobody signs in with it yet
    assert service.users_page(session, admin, NOW).rows[-1].status == users.INVITE_EXPIRED  # no link sent yet
    (event,) = _events(session, "user.invite")
    assert (event.actor_id, event.after["role"], event.remote_addr) == (admin.id, "csr", ADDR)

    first = users.issue_token(session, user, users.INVITE, NOW)  # what the invitation email job does
    assert service.user_page(session, admin, user.id, NOW).row.status == users.INVITED
    service.resend_invite(session, admin, user.id, NOW, ADDR)
    second = users.issue_token(session, user, users.INVITE, NOW)  # sent again: the old link stops working
    with pytest.raises(InvalidInput) as replaced:
        service.accept_invite(session, first, "a long new password", NOW, ADDR)
    assert replaced.value.field == "token"
    with pytest.raises(InvalidInput) as short:
        service.accept_invite(session, second, "short", NOW, ADDR)
    assert short.value.field == "password"
    late = NOW + timedelta(hours=users.INVITE_HOURS)
    with pytest.raises(InvalidInput, match="expired"):
        service.accept_invite(session, second, "a long new password", late, ADDR)

    service.accept_invite(session, second, "a long new password", NOW + timedelta(hours=1), ADDR)
    assert user.password_hash.startswith("$argon2id$") and user.email_verified_at is not None
    assert users.authenticate(session, "pat@x.org", "a long new password", NOW) is user
    with pytest.raises(InvalidInput, match="expired or was already used"):
        service.accept_invite(session, second, "another long password", NOW + timedelta(hours=2), ADDR)
    with pytest.raises(InvalidInput, match="password reset instead"):
        service.resend_invite(session, admin, user.id, NOW, ADDR)
    assert [e.actor_id for e in _events(session, "user.invite_accepted")] == [user.id]


def test_role_changes_and_turning_off_end_sessions_and_are_audited(session: Session) -> None:
    admin = _admin(session)
    clerk = users.create_user(session, "clerk@x.org", "a long password", "csr", now=NOW)
    raw = user_sessions.start(session, clerk, NOW)
    changed = service.change_role(session, admin, clerk.id, "specialist", NOW, ADDR)
    assert (changed.sessions_ended, changed.before, clerk.role) == (1, "Customer service", "specialist")
    assert user_sessions.check(session, raw, clerk.id, NOW).user is None
    with pytest.raises(FieldErrors) as bad:
        service.change_role(session, admin, clerk.id, "customer", NOW, ADDR)
    assert "staff role" in bad.value.errors["role"].message

    raw = user_sessions.start(session, clerk, NOW)
    assert service.sign_out_everywhere(session, admin, clerk.id, NOW, ADDR).sessions_ended == 1
    assert user_sessions.check(session, raw, clerk.id, NOW).user is None and clerk.active
    raw = user_sessions.start(session, clerk, NOW)
    assert service.set_active(session, admin, clerk.id, False, NOW, ADDR).sessions_ended == 1
    assert user_sessions.check(session, raw, clerk.id, NOW).user is None
    service.set_active(session, admin, clerk.id, True, NOW, ADDR)
    assert user_sessions.check(session, raw, clerk.id, NOW).user is None  # what ended stays ended
    newcomer = service.invite(session, admin, {"email": "n@x.org", "role": "csr"}, NOW, ADDR)
    with pytest.raises(InvalidInput, match="send the invitation again"):
        service.send_reset(session, admin, newcomer.id, NOW, ADDR)
    service.send_reset(session, admin, clerk.id, NOW, ADDR)

    kinds = ("user.role", "user.deactivate", "user.activate", "user.reset_sent", "user.sign_out_everywhere")
    role, off, on, reset, out = (_events(session, a) for a in kinds)
    assert out[0].after == {"sessions_ended": 1}
    assert (role[0].before, role[0].after) == ({"role": "csr"}, {"role": "specialist", "sessions_ended": 1})
    assert (off[0].before, off[0].after) == ({"active": True}, {"active": False, "sessions_ended": 1})
    assert on[0].after == {"active": True} and reset[0].entity_id == str(clerk.id)


def test_the_last_administrator_cannot_be_removed(session: Session) -> None:
    admin = _admin(session)
    for attempt in (
        lambda: service.change_role(session, admin, admin.id, "supervisor", NOW, ADDR),
        lambda: service.set_active(session, admin, admin.id, False, NOW, ADDR),
    ):
        with pytest.raises((FieldErrors, InvalidInput), match="last active administrator"):
            attempt()
    assert (admin.role, admin.active) == ("admin", True)
    # An invited administrator who has not chosen a password does not count.
    invited = service.invite(session, admin, {"email": "second@x.org", "role": "admin"}, NOW, ADDR)
    with pytest.raises(FieldErrors, match="last active administrator"):
        service.change_role(session, admin, admin.id, "csr", NOW, ADDR)
    users.accept_invite(session, users.issue_token(session, invited, users.INVITE, NOW), "a long password", NOW)
    service.change_role(session, admin, admin.id, "supervisor", NOW, ADDR)  # now there is another
    assert admin.role == "supervisor"
    with pytest.raises(InvalidInput, match="last active administrator"):
        users.set_active(session, invited, False, NOW)  # the core refuses it too (the command line)
    assert _events(session, "user.role")[0].actor_id == admin.id


def test_only_administrators_and_only_staff_sign_ins(session: Session) -> None:
    (account,) = district(session, 1)
    admin = _admin(session)
    resident = users.create_user(session, "res@x.org", "a long password", "customer", account.number, now=NOW)
    supervisor = users.create_user(session, "boss@x.org", "a long password", "supervisor", now=NOW)
    with pytest.raises(NotAllowed):
        service.users_page(session, supervisor, NOW)
    with pytest.raises(NotAllowed):
        service.set_active(session, supervisor, admin.id, False, NOW, ADDR)
    for act in (
        lambda: service.user_page(session, admin, resident.id, NOW),
        lambda: service.set_active(session, admin, resident.id, False, NOW, ADDR),
        lambda: service.change_role(session, admin, resident.id, "csr", NOW, ADDR),
        lambda: service.send_reset(session, admin, resident.id, NOW, ADDR),
    ):
        with pytest.raises(NotFound):
            act()
    assert resident.active and resident.role == "customer"
    listed = service.users_page(session, admin, NOW)
    assert [r.user.email for r in listed.rows] == ["admin@x.org", "boss@x.org"] and listed.admins == 1


def test_two_administrators_removing_each_other_at_once_leave_one(sessions: sessionmaker[Session]) -> None:
    with sessions() as s, s.begin():
        ids = [_admin(s, "a@x.org").id, _admin(s, "b@x.org").id]
    outcome: dict[str, object] = {}

    def remove(who: int, whom: int, hold: threading.Event | None, then: threading.Event | None) -> None:
        try:
            with sessions() as s, s.begin():
                service.set_active(s, s.get(User, who), whom, False, NOW, ADDR)
                if hold is not None and then is not None:
                    hold.set()
                    then.wait(5)  # still in the transaction: the other one starts now
            outcome[f"{who}"] = "done"
        except InvalidInput as exc:
            outcome[f"{who}"] = exc.message

    holding, go_on = threading.Event(), threading.Event()
    first = threading.Thread(target=remove, args=(ids[0], ids[1], holding, go_on))
    first.start()
    assert holding.wait(5)
    second = threading.Thread(target=remove, args=(ids[1], ids[0], None, None))
    second.start()
    second.join(0.3)
    assert second.is_alive()  # it waits for the first to finish
    go_on.set()
    first.join(5)
    second.join(5)
    assert outcome[str(ids[0])] == "done" and "last active administrator" in str(outcome[str(ids[1])])
    with sessions() as s:
        assert users.usable_admin_ids(s) == [ids[0]]
