"""Collection notices on both databases: the customer's notice with its figures fixed, the
Occupant's copy for a landlord's account, the customer's language (their own, else their
sign-in's), once per action, the email, the letter in English and Spanish stating what the
Act requires, and the day's batch in ZIP order."""

from __future__ import annotations

from datetime import UTC, date, datetime
from email.message import EmailMessage

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from portal.billing_core import notices
from portal.billing_core.errors import InvalidInput, NotAllowed
from portal.billing_core.models import (
    Account,
    AuditEvent,
    CollectionAction,
    EmailOutbox,
    Notice,
    NoticeBatch,
    User,
    UserAccountLink,
)
from portal.emails import Mailer
from portal.services import notices as service
from portal.settings import Settings
from portal.templating import make_templates

from .factories import district

ON = date(2026, 3, 2)  # a Monday
NOW = datetime(2026, 3, 2, 16, 0, tzinfo=UTC)
DEADLINE = date(2026, 3, 13)
SHUTOFF = date(2026, 3, 16)


def landlord(account: Account) -> None:
    account.customer.mailing_line1 = "9 Harbor Blvd, Suite 200"
    account.customer.mailing_city = "Irvine"
    account.customer.mailing_state = "CA"
    account.customer.mailing_zip = "92614"


def action(session: Session, account: Account, step: str = "final_notice") -> CollectionAction:
    row = CollectionAction(account_id=account.id, episode="bill:1", step=step, status="posted", due_on=ON)
    session.add(row)
    session.flush()
    return row


def test_the_customers_notice_keeps_its_figures_and_is_emailed_once(session: Session) -> None:
    account, rented = district(session, 2)
    with pytest.raises(InvalidInput):
        notices.issue(session, account, "shutoff", ON, 1, None, None, None, NOW)
    with pytest.raises(InvalidInput):
        notices.issue(session, account, "final", ON, -1, None, None, None, NOW)
    assert session.scalar(select(func.count()).select_from(Notice)) == 0
    (mine,) = notices.issue(session, account, "final", ON, 12_345, DEADLINE, SHUTOFF, None, NOW)
    assert (mine.addressee, mine.name, mine.language) == ("customer", "Customer 1", "en")
    assert (mine.address_line1, mine.zip) == ("101 Oak St", "91710")  # no mailing address: the premise
    assert (mine.amount_cents, mine.deadline_on, mine.shutoff_on, mine.issued_on) == (12_345, DEADLINE, SHUTOFF, ON)
    email = session.get(EmailOutbox, mine.email_outbox_id)
    assert email is not None and email.kind == "email.notice" and email.args == {"notice_id": mine.id}
    assert (email.ref_type, email.ref_id) == ("notice", mine.id)
    assert session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "notice.issued")) == 1
    # No email address anywhere: no email.
    account.customer.email = None
    (again,) = notices.issue(session, account, "past_due", ON, 100, DEADLINE, None, None, NOW)
    assert again.email_outbox_id is None
    # One action issues its notices once (both copies, one email).
    landlord(rented)
    step = action(session, rented)
    first = notices.issue(session, rented, "final", ON, 5_000, DEADLINE, SHUTOFF, step.id, NOW)
    second = notices.issue(session, rented, "final", ON, 5_000, DEADLINE, SHUTOFF, step.id, NOW)
    assert [n.id for n in first] == [n.id for n in second] and len(first) == 2
    assert session.scalar(select(func.count()).select_from(Notice).where(Notice.account_id == rented.id)) == 2
    assert session.scalar(select(func.count()).select_from(EmailOutbox)) == 2


def test_the_occupants_copy_and_the_customers_language(session: Session) -> None:
    owner, own_home, spanish, signed_in, english = district(session, 5)
    landlord(owner)
    own_home.customer.mailing_line1 = "102 OAK ST."  # the premise, written differently
    own_home.customer.mailing_zip = "91710"
    mine, occupant = notices.issue(session, owner, "final", ON, 9_000, DEADLINE, SHUTOFF, None, NOW)
    assert (mine.name, mine.address_line1, mine.zip) == ("Customer 1", "9 Harbor Blvd, Suite 200", "92614")
    assert (occupant.addressee, occupant.name, occupant.address_line1, occupant.zip) == (
        "occupant",
        "Occupant",
        "101 Oak St",
        "91710",
    )
    assert (occupant.amount_cents, occupant.deadline_on, occupant.shutoff_on) == (9_000, DEADLINE, SHUTOFF)
    assert occupant.email_outbox_id is None  # the occupant is written to, not emailed
    assert [
        n.addressee for n in notices.issue(session, own_home, "final", ON, 9_000, DEADLINE, SHUTOFF, None, NOW)
    ] == ["customer"]
    # The customer's language, else their sign-in's, else English.
    spanish.customer.preferred_language = "es"
    user = User(email="resident@example.net", role="customer", language="es")
    session.add(user)
    session.flush()
    session.add(UserAccountLink(user_id=user.id, account_id=signed_in.id))
    session.flush()
    assert notices.issue(session, spanish, "past_due", ON, 1, None, None, None, NOW)[0].language == "es"
    assert notices.issue(session, signed_in, "past_due", ON, 1, None, None, None, NOW)[0].language == "es"
    assert notices.issue(session, english, "past_due", ON, 1, None, None, None, NOW)[0].language == "en"
    signed_in.customer.email = None  # the sign-in's address is used instead
    assert notices.email_of(session, signed_in) == "resident@example.net"


