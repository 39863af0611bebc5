"""Delivering a posted run's bills: the print file and the paperless emails.

The billing core decides who gets paper and who gets email (``billing_core.delivery``);
this service does the work that needs a browser (the printer adapter), a disk and a mail
server (the mailer). Both are split into jobs: one per slice of the print file, one per
batch of emails (``dispatch``). Each email is a row of the email outbox: a batch that
cannot reach the mail server records that on each email and is tried again later
(``notifications.send_outbox``), it never fails the delivery.
"""

from __future__ import annotations

import asyncio
import csv
import logging
import os
from collections.abc import Callable
from contextlib import ExitStack
from datetime import date
from email.message import EmailMessage
from pathlib import Path
from typing import cast

import pikepdf
from jinja2 import Environment
from sqlalchemy import Table, select
from sqlalchemy.orm import Session, sessionmaker

from .. import documents
from ..adapters import smtp
from ..adapters.clock import Clock, system_clock
from ..adapters.database import transaction
from ..adapters.printer import Printer
from ..adapters.queue import JobQueue, Progress
from ..billing_core import accounts, delivery, outbox
from ..billing_core.errors import InvalidInput
from ..billing_core.models import Account, Bill, BillDelivery, Customer, EmailOutbox, PrintFile
from ..emails import Mailer
from ..settings import Settings
from ..templating import make_templates

log = logging.getLogger(__name__)
EMAIL_BATCH = 200
BILL_READY = "email.bill_ready"

_env: Environment | None = None


def _template_env() -> Environment:
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
    printer: Printer,
    print_file_id: int,
    part: int,
    clock: Clock = system_clock,
) -> bool:
    """Render one slice of a print file. Returns True when this slice completed the file.
    The database work runs in a thread; the browser works outside any transaction."""
    prepared = await asyncio.to_thread(_prepare_part, settings, factory, print_file_id, part)
    if prepared is None:
        return False
    html, path, bills = prepared
    _write_atomically(path, await printer.pdf(html))
    return await asyncio.to_thread(_store_part, factory, print_file_id, part, bills, path, clock)


async def render_parts(
    settings: Settings,
    factory: sessionmaker[Session],
    printer: Printer,
    slices: list[tuple[int, int]],
    progress: Progress | None = None,
    clock: Clock = system_clock,
) -> None:
    """Render these (print file id, part) slices one after the other with one printer (one
    browser for all of them: SQLite, tests, --in-process). ``progress`` hears how many are done."""
    for n, (print_file_id, part) in enumerate(slices, start=1):
        await render_part(settings, factory, printer, print_file_id, part, clock)
        if progress:
            progress(n)


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


def _store_part(
    factory: sessionmaker[Session], print_file_id: int, part: int, bills: int, path: Path, clock: Clock
) -> bool:
    with transaction(factory) as session:
        pf = session.get(PrintFile, print_file_id)
        assert pf is not None
        if not delivery.record_part(session, pf, part, bills, str(path)):
            return False
        final = path.parent / f"bills-run-{pf.bill_run_id}.pdf"
        extract = path.parent / f"mail-extract-run-{pf.bill_run_id}.csv"
        join_pdfs(delivery.part_paths(session, pf), final)
        write_extract(delivery.mail_extract(session, pf), extract)
        delivery.finish(session, pf, str(final), str(extract), now=clock())
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
    from ..billing_core import csv_safe

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


def send_emails(
    mailer: Mailer, factory: sessionmaker[Session], clock: Clock, print_file_id: int, bill_ids: list[int]
) -> int:
    """Send the waiting bill-ready emails of these bills now (each one's outbox row says
    whether it was sent). Returns how many were sent; one sent before is not sent again."""
    with factory() as session:
        ids = list(
            session.scalars(
                select(EmailOutbox.id).where(
                    EmailOutbox.print_file_id == print_file_id,
                    EmailOutbox.kind == BILL_READY,
                    EmailOutbox.ref_id.in_(list(bill_ids)),
                )
            )
        )
    return send_outbox_rows(mailer, factory, clock, ids).sent


def send_outbox_rows(mailer: Mailer, factory: sessionmaker[Session], clock: Clock, ids: list[int]) -> outbox.Outcome:
    """Claim and send these bill-ready emails over one connection (see ``notifications.send_outbox``)."""
    outcome = outbox.Outcome()
    with transaction(factory) as session:
        token, claimed = outbox.claim(session, ids, clock())
    send_bill_ready(mailer, factory, token, claimed, outcome, clock)
    with factory() as session:
        outcome.retry_at = outbox.next_attempt(session, ids)
    return outcome


