"""Correcting a posted bill: void it (its ledger transaction reversed, linked to it) and post
a corrected one for the same period, with the reads that closed the period corrected first
when they were wrong.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from .. import audit, permissions, posting, reads
from ..errors import InvalidInput
from ..models import Account, Bill, BillUsage, FinalBillReview, Meter, MeterRead, User
from ..permissions import Action
from ..status import BILL_TRANSITIONS, BillStatus, move
from .drafting import EXCEPTION_LABELS, HOLDING, draft_bill
from .final_bills import FULL_PERIOD_DAYS
from .posting import POSTING, post_bills
from .rows import Rebill, load_accounts, prefetch, write_drafts


def void_and_rebill(
    session: Session,
    bill: Bill,
    actor: User,
    reason: str,
    today: date,
    due_days: int = 21,
    remote_addr: str | None = None,
    corrected_reads: dict[int, Decimal] | None = None,
    *,
    now: datetime,
) -> Bill:
    """Void a posted bill (its transaction reversed, linked to it) and post a corrected one for
    the same period from today's reads and rates. ``corrected_reads`` (meter id -> value)
    replace the reads that closed the voided bill's period, checked by the rules of reads.
    A final bill's rebill keeps its proration (fixed charges by days of a full period). All in
    the caller's transaction: if the new bill cannot be made (a read still held, a rate that
    fails), nothing changes. ``now`` is when it happens (the reversal's and the new bill's posting)."""
    permissions.require(actor, Action.BILLS_VOID)
    if not (reason or "").strip():
        raise InvalidInput("say why the bill is voided", "reason")
    if bill.status != BillStatus.POSTED:
        raise InvalidInput(f"bill {bill.number or bill.id} is {bill.status}; only a posted bill is voided", "status")
    for meter_id, value in (corrected_reads or {}).items():
        _correct_closing_read(session, bill, meter_id, value, reason.strip(), actor, remote_addr, now)
    final = _final_review_of(session, bill)
    if bill.ledger_transaction_id is not None:
        posting.reverse(
            session,
            bill.ledger_transaction_id,
            today,
            f"Void of bill {bill.number}: {reason.strip()}",
            actor.id,
            posted_at=now,
        )
    move(BILL_TRANSITIONS, bill, BillStatus.VOIDED)
    # Reads this period: the ones the voided bill used may have been corrected since.
    session.flush()
    accounts = load_accounts(session, [bill.account_id])
    full_days = FULL_PERIOD_DAYS if final is not None or _ends_service(session, bill) else None
    period = Rebill(
        bill.bill_run_id, bill.period_start, bill.period_end, today, today + timedelta(days=due_days), full_days
    )
    data = prefetch(session, period, accounts)
    draft = draft_bill(period, accounts[0], reads.Rules(), data)
    held = [c for c in draft.exceptions if c in HOLDING]
    if held:
        raise InvalidInput(
            "the new bill cannot be made yet: " + ", ".join(EXCEPTION_LABELS.get(c, c).lower() for c in held),
            "reads",
        )
    (new_id,) = write_drafts(session, [draft], data, now)
    post_bills(session, session.execute(select(*POSTING).where(Bill.id == new_id)).all(), actor, now)
    new = session.get(Bill, new_id)
    assert new is not None
    if final is not None:
        final.bill_id = new.id
    audit.record(
        session,
        "bill.void_rebill",
        actor=actor,
        entity_type="bill",
        entity_id=bill.id,
        before={"number": bill.number, "charges_cents": bill.current_charges_cents},
        after={"new_number": new.number, "charges_cents": new.current_charges_cents, "reason": reason.strip()},
        remote_addr=remote_addr,
    )
    return new


def _final_review_of(session: Session, bill: Bill) -> FinalBillReview | None:
    return session.scalar(select(FinalBillReview).where(FinalBillReview.bill_id == bill.id))


def _ends_service(session: Session, bill: Bill) -> bool:
    """A final bill made before final bills were recorded: its period reaches the account's last day."""
    account = session.get(Account, bill.account_id)
    return bool(account and account.closed_on and bill.period_end >= account.closed_on)


def _correct_closing_read(
    session: Session,
    bill: Bill,
    meter_id: int,
    value: Decimal,
    reason: str,
    actor: User,
    remote_addr: str | None,
    now: datetime,
) -> None:
    """Replace the read that closed ``bill``'s period on one meter (read at a void and rebill)."""
    field_name = f"read-{meter_id}"
    usage = session.scalar(select(BillUsage).where(BillUsage.bill_id == bill.id, BillUsage.meter_id == meter_id))
    read = session.get(MeterRead, usage.current_read_id) if usage and usage.current_read_id else None
    meter = session.get(Meter, meter_id)
    if read is None or meter is None:
        raise InvalidInput("that meter has no read on this bill to correct", field_name)
    try:
        reads.check_read(value, meter.dials, field_name)  # the rules every read meets
        if usage is not None and usage.previous_value is not None:
            reads.consumption(usage.previous_value, value, meter.dials, meter.multiplier)
    except InvalidInput as exc:
        raise InvalidInput(f"meter {meter.serial}: {exc.message}", field_name) from exc
    before = {"value": str(read.value), "status": read.status, "source": read.source}
    read.value, read.status, read.exception = value, "approved", None
    if read.source == "estimate":
        read.source = "field"
    read.reviewed_by_id, read.reviewed_at = actor.id, now
    read.note = f"Corrected at the void of bill {bill.number}: {reason}"[:300]
    audit.record(
        session,
        "read.correct",
        actor=actor,
        entity_type="meter_read",
        entity_id=read.id,
        before=before,
        after={"value": str(value), "status": read.status, "reason": reason},
        remote_addr=remote_addr,
    )
