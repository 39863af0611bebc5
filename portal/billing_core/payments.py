"""Payments taken online: how much may be paid, and what each processor state means for
the ledger.

A payment is written to the ledger only when the processor confirms it (``succeeded``).
Until then it is ``pending`` and the portal says so. The processor's states arrive in any
order and more than once; ``apply`` moves a payment forward only, so a late or repeated
report changes nothing:

    pending --succeeded--> posted --returned (dispute, ACH return)--> returned
       \\--failed / canceled--> failed

A return after posting is a reversal linked to the payment's ledger transaction.

No overpayment online: what may be paid is checked when the form is shown and again when
the payment is written, just before the charge, under a lock on the account (``lock_account``)
and counting every payment still on its way, so two forms opened for the same balance
charge once. A payment that still posts beyond the balance (the customer also paid at the
counter while it was on its way) is real money: it posts, the part beyond what was owed is a
credit (``overpaid_cents``) and staff review it for a refund (``to_review``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Select, bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from . import audit, bulk, collection_hooks, ledger, posting, statements, write_offs
from .accounts import AccountSummary
from .errors import N_, InvalidInput
from .models import Account, LedgerEntry, LedgerTransaction, Payment, User
from .status import PAYMENT_TRANSITIONS, PaymentStatus, ProcessorStatus, move

#: The processor's smallest charge in US dollars.
MINIMUM_CENTS = 50
CHOICES = ("balance", "past_due", "other")


@dataclass(frozen=True)
class PaymentLimits:
    """What an online payment on this account may be: at least ``minimum_cents``, at most
    the balance less what is already on its way (no overpayment online: refunds to cards
    cost the office and the resident time)."""

    minimum_cents: int
    maximum_cents: int
    pending_cents: int

    @property
    def can_pay(self) -> bool:
        return self.maximum_cents >= self.minimum_cents


def limits(summary: AccountSummary, pending_cents: int) -> PaymentLimits:
    maximum = max(summary.balance_cents - pending_cents, 0)
    return PaymentLimits(min(MINIMUM_CENTS, maximum) if maximum else MINIMUM_CENTS, maximum, pending_cents)


def parse_cents(text: str) -> int | None:
    from .users import parse_amount

    return parse_amount(text)


def choose_amount(summary: AccountSummary, allowed: PaymentLimits, choice: str, other: str) -> int:
    """The amount the resident chose: the whole balance, the past-due part, or another amount."""
    if not allowed.can_pay:
        raise InvalidInput(N_("There is nothing to pay on this account right now."), "choice")
    if choice == "balance":
        cents = allowed.maximum_cents
    elif choice == "past_due":
        cents = min(max(summary.past_due_cents - allowed.pending_cents, 0), allowed.maximum_cents)
        if cents <= 0:
            raise InvalidInput(N_("Nothing is past due. Choose another amount."), "choice")
    elif choice == "other":
        parsed = parse_cents(other)
        if parsed is None:
            raise InvalidInput(N_("Enter the amount in dollars and cents, like 25.00."), "other_amount")
        cents = parsed
    else:
        raise InvalidInput(N_("Choose how much to pay."), "choice")
    if cents < allowed.minimum_cents:
        raise InvalidInput(
            N_("The smallest online payment is %(amount)s."),
            "other_amount",
            amount=_dollars(allowed.minimum_cents),
        )
    if cents > allowed.maximum_cents:
        raise InvalidInput(
            N_("You can pay at most %(amount)s online, the balance of this account."),
            "other_amount",
            amount=_dollars(allowed.maximum_cents),
        )
    return cents


def _dollars(cents: int) -> str:
    from .money import format_money

    return format_money(cents)


def pending_cents(session: Session, account_id: int) -> int:
    return sum(p.amount_cents for p in pending(session, account_id))


def pending(session: Session, account_id: int) -> list[Payment]:
    return list(
        session.scalars(
            select(Payment)
            .where(Payment.account_id == account_id, Payment.status == PaymentStatus.PENDING)
            .order_by(Payment.id)
        )
    )


def recent(session: Session, account_id: int, limit: int = 10) -> list[Payment]:
    stmt = statements.once(
        ("payments.recent",),
        lambda: (
            select(Payment)
            .where(Payment.account_id == bindparam("account_id"), Payment.channel.in_(("online", "autopay")))
            .order_by(Payment.created_at.desc(), Payment.id.desc())
            .limit(bindparam("limit"))
        ),
    )
    return list(session.scalars(stmt, {"account_id": account_id, "limit": limit}))


def lock_account(session: Session, account_id: int) -> None:
    """Hold the account until the transaction ends, so payments on it are checked and
    written one after the other.

    PostgreSQL: ``SELECT ... FOR NO KEY UPDATE`` of its row. Two of these wait for each
    other; rows that merely reference the account (a bill run's ledger entries, which
    lock it ``FOR KEY SHARE``) do not wait, so a charge in progress never stalls a run.
    SQLite has no row locks: an UPDATE of the row takes the database's write lock now, not
    at the first insert, so a second writer waits here and then reads what the first
    committed."""
    if session.get_bind().dialect.name == "sqlite":
        session.execute(
            update(Account)
            .where(Account.id == account_id)
            .values(id=Account.id)
            .execution_options(synchronize_session=False)
        )
    else:
        session.execute(select(Account.id).where(Account.id == account_id).with_for_update(key_share=True))


def check_still_owed(session: Session, account_id: int, amount_cents: int) -> None:
    """Refuse a new payment beyond the balance less the payments already on their way.
    Call it with the account locked (``lock_account``)."""
    balance = posting.account_balance(session, account_id)
    on_the_way = pending_cents(session, account_id)
    allowed = max(balance - on_the_way, 0)
    if amount_cents <= allowed:
        return
    if on_the_way and allowed >= MINIMUM_CENTS:
        raise InvalidInput(
            N_(
                "%(pending)s is already on its way to this account, so you can pay at most %(allowed)s now. "
                "Nothing was charged."
            ),
            "choice",
            pending=_dollars(on_the_way),
            allowed=_dollars(allowed),
        )
    if on_the_way:
        raise InvalidInput(
            N_("%(pending)s is already on its way to this account and covers what is owed. Nothing was charged."),
            "choice",
            pending=_dollars(on_the_way),
        )
    if allowed >= MINIMUM_CENTS:
        raise InvalidInput(
            N_(
                "The balance of this account is now %(balance)s, so you can pay at most %(allowed)s online. "
                "Nothing was charged."
            ),
            "choice",
            balance=_dollars(balance),
            allowed=_dollars(allowed),
        )
    raise InvalidInput(N_("There is nothing to pay on this account right now. Nothing was charged."), "choice")


def start(
    session: Session,
    account: Account,
    user: User | None,
    amount_cents: int,
    method: str,
    idempotency_key: str,
    received_on: date,
    channel: str = "online",
) -> tuple[Payment, bool]:
    """The pending payment for ``idempotency_key``: made now, or the one an earlier try of
    the same request made (then the flag is False and nothing new is written). A new one is
    refused (``InvalidInput``, nothing written) when it would pay more than is owed less
    the payments already on their way; the account stays locked until the caller's
    transaction ends, so the charge is made before another payment is checked."""
    lock_account(session, account.id)
    existing = session.scalar(select(Payment).where(Payment.idempotency_key == idempotency_key))
    if existing is not None:
        if existing.account_id != account.id:
            raise InvalidInput(N_("This payment form was already used. Start again."), "choice")
        return existing, False
    check_still_owed(session, account.id, amount_cents)
    payment = Payment(
        account_id=account.id,
        amount_cents=amount_cents,
        channel=channel,
        method="bank" if method == "us_bank_account" else "card",
        received_on=received_on,
        status=PaymentStatus.PENDING.value,
        idempotency_key=idempotency_key,
        processor_status=ProcessorStatus.CREATED.value,
        user_id=user.id if user else None,
    )
    session.add(payment)
    session.flush()
    return payment, True


SUCCEEDED = ProcessorStatus.SUCCEEDED
FAILED_STATES = (ProcessorStatus.REQUIRES_PAYMENT_METHOD, ProcessorStatus.CANCELED)


@dataclass(frozen=True)
class Applied:
    payment: Payment
    #: What changed: "posted", "failed", "returned", "processing", or "" (nothing).
    change: str


def apply(
    session: Session,
    payment: Payment,
    status: str,
    as_of: date,
    now: datetime,
    *,
    method_label: str | None = None,
    failure: str | None = None,
) -> Applied:
    """Bring a payment up to the processor's state. Forward only: a posted payment is never
    failed by a late "processing" or "failed" report, a failed one never posted twice."""
    if method_label and not payment.method_label:
        payment.method_label = method_label[:80]
    if payment.status in (PaymentStatus.RETURNED, PaymentStatus.FAILED):
        return Applied(payment, "")
    if status == SUCCEEDED:
        if payment.status == PaymentStatus.POSTED:
            return Applied(payment, "")
        _post(session, payment, as_of, now)
        return Applied(payment, PaymentStatus.POSTED.value)
    if status in FAILED_STATES:
        # Payments are confirmed when made, so "needs a payment method" means it was declined,
        # failed authentication or was returned by the bank before it cleared.
        if payment.status == PaymentStatus.POSTED:
            return Applied(payment, "")
        move(PAYMENT_TRANSITIONS, payment, PaymentStatus.FAILED)
        payment.processor_status = status
        payment.failure_message = (failure or "The payment did not go through.")[:300]
        audit.record(
            session,
            "payment.failed",
            entity_type="payment",
            entity_id=payment.id,
            after={"status": PaymentStatus.FAILED.value, "reason": payment.failure_message},
        )
        return Applied(payment, PaymentStatus.FAILED.value)
    if payment.status == PaymentStatus.PENDING and status != payment.processor_status:
        payment.processor_status = status
        return Applied(payment, ProcessorStatus.PROCESSING.value if status == ProcessorStatus.PROCESSING else "")
    return Applied(payment, "")


@dataclass(frozen=True)
class Received:
    """Money received for an account, to post: what ``post_received`` needs of a payment."""

    account_id: int
    amount_cents: int
    channel: str
    memo: str


def lock_accounts(session: Session, account_ids: Iterable[int]) -> None:
    """``lock_account`` for many accounts in one statement (a batch or a bank file)."""
    ids = sorted(set(account_ids))
    for part in bulk.chunks(session, ids):
        if session.get_bind().dialect.name == "sqlite":
            session.execute(
                update(Account)
                .where(Account.id.in_(part))
                .values(id=Account.id)
                .execution_options(synchronize_session=False)
            )
        else:
            session.execute(
                select(Account.id).where(bulk.among(session, Account.id, part)).with_for_update(key_share=True)
            )


def post_received(
    session: Session, items: Sequence[Received], as_of: date, now: datetime, posted_by_id: int | None = None
) -> list[tuple[int, int]]:
    """Post payments set-based, with their accounts locked: every account's open receivables
    read in one query, each payment applied oldest service first in turn (two payments on one
    account in a file apply one after the other), all written with one ``posting.post_many``.
    Returns, per item, its ledger transaction id and what its account owed just before it
    (never below zero), for the caller's overpayment and recovery."""
    if not items:
        return []
    ids = sorted({i.account_id for i in items})
    lock_accounts(session, ids)
    session.flush()
    open_: dict[int, dict[str, int]] = {a: {} for a in ids}
    balance: dict[int, int] = dict.fromkeys(ids, 0)
    for part in bulk.chunks(session, ids):
        rows = session.execute(
            select(LedgerEntry.account_id, LedgerEntry.service_type, func.sum(LedgerEntry.amount_cents))
            .where(bulk.among(session, LedgerEntry.account_id, part))
            .group_by(LedgerEntry.account_id, LedgerEntry.service_type)
        ).all()
        for account_id, service, total in rows:
            if account_id is None:
                continue
            balance[account_id] += int(total)
            if service is not None:
                open_[account_id][service] = int(total)
    txns = []
    owed_before = []
    for item in items:
        owed_before.append(max(balance[item.account_id], 0))
        txn = ledger.payment_transaction(
            item.account_id, as_of, item.amount_cents, item.channel, dict(open_[item.account_id]), memo=item.memo
        )
        for e in txn.entries:
            if e.account_id is not None and e.service is not None:
                open_[item.account_id][e.service] = open_[item.account_id].get(e.service, 0) + e.amount_cents
        balance[item.account_id] -= item.amount_cents
        txns.append(txn)
    txn_ids = posting.post_many(
        session, txns, account_ids=[i.account_id for i in items], posted_at=now, posted_by_id=posted_by_id
    )
    collection_hooks.after_posted(session, ids, as_of, now)
    return list(zip(txn_ids, owed_before, strict=True))


