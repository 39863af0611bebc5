"""Cases: complaints, inquiries, disputes, appeals, high-bill investigations and claims.

A case has a type, an account (and optionally a bill), the channel the customer used, a
subject and a description, an owner (``assigned_to_id``) and a due date from its type's
SLA (``SLA_BUSINESS_DAYS``, counted in business days on the office calendar:
``holidays.py`` and the agency's closures, ``collection_facts.closed_days``). It moves
open <-> pending -> resolved (with a resolution text) -> closed; a resolved case may be
reopened, except a dispute or an appeal, whose resolution is the dispute's decision.

A case of type dispute or appeal *is* the dispute the delinquency rules honour: opening it
opens the ``Dispute`` row (``disputes.open_dispute``, linked by ``Dispute.case_id``) for the
disputed amount, so late fees leave the amount out and the shutoff gate refuses while it is
open; resolving the case decides that dispute (upheld, denied or withdrawn).

Age and SLA breach: a case's age is the calendar days since it was opened (until it was
resolved); it is *overdue* while open or pending after its due date, and was *resolved late*
when resolved after it. An account with ``RECURRING_COUNT`` or more cases opened in the
last ``RECURRING_DAYS`` days is a recurring one: each of those cases is marked "Recurring".

Attachments: only PDF, PNG, JPEG, GIF, WebP and plain text (checked by the file's first
bytes, not only its name), at most ``MAX_ATTACHMENT_BYTES``; kept under
``files_dir/cases/<case id>/`` in a folder ``shared`` (shown to the case's resident too)
or ``internal`` (staff only).

Nothing here reads the clock: ``today``/``now`` come from the caller.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from . import audit, disputes
from .errors import N_, FieldErrors, InvalidInput
from .models import Account, Bill, CaseAttachment, CaseNote, Dispute, ServiceCase, User
from .users import parse_amount

KINDS: dict[str, str] = {
    "complaint": "Complaint",
    "inquiry": "Inquiry",
    "dispute": "Bill dispute",
    "appeal": "Appeal",
    "high_bill": "High-bill investigation",
    "claim": "Claim",
}
CHANNELS: dict[str, str] = {
    "phone": "Phone",
    "counter": "At the counter",
    "email": "Email",
    "mail": "Mail",
    "web": "The portal",
    "field": "In the field",
}
STATUSES: dict[str, str] = {
    "open": "Open",
    "pending": "Pending (waiting on the customer or someone else)",
    "resolved": "Resolved",
    "closed": "Closed",
}
#: The SLA: business days from the day a case is opened to its due date, by type.
SLA_BUSINESS_DAYS: dict[str, int] = {
    "inquiry": 3,
    "complaint": 10,
    "high_bill": 10,
    "appeal": 15,
    "dispute": 30,
    "claim": 30,
}
#: The case types that are a ``Dispute`` for the delinquency rules, and the dispute's kind.
DISPUTE_KINDS: dict[str, str] = {"dispute": "dispute", "appeal": "appeal"}
#: Types that carry an amount (a dispute must; an appeal or a claim may).
AMOUNT_KINDS = ("dispute", "appeal", "claim")
#: What a resident may open from the portal.
RESIDENT_KINDS = ("inquiry", "dispute")
OPEN_STATUSES = ("open", "pending")
#: Allowed status changes (resolving goes through ``resolve``).
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "open": ("pending",),
    "pending": ("open",),
    "resolved": ("closed", "open"),
    "closed": (),
}
RECURRING_COUNT = 3
RECURRING_DAYS = 365

MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024
#: Allowed attachments: extension -> content type.
ATTACHMENT_TYPES: dict[str, str] = {
    "pdf": "application/pdf",
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "gif": "image/gif",
    "webp": "image/webp",
    "txt": "text/plain",
}
SHARED, INTERNAL = "shared", "internal"

LETTER_TEMPLATES: dict[str, str] = {
    "acknowledgement": "Acknowledgement (we received your case)",
    "high_bill_findings": "High-bill findings",
    "dispute_decision": "Dispute decision",
    "general": "General letter",
}
MAX_TEXT = 4000
MAX_LETTER = 10_000


# --- The office calendar ------------------------------------------------------------------


def add_business_days(start: date, days: int, closed: Iterable[date] = ()) -> date:
    """The date ``days`` business days after ``start`` (weekends and ``closed`` skipped;
    ``start`` itself does not count)."""
    shut = frozenset(closed)
    day, left = start, days
    while left > 0:
        day += timedelta(days=1)
        if day.weekday() < 5 and day not in shut:
            left -= 1
    return day


def due_on(kind: str, opened_on: date, closed: Iterable[date] = ()) -> date:
    """The SLA due date of a case of ``kind`` opened on ``opened_on``."""
    return add_business_days(opened_on, SLA_BUSINESS_DAYS[kind], closed)


# --- Age, breach, recurring ---------------------------------------------------------------


def age_days(case: ServiceCase, today: date) -> int:
    end = case.resolved_at.date() if case.resolved_at is not None else today
    return max((end - case.opened_at.date()).days, 0)


def overdue(case: ServiceCase, today: date) -> bool:
    """Still open (or pending) after its due date."""
    return case.status in OPEN_STATUSES and today > case.due_on


def resolved_late(case: ServiceCase) -> bool:
    return case.resolved_at is not None and case.resolved_at.date() > case.due_on


def breached(case: ServiceCase, today: date) -> bool:
    return overdue(case, today) or resolved_late(case)


def recurring_since(today: date) -> date:
    return today - timedelta(days=RECURRING_DAYS)


def recurring_accounts(session: Session, account_ids: Iterable[int], today: date) -> set[int]:
    """The accounts among ``account_ids`` with recurring cases (one query)."""
    ids = sorted({i for i in account_ids if i is not None})
    if not ids:
        return set()
    since = datetime.combine(recurring_since(today) + timedelta(days=1), time(0), tzinfo=UTC)
    rows = session.execute(
        select(ServiceCase.account_id, func.count())
        .where(ServiceCase.account_id.in_(ids), ServiceCase.opened_at >= since)
        .group_by(ServiceCase.account_id)
    ).all()
    return {int(account_id) for account_id, count in rows if account_id is not None and count >= RECURRING_COUNT}


def marked_recurring(case: ServiceCase, recurring: set[int], today: date) -> bool:
    return case.account_id in recurring and case.opened_at.date() > recurring_since(today)


# --- Opening a case -----------------------------------------------------------------------


@dataclass(frozen=True)
class Opening:
    kind: str
    channel: str
    subject: str
    description: str
    bill: Bill | None
    amount_cents: int | None
    assigned_to_id: int | None


def _text(values: dict[str, str], name: str) -> str:
    return (values.get(name) or "").strip()


def check_staff(
    values: dict[str, str], account: Account | None, bills: dict[str, Bill], assignees: dict[int, User]
) -> Opening:
    """A case staff open (``kind``, ``account``, ``bill`` number or empty, ``channel``,
    ``subject``, ``description``, ``assignee`` (a user id or empty), ``amount``): the whole
    form at once, ``FieldErrors`` by field."""
    errors: dict[str, InvalidInput] = {}
    kind = _text(values, "kind")
    if kind not in KINDS:
        errors["kind"] = InvalidInput("Choose the type of case.", "kind")
    if account is None:
        errors["account"] = InvalidInput("Enter the number of an account we have.", "account")
    channel = _text(values, "channel")
    if channel not in CHANNELS:
        errors["channel"] = InvalidInput("Choose how the customer reached us.", "channel")
    number = _text(values, "bill")
    bill = bills.get(number) if number else None
    if number and bill is None and account is not None:
        errors["bill"] = InvalidInput("This account has no posted bill %(number)s.", "bill", number=number)
    if kind == "dispute" and not number:
        errors.setdefault("bill", InvalidInput("Choose the bill that is disputed.", "bill"))
    subject = _text(values, "subject")
    if not subject:
        errors["subject"] = InvalidInput("Write a short subject.", "subject")
    elif len(subject) > 200:
        errors["subject"] = InvalidInput("Keep the subject under 200 characters.", "subject")
    description = _text(values, "description")
    if not description:
        errors["description"] = InvalidInput("Describe what the customer told us.", "description")
    elif len(description) > MAX_TEXT:
        errors["description"] = InvalidInput("Please keep this under 4,000 characters.", "description")
    assignee_text = _text(values, "assignee")
    assignee: int | None = None
    if assignee_text:
        assignee = int(assignee_text) if assignee_text.isdigit() else -1
        if assignee not in assignees:
            errors["assignee"] = InvalidInput("Choose someone who works cases.", "assignee")
    cents = _amount(values, kind, bill, errors, staff=True)
    if errors:
        raise FieldErrors(errors)
    return Opening(kind, channel, subject, description, bill, cents, assignee)


def _amount(
    values: dict[str, str], kind: str, bill: Bill | None, errors: dict[str, InvalidInput], staff: bool
) -> int | None:
    text = _text(values, "amount")
    if kind not in AMOUNT_KINDS:
        return None
    if not text:
        if kind == "dispute":
            if bill is not None and not staff:
                return max(bill.total_due_cents, 0)  # a resident's dispute: the whole bill
            errors["amount"] = InvalidInput(N_("Enter the amount disputed."), "amount")
        return None if kind == "claim" else 0
    cents = parse_amount(text)
    if cents is None or cents < 0:
        errors["amount"] = InvalidInput(N_("Enter the amount in dollars and cents, like 25.00."), "amount")
        return None
    if kind == "dispute" and cents == 0:
        errors["amount"] = InvalidInput(N_("The amount must be more than zero."), "amount")
    elif kind in DISPUTE_KINDS and bill is not None and cents > max(bill.total_due_cents, 0):
        errors["amount"] = InvalidInput(
            N_("You can dispute at most this bill's total, %(total)s."),
            "amount",
            total=f"${max(bill.total_due_cents, 0) / 100:,.2f}",
        )
    return cents


def check_resident(values: dict[str, str], bill: Bill | None, already_disputed: bool) -> Opening:
    """A resident's inquiry or dispute from the portal (``kind``, ``subject`` (may be empty),
    ``reason``, ``amount`` for a dispute: at most the bill's total, the whole bill when
    empty). Messages in the reader's language."""
    errors: dict[str, InvalidInput] = {}
    kind = _text(values, "kind") or ("dispute" if bill is not None else "inquiry")
    if kind not in RESIDENT_KINDS:
        errors["kind"] = InvalidInput(N_("Choose a question or a dispute of a bill."), "kind")
    if kind == "dispute" and bill is None:
        errors["kind"] = InvalidInput(N_("To dispute a bill, open it and choose “Dispute this bill”."), "kind")
    reason = _text(values, "reason")
    if not reason and kind == "dispute":
        errors["reason"] = InvalidInput(N_("Tell us what you think is wrong with this bill."), "reason")
    elif not reason:
        errors["reason"] = InvalidInput(N_("Tell us what your question or concern is."), "reason")
    elif len(reason) > 2000:
        errors["reason"] = InvalidInput(N_("Please keep this under 2,000 characters."), "reason")
    elif kind == "dispute" and already_disputed:
        errors["reason"] = InvalidInput(
            N_("You already disputed this bill. We will write to you when it is decided."), "reason"
        )
    subject = _text(values, "subject")
    if len(subject) > 200:
        errors["subject"] = InvalidInput(N_("Please keep the subject under 200 characters."), "subject")
    cents = _amount(values, kind, bill, errors, staff=False) if "kind" not in errors else None
    if errors:
        raise FieldErrors(errors)
    if not subject:
        first = reason.splitlines()[0]
        subject = first if len(first) <= 80 else first[:77] + "..."
    return Opening(kind, "web", subject, reason, bill, cents, None)


