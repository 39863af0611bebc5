"""Recording audit events: who, what, before, after, when, from where."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from .models import AuditEvent, User

# RETURNING makes SQLAlchemy send the rows as one INSERT (its "insertmanyvalues"), where a
# plain executemany takes a round trip or more a row.
_INSERT = insert(AuditEvent).returning(AuditEvent.id)


def record(
    session: Session,
    action: str,
    *,
    actor: User | None = None,
    actor_label: str | None = None,
    entity_type: str | None = None,
    entity_id: object = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    remote_addr: str | None = None,
    detail: str | None = None,
) -> AuditEvent:
    event = AuditEvent(
        actor_id=actor.id if actor else None,
        actor_label=actor_label or (actor.email if actor else None),
        action=action,
        entity_type=entity_type,
        entity_id=None if entity_id is None else str(entity_id),
        before=before,
        after=after,
        remote_addr=remote_addr,
        detail=detail,
    )
    session.add(event)
    return event


def row(
    action: str,
    *,
    actor: User | None = None,
    entity_type: str | None = None,
    entity_id: object = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The row ``record`` would add, as a dict for ``write`` (a path that writes several
    events at once: the counter's receipt and its payments)."""
    return {
        "actor_id": actor.id if actor else None,
        "actor_label": actor.email if actor else None,
        "action": action,
        "entity_type": entity_type,
        "entity_id": None if entity_id is None else str(entity_id),
        "before": before,
        "after": after,
        "remote_addr": None,
        "detail": None,
    }


def write(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Write ``row``s now, in their order, in one statement: what ``record`` of each and a
    flush would write, without the unit of work. Events ``record`` added and not yet
    flushed go first, so the order of events stays the order they happened in."""
    if not rows:
        return
    session.flush()
    session.connection().execute(_INSERT, list(rows))  # occurred_at: the column's default (stamp)
