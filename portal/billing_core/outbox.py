"""The email outbox: every email the portal sends is first a row here, so that sending it
can fail, be tried again later and be seen doing so, instead of failing the page that
asked for it or vanishing.

A row is ``queued`` when written. A sender *claims* rows (a conditional UPDATE with a
random token, so two senders never take the same row: no lock needed, the same on SQLite
and PostgreSQL), sends each, and marks it ``sent``, ``skipped`` (nothing to send when its
turn came: the customer turned such emails off, the payment was already receipted), or,
when sending failed, ``retrying`` with the next attempt after a growing delay, and
``failed`` after the last attempt or when the mail server refused the message for good.
A sender that died while sending leaves a claim older than ``STALE_CLAIM``; the row is
then taken again (such a message may go out twice; an email is never silently lost).

Writing and sending the message belong to the services (``services/notifications.py``,
``services/delivery.py``); this module keeps the rows and their rules, and takes ``now``
from its caller: it never reads the clock.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, and_, func, or_, select, update
from sqlalchemy.orm import Session

from .bulk import insert_rows
from .models import EmailOutbox

#: How long to wait after the 1st, 2nd, ... failed attempt (seconds). After the last
#: delay's attempt fails too, the email is ``failed``: about 4 hours 20 minutes in all.
RETRY_DELAYS = (60, 5 * 60, 15 * 60, 60 * 60, 3 * 60 * 60)
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
STALE_CLAIM = timedelta(minutes=10)
PENDING = ("queued", "retrying")
STATUSES = ("queued", "sending", "sent", "retrying", "failed", "skipped")
#: What each email is about, from its job's arguments: shown on that thing's staff page.
REFS = {
    "email.account": ("user", "user_id"),
    "email.receipt": ("payment", "payment_id"),
    "email.autopay_failed": ("payment", "payment_id"),
    "email.payment_returned": ("payment", "payment_id"),
    "email.autopay_enrolled": ("autopay_enrollment", "enrollment_id"),
    "email.request_update": ("service_request", "request_id"),
    "email.arrangement_decision": ("arrangement_request", "request_id"),
    "email.bill_ready": ("bill", "bill_id"),
    "email.counter_receipt": ("counter_receipt", "receipt_id"),
    "email.money_notice": (None, None),
    "email.notice": ("notice", "notice_id"),  # issue 15: collection notices (services/notices.py)
    "email.welcome": ("account", "account_id"),  # issue 16: a new account's welcome (services/account_opening.py)
    "email.case_letter": ("case_letter", "letter_id"),  # issue 16: a case's letter (services/cases.py)
}
OUTBOX_COLUMNS = (
    "kind",
    "args",
    "ref_type",
    "ref_id",
    "print_file_id",
    "recipient",
    "status",
    "attempts",
    "next_attempt_at",
    "created_at",
)


def queue(
    session: Session,
    kind: str,
    args: dict[str, Any],
    now: datetime,
    recipient: str | None = None,
    print_file_id: int | None = None,
) -> EmailOutbox:
    """Write one email to send, due at once. The caller's transaction commits it."""
    ref_type, key = REFS.get(kind, (None, None))
    row = EmailOutbox(
        kind=kind,
        args=dict(args),
        ref_type=ref_type,
        ref_id=args.get(key) if key else None,
        print_file_id=print_file_id,
        recipient=recipient,
        status="queued",
        attempts=0,
        next_attempt_at=now,
        created_at=now,
    )
    session.add(row)
    session.flush()
    return row


def queue_bill_emails(session: Session, print_file_id: int, bills: Sequence[tuple[int, str]], now: datetime) -> None:
    """One bill-ready email per (bill id, address), in bulk (a run may email tens of thousands)."""
    insert_rows(
        session,
        EmailOutbox.__table__,
        OUTBOX_COLUMNS,
        [
            (
                "email.bill_ready",
                {"bill_id": bill_id} if _json_native(session) else f'{{"bill_id": {int(bill_id)}}}',
                "bill",
                bill_id,
                print_file_id,
                to,
                "queued",
                0,
                now,
                now,
            )
            for bill_id, to in bills
        ],
    )


