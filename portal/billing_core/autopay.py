"""Autopay: a standing authorization to take each bill from a saved card or bank account.

Rules (NACHA's for recurring consumer debits, and what residents expect):

- The customer agrees to a written authorization: its text, version, time and network
  address are recorded with the enrollment, and a copy is emailed to them.
- Each bill is the notice of the draft: it goes out at least ``NOTICE_DAYS`` before the
  money is taken. The draft is on the bill's due date, or later when the bill was dated
  too close to it.
- A bill is drafted only when the enrollment was in place on the bill's date, so every
  drafted bill said so. A bill already paid is not drafted; a partly paid one is drafted
  for what is left.
- The customer changes the method or cancels at any time; a cancellation before the
  draft date stops the draft.
- One draft per bill, whatever happens: the payment's idempotency key is the bill's, so a
  job run twice (or on two workers) charges once.
- A draft that fails leaves the bill open and the customer is told.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo

from sqlalchemy import Row, String, bindparam, or_, select
from sqlalchemy.orm import Session

from . import audit, statements
from .accounts import latest_posted_bill
from .bulk import among, chunks
from .models import Account, AutopayEnrollment, Bill, BillDelivery, Payment, User
from .status import AUTOPAY_TRANSITIONS, AutopayStatus, BillStatus, PaymentStatus, ProcessorStatus, move

#: Version of the authorization text customers agree to; change it when the text changes.
AUTHORIZATION_VERSION = "2026-11"
#: Days between the bill (the notice of the draft) and the draft.
NOTICE_DAYS = 10
#: A draft missed on its day (the worker was down) is still taken this many days later.
CATCH_UP_DAYS = 5
MINIMUM_CENTS = 50
METHOD_KINDS = ("card", "us_bank_account")


def draft_date(notice_on: date, due_date: date) -> date:
    """When autopay takes a bill: on its due date, but never sooner than ``NOTICE_DAYS``
    after the bill (the notice) went out."""
    return max(due_date, notice_on + timedelta(days=NOTICE_DAYS))


def notice_dates(session: Session, bills: list[tuple[int, int | None, date]], tz) -> dict[int, date | None]:  # type: ignore[no-untyped-def]
    """When each bill, the notice of its draft, went out: a bill run's bill when it was
    emailed or its print file was made (None: not sent yet, so not drafted yet); a bill
    made outside a run (a final bill, history brought from another system) on its date."""
    in_runs = [bill_id for bill_id, run_id, _ in bills if run_id is not None]
    sent: dict[int, datetime | None] = {}
    for part in chunks(session, in_runs):  # a due date's bills: bound no IN list by their number
        sent.update(
            session.execute(
                select(BillDelivery.bill_id, BillDelivery.sent_at).where(among(session, BillDelivery.bill_id, part))
            ).all()
        )
    dates: dict[int, date | None] = {}
    for bill_id, run_id, bill_date in bills:
        if run_id is None:
            dates[bill_id] = bill_date
        else:
            at = sent.get(bill_id)
            dates[bill_id] = max(bill_date, at.astimezone(tz).date()) if at is not None else None
    return dates


def scheduled_on(session: Session, bill: Bill, tz) -> date | None:  # type: ignore[no-untyped-def]
    """The draft date of one bill, or None while its notice has not gone out."""
    notice = notice_dates(session, [(bill.id, bill.bill_run_id, bill.bill_date)], tz)[bill.id]
    return None if notice is None else draft_date(notice, bill.due_date)


def idempotency_key(bill_id: int) -> str:
    return f"autopay-bill-{bill_id}"


def active_enrollment(session: Session, account_id: int) -> AutopayEnrollment | None:
    stmt = statements.once(
        ("autopay.active_enrollment",),
        lambda: select(AutopayEnrollment).where(
            AutopayEnrollment.account_id == bindparam("account_id"), AutopayEnrollment.status == AutopayStatus.ACTIVE
        ),
    )
    return session.scalar(stmt, {"account_id": account_id})


def enroll(
    session: Session,
    account: Account,
    user: User | None,
    *,
    method_kind: str,
    payment_method_id: str,
    method_label: str | None,
    setup_id: str | None,
    authorization_text: str,
    language: str,
    now: datetime,
    remote_addr: str | None,
) -> AutopayEnrollment:
    """Turn autopay on (or move it to another card or bank account): the enrollment it
    replaces ends in the same transaction, so there is never more than one."""
    if method_kind not in METHOD_KINDS:
        raise ValueError(f"unknown payment method kind {method_kind!r}")
    previous = active_enrollment(session, account.id)
    if previous is not None:
        move(AUTOPAY_TRANSITIONS, previous, AutopayStatus.REPLACED)
        previous.ended_at = now
        previous.ended_by_id = user.id if user else None
        session.flush()  # the active-enrollment index admits one at a time
    enrollment = AutopayEnrollment(
        account_id=account.id,
        user_id=user.id if user else None,
        status=AutopayStatus.ACTIVE.value,
        method_kind=method_kind,
        payment_method_id=payment_method_id,
        method_label=(method_label or "")[:80] or None,
        setup_id=setup_id,
        authorization_version=AUTHORIZATION_VERSION,
        authorization_text=authorization_text,
        authorization_language=language,
        authorized_at=now,
        authorized_from=remote_addr,
    )
    session.add(enrollment)
    account.autopay = True
    session.flush()
    audit.record(
        session,
        "autopay.changed" if previous else "autopay.enrolled",
        actor=user,
        entity_type="account",
        entity_id=account.id,
        before={"enrollment": previous.id, "method": previous.method_label} if previous else {"autopay": False},
        after={
            "enrollment": enrollment.id,
            "method": enrollment.method_label,
            "authorization_version": AUTHORIZATION_VERSION,
        },
        remote_addr=remote_addr,
    )
    return enrollment


def cancel(
    session: Session, account: Account, user: User | None, now: datetime, remote_addr: str | None
) -> AutopayEnrollment | None:
    """Turn autopay off. Drafts already sent to the bank are not recalled; later ones are not made."""
    enrollment = active_enrollment(session, account.id)
    account.autopay = False
    if enrollment is None:
        return None
    move(AUTOPAY_TRANSITIONS, enrollment, AutopayStatus.CANCELLED)
    enrollment.ended_at = now
    enrollment.ended_by_id = user.id if user else None
    audit.record(
        session,
        "autopay.cancelled",
        actor=user,
        entity_type="account",
        entity_id=account.id,
        before={"enrollment": enrollment.id, "method": enrollment.method_label},
        after={"autopay": False},
        remote_addr=remote_addr,
    )
    return enrollment


def latest_bill(session: Session, account_id: int) -> Bill | None:
    """The account's latest posted bill (``accounts.latest_posted_bill``)."""
    return latest_posted_bill(session, account_id)


