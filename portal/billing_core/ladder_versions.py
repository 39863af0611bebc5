"""The stored versions of the collection ladder (``DelinquencyPolicyVersion``): which one
is in force on a day, the ladder an account follows under it, and a supervisor's new
version. A version is never edited: a change is a new version from a date, so every
action the run posted can name the version it followed."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from . import audit, ladder_policy, permissions, statements
from .errors import FieldErrors, InvalidInput
from .ladder_policy import DEFAULT, SHUTOFF_SERVICES, Ladder, LadderPolicy
from .models import Account, Bill, DelinquencyPolicyVersion, Service, User
from .permissions import Action

#: The order a main service is chosen in: water first, then the other shutoff services,
#: then the rest alphabetically.
MAIN_SERVICE_ORDER = ("water", *[s for s in SHUTOFF_SERVICES if s != "water"])


def current(session: Session, on: date) -> tuple[DelinquencyPolicyVersion | None, LadderPolicy]:
    """The version in force on ``on`` (the latest effective on or before it; the higher
    number when two start the same day) and its policy; ``(None, DEFAULT)`` when none is stored."""
    stmt = statements.once(
        ("ladder_versions.current",),
        lambda: (
            select(DelinquencyPolicyVersion)
            .where(DelinquencyPolicyVersion.effective_on <= bindparam("on"))
            .order_by(DelinquencyPolicyVersion.effective_on.desc(), DelinquencyPolicyVersion.version.desc())
            .limit(1)
        ),
    )
    row = session.scalar(stmt, {"on": on})
    if row is None:
        return None, DEFAULT
    return row, ladder_policy.from_dict(row.body)


def history(session: Session) -> list[DelinquencyPolicyVersion]:
    """Every stored version, newest first."""
    return list(session.scalars(select(DelinquencyPolicyVersion).order_by(DelinquencyPolicyVersion.version.desc())))


def main_service(services: Iterable[Service | str]) -> str:
    """The service an account's ladder follows: water first, then irrigation, fire,
    recycled water, then any other alphabetically; ``*`` when it has none."""
    types = {s if isinstance(s, str) else s.service_type for s in services}
    for kind in MAIN_SERVICE_ORDER:
        if kind in types:
            return kind
    return min(types) if types else "*"


def ladder_of(account: Account, services: Iterable[Service | str], policy: LadderPolicy) -> Ladder:
    """The account's ladder under ``policy``: its customer class and its main service."""
    return policy.ladder_for(main_service(services), account.customer_class)


def propose(
    session: Session,
    user: User,
    body_or_form: Mapping[str, Any] | LadderPolicy,
    effective_on: date,
    note: str,
    now: datetime,
) -> DelinquencyPolicyVersion:
    """A new version from ``effective_on`` (a supervisor's: ``Action.COLLECTIONS_POLICY``),
    checked whole (``ladder_policy.from_dict`` and ``check``: ``FieldErrors`` naming each
    field, nothing written). Never edits an old version. Audited."""
    permissions.require(user, Action.COLLECTIONS_POLICY)
    body = body_or_form.to_dict() if isinstance(body_or_form, LadderPolicy) else dict(body_or_form)
    errors: dict[str, InvalidInput] = {}
    try:
        policy = ladder_policy.from_dict(body)
    except FieldErrors as exc:
        errors.update(exc.errors)
        policy = None
    if not note.strip():
        errors["note"] = InvalidInput("Say what changes and why.", "note")
    if effective_on < now.date():
        errors["effective_on"] = InvalidInput("A new version cannot start in the past.", "effective_on")
    if errors:
        raise FieldErrors(errors)
    assert policy is not None
    number = (session.scalar(select(func.max(DelinquencyPolicyVersion.version))) or 0) + 1
    row = DelinquencyPolicyVersion(
        version=number,
        effective_on=effective_on,
        body=policy.to_dict(),
        note=note.strip(),
        created_by_id=user.id,
        created_at=now,
    )
    session.add(row)
    session.flush()
    audit.record(
        session,
        "collections.policy_version",
        actor=user,
        entity_type="delinquency_policy_version",
        entity_id=row.id,
        after={"version": number, "effective_on": effective_on.isoformat(), "note": row.note, "body": row.body},
    )
    return row


def episode(session: Session, account_id: int, oldest_unpaid_due: date | None) -> str | None:
    """The delinquency episode an account is in: ``bill:<id>`` of its oldest unpaid bill (the
    first of its bills due on the oldest unpaid due date); None when nothing is past due."""
    if oldest_unpaid_due is None:
        return None
    stmt = statements.once(
        ("ladder_versions.episode",),
        lambda: select(func.min(Bill.id)).where(
            Bill.account_id == bindparam("account_id"), Bill.due_date == bindparam("due")
        ),
    )
    bill_id = session.scalar(stmt, {"account_id": account_id, "due": oldest_unpaid_due})
    return f"bill:{bill_id}" if bill_id is not None else None