def _json_native(session: Session) -> bool:
    # COPY (PostgreSQL) takes JSON as text; SQLite's executemany goes through the JSON type.
    return session.get_bind().dialect.name != "postgresql"


def _takeable(now: datetime, due_only: bool):  # type: ignore[no-untyped-def]
    pending: ColumnElement[bool] = EmailOutbox.status.in_(PENDING)
    if due_only:
        pending = and_(pending, EmailOutbox.next_attempt_at <= now)
    stale = and_(EmailOutbox.status == "sending", EmailOutbox.claimed_at < now - STALE_CLAIM)
    return or_(pending, stale)


@dataclass(frozen=True)
class Claimed:
    """A row a sender took, as it was when taken."""

    id: int
    kind: str
    args: dict[str, Any]
    attempts: int
    recipient: str | None


@dataclass
class Outcome:
    """What one sending pass did."""

    sent: int = 0
    skipped: int = 0
    retrying: int = 0
    failed: int = 0
    #: The earliest next attempt among the emails the pass was given that still wait.
    retry_at: datetime | None = None

    def add(self, status: str) -> None:
        setattr(self, status, getattr(self, status) + 1)

    def __iadd__(self, other: Outcome) -> Outcome:
        for name in ("sent", "skipped", "retrying", "failed"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        if other.retry_at is not None and (self.retry_at is None or other.retry_at < self.retry_at):
            self.retry_at = other.retry_at
        return self


def claim(session: Session, ids: Iterable[int], now: datetime, due_only: bool = True) -> tuple[str, list[Claimed]]:
    """Take the rows among ``ids`` that may be sent now; nobody else will send them.
    Commit right after, before sending, so other senders see the claim."""
    token = secrets.token_hex(16)
    wanted = list(ids)
    for start in range(0, len(wanted), 500):
        session.execute(
            update(EmailOutbox)
            .where(EmailOutbox.id.in_(wanted[start : start + 500]), _takeable(now, due_only))
            .values(status="sending", claim=token, claimed_at=now)
            .execution_options(synchronize_session=False)
        )
    rows = session.scalars(select(EmailOutbox).where(EmailOutbox.claim == token).order_by(EmailOutbox.id))
    return token, [Claimed(r.id, r.kind, dict(r.args or {}), r.attempts, r.recipient) for r in rows]


def _finish(session: Session, row_id: int, token: str, **values: Any) -> bool:
    # An UPDATE runs through a cursor: its result is a CursorResult, which has the rowcount.
    done = cast(
        CursorResult[Any],
        session.execute(
            update(EmailOutbox)
            .where(EmailOutbox.id == row_id, EmailOutbox.claim == token, EmailOutbox.status == "sending")
            .values(claim=None, claimed_at=None, **values)
            .execution_options(synchronize_session=False)
        ),
    )
    return done.rowcount == 1


def mark_sent(session: Session, row: Claimed, token: str, now: datetime, recipient: str | None) -> bool:
    return _finish(
        session,
        row.id,
        token,
        status="sent",
        sent_at=now,
        attempts=row.attempts + 1,
        recipient=recipient or row.recipient,
        next_attempt_at=None,
    )


def mark_skipped(session: Session, row: Claimed, token: str, now: datetime) -> bool:
    return _finish(session, row.id, token, status="skipped", attempts=row.attempts + 1, next_attempt_at=None)


def mark_failed(session: Session, row: Claimed, token: str, now: datetime, error: str, permanent: bool = False) -> str:
    """Record a failed attempt: ``retrying`` after the next delay, or ``failed`` for good."""
    attempts = row.attempts + 1
    if permanent or attempts >= MAX_ATTEMPTS:
        status, next_at = "failed", None
    else:
        status, next_at = "retrying", now + timedelta(seconds=RETRY_DELAYS[attempts - 1])
    _finish(session, row.id, token, status=status, attempts=attempts, last_error=error[:500], next_attempt_at=next_at)
    return status


def due_ids(session: Session, now: datetime, limit: int = 200, due_only: bool = True, after_id: int = 0) -> list[int]:
    """Emails a periodic pass should send now: pending and due (or every pending one with
    ``due_only=False``), and any whose sender died; in id order from ``after_id``."""
    return list(
        session.scalars(
            select(EmailOutbox.id)
            .where(_takeable(now, due_only), EmailOutbox.id > after_id)
            .order_by(EmailOutbox.id)
            .limit(limit)
        )
    )


def next_attempt(session: Session, ids: Iterable[int]) -> datetime | None:
    """The earliest next attempt among ``ids`` still waiting to be sent (None: none waits)."""
    wanted = list(ids)
    found = [
        session.scalar(
            select(func.min(EmailOutbox.next_attempt_at)).where(
                EmailOutbox.id.in_(wanted[start : start + 500]), EmailOutbox.status.in_(PENDING)
            )
        )
        for start in range(0, len(wanted), 500)
    ]
    times = [f for f in found if f is not None]
    return min(times) if times else None


def send_again(session: Session, ids: Iterable[int], now: datetime) -> int:
    """Queue failed emails once more, from a fresh count of attempts (staff asked)."""
    wanted, changed = list(ids), 0
    for start in range(0, len(wanted), 500):
        done = cast(
            CursorResult[Any],
            session.execute(
                update(EmailOutbox)
                .where(EmailOutbox.id.in_(wanted[start : start + 500]), EmailOutbox.status == "failed")
                .values(status="queued", attempts=0, next_attempt_at=now)
                .execution_options(synchronize_session=False)
            ),
        )
        changed += done.rowcount
    return changed


@dataclass(frozen=True)
class Summary:
    """The emails of one thing (a print file, a request) by status."""

    counts: dict[str, int] = field(default_factory=dict)
    next_attempt_at: datetime | None = None
    last_error: str | None = None

    def __getitem__(self, status: str) -> int:
        return self.counts.get(status, 0)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def in_flight(self) -> int:
        """Queued or being sent now (retrying ones wait for their time)."""
        return self["queued"] + self["sending"]


def summarise(session: Session, *conditions: Any) -> Summary:
    counts = dict(
        session.execute(select(EmailOutbox.status, func.count()).where(*conditions).group_by(EmailOutbox.status)).all()
    )
    next_at = session.scalar(
        select(func.min(EmailOutbox.next_attempt_at)).where(*conditions, EmailOutbox.status == "retrying")
    )
    error = session.scalar(
        select(EmailOutbox.last_error)
        .where(*conditions, EmailOutbox.status.in_(("retrying", "failed")), EmailOutbox.last_error.is_not(None))
        .order_by(EmailOutbox.id.desc())
        .limit(1)
    )
    return Summary(counts, next_at, error)


def for_print_file(session: Session, print_file_id: int) -> Summary:
    return summarise(session, EmailOutbox.print_file_id == print_file_id)


def failed_ids(session: Session, print_file_id: int) -> list[int]:
    return list(
        session.scalars(
            select(EmailOutbox.id).where(EmailOutbox.print_file_id == print_file_id, EmailOutbox.status == "failed")
        )
    )


def about(session: Session, ref_type: str, ref_id: int) -> list[EmailOutbox]:
    """Every email about one thing (a request, a payment), newest first."""
    return list(
        session.scalars(
            select(EmailOutbox)
            .where(EmailOutbox.ref_type == ref_type, EmailOutbox.ref_id == ref_id)
            .order_by(EmailOutbox.id.desc())
        )
    )
