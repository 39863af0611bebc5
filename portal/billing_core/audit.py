"""Recording audit events: who, what, before, after, when, from where."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from .models import AuditEvent, User


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
