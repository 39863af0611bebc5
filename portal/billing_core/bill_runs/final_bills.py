"""Final bills: stopping an account's service from the final read of each meter, the final
bill posted at once or held for a supervisor's review, and the work on held ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from .. import audit, permissions, reads, statements
from ..errors import InvalidInput
from ..models import Account, Bill, FinalBillReview, Meter, MeterRead, Service, User
from ..permissions import Action
from ..status import BillStatus
from .drafting import EXCEPTION_LABELS, HOLDING, draft_bill
from .posting import POSTING, post_bills
from .rows import Rebill, load_accounts, prefetch, write_drafts

# The stop date is the LAST DAY OF SERVICE everywhere (the customer's request, the staff
# form, the account's closed_on): the customer is served and billed through it. The final
# period is [the end of the last bill, the day after the last day of service), so the last
# day counts; the final read is dated that day after, like every read that closes a period
# (a cycle read on the 5th closes the period through the 4th). The final bill is dated the
# same day after the last day of service, whenever staff enter or approve it; it is due
# ``due_days`` after that date or after the day it is posted, whichever is later.

FULL_PERIOD_DAYS = 30
#: A final period shorter than this is compared with the account's history as if it were this
#: long, so a day or two of ordinary use is not mistaken for a surge.
MIN_COMPARE_DAYS = 7
#: The read findings (reads.validate, the rules of imported reads) that hold a final bill for
#: review. Low and zero use are what an emptied home shows, so they do not hold it.
FINAL_HOLDING = (reads.ReadException.HIGH.value, reads.ReadException.ROLLOVER.value)
FUTURE_STOP = "future_stop"
#: The final read came from a read-out or turn-off work order (issue 16, field_orders): the
#: office looks at it before the bill posts.
FIELD_READ = "field_read"
FINAL_REASONS = {
    FUTURE_STOP: "The last day of service is still ahead",
    FIELD_READ: "The final read came from a field work order",
} | {e.value: e.plain for e in reads.ReadException}


def final_bill_date(stop_on: date) -> date:
    """The date of the final bill for a last day of service: the day after it (the first day
    without service, the end of the final period and the date of its final read)."""
    return stop_on + timedelta(days=1)


@dataclass(frozen=True)
class FinalReadCheck:
    """A final read held against the meter's last read and the account's history."""

    meter: Meter
    value: Decimal
    previous: MeterRead | None
    #: Use since the last read (None: the meter's first read).
    quantity: Decimal | None
    #: The recent average use per FULL_PERIOD_DAYS, when there is history.
    average: Decimal | None
    #: reads.ReadException values the read raises.
    findings: tuple[str, ...]

    @property
    def holding(self) -> tuple[str, ...]:
        return tuple(f for f in self.findings if f in FINAL_HOLDING)


def check_final_read(
    session: Session, meter: Meter, stop_on: date, value: Decimal, rules: reads.Rules = reads.Rules()
) -> FinalReadCheck:
    """Check a final read by the rules of imported reads (reads.consumption and reads.validate):
    refused when it cannot be right (not a number, over the meter's dials, below the last read
    and not a plausible rollover); its findings (high, rollover, ...) are returned. Use is
    compared per day with the account's recent periods."""
    field_name = f"read-{meter.id}"
    if not value.is_finite() or value < 0:
        raise InvalidInput(f"enter the final read of meter {meter.serial} as a number, 0 or more", field_name)
    end = final_bill_date(stop_on)
    history = list(
        session.scalars(
            select(MeterRead)
            .where(MeterRead.meter_id == meter.id, MeterRead.read_on < end)
            .order_by(MeterRead.read_on.desc())
            .limit(rules.history_periods + 1)
        )
    )
    if not history:
        capacity = Decimal(10) ** meter.dials
        if value >= capacity:
            raise InvalidInput(
                f"meter {meter.serial} has {meter.dials} dials: it reads at most {capacity - 1}", field_name
            )
        return FinalReadCheck(meter, value, None, None, None, ())
    previous = history[0]
    try:
        use = reads.consumption(previous.value, value, meter.dials, meter.multiplier, rules)
    except reads.BelowPrevious as exc:
        raise InvalidInput(
            f"the final read of meter {meter.serial}, {value}, is below its last read, {previous.value} on "
            f"{previous.read_on.isoformat()}, and is not a plausible rollover",
            field_name,
        ) from exc
    except InvalidInput as exc:
        raise InvalidInput(f"meter {meter.serial}: {exc.message}", field_name) from exc
    past: list[Decimal] = []
    ordered = list(reversed(history))
    for older, newer in zip(ordered, ordered[1:], strict=False):
        days = (newer.read_on - older.read_on).days
        try:
            q = reads.consumption(older.value, newer.value, meter.dials, meter.multiplier, rules).quantity
        except InvalidInput:
            continue
        if days > 0:
            past.append(q * FULL_PERIOD_DAYS / days)
    days = max((end - previous.read_on).days, MIN_COMPARE_DAYS)
    found = reads.validate(use.quantity * FULL_PERIOD_DAYS / days, past, rollover=use.rollover, rules=rules)
    recent = past[-rules.history_periods :]
    average = (sum(recent, Decimal(0)) / len(recent)).quantize(Decimal("0.1")) if recent else None
    return FinalReadCheck(meter, value, previous, use.quantity, average, tuple(e.value for e in found))