def _placeholder() -> str:
    import secrets

    return "tmp-" + secrets.token_hex(8)


def open_case(
    session: Session,
    account: Account,
    opening: Opening,
    today: date,
    now: datetime,
    closed: Iterable[date],
    *,
    staff: User | None = None,
    resident: User | None = None,
    remote_addr: str | None = None,
) -> ServiceCase:
    """Write the case, its number (``C-`` and its id), its due date; for a dispute or an
    appeal the ``Dispute`` it is, for its amount. Audited."""
    case = ServiceCase(
        number=_placeholder(),
        kind=opening.kind,
        account_id=account.id,
        bill_id=opening.bill.id if opening.bill else None,
        channel=opening.channel,
        subject=opening.subject,
        description=opening.description,
        status="open",
        assigned_to_id=opening.assigned_to_id,
        due_on=due_on(opening.kind, today, closed),
        amount_cents=opening.amount_cents,
        opened_by_user_id=resident.id if resident else None,
        opened_by_id=staff.id if staff else None,
        opened_at=now,
    )
    session.add(case)
    session.flush()
    case.number = f"C-{case.id:06d}"
    actor = staff or resident
    if opening.kind in DISPUTE_KINDS:
        assert actor is not None
        dispute = disputes.open_dispute(
            session,
            account,
            disputes.Opening(
                DISPUTE_KINDS[opening.kind], opening.amount_cents or 0, opening.description[:2000], opening.bill
            ),
            "resident" if resident is not None and staff is None else "staff",
            actor,
            now,
            remote_addr,
            case_id=case.id,
        )
        dispute_id: int | None = dispute.id
    else:
        dispute_id = None
    audit.record(
        session,
        "case.opened",
        actor=actor,
        entity_type="service_case",
        entity_id=case.id,
        after={
            "number": case.number,
            "kind": case.kind,
            "account": account.number,
            "bill": opening.bill.number if opening.bill else None,
            "channel": case.channel,
            "subject": case.subject,
            "assigned_to_id": case.assigned_to_id,
            "due_on": case.due_on.isoformat(),
            "amount_cents": case.amount_cents,
            "dispute_id": dispute_id,
        },
        remote_addr=remote_addr,
    )
    return case