def settle(session: Session, payment: Payment, transaction_id: int, owed: int, as_of: date, now: datetime) -> None:
    """A payment just posted (``post_received``): mark it posted, audit it, record a recovery
    on a written-off account, and note what went beyond the balance as credit to review."""
    payment.ledger_transaction_id = transaction_id
    move(PAYMENT_TRANSITIONS, payment, PaymentStatus.POSTED)
    payment.received_on = as_of
    payment.settled_at = now
    audit.record(
        session,
        "payment.posted",
        entity_type="payment",
        entity_id=payment.id,
        after={
            "status": PaymentStatus.POSTED.value,
            "amount_cents": payment.amount_cents,
            "ledger_transaction": transaction_id,
        },
    )


def _post(session: Session, payment: Payment, as_of: date, now: datetime) -> None:
    post_now(
        session,
        payment,
        as_of,
        now,
        memo=f"{payment.channel.capitalize()} payment {payment.processor_id or payment.id}",
    )
    payment.processor_status = SUCCEEDED.value


def post_now(session: Session, payment: Payment, as_of: date, now: datetime, memo: str) -> None:
    """Write one pending payment to the ledger now, any channel (``post_received`` of one):
    oldest charges first in service order, the rest a credit; then a recovery on a
    written-off account, and any part beyond what was owed noted as an overpayment."""
    ((tid, owed),) = post_received(
        session,
        [Received(payment.account_id, payment.amount_cents, payment.channel, memo)],
        as_of,
        now,
        payment.user_id,
    )
    settle(session, payment, tid, owed, as_of, now)
    note_overpaid(session, payment, owed, as_of, now)


