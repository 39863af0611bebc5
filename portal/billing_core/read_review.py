"""The read review queue: reads held for a person's eye, and what a specialist does with them."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from . import audit, permissions, reads
from .errors import InvalidInput
from .models import Meter, MeterRead, User
from .permissions import Action
from .read_import import validate_new_read


def queue(session: Session, limit: int = 200) -> list[MeterRead]:
    return list(
        session.scalars(
            select(MeterRead)
            .where(MeterRead.status == "exception")
            .options(joinedload(MeterRead.meter))
            .order_by(MeterRead.read_on, MeterRead.id)
            .limit(limit)
        )
    )


def _check(read: MeterRead, actor: User) -> None:
    if not permissions.can(actor.role, Action.READS_REVIEW):
        raise InvalidInput("only billing specialists and supervisors review reads", "role")
    if read.status != "exception":
        raise InvalidInput(f"this read is {read.status}, not waiting for review", "status")


def approve(
    session: Session,
    read: MeterRead,
    actor: User,
    note: str = "",
    remote_addr: str | None = None,
    *,
    now: datetime,
) -> None:
    """The read is right as it is (a leak, a filled pool): bill it."""
    _check(read, actor)
    before = {"status": read.status}
    read.status, read.reviewed_by_id, read.reviewed_at = "approved", actor.id, now
    read.note = (note or "Approved as read")[:300]
    audit.record(
        session,
        "read.approve",
        actor=actor,
        entity_type="meter_read",
        entity_id=read.id,
        before=before,
        after={"status": read.status, "note": read.note},
        remote_addr=remote_addr,
    )


def correct(
    session: Session,
    read: MeterRead,
    value: Decimal,
    reason: str,
    actor: User,
    remote_addr: str | None = None,
    *,
    now: datetime,
) -> list[str]:
    """Replace a misread value (one a read file or form would accept for this meter); the
    reason is required and the change audited. Returns
    any exceptions the corrected value still raises (it is approved regardless: a person checked it)."""
    _check(read, actor)
    if not (reason or "").strip():
        raise InvalidInput("say why the read is corrected", "reason")
    meter = session.get(Meter, read.meter_id)
    assert meter is not None
    reads.check_read(value, meter.dials)  # the rules every read meets: finite, >= 0, within the dials
    still = validate_new_read(session, meter, read.read_on, value)
    before = {"value": str(read.value), "status": read.status, "exception": read.exception}
    read.value, read.status = value, "approved"
    read.exception = ",".join(e.value for e in still) or None
    read.reviewed_by_id, read.reviewed_at, read.note = actor.id, now, f"Corrected: {reason.strip()}"[:300]
    audit.record(
        session,
        "read.correct",
        actor=actor,
        entity_type="meter_read",
        entity_id=read.id,
        before=before,
        after={"value": str(value), "status": read.status, "reason": reason.strip()},
        remote_addr=remote_addr,
    )
    return [e.value for e in still]


def order_reread(
    session: Session,
    read: MeterRead,
    actor: User,
    note: str = "",
    remote_addr: str | None = None,
    *,
    now: datetime,
) -> None:
    """Send a reader back out; the read stays held until a new one comes in."""
    _check(read, actor)
    read.reviewed_by_id, read.reviewed_at = actor.id, now
    read.note = f"Re-read ordered{': ' + note.strip() if note.strip() else ''}"[:300]
    audit.record(
        session,
        "read.reread",
        actor=actor,
        entity_type="meter_read",
        entity_id=read.id,
        after={"note": read.note},
        remote_addr=remote_addr,
    )