def _open_services(session: Session, account: Account) -> list[Service]:
    return list(session.scalars(select(Service).where(Service.account_id == account.id, Service.ended_on.is_(None))))


def _final_start(session: Session, account: Account, services: Sequence[Service], stop_on: date) -> date:
    """The first day the final bill covers: the end of the last posted bill (or the start of service)."""
    last_end = session.scalar(
        select(func.max(Bill.period_end)).where(Bill.account_id == account.id, Bill.status == BillStatus.POSTED)
    )
    start = last_end or min((s.started_on for s in services), default=stop_on)
    if stop_on < start:
        raise InvalidInput(
            f"the last day of service cannot be before {start.isoformat()}, the first day not billed yet", "stop_on"
        )
    return start


def _checks(session: Session, account: Account, stop_on: date, final_reads: dict[int, Decimal]) -> list[FinalReadCheck]:
    services = _open_services(session, account)
    meters = {s.meter_id: s.meter for s in services if s.meter_id is not None and s.meter is not None}
    missing = set(meters) - set(final_reads)
    if missing:
        raise InvalidInput("enter the final read of every meter", f"read-{min(missing)}")
    return [check_final_read(session, meters[m], stop_on, final_reads[m]) for m in sorted(meters)]


def _reasons(stop_on: date, today: date, checks: Sequence[FinalReadCheck]) -> list[str]:
    reasons = [FUTURE_STOP] if stop_on > today else []
    return list(dict.fromkeys(reasons + [f for c in checks for f in c.holding]))


def stop_service(
    session: Session,
    account: Account,
    stop_on: date,
    final_reads: dict[int, Decimal],
    actor: User,
    today: date,
    *,
    forward: Any = None,
    due_days: int = 21,
    remote_addr: str | None = None,
    now: datetime,
) -> FinalBillReview:
    """Stop an account's service after ``stop_on``, its last day of service, from the final read
    of each meter. The final bill posts at once, unless a final read implies use far beyond the
    account's history (high, or a rollover) or the last day of service is still ahead: then it
    is held for review (status "held") and nothing about the account changes until a
    supervisor approves and posts it. ``forward`` (a customers.MailingAddress) is where the
    final bill goes; it is set on the customer when the bill posts. All in the caller's
    transaction: nothing changes when the stop is refused."""
    permissions.require(actor, Action.BILLS_FINAL)
    if account.status != "active":
        raise InvalidInput(f"account {account.number} is {account.status}; only an active account is stopped", "status")
    if held_for_account(session, account.id) is not None:
        raise InvalidInput("a final bill for this account is already waiting for review; work it there", "final")
    _final_start(session, account, _open_services(session, account), stop_on)
    checks = _checks(session, account, stop_on, final_reads)
    reasons = _reasons(stop_on, today, checks)
    review = FinalBillReview(
        account_id=account.id,
        stop_on=stop_on,
        reads={str(c.meter.id): str(c.value) for c in checks},
        reasons=",".join(reasons),
        status="held",
        forward_line1=forward.line1 if forward else None,
        forward_city=forward.city if forward else None,
        forward_state=forward.state if forward else None,
        forward_zip=forward.zip if forward else None,
        entered_by_id=actor.id,
        entered_at=now,
    )
    session.add(review)
    session.flush()
    if reasons:
        audit.record(
            session,
            "account.final_bill_held",
            actor=actor,
            entity_type="account",
            entity_id=account.id,
            after={"stop_on": str(stop_on), "reasons": reasons, "reads": review.reads, "review": review.id},
            remote_addr=remote_addr,
        )
        return review
    _post_final(session, review, account, actor, today, due_days, remote_addr, now)
    return review


