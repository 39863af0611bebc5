"""The audit trail viewer (``/staff/audit``): search the trail by account, person, kind and
date range, a page of 50 at a time (keyset, newest first), and export a search to CSV.

Every filter ends up on an indexed column of ``audit_event`` (``billing_core/audit.py``):
an account becomes the ``(entity_type, entity_id)`` pairs of the account, its customer and
the things that belong to it (bills, payments, adjustments, ...); a person becomes
``actor_id``s; a kind becomes the exact kinds under it; dates become an ``occurred_at``
range in the office's time zone.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import Select, func, literal, or_, select, union_all
from sqlalchemy.orm import Session, sessionmaker

from ..billing_core import audit, csv_safe, permissions, users
from ..billing_core.errors import FieldErrors, InvalidInput
from ..billing_core.models import (
    Account,
    Adjustment,
    ArrangementRequest,
    AuditEvent,
    Bill,
    CollectionHold,
    CollectionReferral,
    Deposit,
    Dispute,
    FinalBillReview,
    Notice,
    Payment,
    PaymentPlan,
    Refund,
    Role,
    ServiceCase,
    ServiceRequest,
    ShutoffProtection,
    User,
    WorkOrder,
    WriteOff,
)
from ..billing_core.numbers import normalise_account_number
from ..billing_core.permissions import Action

FIELDS = ("account", "person", "kind", "since", "until")
#: A CSV export reads the trail this many events at a time, each batch in a short transaction.
EXPORT_BATCH = 1000
#: At most this many people match a name (the person filter is an ``actor_id IN (...)``).
PEOPLE = 50

#: The things of an account whose events an account search finds: (entity_type, model).
#: "case" and "service_case" both name a case (issue 16's cases).
ACCOUNT_THINGS: tuple[tuple[str, Any], ...] = (
    ("bill", Bill),
    ("payment", Payment),
    ("adjustment", Adjustment),
    ("deposit", Deposit),
    ("refund", Refund),
    ("write_off", WriteOff),
    ("work_order", WorkOrder),
    ("service_request", ServiceRequest),
    ("arrangement_request", ArrangementRequest),
    ("payment_plan", PaymentPlan),
    ("dispute", Dispute),
    ("shutoff_protection", ShutoffProtection),
    ("collection_referral", CollectionReferral),
    ("collection_hold", CollectionHold),
    ("notice", Notice),
    ("final_bill_review", FinalBillReview),
    ("case", ServiceCase),
    ("service_case", ServiceCase),
)


@dataclass(frozen=True)
class Row:
    event: AuditEvent
    who: str
    what: str
    about: str
    changes: list[tuple[str, str, str]]
    when: str
    #: The staff page of the account the event is about, if it is about one.
    link: str = ""


@dataclass(frozen=True)
class AuditPage:
    rows: list[Row]
    #: The cursor of the next (older) page, or None on the last page.
    older: str | None
    kinds: list[str]
    query: str = ""
    errors: dict[str, str] = field(default_factory=dict)


def _text(value: Any) -> str:
    """A before or after value, readably: text as it is, nothing as "—", the rest as JSON."""
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def _day(text: str, name: str, errors: dict[str, InvalidInput]) -> date | None:
    text = (text or "").strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        errors[name] = InvalidInput("Enter a date like 2026-11-22.", name)
        return None


def _account_entities(session: Session, number: str) -> list[tuple[str, list[str]]] | None:
    account = session.scalar(select(Account).where(Account.number == normalise_account_number(number)))
    if account is None:
        return None
    parts: list[Select[Any]] = [
        select(literal(kind).label("kind"), model.id.label("id")).where(model.account_id == account.id)
        for kind, model in ACCOUNT_THINGS
    ]
    found: dict[str, list[str]] = {"account": [str(account.id)], "customer": [str(account.customer_id)]}
    for kind, thing_id in session.execute(union_all(*parts)):
        found.setdefault(kind, []).append(str(thing_id))
    return list(found.items())


def _people(session: Session, text: str) -> list[int]:
    """The sign-ins a person search means: the one with that email, else staff whose name or
    email holds the words."""
    text = text.strip()
    if "@" in text:
        user = users.user_by_email(session, text)
        return [user.id] if user else []
    like = "%" + text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    return list(
        session.scalars(
            select(User.id)
            .where(
                User.role != Role.CUSTOMER.value,
                or_(
                    func.lower(User.email).like(like, escape="\\"),
                    func.lower(User.display_name).like(like, escape="\\"),
                ),
            )
            .order_by(User.id)
            .limit(PEOPLE)
        )
    )


def filters_from(session: Session, values: dict[str, str], tz: tzinfo) -> audit.Filters:
    """The search a form asks for; ``FieldErrors`` for every filter that cannot be read or
    matches nothing (an unknown account, nobody by that name, no such kind)."""
    errors: dict[str, InvalidInput] = {}
    entities = actors = actions = None
    if values.get("account", "").strip():
        entities = _account_entities(session, values["account"])
        if entities is None:
            errors["account"] = InvalidInput(f"No account is numbered {values['account'].strip()}.", "account")
    if values.get("person", "").strip():
        actors = _people(session, values["person"])
        if not actors:
            errors["person"] = InvalidInput("No staff member has that email address or name.", "person")
    if values.get("kind", "").strip():
        actions = audit.kinds_like(session, values["kind"])
        if not actions:
            errors["kind"] = InvalidInput("No event of that kind is in the trail.", "kind")
    since, until = _day(values.get("since", ""), "since", errors), _day(values.get("until", ""), "until", errors)
    if since and until and until < since:
        errors["until"] = InvalidInput("The last day comes on or after the first day.", "until")
    if errors:
        raise FieldErrors(errors)

    def moment(day: date | None) -> datetime | None:
        return None if day is None else datetime.combine(day, time(), tzinfo=tz).astimezone(UTC)

    return audit.Filters(
        actor_ids=actors,
        actions=actions,
        entities=entities,
        since=moment(since),
        until=moment(until + timedelta(days=1) if until else None),
    )


def _account_id(event: AuditEvent) -> int | None:
    """The account an event is about, when it is about an account."""
    if event.entity_type == "account" and event.entity_id and event.entity_id.isdigit():
        return int(event.entity_id)
    return None


def _rows(session: Session, events: list[AuditEvent], tz: tzinfo) -> list[Row]:
    actor_ids = {e.actor_id for e in events if e.actor_id is not None}
    people = {u.id: u for u in session.scalars(select(User).where(User.id.in_(actor_ids)))} if actor_ids else {}
    account_ids = [i for i in map(_account_id, events) if i is not None]
    numbers = (
        {i: n for i, n in session.execute(select(Account.id, Account.number).where(Account.id.in_(account_ids)))}
        if account_ids
        else {}
    )
    out = []
    for e in events:
        person = people.get(e.actor_id) if e.actor_id is not None else None
        if person is not None:
            who = f"{person.display_name} ({person.email})" if person.display_name else person.email
        else:
            who = e.actor_label or "—"
        account_id = _account_id(e)
        link = ""
        if account_id is not None and account_id in numbers:
            about, link = f"account {numbers[account_id]}", f"/staff/accounts/{numbers[account_id]}"
        elif e.entity_type:
            about = f"{e.entity_type.replace('_', ' ')} {e.entity_id or ''}".strip()
        else:
            about = ""
        out.append(
            Row(
                event=e,
                who=who,
                what=audit.describe(e.action),
                about=about,
                changes=[(k, _text(b), _text(a)) for k, b, a in audit.changes(e.before, e.after)],
                when=e.occurred_at.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S %Z"),
                link=link,
            )
        )
    return out


def _cursor(event: AuditEvent) -> str:
    return str(event.id)


def _after(session: Session, cursor: str) -> tuple[datetime, int] | None:
    if not cursor.isdigit():
        return None
    at = session.scalar(select(AuditEvent.occurred_at).where(AuditEvent.id == int(cursor)))
    return None if at is None else (at, int(cursor))


def search(session: Session, staff: User, values: dict[str, str], cursor: str, tz: tzinfo) -> AuditPage:
    """A page of the search (50 events, newest first; ``cursor``: the page after that event).
    A form with errors shows them and no events."""
    permissions.require(staff, Action.AUDIT_VIEW)
    kinds = audit.kinds(session)
    query = urlencode({k: values[k] for k in FIELDS if values.get(k)})
    try:
        filters = filters_from(session, values, tz)
    except FieldErrors as exc:
        return AuditPage([], None, kinds, query, {k: e.message for k, e in exc.errors.items()})
    events = audit.search(session, filters, audit.PAGE_SIZE + 1, _after(session, cursor))
    older = _cursor(events[audit.PAGE_SIZE - 1]) if len(events) > audit.PAGE_SIZE else None
    return AuditPage(_rows(session, events[: audit.PAGE_SIZE], tz), older, kinds, query)


# --- CSV export ------------------------------------------------------------------------------

CSV_HEADER = ["when", "who", "kind", "what", "about_type", "about_id", "before", "after", "from", "detail"]


@dataclass(frozen=True)
class Export:
    """A search to export; ``lines`` streams it as CSV, a batch of events at a time, each
    batch read in a short transaction of its own (nothing is held for the whole download)."""

    filters: audit.Filters
    factory: sessionmaker[Session]
    tz: tzinfo

    def lines(self) -> Iterator[str]:
        out = io.StringIO()
        w = csv_safe.writer(out)
        w.writerow(CSV_HEADER)
        after: tuple[datetime, int] | None = None
        while True:
            with self.factory() as session:
                events = audit.search(session, self.filters, EXPORT_BATCH, after)
                for row in _rows(session, events, self.tz):
                    e = row.event
                    w.writerow(
                        [
                            e.occurred_at.astimezone(self.tz).isoformat(),
                            row.who,
                            e.action,
                            row.what,
                            e.entity_type or "",
                            e.entity_id or "",
                            "" if e.before is None else json.dumps(e.before, sort_keys=True, default=str),
                            "" if e.after is None else json.dumps(e.after, sort_keys=True, default=str),
                            e.remote_addr or "",
                            e.detail or "",
                        ]
                    )
            yield out.getvalue()
            out.seek(0)
            out.truncate()
            if len(events) < EXPORT_BATCH:
                return
            after = (events[-1].occurred_at, events[-1].id)


def export(
    session: Session,
    staff: User,
    values: dict[str, str],
    tz: tzinfo,
    factory: sessionmaker[Session],
    remote_addr: str | None,
) -> Export:
    """Check the search (``FieldErrors``) and the permission, audit the export, and hand back
    what streams it (``Export.lines``)."""
    permissions.require(staff, Action.AUDIT_VIEW)
    filters = filters_from(session, values, tz)
    audit.record(
        session,
        "audit.exported",
        actor=staff,
        remote_addr=remote_addr,
        detail="; ".join(f"{k}={values[k]}" for k in FIELDS if values.get(k)) or "everything",
    )
    return Export(filters, factory, tz)
