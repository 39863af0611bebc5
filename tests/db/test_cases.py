"""Cases (``billing_core/cases.py``, ``services/cases.py``) on both databases: SLA due dates
by type on the office calendar, the list's breach filter and recurring mark, working a
case, attachments' types, size and who may fetch them, a letter in the customer's language,
a dispute case and the shutoff gate, and a resident seeing only their own cases."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from portal.adapters.database import transaction
from portal.billing_core import cases, disputes, holidays, users
from portal.billing_core.errors import FieldErrors, NotAllowed, NotFound
from portal.billing_core.models import (
    Account,
    AgencyClosure,
    AuditEvent,
    CaseLetter,
    Customer,
    Dispute,
    EmailOutbox,
    ServiceCase,
    User,
    UserAccountLink,
)
from portal.emails import Mailer
from portal.services import cases as service
from portal.services import collections_policy
from portal.settings import Settings
from portal.templating import make_templates

from .factories import district
from .test_collections_policy import NOW as GATE_NOW
from .test_collections_policy import ON as GATE_ON
from .test_collections_policy import _delinquent

# Wednesday 2026-11-25: Thanksgiving (Thursday) and the day after are closures.
TODAY = date(2026, 11, 25)
NOW = datetime(2026, 11, 25, 17, tzinfo=UTC)


def people(session: Session) -> dict[str, User]:
    return {
        role: users.create_user(session, f"{role}@cases.example", "a long password", role, now=NOW)
        for role in ("csr", "specialist", "supervisor", "cashier")
    }


def form(account: Account, **changes: str) -> dict[str, str]:
    values = {
        "kind": "complaint",
        "account": account.number,
        "channel": "phone",
        "subject": "Brown water",
        "description": "Brown water from the kitchen tap since Monday.",
    }
    return {**values, **changes}


def test_sla_due_dates_by_type_on_the_office_calendar() -> None:
    # Opened Wednesday before Thanksgiving: Thursday and Friday are closed.
    expect = {
        "inquiry": date(2026, 12, 2),  # Mon 30, Tue 1, Wed 2
        "complaint": date(2026, 12, 11),
        "high_bill": date(2026, 12, 11),
        "appeal": date(2026, 12, 18),
        "dispute": date(2027, 1, 12),  # Christmas and New Year's Day skipped too
        "claim": date(2027, 1, 12),
    }
    closed = holidays.around(TODAY)
    assert {k: cases.due_on(k, TODAY, closed) for k in cases.KINDS} == expect
    assert cases.add_business_days(date(2026, 12, 4), 1) == date(2026, 12, 7)  # Friday -> Monday


def test_staff_open_work_and_list_cases(session: Session) -> None:
    a, b = district(session, 2)
    staff = people(session)
    session.add(AgencyClosure(day=date(2026, 11, 30), name="Flood"))
    session.flush()
    # The whole form is checked at once; nothing is written.
    with pytest.raises(FieldErrors) as refused:
        service.open_by_staff(
            session,
            staff["csr"],
            {"kind": "loan", "account": "nope", "channel": "fax", "subject": "", "description": "", "assignee": "x"},
            TODAY,
            NOW,
        )
    assert set(refused.value.errors) == {"kind", "account", "channel", "subject", "description", "assignee"}
    with pytest.raises(FieldErrors) as refused:
        service.open_by_staff(session, staff["csr"], form(a, kind="dispute", amount="5.00"), TODAY, NOW)
    assert set(refused.value.errors) == {"bill"}
    assert session.scalar(select(func.count()).select_from(ServiceCase)) == 0

    inquiry = service.open_by_staff(
        session, staff["csr"], form(a, kind="inquiry", assignee=str(staff["specialist"].id)), TODAY, NOW
    )
    assert inquiry.number == f"C-{inquiry.id:06d}"
    assert inquiry.due_on == date(2026, 12, 3)  # the agency's closure on Monday the 30th counts too
    # An older complaint on the same account (overdue, unassigned) and a new one.
    early = service.open_by_staff(session, staff["csr"], form(a), date(2026, 10, 1), NOW - timedelta(days=55))
    service.open_by_staff(session, staff["csr"], form(a, subject="Again"), TODAY, NOW)
    other = service.open_by_staff(session, staff["cashier"], form(b, kind="claim", amount="120.00"), TODAY, NOW)
    assert (other.amount_cents, other.due_on) == (12_000, date(2027, 1, 13))

    page = service.listing(session, staff["supervisor"], {}, TODAY)
    assert [r.case.id for r in page.rows][0] == early.id  # overdue first
    by_id = {r.case.id: r for r in page.rows}
    assert by_id[early.id].overdue and by_id[early.id].age_days == 55
    assert by_id[inquiry.id].recurring and not by_id[other.id].recurring  # a has 3 cases in 12 months
    assert page.counts == {"overdue": 1, "recurring": 3}
    assert [r.case.id for r in service.listing(session, staff["csr"], {"breached": "1"}, TODAY).rows] == [early.id]
    mine = service.listing(session, staff["specialist"], {"assignee": "me"}, TODAY)
    assert [r.case.id for r in mine.rows] == [inquiry.id]
    assert [r.case.id for r in service.listing(session, staff["csr"], {"kind": "claim"}, TODAY).rows] == [other.id]
    counts = {c.user_id: (c.open, c.overdue) for c in service.open_cases_by_assignee(session, TODAY)}
    assert counts == {None: (3, 1), staff["specialist"].id: (1, 0)}

    # Working it: the cashier may open cases but not work them.
    with pytest.raises(NotAllowed):
        service.add_note(session, staff["cashier"], inquiry.id, {"body": "x"}, NOW)
    service.add_note(session, staff["specialist"], inquiry.id, {"body": "Called back, no answer"}, NOW)
    service.add_note(session, staff["specialist"], inquiry.id, {"body": "We will test the meter.", "public": "1"}, NOW)
    service.reassign(session, staff["specialist"], inquiry.id, {"assignee": str(staff["csr"].id)})
    with pytest.raises(FieldErrors):
        service.reassign(session, staff["specialist"], inquiry.id, {"assignee": str(staff["cashier"].id)})
    service.change_status(session, staff["csr"], inquiry.id, "pending")
    with pytest.raises(FieldErrors):
        service.change_status(session, staff["csr"], inquiry.id, "closed")  # resolve first
    with pytest.raises(FieldErrors) as refused:
        service.resolve(session, staff["csr"], inquiry.id, {"resolution": " "}, NOW)
    assert set(refused.value.errors) == {"resolution"} and inquiry.status == "pending"
    service.resolve(session, staff["csr"], inquiry.id, {"resolution": "Meter tested: accurate."}, NOW)
    service.change_status(session, staff["csr"], inquiry.id, "closed")
    view = service.case_page(session, staff["supervisor"], inquiry.id, TODAY)
    assert [n.public for n in view.notes] == [False, True] and view.case.status == "closed"
    actions = sorted(
        session.scalars(
            select(AuditEvent.action).where(
                AuditEvent.entity_type == "service_case", AuditEvent.entity_id == str(inquiry.id)
            )
        )
    )
    assert actions == [
        "case.note_added",
        "case.note_added",
        "case.opened",
        "case.reassigned",
        "case.resolved",
        "case.status_changed",
        "case.status_changed",
    ]


def _settings(tmp_path: Path) -> Settings:
    return dataclasses.replace(Settings(secret_key="x"), files_dir=str(tmp_path), agency_name="Demo Water District")


PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


def _resident(session: Session, account: Account, email: str) -> User:
    user = User(email=email, role="customer")
    session.add(user)
    session.flush()
    session.add(UserAccountLink(user_id=user.id, account_id=account.id))
    session.flush()
    return user


def test_attachments_types_size_and_who_may_fetch_them(session: Session, tmp_path: Path) -> None:
    a, b = district(session, 2)
    staff = people(session)
    settings = _settings(tmp_path)
    case = service.open_by_staff(session, staff["csr"], form(a), TODAY, NOW)
    for name, data, says in [
        ("virus.exe", b"MZ...", "Only PDF"),
        ("photo.png", b"GIF89a-not-a-png", "not what its name says"),
        ("notes.txt", b"\xff\xfe\x00bad", "not what its name says"),
        ("big.pdf", b"%PDF-" + b"0" * cases.MAX_ATTACHMENT_BYTES, "larger than 10 MB"),
        ("empty.pdf", b"", "empty"),
    ]:
        with pytest.raises(FieldErrors, match=says):
            service.attach(session, staff["csr"], settings, case.id, name, data, False, NOW)
    assert not (tmp_path / "cases").exists() or list((tmp_path / "cases").rglob("*.*")) == []
    internal = service.attach(session, staff["csr"], settings, case.id, "../../meter photo.png", PNG, False, NOW)
    shared = service.attach(session, staff["csr"], settings, case.id, "reading.txt", b"Read 1234\n", True, NOW)
    assert internal.filename == "meter_photo.png" and Path(internal.path).parent.parent == tmp_path / "cases" / str(
        case.id
    )
    item, path = service.attachment_file(session, staff["cashier"], case.id, internal.id)
    assert path.read_bytes() == PNG and item.content_type == "image/png"
    mine, stranger = _resident(session, a, "mine@cases.example"), _resident(session, b, "other@cases.example")
    assert service.my_attachment_file(session, mine, case.id, shared.id)[1].read_bytes() == b"Read 1234\n"
    with pytest.raises(NotFound):
        service.my_attachment_file(session, mine, case.id, internal.id)  # staff only
    with pytest.raises(NotFound):
        service.my_attachment_file(session, stranger, case.id, shared.id)
    with pytest.raises(NotAllowed):
        service.attach(session, staff["cashier"], settings, case.id, "x.txt", b"x", False, NOW)


def test_a_letter_in_spanish_for_a_spanish_customer(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    with sessions() as session, session.begin():
        (a,) = district(session, 1)
        customer = session.get(Customer, a.customer_id)
        assert customer is not None
        customer.preferred_language = "es"
        staff = people(session)
        settings = _settings(tmp_path)
        env = make_templates().env
        case = service.open_by_staff(
            session, staff["csr"], form(a, kind="high_bill", subject="Factura alta"), TODAY, NOW
        )
        case_number = case.number
        service.resolve(session, staff["specialist"], case.id, {"resolution": "Encontramos una fuga."}, NOW)
        with pytest.raises(FieldErrors):
            service.letter_draft(session, staff["specialist"], env, settings, case.id, "nope")
        language, body = service.letter_draft(
            session, staff["specialist"], env, settings, case.id, "high_bill_findings"
        )
        assert language == "es" and "Estimado/a Customer 1" in body and "Encontramos una fuga." in body
        edited = body + "\nPosdata: gracias."
        with pytest.raises(FieldErrors) as refused:
            service.letter_html(
                session, staff["specialist"], env, settings, case.id, {"template": "general", "body": ""}, TODAY
            )
        assert set(refused.value.errors) == {"body"}
        values = {"template": "high_bill_findings", "body": edited}
        html = service.letter_html(session, staff["specialist"], env, settings, case.id, values, TODAY)
        assert '<html lang="es">' in html and "Posdata: gracias." in html and "Caso:" in html
        stored = service.store_letter(session, staff["specialist"], settings, case.id, values, b"%PDF-1.7 letter", NOW)
        letter = session.get(CaseLetter, stored.letter.id)
        assert letter is not None and (letter.language, letter.body, letter.template) == (
            "es",
            edited.strip(),
            "high_bill_findings",
        )
        assert Path(letter.pdf_path or "").read_bytes() == b"%PDF-1.7 letter"
        email = session.get(EmailOutbox, stored.outbox_id)
        assert email is not None and (email.kind, email.recipient) == ("email.case_letter", "c1@example.net")
        resident = _resident(session, a, "es@cases.example")
        assert service.my_letter_file(session, resident, case.id, letter.id)[0].id == letter.id
        letter_id = letter.id
    transport = Sent()
    mailer = Mailer(settings, transport)
    assert service.send_case_letter(mailer, sessions, lambda: NOW, letter_id) == "c1@example.net"
    (message,) = transport.messages
    assert (
        message["Subject"] == f"Una carta sobre su caso {case_number}" and "Posdata: gracias." in message.get_content()
    )
    with sessions() as session:
        assert session.get(CaseLetter, letter_id).emailed  # type: ignore[union-attr]


class Sent:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    def send(self, *messages: EmailMessage) -> None:
        self.messages.extend(messages)


def test_a_dispute_case_is_the_dispute_the_shutoff_gate_honours(sessions: sessionmaker[Session]) -> None:
    number, account_id, bill_id, gate_people = _delinquent(sessions)
    with transaction(sessions) as session:
        staff = people(session)
        values = {
            "kind": "dispute",
            "account": number,
            "bill": f"G{account_id:03d}001",
            "channel": "counter",
            "subject": "Read too high",
            "description": "The meter was read twice.",
            "amount": "40.00",
        }
        with pytest.raises(FieldErrors) as refused:
            service.open_by_staff(session, staff["csr"], {**values, "amount": "500.00"}, GATE_ON, GATE_NOW)
        assert set(refused.value.errors) == {"amount"}  # more than the bill
        case = service.open_by_staff(session, staff["csr"], values, GATE_ON, GATE_NOW)
        case_id = case.id
        dispute = session.scalar(select(Dispute).where(Dispute.case_id == case.id))
        assert dispute is not None and (dispute.amount_cents, dispute.bill_id, dispute.status) == (
            4_000,
            bill_id,
            "open",
        )
        assert disputes.disputed_cents(session, [account_id]) == {account_id: 4_000}  # kept out of late fees
        with pytest.raises(FieldErrors):  # decided on its case, not in the register
            disputes.decide(session, dispute, gate_people["supervisor"], "denied", "no", GATE_NOW)
    with pytest.raises(collections_policy.ShutoffRefused) as refused_order:
        collections_policy.issue_shutoff_order(sessions, gate_people["supervisor"], number, GATE_ON, GATE_NOW)
    assert [r.rule for r in refused_order.value.refusals] == ["pending_dispute"]
    with transaction(sessions) as session:
        with pytest.raises(NotAllowed):  # only whoever decides disputes resolves a dispute's case
            service.resolve(session, staff["csr"], case_id, {"resolution": "x", "decision": "denied"}, GATE_NOW)
    with transaction(sessions) as session, pytest.raises(FieldErrors) as refused:
        service.resolve(session, gate_people["supervisor"], case_id, {"resolution": "Read confirmed."}, GATE_NOW)
    assert set(refused.value.errors) == {"decision"}
    with transaction(sessions) as session:
        service.resolve(
            session,
            gate_people["supervisor"],
            case_id,
            {"resolution": "Read confirmed.", "decision": "denied"},
            GATE_NOW,
        )
        found = session.scalar(select(Dispute).where(Dispute.case_id == case_id))
        assert found is not None and (found.status, found.decision) == ("denied", "Read confirmed.")
        with pytest.raises(FieldErrors):  # a decided dispute's case is not reopened
            service.change_status(session, gate_people["supervisor"], case_id, "open")
    done = collections_policy.issue_shutoff_order(sessions, gate_people["supervisor"], number, GATE_ON, GATE_NOW)
    assert done.order_id is not None


def test_a_resident_opens_and_follows_only_their_own_cases(session: Session) -> None:
    from .test_disputes import billed

    (a, bill), (b, other_bill) = billed(session)
    staff = people(session)
    mine, stranger = _resident(session, a, "mine@cases.example"), _resident(session, b, "other@cases.example")
    with pytest.raises(NotFound):  # someone else's account
        service.open_by_resident(session, mine, {"kind": "inquiry", "account": b.number, "reason": "x"}, TODAY, NOW)
    with pytest.raises(NotFound):  # a bill not on this account
        service.open_by_resident(
            session, mine, {"kind": "dispute", "account": a.number, "bill": "B-1", "reason": "x"}, TODAY, NOW
        )
    with pytest.raises(NotFound):  # disputed from the general form: someone else's bill
        service.open_by_resident(session, mine, {"kind": "dispute", "dispute_bill": "B-1", "reason": "x"}, TODAY, NOW)
    with pytest.raises(FieldErrors) as refused:
        service.open_by_resident(session, mine, {"kind": "dispute", "account": a.number, "reason": ""}, TODAY, NOW)
    assert set(refused.value.errors) == {"kind", "reason"}
    question = service.open_by_resident(
        session, mine, {"kind": "inquiry", "account": a.number, "reason": "Why did my rate change?"}, TODAY, NOW
    )
    assert (question.channel, question.subject, question.opened_by_user_id, question.due_on) == (
        "web",
        "Why did my rate change?",
        mine.id,
        date(2026, 12, 2),
    )
    dispute = service.open_by_resident(
        session,
        mine,
        {"kind": "dispute", "account": b.number, "dispute_bill": "B-0", "reason": "Read wrong"},
        TODAY,
        NOW,
    )
    assert (dispute.account_id, dispute.bill_id) == (a.id, bill.id)  # the bill names the account
    assert dispute.amount_cents == bill.total_due_cents and disputes.disputed_cents(session, [a.id]) == {a.id: 8_000}
    with pytest.raises(FieldErrors, match="already disputed"):
        service.open_by_resident(
            session, mine, {"kind": "dispute", "account": a.number, "bill": "B-0", "reason": "Again"}, TODAY, NOW
        )
    service.add_note(session, staff["csr"], question.id, {"body": "Internal: check the rate table"}, NOW)
    service.add_note(session, staff["csr"], question.id, {"body": "The new rates began July 1.", "public": "1"}, NOW)
    service.my_message(session, mine, question.id, {"body": "Thank you"}, NOW)
    page = service.my_case(session, mine, question.id)
    assert [n.body for n in page.notes] == ["The new rates began July 1.", "Thank you"] and page.theirs
    assert page.staff_ids == {staff["csr"].id}
    assert {c.case.id for c in service.my_cases(session, mine)} == {question.id, dispute.id}
    assert service.my_cases(session, stranger) == []
    for call in (
        lambda: service.my_case(session, stranger, question.id),
        lambda: service.my_message(session, stranger, question.id, {"body": "hi"}, NOW),
        lambda: service.my_case(session, mine, 999_999),
    ):
        with pytest.raises(NotFound):
            call()
    assert other_bill.id != bill.id
