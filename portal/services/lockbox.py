"""Bank and lockbox files: import (BAI2 or the bank's CSV), the queue of rows nobody could
match (assign to an account, or mark for return), and the report of every row.

The import is set-based whatever the file's size: the accounts and the references already
seen are read in a few queries, the payments' ledger transactions are built in Python and
written with ``posting.post_many`` (COPY on PostgreSQL), and the payments and the file's rows
go in with ``bulk.insert_rows``. The same file twice (its SHA-256) or a bank reference seen
before (a payment's, or an earlier row's) adds nothing."""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..billing_core import audit, bulk, cash_only, csv_safe, payments, permissions, remittance
from ..billing_core.errors import FieldErrors, InvalidInput, NotFound
from ..billing_core.models import (
    Account,
    Payment,
    PaymentBatch,
    PaymentImport,
    PaymentImportRow,
    User,
    WriteOff,
)
from ..billing_core.permissions import Action
from ..billing_core.status import ApprovalStatus, BatchStatus, ImportOutcome, PaymentStatus

FORMATS = ("bai2", "csv")
PAYMENT_COLUMNS = (
    "id",
    "account_id",
    "amount_cents",
    "channel",
    "method",
    "received_on",
    "status",
    "ledger_transaction_id",
    "created_at",
    "user_id",
    "settled_at",
    "batch_id",
    "check_number",
    "bank_reference",
    "overpaid_cents",
)
ROW_COLUMNS = (
    "import_id",
    "line_no",
    "bank_reference",
    "account_text",
    "scan_line",
    "amount_cents",
    "check_number",
    "received_on",
    "outcome",
    "reason",
    "account_id",
    "payment_id",
)


@dataclass
class ImportReport:
    import_id: int | None = None
    filename: str = ""
    matched: int = 0
    duplicate: int = 0
    unmatched: int = 0
    rejected: int = 0
    matched_cents: int = 0
    #: Set when this very file was imported before: nothing was added.
    already_imported_at: datetime | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return self.matched + self.duplicate + self.unmatched + self.rejected

    def counts(self) -> str:
        return (
            f"{self.matched} matched / {self.duplicate} duplicate / {self.unmatched} unmatched / "
            f"{self.rejected} rejected"
        )


def parse(
    content: bytes, fmt: str, layout_name: str | None, layouts_file: str, today: date
) -> list[remittance.Remittance]:
    if fmt == "bai2":
        if layout_name:
            raise InvalidInput("A layout is for CSV files; BAI2 has one layout.", "layout")
        return remittance.parse_bai2(content, today)
    if fmt == "csv":
        layout = remittance.layout_named(remittance.load_layouts(layouts_file), layout_name)
        return remittance.parse_csv(content, layout, today)
    raise InvalidInput(f"Unknown format {fmt!r}: use bai2 or csv.", "format")