_INSERT_PAYMENT = insert(Payment).returning(Payment.id)


def post_new(
    session: Session, as_of: date, now: datetime, memo: str, events: list[dict[str, Any]], **values: Any
) -> int:
    """``post_now`` for a payment not written yet (the counter's): the same ledger
    transaction, audit events, recovery and overpayment note, but the payment's row goes in
    once, already posted (one INSERT), where ``post_now`` updates a pending row. ``values``
    are its columns (``account_id``, ``amount_cents``, ``channel``, ...). Its audit events are
    appended to ``events`` for the caller to write with the rest (``audit.write``, one
    statement for a whole receipt); on a written-off account they are written here, before
    the recovery's. Returns the payment's id."""
    account_id, amount = values["account_id"], values["amount_cents"]
    ((tid, owed),) = post_received(
        session, [Received(account_id, amount, values["channel"], memo)], as_of, now, values.get("user_id")
    )
    # ``record_recovery`` moves only a credit the payment left. One that pays no more than was
    # owed leaves none (the balance stays at or above zero), so it recovers nothing and
    # overpays nothing, whatever was written off. Otherwise ask its first question before the
    # row is written: most accounts were never written off, and then the overpayment is known
    # now and goes into the INSERT.
    written_off = amount > owed and write_offs.written_off_unrecovered(session, account_id) > 0
    overpaid = amount - owed if amount > owed and not written_off else None
    row = {
        **values,
        "status": PaymentStatus.POSTED.value,  # pending -> posted (PAYMENT_TRANSITIONS), in one write
        "ledger_transaction_id": tid,
        "received_on": as_of,
        "settled_at": now,
        "overpaid_cents": overpaid,
    }
    payment_id = int(session.connection().execute(_INSERT_PAYMENT, row).scalar_one())
    posted = {"status": PaymentStatus.POSTED.value, "amount_cents": amount, "ledger_transaction": tid}
    events.append(audit.row("payment.posted", entity_type="payment", entity_id=payment_id, after=posted))
    if written_off:
        audit.write(session, events)
        events.clear()
        payment = session.get_one(Payment, payment_id)
        note_overpaid(session, payment, owed, as_of, now)
        session.flush()  # the recovery's and the overpayment's events, before the caller's
    elif overpaid is not None:
        events.append(
            audit.row(
                "payment.overpaid",
                entity_type="payment",
                entity_id=payment_id,
                after={"overpaid_cents": overpaid, "owed_cents": owed},
            )
        )
    return payment_id


