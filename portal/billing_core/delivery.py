"""Delivering a posted run: every bill goes either on paper, in the run's print file
(one PDF in ZIP-code order for presort, and a CSV extract for the mail house), or,
for paperless accounts with an email address, as an email with a link to the bill.

This module plans and records delivery; rendering PDFs and sending email belong to
the portal (``portal/delivery.py``), which calls back here to record each step. The
print file is rendered in slices ("parts"); a slice rendered twice replaces itself,
and the slice that completes the set is the one that joins them. Each email is a row of
the email outbox (``outbox.py``), written with the delivery plan, so that a mail server
that is down makes emails wait and retry, visibly, instead of failing the delivery.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from . import audit, outbox
from .bulk import insert_rows
from .errors import InvalidInput
from .models import (
    Account,
    Bill,
    BillDelivery,
    BillRun,
    Customer,
    Premise,
    PrintFile,
    PrintFilePart,
    User,
)
from .numbers import scan_line

PART_BILLS = 200
DELIVERY_COLUMNS = ("bill_id", "print_file_id", "channel", "sequence", "email_to", "sent_at")


def start(
    session: Session, run: BillRun, actor: User | None, part_size: int = PART_BILLS, *, now: datetime
) -> PrintFile:
    """Decide how each of the run's posted bills is delivered and open the print file (at ``now``)."""
    if run.status != "posted":
        raise InvalidInput(f"run {run.id} is {run.status}; bills are delivered once the run is posted", "status")
    existing = session.scalar(select(PrintFile).where(PrintFile.bill_run_id == run.id, PrintFile.status != "failed"))
    if existing is not None:
        raise InvalidInput(f"run {run.id}'s bills are already delivered (print file {existing.id})", "status")
    rows = session.execute(
        select(
            Bill.id,
            Account.number,
            Account.paperless,
            Customer.email,
            func.coalesce(Customer.mailing_zip, Premise.zip),
        )
        .join(Account, Account.id == Bill.account_id)
        .join(Customer, Customer.id == Account.customer_id)
        .join(Premise, Premise.id == Account.premise_id)
        .where(Bill.bill_run_id == run.id, Bill.status == "posted")
    ).all()
    # Paperless with no address on file still gets paper: a bill must reach someone.
    emailed = sorted((r for r in rows if r[2] and r[3]), key=lambda r: r[1])
    mailed = sorted((r for r in rows if not (r[2] and r[3])), key=lambda r: ((r[4] or "")[:5], r[1]))
    pf = PrintFile(
        bill_run_id=run.id,
        status="rendering" if mailed else "ready",
        bills_total=len(mailed),
        emails_total=len(emailed),
        parts_total=math.ceil(len(mailed) / part_size),
        part_size=part_size,
        created_by_id=actor.id if actor else None,
        finished_at=None if mailed else now,
    )
    session.add(pf)
    session.flush()
    insert_rows(
        session,
        BillDelivery.__table__,
        DELIVERY_COLUMNS,
        [(r[0], pf.id, "mail", n, None, None) for n, r in enumerate(mailed)]
        + [(r[0], pf.id, "email", n, r[3], None) for n, r in enumerate(emailed)],
    )
    outbox.queue_bill_emails(session, pf.id, [(r[0], r[3]) for r in emailed if r[3]], now)
    audit.record(
        session,
        "bill_run.deliver",
        actor=actor,
        entity_type="bill_run",
        entity_id=run.id,
        after={"print_file": pf.id, "mailed": len(mailed), "emailed": len(emailed)},
    )
    return pf


def part_bill_ids(session: Session, pf: PrintFile, part: int) -> list[int]:
    """The bills of one slice of the print file, in print order."""
    return list(
        session.scalars(
            select(BillDelivery.bill_id)
            .where(
                BillDelivery.print_file_id == pf.id,
                BillDelivery.channel == "mail",
                BillDelivery.sequence >= part * pf.part_size,
                BillDelivery.sequence < (part + 1) * pf.part_size,
            )
            .order_by(BillDelivery.sequence)
        )
    )


def record_part(session: Session, pf: PrintFile, part: int, bills: int, path: str) -> bool:
    """Note a rendered slice (replacing an earlier rendering of it). True when it was the
    last one missing: the caller then joins the slices and calls ``finish``."""
    session.execute(delete(PrintFilePart).where(PrintFilePart.print_file_id == pf.id, PrintFilePart.part == part))
    session.add(PrintFilePart(print_file_id=pf.id, part=part, bills=bills, path=path))
    session.flush()
    # Slices finish side by side on several workers: the row lock makes exactly one see the full set.
    session.execute(select(PrintFile.id).where(PrintFile.id == pf.id).with_for_update())
    session.refresh(pf)
    done = session.scalar(select(func.count(PrintFilePart.id)).where(PrintFilePart.print_file_id == pf.id))
    return pf.status == "rendering" and done == pf.parts_total


