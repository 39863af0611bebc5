"""Delivering a posted run: who gets paper and who gets email, the print file (real
Chromium, real PDF joining) and the emails (a real SMTP server)."""

from dataclasses import replace
from datetime import date
from pathlib import Path

import pikepdf
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from portal.adapters.clock import system_clock
from portal.billing_core import bill_runs, delivery
from portal.billing_core.errors import InvalidInput
from portal.billing_core.models import Account, Bill, BillDelivery, Customer, Premise, PrintFile
from portal.emails import Mailer
from portal.jobs import dispatch_delivery
from portal.services import delivery as portal_delivery
from portal.settings import Settings

from ..smtp import smtp_server
from .test_bill_runs import office


def posted_run(session: Session, accounts: int = 5):  # type: ignore[no-untyped-def]
    accts, supervisor, specialist = office(session, accounts)
    # Account 1 and 2 are paperless; account 2 has no email, so it still gets paper.
    accts[0].paperless = True
    accts[1].paperless = True
    session.get(Customer, accts[1].customer_id).email = None
    # ZIP codes out of account order, to see the print file sorted by them.
    for account, zip_code in zip(accts, ["91710", "91708", "91762", "91708", "91709"], strict=False):
        session.get(Premise, account.premise_id).zip = zip_code
    run = bill_runs.create_run(session, "C1", date(2026, 10, 5), date(2026, 11, 5), actor=specialist)
    bill_runs.calculate(session, run, now=system_clock())
    bill_runs.approve(session, run, supervisor, now=system_clock())
    bill_runs.post(session, run, supervisor, now=system_clock())
    return accts, run, supervisor


def test_paper_in_zip_order_and_email_for_paperless(session: Session) -> None:
    accts, run, supervisor = posted_run(session)
    pf = delivery.start(session, run, supervisor, part_size=2, now=system_clock())
    assert (pf.bills_total, pf.emails_total, pf.parts_total, pf.status) == (4, 1, 2, "rendering")
    mailed = session.execute(
        select(BillDelivery.sequence, Premise.zip, Account.number)
        .join(Bill, Bill.id == BillDelivery.bill_id)
        .join(Account, Account.id == Bill.account_id)
        .join(Premise, Premise.id == Account.premise_id)
        .where(BillDelivery.channel == "mail")
        .order_by(BillDelivery.sequence)
    ).all()
    assert [z for _s, z, _n in mailed] == ["91708", "91708", "91709", "91762"]
    assert [n for _s, z, n in mailed][:2] == sorted([accts[1].number, accts[3].number])
    emailed = session.scalars(select(BillDelivery).where(BillDelivery.channel == "email")).all()
    assert [d.email_to for d in emailed] == ["c1@example.net"]
    assert [len(delivery.part_bill_ids(session, pf, p)) for p in range(3)] == [2, 2, 0]
    extract = delivery.mail_extract(session, pf)
    assert [row[0] for row in extract] == ["1", "2", "3", "4"] and extract[0][8] == "91708"
    with pytest.raises(InvalidInput, match="already delivered"):
        delivery.start(session, run, supervisor, now=system_clock())


def test_only_a_posted_run_is_delivered(session: Session) -> None:
    accts, supervisor, specialist = office(session, 1)
    run = bill_runs.create_run(session, "C1", date(2026, 10, 5), date(2026, 11, 5), actor=specialist)
    bill_runs.calculate(session, run, now=system_clock())
    with pytest.raises(InvalidInput, match="once the run is posted"):
        delivery.start(session, run, supervisor, now=system_clock())
    assert session.scalar(select(PrintFile)) is None


def test_the_print_file_and_the_emails(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    with sessions() as session, session.begin():
        _accts, run, supervisor = posted_run(session)
        pf_id = delivery.start(session, run, supervisor, part_size=3, now=system_clock()).id
    url = sessions.kw["bind"].url.render_as_string(hide_password=False)
    with smtp_server() as (port, inbox):
        settings = replace(Settings(), database_url=url, files_dir=str(tmp_path), smtp_host="127.0.0.1", smtp_port=port)
        jobs = dispatch_delivery(settings, pf_id, in_process=True)
        assert jobs == 3  # two slices of the print file, one batch of emails
        assert len(inbox) == 1
        message = inbox[0]
        assert message["To"] == "c1@example.net" and "bill is ready" in message["Subject"]
        body = message.get_payload()
        assert "/my/accounts/" in body and "Amount due: $" in body
        # A batch sent again sends nothing: each email is marked sent as it goes.
        with sessions() as session:
            pf = session.get(PrintFile, pf_id)
            ids = [d.bill_id for d in session.scalars(select(BillDelivery).where(BillDelivery.channel == "email"))]
        assert portal_delivery.send_emails(Mailer(settings), sessions, system_clock, pf_id, ids) == 0
        assert len(inbox) == 1
    with sessions() as session:
        pf = session.get(PrintFile, pf_id)
        assert pf.status == "ready" and pf.finished_at is not None
        with pikepdf.open(pf.pdf_path) as pdf:
            assert len(pdf.pages) >= pf.bills_total == 4
        lines = Path(pf.csv_path).read_text().splitlines()
        assert lines[0].startswith("sequence,account_number") and len(lines) == 1 + 4
        assert all(d.sent_at for d in session.scalars(select(BillDelivery)))
        assert delivery.progress(session, pf_run(session, pf)).done
    # A slice job retried after the file is joined does nothing.
    assert portal_delivery._prepare_part(settings, sessions, pf_id, 0) is None


def pf_run(session: Session, pf: PrintFile):  # type: ignore[no-untyped-def]
    from portal.billing_core.models import BillRun

    return session.get(BillRun, pf.bill_run_id)