def send_bill_ready(
    mailer: Mailer,
    factory: sessionmaker[Session],
    token: str,
    claimed: list[outbox.Claimed],
    outcome: outbox.Outcome,
    clock: Clock,
    at: Clock | None = None,
) -> None:
    """Email each paperless customer a link to their new bill, over one SMTP connection.
    Each email is marked as it goes (sent, or failed with when it is tried next, as of
    ``at``, else ``clock``), so a batch run again sends only what is left. When the server
    cannot be reached, the rest of the batch waits for the next attempt without trying
    each one."""
    if not claimed:
        return
    at = at or clock
    with factory() as session:
        rows = {
            r[0]: r[1:]
            for r in session.execute(
                select(
                    BillDelivery.bill_id,
                    BillDelivery.email_to,
                    Customer.name,
                    Customer.preferred_language,
                    Account.number,
                    Bill.number,
                    Bill.total_due_cents,
                    Bill.due_date,
                )
                .join(Bill, Bill.id == BillDelivery.bill_id)
                .join(Account, Account.id == Bill.account_id)
                .join(Customer, Customer.id == Account.customer_id)
                .where(BillDelivery.bill_id.in_([c.args.get("bill_id") for c in claimed]))
            )
        }
    unreachable: str | None = None
    with mailer.batch() as connection:
        for item in claimed:
            bill_id: int | None = item.args.get("bill_id")
            row = rows.get(bill_id) if bill_id is not None else None
            if row is None or not row[0]:
                with transaction(factory) as session:
                    outbox.mark_skipped(session, item, token, at())
                outcome.add("skipped")
                continue
            to, name, language, account_number, bill_number, total, due = row
            assert to is not None  # checked just above (``row[0]``)
            assert bill_number is not None  # a bill is numbered when posted; only posted bills are emailed
            error, permanent = unreachable, False
            if error is None:
                try:
                    connection.send(bill_email(mailer, to, name, language, account_number, bill_number, total, due))
                except Exception as exc:  # noqa: BLE001 - every failure is recorded on the email
                    error, permanent = smtp.describe(exc), smtp.permanent(exc)
                    if smtp.unreachable(exc):
                        # The connection itself failed: the others of this batch wait too.
                        unreachable = error
                        connection.drop()
                    log.warning("bill email %s to bill %s: %s", item.id, item.args.get("bill_id"), error)
            with transaction(factory) as session:
                if error is None:
                    outbox.mark_sent(session, item, token, at(), to)
                    session.execute(
                        cast(Table, BillDelivery.__table__)
                        .update()
                        .where(BillDelivery.bill_id == item.args["bill_id"], BillDelivery.sent_at.is_(None))
                        .values(sent_at=clock())
                    )
                    outcome.add("sent")
                else:
                    outcome.add(outbox.mark_failed(session, item, token, at(), error, permanent))


def bill_email(
    mailer: Mailer,
    to: str,
    name: str,
    language: str | None,
    account_number: str,
    bill_number: str,
    total: int,
    due: date,
) -> EmailMessage:
    """The bill-ready email, in the customer's language."""
    return mailer.build(
        to,
        language or "en",
        "bill_ready",
        name=name,
        account_number=account_number,
        total=total,
        due=due,
        url=mailer.link(f"/my/accounts/{account_number}/bills/{bill_number}"),
    )


def email_batches(session: Session, pf: PrintFile) -> list[list[int]]:
    """The print file's bill-ready emails still to send, as batches of outbox ids."""
    ids = list(
        session.scalars(
            select(EmailOutbox.id)
            .where(
                EmailOutbox.print_file_id == pf.id,
                EmailOutbox.kind == BILL_READY,
                EmailOutbox.status.in_(outbox.PENDING),
            )
            .order_by(EmailOutbox.id)
        )
    )
    return batches(ids)


def batches(ids: list[int], size: int = EMAIL_BATCH) -> list[list[int]]:
    return [ids[i : i + size] for i in range(0, len(ids), size)]


def dispatch(
    factory: sessionmaker[Session],
    queue: JobQueue,
    print_file_id: int,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Split a print file into one job per slice (``delivery.print_part``), and its emails
    into batches (``email.send``). Returns the job count. In-process, ``progress`` hears
    the jobs done out of all of them."""
    with factory() as session:
        pf = session.get(PrintFile, print_file_id)
        if pf is None:
            raise InvalidInput(f"no print file {print_file_id}", "print_file")
        parts = list(range(pf.parts_total))
        emails = email_batches(session, pf)
    total = len(parts) + len(emails)
    queue.defer_many(
        "delivery.print_part",
        [{"print_file_id": print_file_id, "part": part} for part in parts],
        progress and (lambda n: progress(n, total)),
    )
    # A mail server that is down makes these wait and retry; it does not fail the delivery.
    queue.defer_many(
        "email.send",
        [{"outbox_ids": batch} for batch in emails],
        progress and (lambda n: progress(len(parts) + n, total)),
    )
    return total