def part_paths(session: Session, pf: PrintFile) -> list[str]:
    return list(
        session.scalars(
            select(PrintFilePart.path).where(PrintFilePart.print_file_id == pf.id).order_by(PrintFilePart.part)
        )
    )


def finish(session: Session, pf: PrintFile, pdf_path: str, csv_path: str, *, now: datetime) -> None:
    pf.status, pf.pdf_path, pf.csv_path, pf.finished_at = "ready", pdf_path, csv_path, now
    session.execute(
        update(BillDelivery)
        .where(BillDelivery.print_file_id == pf.id, BillDelivery.channel == "mail")
        .values(sent_at=pf.finished_at)
    )


EXTRACT_HEADER = (
    "sequence",
    "account_number",
    "bill_number",
    "name",
    "address_line1",
    "address_line2",
    "city",
    "state",
    "zip",
    "total_due",
    "due_date",
    "scan_line",
)


def mail_extract(session: Session, pf: PrintFile) -> list[tuple[str, ...]]:
    """One row per mailed bill, in print order: what a mail house needs to address and sort."""
    out = []
    for seq, acct, number, name, line1, city, state, zip_, p1, p2, pcity, pstate, pzip, total, due in session.execute(
        select(
            BillDelivery.sequence,
            Account.number,
            Bill.number,
            Customer.name,
            Customer.mailing_line1,
            Customer.mailing_city,
            Customer.mailing_state,
            Customer.mailing_zip,
            Premise.address_line1,
            Premise.address_line2,
            Premise.city,
            Premise.state,
            Premise.zip,
            Bill.total_due_cents,
            Bill.due_date,
        )
        .join(Bill, Bill.id == BillDelivery.bill_id)
        .join(Account, Account.id == Bill.account_id)
        .join(Customer, Customer.id == Account.customer_id)
        .join(Premise, Premise.id == Account.premise_id)
        .where(BillDelivery.print_file_id == pf.id, BillDelivery.channel == "mail")
        .order_by(BillDelivery.sequence)
    ):
        address = (line1, "", city, state, zip_) if line1 else (p1, p2 or "", pcity, pstate, pzip)
        out.append(
            (
                str(seq + 1),
                acct,
                number or "",
                name,
                *(a or "" for a in address),
                f"{total / 100:.2f}",
                due.isoformat(),
                scan_line(acct, total),
            )
        )
    return out


def unsent_emails(session: Session, pf: PrintFile, bill_ids: Sequence[int] | None = None) -> list[BillDelivery]:
    stmt = select(BillDelivery).where(
        BillDelivery.print_file_id == pf.id, BillDelivery.channel == "email", BillDelivery.sent_at.is_(None)
    )
    if bill_ids is not None:
        stmt = stmt.where(BillDelivery.bill_id.in_(list(bill_ids)))
    return list(session.scalars(stmt.order_by(BillDelivery.sequence)))


@dataclass(frozen=True)
class Progress:
    print_file: PrintFile | None
    parts_done: int = 0
    emails_sent: int = 0
    #: The run's emails by status (queued, sending, sent, retrying, failed, skipped).
    emails: outbox.Summary = outbox.Summary()

    @property
    def done(self) -> bool:
        """Nothing left to do now: the print file is made and no email is queued or being
        sent (emails waiting to retry, or failed, are shown as such)."""
        pf = self.print_file
        return pf is not None and pf.status == "ready" and self.emails.in_flight == 0


def progress(session: Session, run: BillRun) -> Progress:
    pf = session.scalar(select(PrintFile).where(PrintFile.bill_run_id == run.id).order_by(PrintFile.id.desc()))
    if pf is None:
        return Progress(None)
    parts = session.scalar(select(func.count(PrintFilePart.id)).where(PrintFilePart.print_file_id == pf.id)) or 0
    sent = (
        session.scalar(
            select(func.count())
            .select_from(BillDelivery)
            .where(
                BillDelivery.print_file_id == pf.id, BillDelivery.channel == "email", BillDelivery.sent_at.is_not(None)
            )
        )
        or 0
    )
    return Progress(pf, parts, sent, outbox.for_print_file(session, pf.id))


def bill_delivered_on(session: Session, bill_id: int) -> date | None:
    sent = session.scalar(select(BillDelivery.sent_at).where(BillDelivery.bill_id == bill_id))
    return sent.date() if sent else None