def import_file(
    session: Session,
    actor: User | None,
    content: bytes,
    filename: str,
    fmt: str,
    layout_name: str | None,
    *,
    layouts_file: str = "",
    today: date,
    now: datetime,
    remote_addr: str | None = None,
) -> ImportReport:
    """Import one file in the caller's transaction. A malformed file raises ``FieldErrors``
    (field ``file``, ``format`` or ``layout``) and writes nothing."""
    permissions.require(actor, Action.PAYMENTS_IMPORT)
    filename = "".join(c for c in filename if c.isprintable())[:200] or "bank file"
    digest = hashlib.sha256(content).hexdigest()
    earlier = session.scalar(select(PaymentImport).where(PaymentImport.file_sha256 == digest))
    if earlier is not None:
        report = ImportReport(
            earlier.id, filename, duplicate=earlier.matched + earlier.duplicate + earlier.unmatched + earlier.rejected
        )
        report.already_imported_at = earlier.imported_at
        audit.record(
            session,
            "payment_import.repeated",
            actor=actor,
            entity_type="payment_import",
            entity_id=earlier.id,
            after={"filename": filename, "added": 0},
            remote_addr=remote_addr,
        )
        return report
    try:
        rows = parse(content, fmt, layout_name, layouts_file, today)
    except InvalidInput as exc:
        raise FieldErrors({exc.field or "file": exc}) from exc
    if not rows:
        raise FieldErrors.one("file", "The file holds no remittances. Nothing was imported.")
    session.flush()

    # What every row names, and what is already known: a few queries, whatever the size.
    numbers: dict[int, str | None] = {}  # None: the row names no account that can be read
    problems: dict[int, str] = {}
    for i, r in enumerate(rows):
        if r.rejected:
            continue
        try:
            numbers[i] = remittance.account_from(r.scan_line, r.account_text)
        except InvalidInput as exc:
            numbers[i] = None
            problems[i] = exc.message
    accounts: dict[str, tuple[int, bool]] = {}
    wanted = sorted({n for n in numbers.values() if n})
    for part in bulk.chunks(session, wanted):
        for aid, found_number, only_cash in session.execute(
            select(Account.id, Account.number, Account.cash_only).where(
                bulk.among(session, Account.number, part, Account.number.type)
            )
        ):
            accounts[found_number] = (aid, bool(only_cash))
    refs = sorted({r.bank_reference for r in rows if r.bank_reference})
    seen: set[str] = set()
    for part in bulk.chunks(session, refs):
        seen.update(
            session.scalars(
                select(Payment.bank_reference).where(
                    bulk.among(session, Payment.bank_reference, part, Payment.bank_reference.type)
                )
            )
        )
        seen.update(
            session.scalars(
                select(PaymentImportRow.bank_reference).where(
                    bulk.among(session, PaymentImportRow.bank_reference, part, PaymentImportRow.bank_reference.type),
                    PaymentImportRow.outcome != ImportOutcome.REJECTED.value,
                )
            )
        )

    outcomes: list[tuple[str, str | None, int | None]] = []  # outcome, reason, account id
    to_post: list[int] = []
    for i, r in enumerate(rows):
        if r.rejected:
            outcomes.append((ImportOutcome.REJECTED.value, r.rejected, None))
            continue
        if not r.bank_reference:
            outcomes.append(
                (
                    ImportOutcome.REJECTED.value,
                    "no bank reference: it could not be told from one already imported",
                    None,
                )
            )
            continue
        if r.bank_reference in seen:
            outcomes.append(
                (ImportOutcome.DUPLICATE.value, f"bank reference {r.bank_reference} was already imported", None)
            )
            continue
        seen.add(r.bank_reference)
        number = numbers.get(i)
        if number is None:
            why = problems.get(i) or "no scan line or account number"
            outcomes.append((ImportOutcome.UNMATCHED.value, why, None))
            continue
        found = accounts.get(number)
        if found is None:
            outcomes.append((ImportOutcome.UNMATCHED.value, f"no account {number}", None))
            continue
        if found[1]:
            outcomes.append(
                (ImportOutcome.UNMATCHED.value, f"account {number} pays in cash only; return the check", found[0])
            )
            continue
        outcomes.append((ImportOutcome.MATCHED.value, None, found[0]))
        to_post.append(i)

    deposit_on = next((r.received_on for r in rows if r.received_on), today)
    counted = [r.amount_cents or 0 for r, o in zip(rows, outcomes, strict=True) if o[0] in ("matched", "unmatched")]
    batch = PaymentBatch(
        kind="lockbox",
        label=filename[:100],
        deposit_date=deposit_on,
        control_count=len(counted),
        control_total_cents=sum(counted),
        status=BatchStatus.POSTED.value,
        created_by_id=actor.id if actor else None,
        created_at=now,
        posted_by_id=actor.id if actor else None,
        posted_at=now,
    )
    record = PaymentImport(
        file_sha256=digest,
        filename=filename,
        format=fmt,
        layout=(layout_name or "standard") if fmt == "csv" else None,
        imported_at=now,
        imported_by_id=actor.id if actor else None,
    )
    session.add_all([batch, record])
    session.flush()
    record.batch_id = batch.id

    # Post the matched rows set-based, then write the payments and every row in bulk.
    posted = payments.post_received(
        session,
        [
            payments.Received(
                outcomes[i][2] or 0,
                rows[i].amount_cents or 0,
                "lockbox",
                f"Lockbox payment {rows[i].bank_reference}, file {record.id}",
            )
            for i in to_post
        ],
        deposit_on,
        now,
        actor.id if actor else None,
    )
    payment_ids = bulk.reserve_ids(session, "payment", len(to_post))
    pay_of: dict[int, int] = {}
    payment_rows = []
    for i, pid, (tid, owed) in zip(to_post, payment_ids, posted, strict=True):
        r = rows[i]
        amount = r.amount_cents or 0
        pay_of[i] = pid
        payment_rows.append(
            (
                pid,
                outcomes[i][2],
                amount,
                "lockbox",
                "check",
                r.received_on or deposit_on,
                PaymentStatus.POSTED.value,
                tid,
                now,
                actor.id if actor else None,
                now,
                batch.id,
                r.check_number,
                r.bank_reference,
                amount - owed if amount > owed else None,
            )
        )
    bulk.insert_rows(session, Payment.__table__, PAYMENT_COLUMNS, payment_rows)
    bulk.insert_rows(
        session,
        PaymentImportRow.__table__,
        ROW_COLUMNS,
        [
            (
                record.id,
                r.line_no,
                r.bank_reference,
                r.account_text,
                r.scan_line,
                r.amount_cents,
                r.check_number,
                r.received_on,
                o[0],
                (o[1] or "")[:300] or None,
                o[2],
                pay_of.get(i),
            )
            for i, (r, o) in enumerate(zip(rows, outcomes, strict=True))
        ],
    )
    _recoveries(session, [outcomes[i][2] or 0 for i in to_post], payment_ids, deposit_on, now)

    report = ImportReport(record.id, filename)
    for (outcome, _reason, _aid), r in zip(outcomes, rows, strict=True):
        setattr(report, outcome, getattr(report, outcome) + 1)
        if outcome == ImportOutcome.MATCHED:
            report.matched_cents += r.amount_cents or 0
    record.matched, record.duplicate = report.matched, report.duplicate
    record.unmatched, record.rejected = report.unmatched, report.rejected
    record.total_cents = report.matched_cents
    audit.record(
        session,
        "payment_import.imported",
        actor=actor,
        entity_type="payment_import",
        entity_id=record.id,
        after={
            "filename": filename,
            "format": fmt,
            "batch": batch.id,
            "matched": report.matched,
            "duplicate": report.duplicate,
            "unmatched": report.unmatched,
            "rejected": report.rejected,
            "matched_cents": report.matched_cents,
        },
        remote_addr=remote_addr,
    )
    return report