def dispute_of(session: Session, case: ServiceCase) -> Dispute | None:
    return session.scalar(select(Dispute).where(Dispute.case_id == case.id).order_by(Dispute.id.desc()).limit(1))


# --- Working a case -----------------------------------------------------------------------


def _audit(
    session: Session, case: ServiceCase, action: str, actor: User, before: dict | None, after: dict | None
) -> None:
    audit.record(
        session,
        f"case.{action}",
        actor=actor,
        entity_type="service_case",
        entity_id=case.id,
        before=before,
        after=after,
    )


def add_note(session: Session, case: ServiceCase, author: User, body: str, public: bool, now: datetime) -> CaseNote:
    """A note: internal (staff only) or public (the resident sees it). ``FieldErrors`` on ``body``."""
    body = (body or "").strip()
    if not body:
        raise FieldErrors({"body": InvalidInput(N_("Write the message."), "body")})
    if len(body) > MAX_TEXT:
        raise FieldErrors({"body": InvalidInput(N_("Please keep this under 4,000 characters."), "body")})
    if case.status == "closed":
        raise FieldErrors({"body": InvalidInput(N_("This case is closed."), "body")})
    note = CaseNote(case_id=case.id, author_id=author.id, body=body, public=public, created_at=now)
    session.add(note)
    session.flush()
    _audit(session, case, "note_added", author, None, {"note_id": note.id, "public": public, "body": body[:500]})
    return note


