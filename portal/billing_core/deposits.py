"""Security deposits: when the money policy asks for one and how much, and the ledger
transactions that bill, credit back, apply and cancel one.

A deposit is billed to the account under the ``deposit`` service (a receivable the customer
pays like any charge) and held in ``DEPOSITS_HELD``, a liability whose entries carry no
account id: a deposit is never part of what the customer owes for water, and a paid one is
never shown as credit. It leaves the liability once: credited back to the account's credit
after ``deposit_on_time_months`` consecutive months paid on time, applied at the final bill
(the same entries), or cancelled when billed in error (the reversal of its billing).

No wall clock here: every date is passed in.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, cast

from sqlalchemy import CursorResult, func, select, update
from sqlalchemy.orm import Session

from . import audit, ledger, payments, permissions, posting, refunds
from .models import Account, Bill, Deposit, LedgerEntry, LedgerTransaction, Payment, User
from .money_policy import MoneyPolicy
from .permissions import Action
from .status import BillStatus, DepositStatus, PaymentStatus

REASONS = ("new_customer", "after_shutoff", "returned_payments", "other")
REASON_LABELS = {
    "new_customer": "New customer without history in the district",
    "after_shutoff": "Service was shut off for nonpayment",
    "returned_payments": "Returned payments",
    "other": "Other (see the note)",
}
#: A deposit falls due this many days after it is billed.
DUE_DAYS = 21


def months_before(day: date, months: int) -> date:
    """The same day ``months`` calendar months earlier (the month's last day when shorter)."""
    y, m = divmod(day.year * 12 + (day.month - 1) - months, 12)
    m += 1
    for d in (day.day, 30, 29, 28):
        try:
            return date(y, m, d)
        except ValueError:
            continue
    raise ValueError(day)  # pragma: no cover - day 28 exists in every month


# --- How much ----------------------------------------------------------------------------


@dataclass(frozen=True)
class BilledPeriod:
    """One posted bill, as far as its monthly size matters: its charges and its period."""

    charges_cents: int
    period_start: date
    period_end: date

    @property
    def months(self) -> int:
        days = (self.period_end - self.period_start).days + 1
        return max(1, int((Decimal(days) / Decimal("30.4375")).to_integral_value(ROUND_HALF_UP)))


def average_monthly_cents(bills: Iterable[BilledPeriod]) -> int | None:
    """The average monthly bill over the bills given (a bimonthly bill counts as two
    months); None without any."""
    bills = list(bills)
    months = sum(b.months for b in bills)
    if not months:
        return None
    total = sum(b.charges_cents for b in bills)
    return int((Decimal(total) / Decimal(months)).to_integral_value(ROUND_HALF_UP))


def amount_cents(policy: MoneyPolicy, average_cents: int | None) -> int:
    """``deposit_multiplier`` times the average monthly bill, never below the minimum."""
    if average_cents is None or average_cents <= 0:
        return policy.deposit_minimum_cents
    cents = int((policy.deposit_multiplier * Decimal(average_cents)).to_integral_value(ROUND_HALF_UP))
    return max(cents, policy.deposit_minimum_cents)


# --- When --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Facts:
    """What the policy looks at for one account."""

    #: Months of history the customer has in the district (their earliest other account, or
    #: this one's bills), 0 for a new customer.
    history_months: int
    #: A shutoff for nonpayment was recorded on the account (staff say so: no table yet).
    after_shutoff: bool
    #: Payments returned in the last 12 months.
    returns_12_months: int
    #: Deposits billed and not released.
    held_cents: int


def reasons_required(policy: MoneyPolicy, facts: Facts) -> list[str]:
    """The policy's reasons for asking a deposit of this account (empty: none is needed,
    including when one is already held)."""
    if facts.held_cents > 0:
        return []
    out: list[str] = []
    if policy.deposit_for_new_customer and facts.history_months < policy.deposit_history_months:
        out.append("new_customer")
    if policy.deposit_after_shutoff and facts.after_shutoff:
        out.append("after_shutoff")
    if policy.deposit_after_returns and facts.returns_12_months >= policy.deposit_after_returns:
        out.append("returned_payments")
    return out


# --- Credited back -------------------------------------------------------------------------


@dataclass(frozen=True)
class DueBill:
    due_date: date
    charges_cents: int


def paid_on_time(charges: Sequence[tuple[date, int]], credits: Sequence[tuple[date, int]], due: date) -> bool:
    """Were the charges falling due on or before ``due`` covered by credits effective on or
    before it? ``charges`` (due date, cents > 0) and ``credits`` (effective date, cents > 0)
    are the account's postings; credits pay the oldest charges first."""
    owed = sum(c for d, c in charges if d <= due)
    paid = sum(c for d, c in credits if d <= due)
    return paid >= owed


def good_standing(
    policy: MoneyPolicy,
    deposit_billed_on: date,
    as_of: date,
    bill_due_dates: Sequence[date],
    charges: Sequence[tuple[date, int]],
    credits: Sequence[tuple[date, int]],
    returned_on: Sequence[date],
) -> bool:
    """``deposit_on_time_months`` consecutive months, ending ``as_of``, in which every bill
    was paid by its due date and no payment came back; the deposit is at least that old and
    at least one bill fell due in the window."""
    start = months_before(as_of, policy.deposit_on_time_months)
    if deposit_billed_on > start:
        return False
    if any(start < r <= as_of for r in returned_on):
        return False
    window = [d for d in bill_due_dates if start < d <= as_of]
    if not window:
        return False
    return all(paid_on_time(charges, credits, d) for d in window)


# --- Transactions ----------------------------------------------------------------------------


def billing_transaction(account_id: int, on: date, cents: int, memo: str) -> ledger.Transaction:
    return ledger.Transaction(
        ledger.Kind.DEPOSIT,
        on,
        (
            ledger.Entry(ledger.receivable(ledger.DEPOSIT), cents, account_id, ledger.DEPOSIT),
            ledger.Entry(ledger.DEPOSITS_HELD, -cents),
        ),
        due_date=on + timedelta(days=DUE_DAYS),
        memo=memo,
    )


def bill(
    session: Session, account: Account, cents: int, reason: str, note: str | None, on: date, actor: User, now: datetime
) -> Deposit:
    """Bill a deposit of ``cents`` on ``account`` (``reason`` one of ``REASONS``): the
    receivable posted (``billing_transaction``), the deposit row, its audit event."""
    memo = f"Deposit: {REASON_LABELS[reason]}"
    row = posting.post(session, billing_transaction(account.id, on, cents, memo), account.id, actor.id, posted_at=now)
    deposit = Deposit(
        account_id=account.id,
        amount_cents=cents,
        reason=reason,
        note=note,
        status=DepositStatus.BILLED.value,
        billed_on=on,
        billed_transaction_id=row.id,
        created_by_id=actor.id,
        created_at=now,
    )
    session.add(deposit)
    session.flush()
    audit.record(
        session,
        "deposit.billed",
        actor=actor,
        entity_type="deposit",
        entity_id=deposit.id,
        after={"account": account.number, "amount_cents": cents, "reason": reason, "ledger_transaction": row.id},
    )
    return deposit


def release_transaction(account_id: int, on: date, cents: int, memo: str) -> ledger.Transaction:
    """Credit back or applied to the final bill: out of the liability, into the account's credit."""
    return ledger.Transaction(
        ledger.Kind.DEPOSIT,
        on,
        (
            ledger.Entry(ledger.DEPOSITS_HELD, cents),
            ledger.Entry(ledger.UNAPPLIED_CREDIT, -cents, account_id),
        ),
        memo=memo,
    )


# --- Reading the database ------------------------------------------------------------------


def held(session: Session, account_id: int) -> list[Deposit]:
    return list(
        session.scalars(
            select(Deposit)
            .where(Deposit.account_id == account_id, Deposit.status == DepositStatus.BILLED.value)
            .order_by(Deposit.id)
        )
    )


def held_cents(session: Session, account_id: int) -> int:
    return sum(d.amount_cents for d in held(session, account_id))


def open_deposit_cents(session: Session, account_id: int) -> int:
    """The part of the account's balance that is deposit billed and not yet paid."""
    total = session.scalar(
        select(func.coalesce(func.sum(LedgerEntry.amount_cents), 0)).where(
            LedgerEntry.account_id == account_id, LedgerEntry.service_type == ledger.DEPOSIT
        )
    )
    return int(total or 0)


def recent_bills(session: Session, account_id: int, limit: int = 12) -> list[BilledPeriod]:
    rows = session.execute(
        select(Bill.current_charges_cents, Bill.period_start, Bill.period_end)
        .where(Bill.account_id == account_id, Bill.status == BillStatus.POSTED.value)
        .order_by(Bill.bill_date.desc(), Bill.id.desc())
        .limit(limit)
    ).all()
    return [BilledPeriod(int(c), s, e) for c, s, e in rows]


def class_average_cents(session: Session, customer_class: str, limit: int = 2_000) -> int | None:
    """The average monthly bill of the class's accounts in the district (their last posted
    bills, at most ``limit`` of them, newest first)."""
    rows = session.execute(
        select(Bill.current_charges_cents, Bill.period_start, Bill.period_end)
        .join(Account, Account.id == Bill.account_id)
        .where(Account.customer_class == customer_class, Bill.status == BillStatus.POSTED.value)
        .order_by(Bill.bill_date.desc(), Bill.id.desc())
        .limit(limit)
    ).all()
    return average_monthly_cents(BilledPeriod(int(c), s, e) for c, s, e in rows)


@dataclass(frozen=True)
class Suggestion:
    """What the policy asks of an account: the reasons (empty: none), the amount and how it
    was worked out."""

    reasons: list[str]
    amount_cents: int
    average_cents: int | None
    basis: str


def suggest(session: Session, policy: MoneyPolicy, account: Account, as_of: date) -> Suggestion:
    bills = recent_bills(session, account.id)
    average = average_monthly_cents(bills)
    if average is not None:
        basis = f"{policy.deposit_multiplier} x the average monthly bill of the last {len(bills)} bills"
    else:
        average = class_average_cents(session, account.customer_class)
        basis = (
            f"{policy.deposit_multiplier} x the average monthly bill of {account.customer_class} accounts"
            if average is not None
            else "the policy's minimum (no bills to average)"
        )
    amount = amount_cents(policy, average)
    if average is not None and amount == policy.deposit_minimum_cents:
        basis += " (raised to the policy's minimum)"
    facts = Facts(
        history_months=history_months(session, account, as_of),
        after_shutoff=False,
        returns_12_months=returns_since(session, account.id, months_before(as_of, 12)),
        held_cents=held_cents(session, account.id),
    )
    return Suggestion(reasons_required(policy, facts), amount, average, basis)


def history_months(session: Session, account: Account, as_of: date) -> int:
    """Months since the customer's earliest account in the district was opened."""
    first = session.scalar(select(func.min(Account.opened_on)).where(Account.customer_id == account.customer_id))
    if first is None:
        return 0
    months = (as_of.year - first.year) * 12 + as_of.month - first.month - (1 if as_of.day < first.day else 0)
    return max(months, 0)


def returns_since(session: Session, account_id: int, since: date) -> int:
    return int(
        session.scalar(
            select(func.count()).where(
                Payment.account_id == account_id,
                Payment.status == PaymentStatus.RETURNED.value,
                Payment.returned_on.is_not(None),
                Payment.returned_on > since,
            )
        )
        or 0
    )


def standing_of(session: Session, policy: MoneyPolicy, deposit: Deposit, as_of: date) -> bool:
    """Whether ``deposit`` has earned its credit back by ``as_of`` (``good_standing`` over
    the account's ledger)."""
    account_id = deposit.account_id
    due_dates = list(
        session.scalars(
            select(Bill.due_date).where(
                Bill.account_id == account_id, Bill.status == BillStatus.POSTED.value, Bill.due_date <= as_of
            )
        )
    )
    net = (
        select(
            LedgerTransaction.effective_on,
            LedgerTransaction.due_on,
            func.sum(LedgerEntry.amount_cents).label("net"),
        )
        .join(LedgerEntry, LedgerEntry.transaction_id == LedgerTransaction.id)
        .where(LedgerEntry.account_id == account_id, LedgerTransaction.effective_on <= as_of)
        .group_by(LedgerTransaction.id, LedgerTransaction.effective_on, LedgerTransaction.due_on)
    )
    charges: list[tuple[date, int]] = []
    credits: list[tuple[date, int]] = []
    for effective, due, amount in session.execute(net):
        cents = int(amount)
        if cents > 0:
            charges.append((due or effective, cents))
        elif cents < 0:
            credits.append((effective, -cents))
    returned = [
        d
        for d in session.scalars(
            select(Payment.returned_on).where(Payment.account_id == account_id, Payment.returned_on.is_not(None))
        )
        if d is not None
    ]
    return good_standing(policy, deposit.billed_on, as_of, due_dates, charges, credits, returned)


def release(
    session: Session, deposit: Deposit, new: DepositStatus, on: date, now: datetime, memo: str, actor: User | None
) -> bool:
    """Move a held deposit out of the liability into the account's credit, once: the state
    change is a conditional UPDATE, so two workers (or two runs) release it once."""
    claimed = cast(
        CursorResult[Any],
        session.execute(
            update(Deposit)
            .where(Deposit.id == deposit.id, Deposit.status == DepositStatus.BILLED.value)
            .values(status=new.value, released_on=on)
            .execution_options(synchronize_session=False)
        ),
    ).rowcount
    if claimed != 1:
        return False
    session.refresh(deposit)
    row = posting.post(
        session,
        release_transaction(deposit.account_id, on, deposit.amount_cents, memo),
        deposit.account_id,
        actor.id if actor else None,
        posted_at=now,
    )
    deposit.release_transaction_id = row.id
    audit.record(
        session,
        f"deposit.{new.value}",
        actor=actor,
        actor_label=None if actor else "deposits run",
        entity_type="deposit",
        entity_id=deposit.id,
        before={"status": DepositStatus.BILLED.value},
        after={"status": new.value, "released_on": on.isoformat(), "ledger_transaction": row.id},
    )
    return True


def apply_at_final(session: Session, account: Account, actor: User | None, on: date, now: datetime) -> int | None:
    """At a final bill: apply every deposit held to the account (into its credit, which
    pays the final bill), then turn any credit left into a refund request by check for staff
    to approve. Call inside the final bill's posting transaction, after the bill posted.
    Returns the refund request's id (None when no credit is left, or nobody to ask for it)."""
    payments.lock_account(session, account.id)
    for deposit in held(session, account.id):
        memo = f"Deposit {deposit.id} applied to the final bill"
        release(session, deposit, DepositStatus.APPLIED, on, now, memo, actor)
    left = refunds.refundable_cents(session, account.id)
    if left <= 0 or actor is None or not permissions.can(actor.role, Action.REFUNDS_REQUEST):
        return None
    refund = refunds.request_in(session, actor, account, left, "check", "Credit left at the final bill", now)
    return refund.id


# --- portal ledger check -------------------------------------------------------------------


def ledger_problems(session: Session) -> list[str]:
    """Per account, the deposits held in the ledger equal its billed, unreleased deposits,
    and are never negative; every billed deposit has its billing transaction."""
    held_in_ledger: dict[int | None, int] = dict(
        session.execute(
            select(LedgerTransaction.account_id, -func.sum(LedgerEntry.amount_cents))
            .join(LedgerEntry, LedgerEntry.transaction_id == LedgerTransaction.id)
            .where(LedgerEntry.gl_account == ledger.DEPOSITS_HELD)
            .group_by(LedgerTransaction.account_id)
        ).all()
    )
    billed: dict[int | None, int] = dict(
        session.execute(
            select(Deposit.account_id, func.sum(Deposit.amount_cents))
            .where(Deposit.status == DepositStatus.BILLED.value)
            .group_by(Deposit.account_id)
        ).all()
    )
    out: list[str] = []
    for account_id in sorted(set(held_in_ledger) | set(billed), key=lambda a: (a is None, a or 0)):
        in_ledger = int(held_in_ledger.get(account_id) or 0)
        expected = int(billed.get(account_id) or 0)
        if in_ledger < 0:
            out.append(f"account id {account_id} has negative deposits held ({in_ledger} cents)")
        if in_ledger != expected:
            out.append(
                f"account id {account_id} holds {in_ledger} cents of deposits in the ledger"
                f" but {expected} cents of deposits are billed and not released"
            )
    unposted = session.scalars(
        select(Deposit.id).where(Deposit.billed_transaction_id.is_(None)).order_by(Deposit.id).limit(20)
    ).all()
    out += [f"deposit {d} has no billing transaction" for d in unposted]
    released = session.scalars(
        select(Deposit.id)
        .where(Deposit.status != DepositStatus.BILLED.value, Deposit.release_transaction_id.is_(None))
        .order_by(Deposit.id)
        .limit(20)
    ).all()
    out += [f"deposit {d} is released but has no release transaction" for d in released]
    return out[:50]
