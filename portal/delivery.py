"""Delivering a posted run's bills: the print file and the paperless emails.

The billing core decides who gets paper and who gets email (``billing_core.delivery``);
this module does the work that needs a browser, a disk and a mail server. Both are
split into jobs: one per slice of the print file, one per batch of emails.
"""

from __future__ import annotations

import asyncio
import csv
import logging
import os
import smtplib
from contextlib import ExitStack
from datetime import date
from email.message import EmailMessage
from pathlib import Path

import pikepdf
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from . import documents
from .billing_core import accounts, delivery
from .billing_core.models import Account, Bill, BillDelivery, Customer, PrintFile, utcnow
from .billing_core.money import format_money
from .db import transaction
from .settings import Settings
from .templating import make_templates

log = logging.getLogger(__name__)
EMAIL_BATCH = 200

_env = None


def _template_env():  # type: ignore[no-untyped-def]
    global _env
    if _env is None:
        _env = make_templates().env
    return _env


def run_dir(settings: Settings, pf: PrintFile) -> Path:
    path = Path(settings.files_dir) / "print" / f"run-{pf.bill_run_id}-file-{pf.id}"
    path.mkdir(parents=True, exist_ok=True)
    return path


async def render_part(
    settings: Settings,
    factory: sessionmaker[Session],
    printer: documents.AsyncPrinter,
    print_file_id: int,
    part: int,
) -> bool:
    """Render one slice of a print file. Returns True when this slice completed the file.
    The database work runs in a thread; the browser works outside any transaction."""
    prepared = await asyncio.to_thread(_prepare_part, settings, factory, print_file_id, part)
    if prepared is None:
        return False
    html, path, bills = prepared
    _write_atomically(path, await printer.pdf(html))
    return await asyncio.to_thread(_store_part, factory, print_file_id, part, bills, path)


async def render_parts(settings: Settings, factory: sessionmaker[Session], print_file_id: int, parts, progress=None):  # type: ignore[no-untyped-def]
    """Every slice here, one browser for all of them (SQLite, tests, --in-process)."""
    printer = documents.AsyncPrinter(settings.chromium)
    try:
        for n, part in enumerate(parts, start=1):
            await render_part(settings, factory, printer, print_file_id, part)
            if progress:
                progress(n)
    finally:
        await printer.close()


def _prepare_part(
    settings: Settings, factory: sessionmaker[Session], print_file_id: int, part: int
) -> tuple[str, Path, int] | None:
    with transaction(factory) as session:
        pf = session.get(PrintFile, print_file_id)
        if pf is None or pf.status != "rendering":
            return None
        bill_ids = delivery.part_bill_ids(session, pf, part)
        html = documents.batch_html(_template_env(), settings, accounts.bill_documents(session, bill_ids))
        return html, run_dir(settings, pf) / f"part-{part:05d}.pdf", len(bill_ids)


def _store_part(factory: sessionmaker[Session], print_file_id: int, part: int, bills: int, path: Path) -> bool:
    with transaction(factory) as session:
        pf = session.get(PrintFile, print_file_id)
        assert pf is not None
        if not delivery.record_part(session, pf, part, bills, str(path)):
            return False
        final = path.parent / f"bills-run-{pf.bill_run_id}.pdf"
        extract = path.parent / f"mail-extract-run-{pf.bill_run_id}.csv"
        join_pdfs(delivery.part_paths(session, pf), final)
        write_extract(delivery.mail_extract(session, pf), extract)
        delivery.finish(session, pf, str(final), str(extract))
        return True


def join_pdfs(paths: list[str], target: Path) -> None:
    with ExitStack() as stack, pikepdf.new() as out:
        for path in paths:
            # A source stays open until the joined file is saved: its pages are copied then.
            out.pages.extend(stack.enter_context(pikepdf.open(path)).pages)
        tmp = target.with_suffix(".tmp")
        out.save(tmp)
    os.replace(tmp, target)


def write_extract(rows: list[tuple[str, ...]], target: Path) -> None:
    from .billing_core import csv_safe

    tmp = target.with_suffix(".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as f:
        writer = csv_safe.wrap(csv.writer(f))
        writer.writerow(delivery.EXTRACT_HEADER)
        writer.writerows(rows)
    os.replace(tmp, target)


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def send_emails(settings: Settings, factory: sessionmaker[Session], print_file_id: int, bill_ids: list[int]) -> int:
    """Email each paperless customer a link to their new bill. A bill whose email was sent
    is marked at once, so a batch run again sends only what is left."""
    with transaction(factory) as session:
        pf = session.get(PrintFile, print_file_id)
        if pf is None:
            return 0
        wanted = [d.bill_id for d in delivery.unsent_emails(session, pf, bill_ids)]
        rows = session.execute(
            select(
                BillDelivery.bill_id,
                BillDelivery.email_to,
                Customer.name,
                Account.number,
                Bill.number,
                Bill.total_due_cents,
                Bill.due_date,
            )
            .join(Bill, Bill.id == BillDelivery.bill_id)
            .join(Account, Account.id == Bill.account_id)
            .join(Customer, Customer.id == Account.customer_id)
            .where(BillDelivery.bill_id.in_(wanted))
            .order_by(BillDelivery.sequence)
        ).all()
    if not rows:
        return 0
    sent = 0
    with _smtp(settings) as smtp:
        for bill_id, to, name, account_number, bill_number, total, due in rows:
            smtp.send_message(bill_email(settings, to, name, account_number, bill_number, total, due))
            with transaction(factory) as session:
                session.execute(
                    BillDelivery.__table__.update()
                    .where(BillDelivery.bill_id == bill_id, BillDelivery.sent_at.is_(None))
                    .values(sent_at=utcnow())
                )
            sent += 1
    return sent


def bill_email(
    settings: Settings, to: str, name: str, account_number: str, bill_number: str, total: int, due: date
) -> EmailMessage:
    link = f"{settings.public_url.rstrip('/')}/my/accounts/{account_number}/bills/{bill_number}"
    msg = EmailMessage()
    msg["From"] = settings.smtp_from
    msg["To"] = to
    msg["Subject"] = f"Your {settings.agency_name} bill is ready"
    amount = (
        f"Amount due: {format_money(total)}, by {due:%B} {due.day}, {due.year}." if total > 0 else "Nothing is due."
    )
    msg.set_content(
        f"Hello {name},\n\n"
        f"Your new bill for account {account_number} is ready.\n{amount}\n\n"
        f"See it and pay online: {link}\n\n"
        f"You get this email instead of a paper bill because you chose paperless billing.\n"
        f"Questions? Call us at {settings.agency_phone}.\n\n{settings.agency_name}\n"
    )
    return msg


class _smtp:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.conn: smtplib.SMTP | None = None

    def __enter__(self) -> smtplib.SMTP:
        s = self.settings
        self.conn = smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=30)
        if s.smtp_starttls:
            self.conn.starttls()
        if s.smtp_username:
            self.conn.login(s.smtp_username, s.smtp_password)
        return self.conn

    def __exit__(self, *exc: object) -> None:
        assert self.conn is not None
        try:
            self.conn.quit()
        except smtplib.SMTPException:
            self.conn.close()


def email_batches(session: Session, pf: PrintFile) -> list[list[int]]:
    ids = [d.bill_id for d in delivery.unsent_emails(session, pf)]
    return [ids[i : i + EMAIL_BATCH] for i in range(0, len(ids), EMAIL_BATCH)]