def covers(enrollment: AutopayEnrollment, bill: Bill, tz) -> bool:  # type: ignore[no-untyped-def]
    """Whether the bill went out with autopay on (so it was the notice of its draft)."""
    return enrollment.authorized_at.astimezone(tz).date() <= bill.bill_date


@dataclass(frozen=True)
class Outlook:
    """What the customer is told about autopay on an account."""

    enrollment: AutopayEnrollment | None
    #: The bill autopay will take next, when, and how much (as things stand today).
    next_bill: Bill | None = None
    next_on: date | None = None
    next_cents: int = 0
    #: The latest draft, when it did not go through (the bill is still open).
    failed: Payment | None = None


def outlook(
    session: Session,
    account: Account,
    balance_cents: int,
    as_of: date,
    tz: tzinfo,
    bill: Bill | None,
) -> Outlook:
    """``bill``: the account's latest posted bill (``latest_bill``; an ``AccountSummary``
    has it as ``last_bill``), None when it has none."""
    enrollment = active_enrollment(session, account.id)
    failed = None
    if bill is not None:
        draft = session.scalar(
            statements.once(
                ("autopay.draft",), lambda: select(Payment).where(Payment.idempotency_key == bindparam("key"))
            ),
            {"key": idempotency_key(bill.id)},
        )
        if draft is not None and draft.status in (PaymentStatus.FAILED, PaymentStatus.RETURNED):
            failed = draft
        on = scheduled_on(session, bill, tz) if enrollment is not None and draft is None else None
        if enrollment is not None and on is not None and on >= as_of and covers(enrollment, bill, tz):
            from .payments import pending_cents

            # As the draft will count it: less the payments already on their way.
            amount = min(bill.total_due_cents, balance_cents - pending_cents(session, account.id))
            if amount >= MINIMUM_CENTS:
                return Outlook(enrollment, bill, on, amount, failed)
    return Outlook(enrollment, failed=failed)