ENV = make_templates().env


def _render(session: Session, notice: Notice) -> str:
    return service.letter_html(
        ENV, Settings(agency_name="Demo Water District"), service.documents_for(session, [notice])
    )


def test_the_shutoff_notice_states_what_the_act_requires_in_english_and_spanish(session: Session) -> None:
    english, spanish, rented = district(session, 3)
    spanish.customer.preferred_language = "es"
    spanish.premise.dwelling_units = 4
    (en,) = notices.issue(session, english, "final", ON, 12_345, DEADLINE, SHUTOFF, None, NOW)
    (es,) = notices.issue(session, spanish, "final", ON, 12_345, DEADLINE, SHUTOFF, None, NOW)
    html = _render(session, en)
    phone = notices.policy_on(session, ON).office_phone
    for words in (
        "$123.45",  # the amount
        "Pay this amount by March 13, 2026 to avoid the shutoff",  # the date that avoids shutoff
        "on or after March 16, 2026",
        "extension of time to pay",  # how to ask for an extension
        "payment plan that spreads the unpaid balance over up to 12 months",  # plans and alternatives
        "another payment schedule",
        "dispute the bill or appeal this notice",  # how to appeal or dispute
        phone,  # the office phone
        "primary care provider",
    ):
        assert words in html, words
    assert "tenant" not in html  # a single home: no tenants' rights
    html = _render(session, es)
    assert 'lang="es"' in html
    for words in (
        "$123.45",
        "13 de marzo de 2026",
        "16 de marzo de 2026",
        "prórroga",
        "plan de pagos",
        "apelar",
        phone,
        "inquilino",
    ):
        assert words in html, words
    # The Occupant's copy: in English and in Spanish, with the tenants' rights.
    landlord(rented)
    _mine, occupant = notices.issue(session, rented, "final", ON, 5_000, DEADLINE, SHUTOFF, None, NOW)
    html = _render(session, occupant)
    assert html.count("<article") == 2 and 'lang="en"' in html and 'lang="es"' in html
    assert "Occupant" in html and "Ocupante" in html
    assert "become a customer of the water system" in html and "hacerse cliente" in html


class Sent:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    def send(self, *messages: EmailMessage) -> None:
        self.messages.extend(messages)

    def batch(self):  # type: ignore[no-untyped-def]
        raise NotImplementedError


def test_the_email_is_in_the_customers_language(sessions: sessionmaker[Session]) -> None:
    with sessions() as session, session.begin():
        (account,) = district(session, 1)
        account.customer.preferred_language = "es"
        (notice,) = notices.issue(session, account, "final", ON, 7_000, DEADLINE, SHUTOFF, None, NOW)
        notice_id = notice.id
    transport = Sent()
    mailer = Mailer(Settings(agency_name="Demo Water District"), transport)
    assert service.send_notice(mailer, sessions, lambda: NOW, notice_id) == "c1@example.net"
    (message,) = transport.messages
    body = message.get_content()
    assert message["Subject"] == "Aviso final: su servicio de agua puede ser cortado"
    assert "$70.00" in body and "13 de marzo de 2026" in body and "16 de marzo de 2026" in body and "prórroga" in body


def test_a_days_batch_is_in_zip_order(session: Session) -> None:
    accounts = district(session, 4)
    for account, zip_code, street in zip(
        accounts,
        ("91710", "91708", "91710", "91709"),
        ("300 Elm St", "1 Pine St", "100 Ash St", "5 Fir St"),
        strict=True,
    ):
        account.premise.zip = zip_code
        account.premise.address_line1 = street
    for account in accounts[:3]:
        notices.issue(session, account, "final", ON, 5_000, DEADLINE, SHUTOFF, None, NOW)
    notices.issue(session, accounts[0], "past_due", ON, 5_000, DEADLINE, None, None, NOW)  # another kind
    clerk = User(email="spec@example.net", role="specialist")
    session.add(clerk)
    session.flush()
    batch = notices.prepare_batch(session, ON, "final", clerk, NOW)
    assert batch.notices_total == 3
    assert [(n.zip, n.address_line1) for n in notices.batch_notices(session, batch.id)] == [
        ("91708", "1 Pine St"),
        ("91710", "100 Ash St"),
        ("91710", "300 Elm St"),
    ]
    # A notice issued later that day joins the same batch, in its place.
    notices.issue(session, accounts[3], "final", ON, 5_000, DEADLINE, SHUTOFF, None, NOW)
    again = notices.prepare_batch(session, ON, "final", clerk, NOW)
    assert again.id == batch.id and again.notices_total == 4
    assert [n.zip for n in notices.batch_notices(session, batch.id)] == ["91708", "91709", "91710", "91710"]
    assert session.scalar(select(func.count()).select_from(NoticeBatch)) == 1
    with pytest.raises(InvalidInput):
        notices.prepare_batch(session, ON, "door_tag", clerk, NOW)  # none of that kind
    # Printing needs the permission; the page still shows the day.
    cashier = User(email="cash@example.net", role="cashier")
    session.add(cashier)
    session.flush()
    with pytest.raises(NotAllowed):
        service.prepare_batch(session, cashier, ENV, Settings(), ON, "final", NOW)
    listing = service.day(session, cashier, ON)
    assert not listing.can_print and [k.count for k in listing.kinds if k.kind == "final"] == [4]
