"""Cases, one use case per function: staff open a case (``Action.CASES_OPEN``) and work it
(``Action.CASES_WORK``: notes, attachments, reassign, status, resolve, letters); a dispute's
or an appeal's case is resolved by whoever decides disputes (``Action.DISPUTES_DECIDE``);
residents open an inquiry or a dispute on their own linked accounts and follow it. The
rules are ``billing_core/cases.py``.

Each function runs in the caller's transaction with the caller's clock; bad input is a
``FieldErrors`` raised before anything is written. A letter is checked and laid out first
(``letter_html``), printed by the caller through the printer adapter, then stored with its
email queued (``store_letter``; the caller sends it once committed, ``jobs.send_outbox_soon``).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from jinja2 import Environment
from sqlalchemy import case as when
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from .. import documents, i18n
from ..adapters.clock import Clock
from ..adapters.database import transaction
from ..billing_core import accounts, audit, cases, collection_facts, disputes, outbox, permissions
from ..billing_core.errors import N_, FieldErrors, InvalidInput, NotFound
from ..billing_core.models import (
    Account,
    AuditEvent,
    Bill,
    CaseAttachment,
    CaseLetter,
    CaseNote,
    Customer,
    Dispute,
    ServiceCase,
    User,
    UserAccountLink,
)
from ..billing_core.permissions import Action
from ..billing_core.status import BillStatus
from ..emails import Mailer
from ..settings import Settings

#: The email job that sends a case letter (``notifications.SENDERS``).
LETTER_EMAIL = "email.case_letter"


def _case(session: Session, case_id: int | str, lock: bool = False) -> ServiceCase:
    try:
        number = int(case_id)
    except (TypeError, ValueError):
        raise NotFound(str(case_id)) from None
    case = session.get(ServiceCase, number, with_for_update=lock)
    if case is None:
        raise NotFound(str(case_id))
    return case


def _account_by_number(session: Session, number: str) -> Account | None:
    number = (number or "").strip()
    return session.scalar(select(Account).where(Account.number == number)) if number else None


def _bills(session: Session, account_id: int) -> list[Bill]:
    return list(
        session.scalars(
            select(Bill)
            .where(Bill.account_id == account_id, Bill.status == BillStatus.POSTED)
            .order_by(Bill.bill_date.desc(), Bill.id.desc())
            .limit(24)
        )
    )


def _bill_by_number(session: Session, account_id: int, number: str) -> Bill | None:
    return session.scalar(
        select(Bill).where(Bill.account_id == account_id, Bill.number == number, Bill.status == BillStatus.POSTED)
    )


def assignees(session: Session) -> dict[int, User]:
    """Everyone who may work cases (active office staff), by id."""
    roles = [r.value for r in permissions.GRANTS[Action.CASES_WORK].roles]
    return {
        u.id: u
        for u in session.scalars(select(User).where(User.role.in_(roles), User.active.is_(True)).order_by(User.email))
    }


def _emails(session: Session, ids: Iterable[int | None]) -> dict[int, str]:
    wanted = sorted({i for i in ids if i})
    if not wanted:
        return {}
    return {i: e for i, e in session.execute(select(User.id, User.email).where(User.id.in_(wanted)))}


def _closed(session: Session, today: date) -> frozenset[date]:
    return collection_facts.closed_days(session, today)


# --- Opening a case (staff) ---------------------------------------------------------------


@dataclass(frozen=True)
class NewCase:
    account: Account | None
    bills: list[Bill]
    assignees: dict[int, User]
    sla: dict[str, int]
    #: The types this person may open (a dispute or an appeal needs ``DISPUTES_OPEN``).
    kinds: dict[str, str]


def new_case(session: Session, user: User, account_number: str) -> NewCase:
    permissions.require(user, Action.CASES_OPEN)
    account = _account_by_number(session, account_number)
    disputes_too = permissions.can(user.role, Action.DISPUTES_OPEN)
    kinds = {k: v for k, v in cases.KINDS.items() if disputes_too or k not in cases.DISPUTE_KINDS}
    return NewCase(
        account, _bills(session, account.id) if account else [], assignees(session), cases.SLA_BUSINESS_DAYS, kinds
    )


def open_by_staff(
    session: Session,
    user: User,
    values: dict[str, str],
    today: date,
    now: datetime,
    remote_addr: str | None = None,
) -> ServiceCase:
    """Check the whole form, then open the case (and for a dispute or an appeal its dispute)."""
    permissions.require(user, Action.CASES_OPEN)
    if values.get("kind") in cases.DISPUTE_KINDS:
        permissions.require(user, Action.DISPUTES_OPEN)
    account = _account_by_number(session, values.get("account", ""))
    bills: dict[str, Bill] = {}
    number = (values.get("bill") or "").strip()
    if account is not None and number:
        found = _bill_by_number(session, account.id, number)
        if found is not None and found.number:
            bills[found.number] = found
    opening = cases.check_staff(values, account, bills, assignees(session))
    assert account is not None
    session.get(Account, account.id, with_for_update=True)
    return cases.open_case(
        session, account, opening, today, now, _closed(session, today), staff=user, remote_addr=remote_addr
    )


# --- The list -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    case: ServiceCase
    account_number: str
    assignee: str | None
    age_days: int
    overdue: bool
    resolved_late: bool
    recurring: bool


@dataclass(frozen=True)
class Listing:
    rows: list[Row]
    filters: dict[str, str]
    assignees: dict[int, User]
    counts: dict[str, int]


def listing(session: Session, user: User, filters: dict[str, str], today: date) -> Listing:
    """Cases by status (``open`` = open or pending, the default; ``all``; or one status),
    type, assignee (a user id, ``me``, ``none``), account number, and ``breached``
    (overdue: past the due date and not resolved). Overdue first, then by due date."""
    permissions.require(user, Action.STAFF_VIEW)
    status = filters.get("status", "open") or "open"
    kind = filters.get("kind", "")
    assignee = filters.get("assignee", "")
    account = filters.get("account", "").strip()
    breached = filters.get("breached", "") == "1"
    query = select(ServiceCase, Account.number).join(Account, Account.id == ServiceCase.account_id)
    if status == "open":
        query = query.where(ServiceCase.status.in_(cases.OPEN_STATUSES))
    elif status in cases.STATUSES:
        query = query.where(ServiceCase.status == status)
    else:
        status = "all"
    if kind in cases.KINDS:
        query = query.where(ServiceCase.kind == kind)
    else:
        kind = ""
    if assignee == "me":
        query = query.where(ServiceCase.assigned_to_id == user.id)
    elif assignee == "none":
        query = query.where(ServiceCase.assigned_to_id.is_(None))
    elif assignee.isdigit():
        query = query.where(ServiceCase.assigned_to_id == int(assignee))
    else:
        assignee = ""
    if account:
        query = query.where(Account.number == account)
    if breached:
        query = query.where(ServiceCase.status.in_(cases.OPEN_STATUSES), ServiceCase.due_on < today)
    query = query.order_by(ServiceCase.due_on, ServiceCase.id).limit(500)
    found = session.execute(query).all()
    recurring = cases.recurring_accounts(session, {c.account_id for c, _n in found if c.account_id}, today)
    names = _emails(session, {c.assigned_to_id for c, _n in found})
    rows = [
        Row(
            c,
            n,
            names.get(c.assigned_to_id) if c.assigned_to_id else None,
            cases.age_days(c, today),
            cases.overdue(c, today),
            cases.resolved_late(c),
            cases.marked_recurring(c, recurring, today),
        )
        for c, n in found
    ]
    rows.sort(key=lambda r: (not r.overdue, r.case.due_on, r.case.id))
    counts = {
        "overdue": sum(1 for r in rows if r.overdue),
        "recurring": sum(1 for r in rows if r.recurring),
    }
    return Listing(
        rows,
        {"status": status, "kind": kind, "assignee": assignee, "account": account, "breached": "1" if breached else ""},
        assignees(session),
        counts,
    )


@dataclass(frozen=True)
class AssigneeCount:
    """Open (or pending) cases of one person (``user_id`` None: nobody's yet)."""

    user_id: int | None
    email: str | None
    open: int
    overdue: int


def open_cases_by_assignee(session: Session, today: date) -> list[AssigneeCount]:
    """How many cases each person has open, and how many of them are overdue (the
    supervisor dashboard's count): one query; the unassigned first, then by email."""
    overdue = func.sum(when((ServiceCase.due_on < today, 1), else_=0))
    rows = session.execute(
        select(ServiceCase.assigned_to_id, func.count(), overdue)
        .where(ServiceCase.status.in_(cases.OPEN_STATUSES))
        .group_by(ServiceCase.assigned_to_id)
    ).all()
    names = _emails(session, {r[0] for r in rows})
    out = [AssigneeCount(uid, names.get(uid) if uid else None, int(n), int(late or 0)) for uid, n, late in rows]
    out.sort(key=lambda a: (a.user_id is not None, a.email or ""))
    return out


# --- The case page ------------------------------------------------------------------------


@dataclass(frozen=True)
class Attachment:
    item: CaseAttachment
    shared: bool


@dataclass(frozen=True)
class CasePage:
    case: ServiceCase
    account: Account | None
    bill: Bill | None
    dispute: Dispute | None
    notes: list[CaseNote]
    attachments: list[Attachment]
    letters: list[CaseLetter]
    names: dict[int, str]
    assignees: dict[int, User]
    events: list[AuditEvent]
    age_days: int
    overdue: bool
    resolved_late: bool
    recurring: bool
    language: str
    can_work: bool
    can_decide: bool
    transitions: tuple[str, ...] = field(default_factory=tuple)


def _language(account: Account | None) -> str:
    customer = account.customer if account is not None else None
    return i18n.supported(customer.preferred_language if customer else None) or i18n.DEFAULT


def case_page(session: Session, user: User, case_id: int | str, today: date) -> CasePage:
    permissions.require(user, Action.STAFF_VIEW)
    case = _case(session, case_id)
    account = session.get(Account, case.account_id) if case.account_id else None
    bill = session.get(Bill, case.bill_id) if case.bill_id else None
    notes = list(session.scalars(select(CaseNote).where(CaseNote.case_id == case.id).order_by(CaseNote.id)))
    files = list(
        session.scalars(select(CaseAttachment).where(CaseAttachment.case_id == case.id).order_by(CaseAttachment.id))
    )
    letters = list(session.scalars(select(CaseLetter).where(CaseLetter.case_id == case.id).order_by(CaseLetter.id)))
    events = list(
        session.scalars(
            select(AuditEvent)
            .where(AuditEvent.entity_type == "service_case", AuditEvent.entity_id == str(case.id))
            .order_by(AuditEvent.id.desc())
            .limit(100)
        )
    )
    recurring = cases.recurring_accounts(session, [case.account_id] if case.account_id else [], today)
    ids = {case.assigned_to_id, case.opened_by_id, case.opened_by_user_id, case.resolved_by_id}
    ids |= {n.author_id for n in notes} | {f.uploaded_by_id for f in files} | {x.created_by_id for x in letters}
    work = permissions.can(user.role, Action.CASES_WORK)
    transitions = cases.TRANSITIONS.get(case.status, ())
    if case.kind in cases.DISPUTE_KINDS:
        transitions = tuple(t for t in transitions if not (case.status == "resolved" and t == "open"))
    return CasePage(
        case=case,
        account=account,
        bill=bill,
        dispute=cases.dispute_of(session, case),
        notes=notes,
        attachments=[Attachment(f, cases.attachment_shared(f)) for f in files],
        letters=letters,
        names=_emails(session, ids),
        assignees=assignees(session),
        events=events,
        age_days=cases.age_days(case, today),
        overdue=cases.overdue(case, today),
        resolved_late=cases.resolved_late(case),
        recurring=cases.marked_recurring(case, recurring, today),
        language=_language(account),
        can_work=work,
        can_decide=work
        and (case.kind not in cases.DISPUTE_KINDS or permissions.can(user.role, Action.DISPUTES_DECIDE)),
        transitions=transitions if work else (),
    )


def add_note(session: Session, user: User, case_id: int | str, values: dict[str, str], now: datetime) -> CaseNote:
    permissions.require(user, Action.CASES_WORK)
    case = _case(session, case_id, lock=True)
    return cases.add_note(session, case, user, values.get("body", ""), values.get("public", "") == "1", now)


def reassign(session: Session, user: User, case_id: int | str, values: dict[str, str]) -> ServiceCase:
    permissions.require(user, Action.CASES_WORK)
    case = _case(session, case_id, lock=True)
    text = (values.get("assignee") or "").strip()
    if text and not text.isdigit():
        raise FieldErrors.one("assignee", "Choose someone who works cases.")
    cases.reassign(session, case, user, int(text) if text else None, assignees(session))
    return case


def change_status(session: Session, user: User, case_id: int | str, status: str) -> ServiceCase:
    permissions.require(user, Action.CASES_WORK)
    case = _case(session, case_id, lock=True)
    cases.change_status(session, case, user, status)
    return case


def resolve(session: Session, user: User, case_id: int | str, values: dict[str, str], now: datetime) -> ServiceCase:
    """Resolve with a resolution text; a dispute's or an appeal's case decides its dispute,
    which only someone who decides disputes may do."""
    permissions.require(user, Action.CASES_WORK)
    case = _case(session, case_id, lock=True)
    if case.kind in cases.DISPUTE_KINDS:
        permissions.require(user, Action.DISPUTES_DECIDE)
        session.scalar(select(Dispute.id).where(Dispute.case_id == case.id).with_for_update())
    cases.resolve(session, case, user, values.get("resolution", ""), values.get("decision", ""), now)
    return case


# --- Attachments --------------------------------------------------------------------------


def _case_dir(settings: Settings, case: ServiceCase, shared: bool) -> Path:
    path = Path(settings.files_dir) / "cases" / str(case.id) / (cases.SHARED if shared else cases.INTERNAL)
    path.mkdir(parents=True, exist_ok=True)
    return path


def attach(
    session: Session,
    user: User,
    settings: Settings,
    case_id: int | str,
    filename: str,
    data: bytes,
    shared: bool,
    now: datetime,
) -> CaseAttachment:
    """Keep an uploaded file with the case (``FieldErrors`` on ``file`` when it is not one
    of the allowed types or is over 10 MB): under ``files_dir/cases/<id>/shared`` when the
    resident may see it, else ``.../internal``. Audited."""
    permissions.require(user, Action.CASES_WORK)
    case = _case(session, case_id, lock=True)
    if case.status == "closed":
        raise FieldErrors.one("file", "This case is closed.")
    name, content_type = cases.check_attachment(filename, data)
    target = _case_dir(settings, case, shared) / f"{secrets.token_hex(8)}-{name}"
    target.write_bytes(data)
    item = CaseAttachment(
        case_id=case.id,
        filename=name,
        content_type=content_type,
        size_bytes=len(data),
        path=str(target),
        uploaded_by_id=user.id,
        created_at=now,
    )
    session.add(item)
    session.flush()
    audit.record(
        session,
        "case.attachment_added",
        actor=user,
        entity_type="service_case",
        entity_id=case.id,
        after={"attachment_id": item.id, "filename": name, "size_bytes": len(data), "shared": shared},
    )
    return item


def _file(path: str | None) -> Path:
    if not path or not Path(path).is_file():
        raise NotFound("file")
    return Path(path)


def attachment_file(
    session: Session, user: User, case_id: int | str, attachment_id: int
) -> tuple[CaseAttachment, Path]:
    """An attachment for staff."""
    permissions.require(user, Action.STAFF_VIEW)
    case = _case(session, case_id)
    item = session.get(CaseAttachment, attachment_id)
    if item is None or item.case_id != case.id:
        raise NotFound(str(attachment_id))
    return item, _file(item.path)


# --- Letters ------------------------------------------------------------------------------


@dataclass(frozen=True)
class LetterFacts:
    """What a letter's template reads."""

    case: ServiceCase
    account: Account | None
    customer: Customer | None
    bill: Bill | None
    dispute: Dispute | None
    kind: str


def _facts(session: Session, case: ServiceCase) -> LetterFacts:
    account = session.get(Account, case.account_id) if case.account_id else None
    return LetterFacts(
        case,
        account,
        account.customer if account else None,
        session.get(Bill, case.bill_id) if case.bill_id else None,
        cases.dispute_of(session, case),
        case.kind,
    )


def _plain(env: Environment) -> Environment:
    return env.overlay(autoescape=False)


def letter_draft(
    session: Session, user: User, env: Environment, settings: Settings, case_id: int | str, template: str
) -> tuple[str, str]:
    """The text of a letter from ``template``, in the customer's language, to edit before
    it is sent. Returns (language, text)."""
    permissions.require(user, Action.CASES_WORK)
    if template not in cases.LETTER_TEMPLATES:
        raise FieldErrors.one("template", "Choose a letter.")
    case = _case(session, case_id)
    facts = _facts(session, case)
    language = _language(facts.account)
    with i18n.use(language):
        text = (
            _plain(env)
            .get_template(f"email/case_letter_{template}.txt")
            .render(f=facts, agency_name=settings.agency_name, agency_phone=settings.agency_phone)
        )
    return language, text.strip() + "\n"


def _letter_document(
    env: Environment, settings: Settings, facts: LetterFacts, body: str, language: str, today: date
) -> str:
    paragraphs = [p.strip() for p in body.replace("\r\n", "\n").split("\n\n") if p.strip()]
    with i18n.use(language):
        return env.get_template("case_letter_document.html").render(
            f=facts,
            paragraphs=paragraphs,
            today=today,
            print_css=documents.bill_css(),
            agency_name=settings.agency_name,
            agency_phone=settings.agency_phone,
        )


def letter_html(
    session: Session,
    user: User,
    env: Environment,
    settings: Settings,
    case_id: int | str,
    values: dict[str, str],
    today: date,
) -> str:
    """Check the letter (``template``, ``body``) and lay it out for printing in the
    customer's language. Writes nothing."""
    permissions.require(user, Action.CASES_WORK)
    case = _case(session, case_id)
    body = cases.check_letter(values.get("template", ""), values.get("body", ""))
    facts = _facts(session, case)
    return _letter_document(env, settings, facts, body, _language(facts.account), today)


@dataclass(frozen=True)
class Stored:
    letter: CaseLetter
    outbox_id: int | None


def store_letter(
    session: Session,
    user: User,
    settings: Settings,
    case_id: int | str,
    values: dict[str, str],
    pdf: bytes,
    now: datetime,
) -> Stored:
    """Keep the printed letter with the case (``files_dir/cases/<id>/shared``: the resident
    sees it), and queue its email to the customer when they have an address. Audited."""
    permissions.require(user, Action.CASES_WORK)
    case = _case(session, case_id, lock=True)
    template = values.get("template", "")
    body = cases.check_letter(template, values.get("body", ""))
    facts = _facts(session, case)
    language = _language(facts.account)
    letter = CaseLetter(
        case_id=case.id, template=template, language=language, body=body, created_by_id=user.id, created_at=now
    )
    session.add(letter)
    session.flush()
    target = _case_dir(settings, case, True) / f"letter-{letter.id}.pdf"
    target.write_bytes(pdf)
    letter.pdf_path = str(target)
    to = facts.customer.email if facts.customer else None
    outbox_id = outbox.queue(session, LETTER_EMAIL, {"letter_id": letter.id}, now, recipient=to).id if to else None
    audit.record(
        session,
        "case.letter_sent",
        actor=user,
        entity_type="service_case",
        entity_id=case.id,
        after={"letter_id": letter.id, "template": template, "language": language, "emailed_to": to},
    )
    return Stored(letter, outbox_id)


def letter_file(session: Session, user: User, case_id: int | str, letter_id: int) -> tuple[CaseLetter, Path]:
    permissions.require(user, Action.STAFF_VIEW)
    case = _case(session, case_id)
    letter = session.get(CaseLetter, letter_id)
    if letter is None or letter.case_id != case.id:
        raise NotFound(str(letter_id))
    return letter, _file(letter.pdf_path)


def send_case_letter(mailer: Mailer, factory: sessionmaker[Session], clock: Clock, letter_id: int) -> str | None:
    """Email a case letter to the customer in the letter's language (the outbox's sender
    for ``email.case_letter``); marks it emailed."""
    with transaction(factory) as session:
        letter = session.get(CaseLetter, letter_id)
        if letter is None:
            return None
        case = session.get(ServiceCase, letter.case_id)
        assert case is not None
        facts = _facts(session, case)
        to = facts.customer.email if facts.customer else None
        if not to:
            return None
        message = mailer.build(
            to, letter.language, "case_letter", letter=letter, f=facts, url=mailer.link(f"/my/cases/{case.id}")
        )
    mailer.send(message)
    with transaction(factory) as session:
        found = session.get(CaseLetter, letter_id)
        if found is not None:
            found.emailed = True
    return to


# --- The account page's panel -------------------------------------------------------------


@dataclass(frozen=True)
class Panel:
    account: Account
    rows: list[Row]
    can_open: bool


def account_panel(session: Session, user: User, number: str, today: date) -> Panel:
    permissions.require(user, Action.STAFF_VIEW)
    account = _account_by_number(session, number)
    if account is None:
        raise NotFound(number)
    found = list(
        session.scalars(
            select(ServiceCase).where(ServiceCase.account_id == account.id).order_by(ServiceCase.id.desc()).limit(50)
        )
    )
    recurring = cases.recurring_accounts(session, [account.id], today)
    names = _emails(session, {c.assigned_to_id for c in found})
    rows = [
        Row(
            c,
            account.number,
            names.get(c.assigned_to_id) if c.assigned_to_id else None,
            cases.age_days(c, today),
            cases.overdue(c, today),
            cases.resolved_late(c),
            cases.marked_recurring(c, recurring, today),
        )
        for c in found
    ]
    return Panel(account, rows, permissions.can(user.role, Action.CASES_OPEN))


# --- The resident's side ------------------------------------------------------------------


def _mine(session: Session, user: User) -> list[int]:
    return list(session.scalars(select(UserAccountLink.account_id).where(UserAccountLink.user_id == user.id)))


def _my_case(session: Session, user: User, case_id: int | str, lock: bool = False) -> ServiceCase:
    """A case on one of ``user``'s linked accounts, or ``NotFound`` (a 404)."""
    case = _case(session, case_id, lock=lock)
    if case.account_id not in _mine(session, user):
        raise NotFound(str(case_id))
    return case


@dataclass(frozen=True)
class MyCase:
    case: ServiceCase
    account_number: str
    bill_number: str | None


def my_cases(session: Session, user: User) -> list[MyCase]:
    """The cases on the resident's linked accounts, newest first."""
    ids = _mine(session, user)
    if not ids:
        return []
    rows = session.execute(
        select(ServiceCase, Account.number, Bill.number)
        .join(Account, Account.id == ServiceCase.account_id)
        .outerjoin(Bill, Bill.id == ServiceCase.bill_id)
        .where(ServiceCase.account_id.in_(ids))
        .order_by(ServiceCase.id.desc())
        .limit(200)
    ).all()
    return [MyCase(c, n, b) for c, n, b in rows]


@dataclass(frozen=True)
class MyCasePage:
    case: ServiceCase
    account: Account
    bill: Bill | None
    dispute: Dispute | None
    notes: list[CaseNote]
    attachments: list[CaseAttachment]
    letters: list[CaseLetter]
    #: The resident opened it: the description is theirs to see.
    theirs: bool
    staff_ids: set[int]


def my_case(session: Session, user: User, case_id: int | str) -> MyCasePage:
    """One case for the resident: its status, public notes, shared files and letters."""
    case = _my_case(session, user, case_id)
    account = session.get(Account, case.account_id)
    assert account is not None
    notes = list(
        session.scalars(
            select(CaseNote).where(CaseNote.case_id == case.id, CaseNote.public.is_(True)).order_by(CaseNote.id)
        )
    )
    files = [
        f
        for f in session.scalars(
            select(CaseAttachment).where(CaseAttachment.case_id == case.id).order_by(CaseAttachment.id)
        )
        if cases.attachment_shared(f)
    ]
    letters = list(session.scalars(select(CaseLetter).where(CaseLetter.case_id == case.id).order_by(CaseLetter.id)))
    authors = {n.author_id for n in notes if n.author_id}
    staff = set(session.scalars(select(User.id).where(User.id.in_(authors or {-1}), User.role != "customer")))
    return MyCasePage(
        case,
        account,
        session.get(Bill, case.bill_id) if case.bill_id else None,
        cases.dispute_of(session, case),
        notes,
        files,
        letters,
        case.opened_by_user_id == user.id,
        staff,
    )


def my_message(session: Session, user: User, case_id: int | str, values: dict[str, str], now: datetime) -> CaseNote:
    """The resident adds a message to their case (a public note)."""
    case = _my_case(session, user, case_id, lock=True)
    return cases.add_note(session, case, user, values.get("body", ""), True, now)


def my_letter_file(session: Session, user: User, case_id: int | str, letter_id: int) -> tuple[CaseLetter, Path]:
    case = _my_case(session, user, case_id)
    letter = session.get(CaseLetter, letter_id)
    if letter is None or letter.case_id != case.id:
        raise NotFound(str(letter_id))
    return letter, _file(letter.pdf_path)


def my_attachment_file(
    session: Session, user: User, case_id: int | str, attachment_id: int
) -> tuple[CaseAttachment, Path]:
    """A shared attachment of the resident's case (an internal one is a 404)."""
    case = _my_case(session, user, case_id)
    item = session.get(CaseAttachment, attachment_id)
    if item is None or item.case_id != case.id or not cases.attachment_shared(item):
        raise NotFound(str(attachment_id))
    return item, _file(item.path)


@dataclass(frozen=True)
class ResidentNew:
    accounts: list[Account]
    account: Account | None
    bill: Bill | None
    #: Recent bills of each linked account (account number, bill), to dispute one from the form.
    bills: list[tuple[str, Bill]] = field(default_factory=list)


def resident_new(session: Session, user: User, account_number: str = "", bill_number: str = "") -> ResidentNew:
    """The resident's form: their linked accounts; the bill when disputing one of theirs."""
    mine = accounts.accounts_for_user(session, user)
    account = next((a for a in mine if a.number == account_number), None)
    if account_number and account is None:
        raise NotFound(account_number)
    bill = _bill_by_number(session, account.id, bill_number) if account and bill_number else None
    if bill_number and bill is None:
        raise NotFound(bill_number)
    recent = [(a.number, b) for a in mine for b in _bills(session, a.id)[:6]] if bill is None else []
    return ResidentNew(mine, account if account else (mine[0] if len(mine) == 1 else None), bill, recent)


def open_by_resident(
    session: Session,
    user: User,
    values: dict[str, str],
    today: date,
    now: datetime,
    remote_addr: str | None = None,
) -> ServiceCase:
    """The resident opens an inquiry, or a dispute of a bill, on one of their own linked
    accounts (``NotFound`` for anyone else's); a dispute is the dispute the delinquency
    rules honour (no late fee on its amount, no shutoff) until it is decided."""
    values = dict(values)
    chosen = (values.get("dispute_bill") or "").strip()
    if values.get("kind") == "dispute" and chosen and not values.get("bill"):
        # Disputed from the general form: the bill names its account (one of theirs, or a 404).
        found = session.scalar(
            select(Account.number)
            .join(Bill, Bill.account_id == Account.id)
            .join(UserAccountLink, UserAccountLink.account_id == Account.id)
            .where(Bill.number == chosen, UserAccountLink.user_id == user.id)
        )
        if found is None:
            raise NotFound(chosen)
        values.update(account=found, bill=chosen)
    number = (values.get("account") or "").strip()
    account = accounts.account_for_user(session, user, number) if number else None
    if account is None:
        if number:
            raise NotFound(number)
        raise FieldErrors({"account": InvalidInput(_NO_ACCOUNT, "account")})
    bill_number = (values.get("bill") or "").strip()
    bill = _bill_by_number(session, account.id, bill_number) if bill_number else None
    if bill_number and bill is None:
        raise NotFound(bill_number)
    already = bill is not None and disputes.open_on_bill(session, bill.id)
    opening = cases.check_resident(values, bill, already)
    session.get(Account, account.id, with_for_update=True)
    return cases.open_case(
        session, account, opening, today, now, _closed(session, today), resident=user, remote_addr=remote_addr
    )


_NO_ACCOUNT = N_("Choose the account this is about.")


def recent_resident_cases(session: Session, user: User, limit: int = 3) -> list[MyCase]:
    """The resident's open cases for the dashboard."""
    return [c for c in my_cases(session, user) if c.case.status in cases.OPEN_STATUSES][:limit]