def final_bill(
    session: Session,
    account: Account,
    stop_on: date,
    final_reads: dict[int, Decimal],
    actor: User,
    today: date,
    due_days: int = 21,
    *,
    now: datetime,
) -> Bill | None:
    """``stop_service`` for callers that want the bill: None when it was held for review."""
    review = stop_service(session, account, stop_on, final_reads, actor, today, due_days=due_days, now=now)
    return session.get(Bill, review.bill_id) if review.bill_id else None


def _post_final(
    session: Session,
    review: FinalBillReview,
    account: Account,
    actor: User,
    today: date,
    due_days: int,
    remote_addr: str | None,
    now: datetime,
) -> Bill:
    from .. import customers

    stop_on = review.stop_on
    services = _open_services(session, account)
    start = _final_start(session, account, services, stop_on)
    final_reads = {int(k): Decimal(v) for k, v in review.reads.items()}
    checks = _checks(session, account, stop_on, final_reads)
    end = final_bill_date(stop_on)
    reviewed = review.decided_by_id is not None
    for check in checks:
        if session.scalar(select(MeterRead.id).where(MeterRead.meter_id == check.meter.id, MeterRead.read_on == end)):
            raise InvalidInput(
                f"meter {check.meter.serial} already has a read on {end.isoformat()}, the day after the last day "
                "of service; correct that read instead",
                f"read-{check.meter.id}",
            )
        session.add(
            MeterRead(
                meter_id=check.meter.id,
                read_on=end,
                value=check.value,
                source="field",
                status="approved" if reviewed else "valid",
                exception=",".join(check.findings) or None,
                reviewed_by_id=review.decided_by_id,
                reviewed_at=review.decided_at,
                note=f"Final read at the end of {stop_on.isoformat()}, the last day of service"[:300],
            )
        )
    for service in services:
        service.ended_on = end
    session.flush()
    accounts = load_accounts(session, [account.id])
    due = max(end, today) + timedelta(days=due_days)
    period = Rebill(None, start, end, end, due, FULL_PERIOD_DAYS)
    data = prefetch(session, period, accounts)
    draft = draft_bill(period, accounts[0], reads.Rules(), data)
    held = [c for c in draft.exceptions if c in HOLDING]
    if held:
        raise InvalidInput(
            "the final bill cannot be made: " + ", ".join(EXCEPTION_LABELS.get(c, c).lower() for c in held),
            "final_read",
        )
    (bill_id,) = write_drafts(session, [draft], data, now)
    post_bills(session, session.execute(select(*POSTING).where(Bill.id == bill_id)).all(), actor, now)
    account.status, account.closed_on = "final", stop_on
    # Deposits held pay the final bill; any credit left is asked back as a refund (deposits.py).
    from .. import deposits

    deposits.apply_at_final(session, account, actor, max(end, today), now)
    if review.forward_line1:
        address = customers.MailingAddress(
            review.forward_line1, review.forward_city or "", review.forward_state or "", review.forward_zip or ""
        )
        customers.set_mailing_address(session, account.customer, address, actor, remote_addr)
    review.status, review.bill_id = "posted", bill_id
    bill = session.get(Bill, bill_id)
    assert bill is not None
    audit.record(
        session,
        "account.final_bill",
        actor=actor,
        entity_type="account",
        entity_id=account.id,
        after={
            "stop_on": str(stop_on),
            "bill": bill.number,
            "charges_cents": bill.current_charges_cents,
            "reviewed": reviewed,
        },
        remote_addr=remote_addr,
    )
    return bill


