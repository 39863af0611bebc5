"""Recording audit events: who, what, before, after, when, from where; and searching them."""

from __future__ import annotations

from collections.abc import Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, false, func, insert, or_, select
from sqlalchemy.orm import Session

from .models import AuditEvent, User

# RETURNING makes SQLAlchemy send the rows as one INSERT (its "insertmanyvalues"), where a
# plain executemany takes a round trip or more a row.
_INSERT = insert(AuditEvent).returning(AuditEvent.id)

#: The network address of the request being answered, set by the web layer for the length of
#: the request's transaction (``web.db``): an event whose writer passes no ``remote_addr``
#: records this one, so the trail says "from where" for every change made through a page.
#: Commands and workers leave it unset.
origin: ContextVar[str | None] = ContextVar("audit_origin", default=None)


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
        remote_addr=remote_addr if remote_addr is not None else origin.get(),
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
        "remote_addr": origin.get(),
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


# --- Reading the trail: the audit viewer's search (issue 16) -----------------------------
#
# Every filter is an indexed column of ``audit_event``: ``actor_id`` (the person),
# ``action`` (the kind, as a list of exact names), ``(entity_type, entity_id)`` (an account
# and the things that belong to it) and ``occurred_at`` (the date range and the order).
# Pages are keyset pages, newest first, on ``(occurred_at, id)``.

#: A page of the viewer.
PAGE_SIZE = 50

#: The kinds said in plain words (anything else: its noun and what happened, see ``describe``).
WORDS: dict[str, str] = {
    "sign_in.success": "Signed in",
    "sign_in.failure": "Sign-in refused (wrong email or password)",
    "sign_in.throttled": "Sign-in refused (too many tries)",
    "sign_out": "Signed out",
    "user.create": "Sign-in created",
    "user.invite": "Staff member invited",
    "user.invite_resent": "Invitation sent again",
    "user.invite_accepted": "Invitation accepted (first password set)",
    "user.role": "Role changed",
    "user.deactivate": "Sign-in turned off",
    "user.activate": "Sign-in turned back on",
    "user.reset_sent": "Password reset email sent by an administrator",
    "user.reset_requested": "Password reset asked for",
    "user.password_reset": "Password reset with the emailed link",
    "user.sign_out_everywhere": "Signed out everywhere",
    "user.sign_out_others": "Signed out of other browsers",
    "user.email_confirmed": "Email address confirmed",
    "user.language": "Language changed",
    "user.profile": "Profile changed",
    "user.sign_up": "Signed up",
    "user.sign_up_existing": "Signed up again with an address that has a sign-in",
    "customer.identity_viewed": "Customer's identity facts viewed (date of birth, ID)",
    "start_request.identity_viewed": "Start request's identity facts viewed (date of birth, ID)",
    "customer.contact": "Customer contact details changed",
    "customer.mailing_address": "Customer mailing address changed",
    "account.paperless": "Paperless billing changed",
    "account.cash_only": "Account set to cash only",
    "account.cash_only_lifted": "Cash only lifted",
    "account.final_bill": "Final bill made",
    "account.final_bill_held": "Final bill held for review",
    "account.final_read_corrected": "Final read corrected",
    "adjustment.prepared": "Adjustment prepared",
    "adjustment.rejected": "Adjustment rejected",
    "bill.void_rebill": "Bill voided and rebilled",
    "bill_run.create": "Bill run started",
    "bill_run.approve": "Bill run approved",
    "bill_run.post": "Bill run posted",
    "bill_run.deliver": "Bill run delivered",
    "payment.posted": "Payment posted",
    "payment.started": "Online payment started",
    "payment.failed": "Payment failed",
    "payment.returned": "Payment returned",
    "payment.return_fee": "Returned payment fee charged",
    "payment.overpaid": "Payment overpaid the balance",
    "counter.payment_taken": "Payment taken at the counter",
    "refund.requested": "Refund asked for",
    "refund.approved": "Refund approved",
    "refund.rejected": "Refund rejected",
    "write_off.prepared": "Write-off prepared",
    "write_off.approved": "Write-off approved",
    "write_off.rejected": "Write-off rejected",
    "work_order.opened": "Work order opened",
    "work_order.done": "Work order done",
    "work_order.not_done": "Work order not done",
    "work_order.cancelled": "Work order cancelled",
    "shutoff.ordered": "Shutoff ordered",
    "shutoff.refused": "Shutoff refused by a protection",
    "rates.import_owrs": "Rates uploaded (OWRS)",
    "audit.exported": "Audit trail exported to CSV",
}