def note_overpaid(session: Session, payment: Payment, owed: int, as_of: date, now: datetime) -> None:
    # On a written-off account the money recovers bad debt first (``write_offs``).
    recovered = write_offs.record_recovery(session, payment, as_of, now)
    if payment.amount_cents - recovered > owed:
        # The money is real, so it posts; what was beyond the balance is a credit to review.
        payment.overpaid_cents = payment.amount_cents - recovered - owed
        audit.record(
            session,
            "payment.overpaid",
            entity_type="payment",
            entity_id=payment.id,
            after={"overpaid_cents": payment.overpaid_cents, "owed_cents": owed},
        )


def to_review(
    session: Session, account_id: int | None = None, *, reviewed: bool = False, limit: int = 500
) -> list[Payment]:
    """Payments that posted beyond what was owed, oldest first: not yet reviewed for a
    refund (or, with ``reviewed``, the ones that were, newest first). One the bank took
    back since (returned) is no longer a credit, so nothing is left to refund."""

    def build() -> Select[Payment]:
        query = select(Payment).where(Payment.overpaid_cents.is_not(None))
        if account_id is not None:
            query = query.where(Payment.account_id == bindparam("account_id"))
        if reviewed:
            query = query.where(Payment.refund_reviewed_at.is_not(None)).order_by(Payment.refund_reviewed_at.desc())
        else:
            query = query.where(Payment.refund_reviewed_at.is_(None), Payment.status == PaymentStatus.POSTED).order_by(
                Payment.settled_at, Payment.id
            )
        return query.limit(bindparam("limit"))

    stmt = statements.once(("payments.to_review", account_id is not None, reviewed), build)
    return list(session.scalars(stmt, {"account_id": account_id, "limit": limit}))


