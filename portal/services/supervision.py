"""The supervisor dashboard (``/staff/supervisor``): open work by queue and by person with
the oldest ages, the approvals waiting by kind, today's bill runs, the exceptions waiting,
and reassigning an open work order or case (``billing_core/supervision.py``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy.orm import Session

from ..billing_core import approvals, permissions, supervision
from ..billing_core.errors import FieldErrors, InvalidInput
from ..billing_core.models import User
from ..billing_core.permissions import Action


@dataclass(frozen=True)
class ApprovalLine:
    kind: str
    label: str
    count: int
    oldest_days: int | None


@dataclass(frozen=True)
class Dashboard:
    queues: list[supervision.QueueLine]
    approvals: list[ApprovalLine]
    people: list[supervision.PersonLine]
    runs: list[supervision.RunLine]
    failed_emails: int
    #: The oldest open work (of the person chosen), each with whom it may move to.
    work: list[supervision.OpenWork]
    names: dict[int, str]
    movers: dict[str, list[User]]
    person: str


def dashboard(session: Session, staff: User, today: date, person: str = "") -> Dashboard:
    """Everything on the page, as of ``today``; ``person`` (a user id, or ``none`` for
    unassigned work) narrows the open work list."""
    permissions.require(staff, Action.WORK_SUPERVISE)
    counted = approvals.summary(session, today)
    lines = [ApprovalLine(key, kind.label, *counted[key]) for key, kind in approvals.KINDS.items()]
    who: int | None = None
    if person.isdigit():
        who = int(person)
    work = supervision.open_work(session, person=who, unassigned=person == "none")
    people = supervision.by_person(session, today)
    movers = {kind: supervision.assignable(session, kind) for kind in supervision.REASSIGNABLE}
    names = {p.user_id: p.name for p in people if p.user_id is not None}
    names.update({u.id: u.email for users in movers.values() for u in users})
    return Dashboard(
        queues=supervision.queues(session, today),
        approvals=lines,
        people=people,
        runs=supervision.todays_runs(session, today),
        failed_emails=supervision.failed_emails(session),
        work=work,
        names=names,
        movers=movers,
        person=person if who is not None or person == "none" else "",
    )


def reassign(session: Session, staff: User, values: dict[str, str], now: datetime) -> str:
    """Move one open work order or case (``kind``, ``id``) to another person (``to``, a user
    id). ``FieldErrors`` on ``to`` when it cannot; returns what was done, in words."""
    permissions.require(staff, Action.WORK_SUPERVISE)
    kind = values.get("kind", "")
    try:
        item_id, to = int(values.get("id", "")), int(values.get("to", "") or 0)
    except ValueError:
        raise FieldErrors.one("to", "Choose the person to move it to.") from None
    if not to:
        raise FieldErrors.one("to", "Choose the person to move it to.")
    try:
        supervision.reassign(session, staff, kind, item_id, to, now)
    except InvalidInput as exc:
        raise FieldErrors({"to": exc}) from exc
    person = session.get(User, to)
    noun = supervision.NOUNS.get(kind, kind)
    return f"{noun.capitalize()} {item_id} is now {person.email if person else to}'s."