def reassign(
    session: Session, case: ServiceCase, actor: User, assignee_id: int | None, assignees: dict[int, User]
) -> None:
    if assignee_id is not None and assignee_id not in assignees:
        raise FieldErrors({"assignee": InvalidInput("Choose someone who works cases.", "assignee")})
    if case.status == "closed":
        raise FieldErrors({"assignee": InvalidInput("This case is closed.", "assignee")})
    before = case.assigned_to_id
    case.assigned_to_id = assignee_id
    _audit(session, case, "reassigned", actor, {"assigned_to_id": before}, {"assigned_to_id": assignee_id})


def change_status(session: Session, case: ServiceCase, actor: User, status: str) -> None:
    """Pending, back to open, closed (after resolved), reopened (not a dispute's)."""
    allowed = TRANSITIONS.get(case.status, ())
    if status not in allowed:
        raise FieldErrors(
            {
                "status": InvalidInput(
                    "A case that is %(now)s cannot become %(to)s.", "status", now=case.status, to=status
                )
            }
        )
    if status == "open" and case.status == "resolved" and case.kind in DISPUTE_KINDS:
        raise FieldErrors(
            {"status": InvalidInput("A decided dispute or appeal is not reopened: open a new appeal.", "status")}
        )
    before = case.status
    case.status = status
    if status == "open" and before == "resolved":
        case.resolved_at = case.resolved_by_id = case.resolution = None
    _audit(session, case, "status_changed", actor, {"status": before}, {"status": status})