def held_final_bills(session: Session) -> list[FinalBillReview]:
    """Final bills waiting for review, oldest first."""
    return list(
        session.scalars(
            select(FinalBillReview)
            .where(FinalBillReview.status == "held")
            .order_by(FinalBillReview.entered_at, FinalBillReview.id)
        )
    )


def held_for_account(session: Session, account_id: int) -> FinalBillReview | None:
    stmt = statements.once(
        ("final_bills.held_for_account",),
        lambda: select(FinalBillReview).where(
            FinalBillReview.account_id == bindparam("account_id"), FinalBillReview.status == "held"
        ),
    )
    return session.scalar(stmt, {"account_id": account_id})


def review_checks(session: Session, review: FinalBillReview) -> list[FinalReadCheck]:
    """The held reads checked again as they stand now (for the reviewer)."""
    account = session.get(Account, review.account_id)
    assert account is not None
    return _checks(session, account, review.stop_on, {int(k): Decimal(v) for k, v in review.reads.items()})


def approve_final(
    session: Session,
    review: FinalBillReview,
    actor: User,
    today: date,
    *,
    due_days: int = 21,
    remote_addr: str | None = None,
    now: datetime,
) -> Bill:
    """A supervisor approves a held final bill (the reads are right as they stand) and posts it.
    Not before the last day of service: the final read is only known then."""
    permissions.require(actor, Action.BILLS_FINAL_APPROVE)
    if review.status != "held":
        raise InvalidInput("this final bill is not waiting for review", "final")
    if review.stop_on > today:
        raise InvalidInput(
            f"the last day of service, {review.stop_on.isoformat()}, is still ahead; approve the final bill on or "
            "after that day, with the read taken then",
            "final",
        )
    # The approver is never the one who stopped service (issue 16: approvals).
    permissions.require_approver(actor, Action.BILLS_FINAL_APPROVE, review.entered_by_id)
    account = session.get(Account, review.account_id)
    assert account is not None
    if account.status != "active":
        raise InvalidInput(f"account {account.number} is {account.status}", "final")
    review.decided_by_id, review.decided_at = actor.id, now
    return _post_final(session, review, account, actor, today, due_days, remote_addr, now)


def correct_final_read(
    session: Session,
    review: FinalBillReview,
    meter_id: int,
    value: Decimal,
    reason: str,
    actor: User,
    today: date,
    remote_addr: str | None = None,
    *,
    now: datetime,
) -> FinalBillReview:
    """Replace a held final read (a misread, or the real read once the day has come): checked
    by the same rules, the reason required and the change audited. It stays held until approved."""
    permissions.require(actor, Action.BILLS_FINAL)
    if review.status != "held":
        raise InvalidInput("this final bill is not waiting for review", "final")
    if str(meter_id) not in review.reads:
        raise InvalidInput("that meter is not on this final bill", "meter")
    if not (reason or "").strip():
        raise InvalidInput("say why the read is corrected", "reason")
    meter = session.get(Meter, meter_id)
    assert meter is not None
    check_final_read(session, meter, review.stop_on, value)
    before = dict(review.reads)
    review.reads = {**review.reads, str(meter_id): str(value)}
    review.reasons = ",".join(_reasons(review.stop_on, today, review_checks(session, review)))
    stamp = f"{now:%Y-%m-%d %H:%M} {actor.email}: meter {meter.serial} {before[str(meter_id)]} -> {value}: "
    line = stamp + reason.strip()[:200]
    review.note = f"{review.note}\n{line}" if review.note else line
    audit.record(
        session,
        "account.final_read_corrected",
        actor=actor,
        entity_type="final_bill_review",
        entity_id=review.id,
        before={"reads": before},
        after={"reads": review.reads, "reason": reason.strip(), "reasons": review.reasons},
        remote_addr=remote_addr,
    )
    return review