def mark_reviewed(session: Session, payment: Payment, user: User, now: datetime, note: str) -> None:
    """Staff decided about an overpayment (refunded outside the portal, or kept as credit)."""
    if (
        payment.overpaid_cents is None
        or payment.refund_reviewed_at is not None
        or payment.status != PaymentStatus.POSTED
    ):
        raise InvalidInput("This payment has no overpayment left to review.", "note")
    payment.refund_reviewed_at = now
    payment.refund_reviewed_by_id = user.id
    audit.record(
        session,
        "payment.refund_reviewed",
        actor=user,
        entity_type="payment",
        entity_id=payment.id,
        after={"overpaid_cents": payment.overpaid_cents, "note": note[:300]},
    )


def return_payment(
    session: Session,
    payment: Payment,
    as_of: date,
    reason: str,
    *,
    code: str | None = None,
    actor: User | None = None,
    now: datetime | None = None,
) -> Applied:
    """A posted payment taken back by the bank or card holder: its ledger transaction is
    reversed (linked to it) and the amount is owed again. Once only. When the payment
    recovered written-off debt (``write_offs.record_recovery``), that recovery is reversed
    too, so the written-off balance is unrecovered again and the account owes exactly what
    it owed before the payment. ``returned_on`` and ``return_code`` (NSF, an ACH R-code,
    DISPUTE) record when and why; the fee and cash only are ``returns.record_return``'s."""
    if payment.status != PaymentStatus.POSTED or payment.ledger_transaction_id is None:
        return Applied(payment, "")
    posted_by = actor.id if actor else None
    reversal = posting.reverse(
        session,
        payment.ledger_transaction_id,
        as_of,
        memo=f"Payment {payment.id} returned: {reason}"[:300],
        posted_by_id=posted_by,
        posted_at=now,
    )
    recovery = _recovery_of(session, payment)
    recovery_reversal = None
    if recovery is not None:
        recovery_reversal = posting.reverse(
            session,
            recovery,
            as_of,
            memo=f"Payment {payment.id} returned: its recovery of written-off debt is undone",
            posted_by_id=posted_by,
            posted_at=now,
        ).id
    before = {"status": PaymentStatus.POSTED.value, "recovery_cents": payment.recovery_cents}
    move(PAYMENT_TRANSITIONS, payment, PaymentStatus.RETURNED)
    payment.failure_message = reason[:300]
    payment.returned_on = as_of
    payment.return_code = code
    if recovery is not None:
        payment.recovery_cents = None  # nothing of it recovers written-off debt any more
    audit.record(
        session,
        "payment.returned",
        actor=actor,
        entity_type="payment",
        entity_id=payment.id,
        before=before,
        after={
            "status": PaymentStatus.RETURNED.value,
            "reason": reason,
            "return_code": code,
            "returned_on": as_of.isoformat(),
            "reversal": reversal.id,
            "recovery_reversal": recovery_reversal,
        },
    )
    return Applied(payment, PaymentStatus.RETURNED.value)


def _recovery_of(session: Session, payment: Payment) -> int | None:
    """The recovery transaction ``write_offs.record_recovery`` posted for ``payment`` (found
    by its account, kind and memo), when it has one not yet reversed."""
    if not payment.recovery_cents:
        return None
    memo = write_offs.recovery_transaction(payment.account_id, payment.received_on, 1, payment.id).memo
    found = session.scalar(
        select(LedgerTransaction.id)
        .where(
            LedgerTransaction.kind == ledger.Kind.RECOVERY.value,
            LedgerTransaction.account_id == payment.account_id,
            LedgerTransaction.memo == memo,
        )
        .order_by(LedgerTransaction.id.desc())
        .limit(1)
    )
    if found is None:
        return None
    reversed_already = session.scalar(select(LedgerTransaction.id).where(LedgerTransaction.reverses_id == found))
    return None if reversed_already is not None else found