def _recoveries(session: Session, account_ids: list[int], payment_ids: list[int], on: date, now: datetime) -> None:
    """``write_offs.record_recovery`` for the payments on accounts with a posted write-off
    (one query finds them; the rest need nothing)."""
    if not account_ids:
        return
    written: set[int] = set()
    for part in bulk.chunks(session, sorted(set(account_ids))):
        written.update(
            session.scalars(
                select(WriteOff.account_id).where(
                    bulk.among(session, WriteOff.account_id, part), WriteOff.status == ApprovalStatus.POSTED.value
                )
            )
        )
    for aid, pid in zip(account_ids, payment_ids, strict=True):
        if aid in written:
            payment = session.get(Payment, pid)
            assert payment is not None
            recovered = payments.write_offs.record_recovery(session, payment, on, now)
            if recovered and payment.overpaid_cents:
                payment.overpaid_cents = max(payment.overpaid_cents - recovered, 0) or None


# --- The queue of unmatched rows ------------------------------------------------------------


def _queued(session: Session, row_id: int | str) -> PaymentImportRow:
    row = session.get(PaymentImportRow, int(row_id)) if str(row_id).isdigit() else None
    if row is None:
        raise NotFound(f"import row {row_id}")
    if row.outcome != ImportOutcome.UNMATCHED or row.resolution is not None:
        raise InvalidInput("This row is not waiting in the queue any more.", "account_number")
    return row


def assign(session: Session, actor: User, row_id: int | str, account_number: str, note: str, now: datetime) -> Payment:
    """Post an unmatched row's money to the account staff found for it."""
    permissions.require(actor, Action.PAYMENTS_IMPORT)
    row = _queued(session, row_id)
    try:
        number = remittance.account_from(None, account_number)
    except InvalidInput as exc:
        raise FieldErrors.one("account_number", exc.message) from exc
    account = session.scalar(select(Account).where(Account.number == number))
    if account is None:
        raise FieldErrors.one("account_number", f"No account {number}.")
    refused = cash_only.refusal(account, "check", "account_number")
    if refused is not None:
        raise FieldErrors({"account_number": refused})
    record = session.get(PaymentImport, row.import_id)
    assert record is not None and row.amount_cents
    on = row.received_on or now.date()
    payment = Payment(
        account_id=account.id,
        amount_cents=row.amount_cents,
        channel="lockbox",
        method="check",
        received_on=on,
        status=PaymentStatus.PENDING.value,
        user_id=actor.id,
        batch_id=record.batch_id,
        check_number=row.check_number,
        bank_reference=row.bank_reference,
        created_at=now,
    )
    session.add(payment)
    session.flush()
    ((tid, owed),) = payments.post_received(
        session,
        [
            payments.Received(
                account.id, payment.amount_cents, "lockbox", f"Lockbox payment {row.bank_reference}, assigned"
            )
        ],
        on,
        now,
        actor.id,
    )
    payments.settle(session, payment, tid, owed, on, now)
    payments.note_overpaid(session, payment, owed, on, now)
    row.resolution, row.account_id, row.payment_id = "assigned", account.id, payment.id
    row.resolved_by_id, row.resolved_at, row.note = actor.id, now, (note.strip()[:300] or None)
    audit.record(
        session,
        "payment_import.assigned",
        actor=actor,
        entity_type="payment_import_row",
        entity_id=row.id,
        before={"outcome": ImportOutcome.UNMATCHED.value, "reason": row.reason},
        after={"resolution": "assigned", "account": account.number, "payment": payment.id},
    )
    return payment