def resolve(
    session: Session, case: ServiceCase, actor: User, resolution: str, decision: str, now: datetime
) -> Dispute | None:
    """Resolve with a resolution text; a dispute's or an appeal's case decides its dispute
    (``decision``: upheld, denied, withdrawn) with the same words."""
    errors: dict[str, InvalidInput] = {}
    resolution = (resolution or "").strip()
    if case.status not in OPEN_STATUSES:
        errors["resolution"] = InvalidInput("This case is already %(status)s.", "resolution", status=case.status)
    elif not resolution:
        errors["resolution"] = InvalidInput("Write how the case was resolved.", "resolution")
    elif len(resolution) > 2000:
        errors["resolution"] = InvalidInput("Please keep this under 2,000 characters.", "resolution")
    dispute = dispute_of(session, case) if case.kind in DISPUTE_KINDS else None
    if dispute is not None and dispute.status == "open" and decision not in disputes.DECISIONS:
        errors["decision"] = InvalidInput("Choose the decision on the dispute.", "decision")
    if errors:
        raise FieldErrors(errors)
    decided: Dispute | None = None
    if dispute is not None and dispute.status == "open":
        disputes.decide(session, dispute, actor, decision, resolution, now, from_case=True)
        decided = dispute
    before = case.status
    case.status, case.resolution = "resolved", resolution
    case.resolved_by_id, case.resolved_at = actor.id, now
    _audit(
        session,
        case,
        "resolved",
        actor,
        {"status": before},
        {"status": "resolved", "resolution": resolution[:500], "dispute": decided.status if decided else None},
    )
    return decided


# --- Attachments --------------------------------------------------------------------------

_SIGNATURES: dict[str, tuple[bytes, ...]] = {
    "application/pdf": (b"%PDF-",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/gif": (b"GIF87a", b"GIF89a"),
}


def safe_filename(name: str) -> str:
    """The file's own name, reduced to letters, digits, dots, dashes and underscores."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = unicodedata.normalize("NFKD", base).encode("ascii", "ignore").decode()
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", base).strip("._") or "file"
    return base[-120:]


def check_attachment(filename: str, data: bytes) -> tuple[str, str]:
    """The safe name and content type of an upload, or ``FieldErrors`` on ``file``: a PDF,
    an image (PNG, JPEG, GIF, WebP) or plain text, not empty, at most 10 MB; the first bytes
    must be what the name says."""
    name = safe_filename(filename)
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    kind = ATTACHMENT_TYPES.get(ext)

    def refuse(message: str) -> FieldErrors:
        return FieldErrors({"file": InvalidInput(message, "file")})

    if not filename:
        raise refuse("Choose a file.")
    if kind is None:
        raise refuse("Only PDF, PNG, JPEG, GIF, WebP and plain text (.txt) files can be attached.")
    if not data:
        raise refuse("The file is empty.")
    if len(data) > MAX_ATTACHMENT_BYTES:
        raise refuse("The file is larger than 10 MB.")
    if kind == "image/webp":
        fits = data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    elif kind == "text/plain":
        try:
            data.decode("utf-8")
            fits = b"\x00" not in data
        except UnicodeDecodeError:
            fits = False
    else:
        fits = any(data.startswith(sig) for sig in _SIGNATURES[kind])
    if not fits:
        raise refuse("The file is not what its name says (a .%(ext)s file).")
    return name, kind


def attachment_shared(attachment: CaseAttachment) -> bool:
    """Shown to the case's resident too (kept in the case's ``shared`` folder)."""
    parts = attachment.path.replace("\\", "/").split("/")
    return len(parts) >= 2 and parts[-2] == SHARED


# --- Letters ------------------------------------------------------------------------------


def check_letter(template: str, body: str) -> str:
    errors: dict[str, InvalidInput] = {}
    if template not in LETTER_TEMPLATES:
        errors["template"] = InvalidInput("Choose a letter.", "template")
    body = (body or "").strip()
    if not body:
        errors["body"] = InvalidInput("The letter is empty.", "body")
    elif len(body) > MAX_LETTER:
        errors["body"] = InvalidInput("Please keep the letter under 10,000 characters.", "body")
    if errors:
        raise FieldErrors(errors)
    return body