def due_bills(session: Session, as_of: date, tz) -> list[int]:  # type: ignore[no-untyped-def]
    """The bills autopay takes on ``as_of``: each account's latest posted bill whose draft
    date has come (up to ``CATCH_UP_DAYS`` late), on an active enrollment that was in
    place on the bill's date, with no draft made for it yet."""
    earliest_due = as_of - timedelta(days=NOTICE_DAYS + CATCH_UP_DAYS + 60)
    rows = session.execute(
        select(
            Bill.id, Bill.account_id, Bill.bill_run_id, Bill.bill_date, Bill.due_date, AutopayEnrollment.authorized_at
        )
        .join(AutopayEnrollment, AutopayEnrollment.account_id == Bill.account_id)
        .where(
            AutopayEnrollment.status == AutopayStatus.ACTIVE,
            Bill.status == BillStatus.POSTED,
            Bill.due_date <= as_of,
            Bill.due_date >= earliest_due,
        )
        .order_by(Bill.account_id, Bill.bill_date.desc(), Bill.id.desc())
    ).all()
    latest: dict[int, Row[int, int, int | None, date, date, datetime]] = {}
    for row in rows:
        latest.setdefault(row.account_id, row)
    covered = [row for row in latest.values() if row.authorized_at.astimezone(tz).date() <= row.bill_date]
    notices = notice_dates(session, [(row.id, row.bill_run_id, row.bill_date) for row in covered], tz)
    candidates = [
        row.id
        for row in covered
        if (notice := notices[row.id]) is not None
        and as_of - timedelta(days=CATCH_UP_DAYS) <= draft_date(notice, row.due_date) <= as_of
    ]
    if not candidates:
        return []
    # A draft written but never answered by the processor (its job died) is sent again.
    done: set[str | None] = set()
    for part in chunks(session, [idempotency_key(b) for b in candidates]):
        done.update(
            session.scalars(
                select(Payment.idempotency_key).where(
                    among(session, Payment.idempotency_key, part, String()),
                    or_(Payment.status != PaymentStatus.PENDING, Payment.processor_id.is_not(None)),
                )
            )
        )
    return sorted(b for b in candidates if idempotency_key(b) not in done)


@dataclass(frozen=True)
class Draft:
    """A draft ready to send to the processor, or the reason there is none."""

    payment: Payment | None
    enrollment: AutopayEnrollment | None
    skipped: str = ""


def prepare(session: Session, bill_id: int, as_of: date, balance_cents: int, pending_cents: int, tz) -> Draft:  # type: ignore[no-untyped-def]
    """Write the pending autopay payment for a bill (once: its key is the bill's). The
    amount is the bill's total, less anything paid since, never more than the balance."""
    key = idempotency_key(bill_id)
    existing = session.scalar(select(Payment).where(Payment.idempotency_key == key))
    bill = session.get(Bill, bill_id)
    if bill is None:
        return Draft(None, None, "no such bill")
    enrollment = active_enrollment(session, bill.account_id)
    if existing is not None:
        if existing.status == PaymentStatus.PENDING and existing.processor_id is None:
            # An earlier try wrote it and stopped before the processor answered: send it
            # again with the same key, which the processor answers with the same charge.
            return Draft(existing, enrollment)
        return Draft(None, enrollment, "already drafted")
    if enrollment is None or not covers(enrollment, bill, tz):
        return Draft(None, enrollment, "autopay is off")
    on = scheduled_on(session, bill, tz)
    if on is None or on > as_of:
        return Draft(None, enrollment, "not due yet: the bill's notice period has not passed")
    latest = latest_bill(session, bill.account_id)
    if latest is None or latest.id != bill.id:
        return Draft(None, enrollment, "a newer bill replaced it")
    amount = min(bill.total_due_cents, balance_cents - pending_cents)
    if amount < MINIMUM_CENTS:
        audit.record(
            session,
            "autopay.skipped",
            entity_type="bill",
            entity_id=bill.id,
            after={"reason": "already paid", "balance_cents": balance_cents, "pending_cents": pending_cents},
        )
        return Draft(None, enrollment, "already paid")
    payment = Payment(
        account_id=bill.account_id,
        amount_cents=amount,
        channel="autopay",
        method="bank" if enrollment.method_kind == "us_bank_account" else "card",
        received_on=as_of,
        reference=bill.number,
        status=PaymentStatus.PENDING.value,
        idempotency_key=key,
        processor_status=ProcessorStatus.CREATED.value,
        user_id=enrollment.user_id,
        method_label=enrollment.method_label,
    )
    session.add(payment)
    session.flush()
    audit.record(
        session,
        "autopay.drafted",
        entity_type="payment",
        entity_id=payment.id,
        after={"bill": bill.number, "amount_cents": amount, "enrollment": enrollment.id},
    )
    return Draft(payment, enrollment)