def mark_returned(session: Session, actor: User, row_id: int | str, note: str, now: datetime) -> PaymentImportRow:
    """The money goes back to the payer outside the portal: nothing posts; the note says why."""
    permissions.require(actor, Action.PAYMENTS_IMPORT)
    row = _queued(session, row_id)
    why = " ".join(note.split())[:300]
    if not why:
        raise FieldErrors.one("note", "Say why the payment goes back to the payer.")
    row.resolution, row.resolved_by_id, row.resolved_at, row.note = "returned", actor.id, now, why
    audit.record(
        session,
        "payment_import.returned",
        actor=actor,
        entity_type="payment_import_row",
        entity_id=row.id,
        before={"outcome": ImportOutcome.UNMATCHED.value},
        after={"resolution": "returned", "note": why},
    )
    return row


# --- Pages and the report -------------------------------------------------------------------


def people(session: Session, ids: set[int | None]) -> dict[int, str]:
    wanted = {i for i in ids if i}
    if not wanted:
        return {}
    return {u.id: u.display_name or u.email for u in session.scalars(select(User).where(User.id.in_(wanted)))}


def imports(session: Session, limit: int = 100) -> list[PaymentImport]:
    return list(session.scalars(select(PaymentImport).order_by(PaymentImport.id.desc()).limit(limit)))


def import_rows(session: Session, import_id: int | str) -> tuple[PaymentImport, list[PaymentImportRow]]:
    record = session.get(PaymentImport, int(import_id)) if str(import_id).isdigit() else None
    if record is None:
        raise NotFound(f"import {import_id}")
    rows = list(
        session.scalars(
            select(PaymentImportRow)
            .where(PaymentImportRow.import_id == record.id)
            .order_by(PaymentImportRow.line_no, PaymentImportRow.id)
        )
    )
    return record, rows


def queue(session: Session, limit: int = 500) -> list[PaymentImportRow]:
    return list(
        session.scalars(
            select(PaymentImportRow)
            .where(PaymentImportRow.outcome == ImportOutcome.UNMATCHED.value, PaymentImportRow.resolution.is_(None))
            .order_by(PaymentImportRow.id)
            .limit(limit)
        )
    )


def numbers_of(session: Session, ids: set[int | None]) -> dict[int, str]:
    wanted = [i for i in ids if i]
    if not wanted:
        return {}
    return dict(session.execute(select(Account.id, Account.number).where(Account.id.in_(wanted))).all())


REPORT_HEADER = (
    "line",
    "bank_reference",
    "account_text",
    "scan_line",
    "amount",
    "check_number",
    "received_on",
    "outcome",
    "reason",
    "account",
    "payment",
    "resolution",
    "resolved_at",
)


def report_csv(session: Session, import_id: int | str) -> str:
    """Every row of an import and what became of it, as CSV (cells made safe for spreadsheets)."""
    record, rows = import_rows(session, import_id)
    numbers = numbers_of(session, {r.account_id for r in rows})
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(REPORT_HEADER)
    for r in rows:
        writer.writerow(
            [
                csv_safe.cell(v) if isinstance(v, str) else v
                for v in (
                    r.line_no,
                    r.bank_reference or "",
                    r.account_text or "",
                    r.scan_line or "",
                    "" if r.amount_cents is None else _dollars(r.amount_cents),
                    r.check_number or "",
                    r.received_on.isoformat() if r.received_on else "",
                    r.outcome,
                    r.reason or "",
                    numbers.get(r.account_id or 0, ""),
                    r.payment_id or "",
                    r.resolution or "",
                    r.resolved_at.isoformat() if r.resolved_at else "",
                )
            ]
        )
    return out.getvalue()


def _dollars(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def totals(session: Session) -> dict[str, int]:
    return dict(
        session.execute(select(PaymentImportRow.outcome, func.count()).group_by(PaymentImportRow.outcome)).all()
    )
