"""The bill-ready email is written like every other email (one mailer, one catalog), in
the customer's language: a Spanish-speaking customer reads it in Spanish, with Spanish
dates (Babel), and an English-speaking one in English."""

from dataclasses import replace
from datetime import date
from email.header import decode_header, make_header
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from portal.adapters.aio import run_to_end
from portal.adapters.clock import system_clock
from portal.billing_core import delivery
from portal.billing_core.models import Bill, Customer
from portal.emails import Mailer
from portal.jobs import dispatch_delivery
from portal.services import delivery as portal_delivery
from portal.settings import Settings

from ..smtp import smtp_server
from .test_delivery import posted_run


@pytest.mark.parametrize("inside_a_loop", [False, True], ids=["plain", "inside-a-running-loop"])
def test_a_spanish_speaking_customer_gets_the_bill_ready_email_in_spanish(
    sessions: sessionmaker[Session], tmp_path: Path, inside_a_loop: bool
) -> None:
    """Also from a thread that already runs an event loop (a browser test's Playwright, a web
    request): the in-process print jobs cannot start a second loop in that thread."""
    with sessions() as session, session.begin():
        accts, run, supervisor = posted_run(session)
        session.get(Customer, accts[0].customer_id).preferred_language = "es"
        session.flush()
        pf_id = delivery.start(session, run, supervisor, part_size=3, now=system_clock()).id
        bill = session.query(Bill).filter_by(account_id=accts[0].id, bill_run_id=run.id).one()
        total, due = bill.total_due_cents, bill.due_date
    url = sessions.kw["bind"].url.render_as_string(hide_password=False)
    with smtp_server() as (port, inbox):
        settings = replace(Settings(), database_url=url, files_dir=str(tmp_path), smtp_host="127.0.0.1", smtp_port=port)
        if inside_a_loop:

            async def from_a_loop() -> None:
                dispatch_delivery(settings, pf_id, in_process=True)

            run_to_end(from_a_loop)  # its own thread when this one runs a loop already (after e2e)
        else:
            dispatch_delivery(settings, pf_id, in_process=True)
    (message,) = inbox
    assert message["To"] == "c1@example.net"
    assert message["Content-Language"] == "es"
    assert str(make_header(decode_header(message["Subject"]))) == "Su factura de Demo Water District está lista"
    body = message.get_payload(decode=True).decode("utf-8")
    assert "Su nueva factura de la cuenta" in body and "está lista" in body
    assert "Véala y pague en línea:" in body
    assert "bill is ready" not in body and "Amount due" not in body
    months = ["enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto"]
    months += ["septiembre", "octubre", "noviembre", "diciembre"]
    spanish_date = f"{due.day} de {months[due.month - 1]} de {due.year}"
    dollars = f"${total // 100:,}.{total % 100:02d}"
    if total > 0:
        assert f"Monto a pagar: {dollars}, a más tardar el {spanish_date}." in body
    else:
        assert "No hay nada que pagar." in body


def test_the_bill_ready_email_in_each_language() -> None:
    mailer = Mailer(Settings())
    args = ("ana@example.net", "Ana", "000123", "B-1", 123456, date(2026, 11, 5))
    to, name, account, number, total, due = args
    spanish = portal_delivery.bill_email(mailer, to, name, "es", account, number, total, due)
    assert spanish["Subject"] == "Su factura de Demo Water District está lista"
    assert spanish["Content-Language"] == "es"
    body = spanish.get_content()
    assert body.startswith("Hola, Ana:\n")
    assert "Monto a pagar: $1,234.56, a más tardar el 5 de noviembre de 2026." in body
    assert "Recibe este correo electrónico en lugar de una factura en papel" in body
    english = portal_delivery.bill_email(mailer, to, name, None, account, number, total, due)
    assert english["Subject"] == "Your Demo Water District bill is ready"
    assert english["Content-Language"] == "en"
    assert "Amount due: $1,234.56, by November 5, 2026." in english.get_content()