#: The nouns of kinds, for ``describe``'s fallback: "work_order.done" is "Work order: done".
NOUNS: dict[str, str] = {
    "account": "Account",
    "adjustment": "Adjustment",
    "arrangement": "Payment plan request",
    "audit": "Audit trail",
    "autopay": "Autopay",
    "batch": "Mail batch",
    "bill": "Bill",
    "bill_run": "Bill run",
    "case": "Case",
    "collections": "Collections",
    "counter": "Counter",
    "customer": "Customer",
    "deposit": "Deposit",
    "dispute": "Dispute",
    "drawer": "Cash drawer",
    "extension": "Extension",
    "meter": "Meter",
    "notice": "Notice",
    "notice_batch": "Notice batch",
    "payment": "Payment",
    "payment_import": "Bank file",
    "plan": "Payment plan",
    "premise": "Premise",
    "rates": "Rates",
    "read": "Meter read",
    "reads": "Meter reads",
    "referral": "Collection referral",
    "refund": "Refund",
    "service_request": "Service request",
    "shutoff": "Shutoff",
    "shutoff_protection": "Shutoff protection",
    "sign_in": "Sign-in",
    "start_request": "Start request",
    "user": "Sign-in",
    "work_order": "Work order",
    "write_off": "Write-off",
}


def describe(action: str) -> str:
    """A kind in plain words: ``WORDS``, else "<noun>: <what happened>", else the kind."""
    if action in WORDS:
        return WORDS[action]
    noun, dot, rest = action.partition(".")
    if dot and noun in NOUNS and rest:
        return f"{NOUNS[noun]}: {rest.replace('_', ' ').replace('.', ', ')}"
    return action


def changes(before: dict[str, Any] | None, after: dict[str, Any] | None) -> list[tuple[str, Any, Any]]:
    """The keys an event changed, as (key, before, after), in order of first appearance: a
    key in only one of them has None on the other side; a key with the same value in both
    is context, not a change, and is left out (unless nothing changed at all)."""
    old, new = before or {}, after or {}
    every = [(k, old.get(k), new.get(k)) for k in dict.fromkeys([*old, *new])]
    changed = [(k, b, a) for k, b, a in every if b != a]
    return changed or every


def kinds(session: Session) -> list[str]:
    """Every kind the trail holds, sorted: a walk down ``ix_audit_event_action`` (one index
    probe per kind, a few hundred at most), not a scan of the table."""
    step = select(func.min(AuditEvent.action)).scalar_subquery()
    walk = select(step.label("kind")).cte("kinds", recursive=True)
    following = select(func.min(AuditEvent.action)).where(AuditEvent.action > walk.c.kind).scalar_subquery()
    walk = walk.union_all(select(following).where(walk.c.kind.is_not(None)))
    return [k for k in session.scalars(select(walk.c.kind)) if k is not None]


def kinds_like(session: Session, prefix: str) -> list[str]:
    """The kinds a search for ``prefix`` means: the kind itself and every kind under it
    ("user" finds "user.role" and "user.invite", not "user_session.x"); when nothing is,
    every kind that starts with it ("sign" finds "sign_in.success" and "sign_out")."""
    prefix = (prefix or "").strip().lower().rstrip(".")
    if not prefix:
        return []
    every = kinds(session)
    under = [k for k in every if k == prefix or k.startswith(prefix + ".")]
    return under or [k for k in every if k.startswith(prefix)]


@dataclass(frozen=True)
class Filters:
    """A search of the trail; None (or empty) is "any". ``entities`` are (type, ids) pairs:
    an event about any of them matches. ``since``/``until``: UTC, ``until`` excluded."""

    actor_ids: Sequence[int] | None = None
    actions: Sequence[str] | None = None
    entities: Sequence[tuple[str, Sequence[str]]] | None = None
    since: datetime | None = None
    until: datetime | None = None


def search_query(filters: Filters) -> Select[AuditEvent]:
    """The events ``filters`` finds, newest first (``occurred_at`` then ``id``)."""
    query = select(AuditEvent)
    if filters.actor_ids is not None:
        query = query.where(AuditEvent.actor_id.in_(list(filters.actor_ids)))
    if filters.actions is not None:
        query = query.where(AuditEvent.action.in_(list(filters.actions)))
    if filters.entities is not None:
        pairs = [
            and_(AuditEvent.entity_type == kind, AuditEvent.entity_id.in_(list(ids)))
            for kind, ids in filters.entities
            if ids
        ]
        query = query.where(or_(*pairs) if pairs else false())
    if filters.since is not None:
        query = query.where(AuditEvent.occurred_at >= filters.since)
    if filters.until is not None:
        query = query.where(AuditEvent.occurred_at < filters.until)
    return query.order_by(AuditEvent.occurred_at.desc(), AuditEvent.id.desc())


def search(
    session: Session, filters: Filters, limit: int = PAGE_SIZE, after: tuple[datetime, int] | None = None
) -> list[AuditEvent]:
    """Up to ``limit`` events, newest first, older than ``after`` ((occurred_at, id) of the
    last event of the page before) when given."""
    query = search_query(filters)
    if after is not None:
        at, event_id = after
        query = query.where(
            or_(AuditEvent.occurred_at < at, and_(AuditEvent.occurred_at == at, AuditEvent.id < event_id))
        )
    return list(session.scalars(query.limit(limit)))
