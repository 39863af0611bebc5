"""The collection reports, set-based: the receivables aging (by service, customer class and
billing cycle), the delinquency call list, and the annual shutoff report the Water Shutoff
Protection Act asks agencies to publish.

Aging is ``aging.age``'s rule done in SQL, for every account at once: within a partition (one
account's one service for the aging report; one account for the call list) the credits pay the
oldest charges first, a charge's open part is ``clamp(running charges - credits, 0, charge)``
with the charges in ``(due date, effective date, transaction)`` order, and what is open is aged
by days past its due date into ``aging.BUCKETS``. A window function does the running sum, so a
20,000-account district is one query, never an account at a time.

Service: each ledger entry's ``service_type``. A payment credits the services in the ledger's
service order (``ledger.payment_transaction``), so a service's own credits pay its own oldest
charges; credit left over (and unapplied credit, which has no service) is the report's credit
column. Every table's total, open less credit, equals the sum of the accounts' balances.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo

from sqlalchemy import ColumnElement, and_, case, func, literal, or_, select
from sqlalchemy.orm import Session

from . import aging, ledger
from .models import (
    Account,
    BillingCycle,
    CollectionHold,
    Customer,
    Dispute,
    LedgerEntry,
    LedgerTransaction,
    PaymentPlan,
    Premise,
    Route,
    WorkOrder,
)

BUCKETS = aging.BUCKETS
#: The service key of unapplied credit (entries with no service).
CREDIT = "credit"


def _bucket_expr(due: ColumnElement, as_of: date) -> ColumnElement:
    """``aging.bucket_for(as_of - due)`` as SQL, by comparing dates (portable)."""
    return case(
        (due >= as_of, literal(BUCKETS[0])),
        (due >= as_of - timedelta(days=30), literal(BUCKETS[1])),
        (due >= as_of - timedelta(days=60), literal(BUCKETS[2])),
        (due >= as_of - timedelta(days=90), literal(BUCKETS[3])),
        else_=literal(BUCKETS[4]),
    )


def _open_charges(as_of: date, by_service: bool):  # type: ignore[no-untyped-def]
    """Two subqueries: the open part of every charge, and each partition's credit left over.
    Columns: account_id, service (``''`` for unapplied credit, or when not by service), due,
    open_cents; and account_id, service, left_cents."""
    service = func.coalesce(LedgerEntry.service_type, "") if by_service else literal("")
    due = func.coalesce(LedgerTransaction.due_on, LedgerTransaction.effective_on)
    keys: list[Any] = [
        LedgerEntry.account_id,
        LedgerTransaction.id,
        LedgerTransaction.effective_on,
        LedgerTransaction.due_on,
    ]
    if by_service:
        keys.insert(1, LedgerEntry.service_type)
    postings = (
        select(
            LedgerEntry.account_id.label("account_id"),
            service.label("service"),
            LedgerTransaction.id.label("tid"),
            LedgerTransaction.effective_on.label("eff"),
            due.label("due"),
            func.sum(LedgerEntry.amount_cents).label("amount"),
        )
        .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
        .where(LedgerEntry.account_id.is_not(None), LedgerTransaction.effective_on <= as_of)
        .group_by(*keys)
        .subquery("postings")
    )
    credits = (
        select(
            postings.c.account_id,
            postings.c.service,
            func.sum(-postings.c.amount).label("credit"),
        )
        .where(postings.c.amount < 0)
        .group_by(postings.c.account_id, postings.c.service)
        .subquery("credits")
    )
    running = (
        select(
            postings.c.account_id,
            postings.c.service,
            postings.c.due,
            postings.c.amount,
            func.sum(postings.c.amount)
            .over(
                partition_by=(postings.c.account_id, postings.c.service),
                order_by=(postings.c.due, postings.c.eff, postings.c.tid),
                rows=(None, 0),
            )
            .label("cum"),
        )
        .where(postings.c.amount > 0)
        .subquery("running")
    )
    credit = func.coalesce(credits.c.credit, 0)
    left = running.c.cum - credit
    open_cents = case((left <= 0, 0), (left >= running.c.amount, running.c.amount), else_=left)
    charges = (
        select(running.c.account_id, running.c.service, running.c.due, open_cents.label("open_cents"))
        .select_from(
            running.outerjoin(
                credits, and_(credits.c.account_id == running.c.account_id, credits.c.service == running.c.service)
            )
        )
        .subquery("charges")
    )
    totals = (
        select(postings.c.account_id, postings.c.service, func.sum(postings.c.amount).label("net"))
        .group_by(postings.c.account_id, postings.c.service)
        .subquery("totals")
    )
    # What a partition's credits leave once every charge is paid: its net, when negative.
    leftover = (
        select(totals.c.account_id, totals.c.service, (-totals.c.net).label("left_cents"))
        .where(totals.c.net < 0)
        .subquery("leftover")
    )
    return charges, leftover


# --- The aging report --------------------------------------------------------------------------


@dataclass
class AgingRow:
    """One line of a table: open cents by bucket, and credit (a positive number, subtracted)."""

    key: str
    label: str
    buckets: dict[str, int] = field(default_factory=lambda: dict.fromkeys(BUCKETS, 0))
    credit_cents: int = 0

    @property
    def open_cents(self) -> int:
        return sum(self.buckets.values())

    @property
    def past_due_cents(self) -> int:
        return self.open_cents - self.buckets[BUCKETS[0]]

    @property
    def net_cents(self) -> int:
        return self.open_cents - self.credit_cents


@dataclass(frozen=True)
class AgingReport:
    as_of: date
    by_service: list[AgingRow]
    by_class: list[AgingRow]
    by_cycle: list[AgingRow]
    total: AgingRow
    accounts_open: int


def _service_rank(key: str) -> tuple[int, str]:
    return ledger._service_rank(key) if key != CREDIT else (99, key)


def aging_report(session: Session, as_of: date) -> AgingReport:
    """The receivables on ``as_of`` (postings effective that day or before), aged by service,
    customer class and billing cycle. Two grouped queries over the whole ledger."""
    charges, leftover = _open_charges(as_of, by_service=True)
    bucket = _bucket_expr(charges.c.due, as_of)
    grid = session.execute(
        select(charges.c.service, Account.customer_class, Account.cycle_id, bucket, func.sum(charges.c.open_cents))
        .join(Account, Account.id == charges.c.account_id)
        .where(charges.c.open_cents > 0)
        .group_by(charges.c.service, Account.customer_class, Account.cycle_id, bucket)
    ).all()
    credits = session.execute(
        select(leftover.c.service, Account.customer_class, Account.cycle_id, func.sum(leftover.c.left_cents))
        .join(Account, Account.id == leftover.c.account_id)
        .group_by(leftover.c.service, Account.customer_class, Account.cycle_id)
    ).all()
    accounts_open = int(
        session.scalar(select(func.count(func.distinct(charges.c.account_id))).where(charges.c.open_cents > 0)) or 0
    )
    cycles = {
        cid: f"{code} {name}"
        for cid, code, name in session.execute(select(BillingCycle.id, BillingCycle.code, BillingCycle.name))
    }
    tables: dict[str, dict[str, AgingRow]] = {"service": {}, "class": {}, "cycle": {}}
    total = AgingRow("total", "Total")

    def rows_for(service: str, klass: str, cycle_id: int) -> list[AgingRow]:
        service = service or CREDIT
        keys = (
            ("service", service, service.capitalize()),
            ("class", klass, klass.replace("_", " ").capitalize()),
            ("cycle", str(cycle_id), cycles.get(cycle_id, str(cycle_id))),
        )
        out = []
        for table, key, label in keys:
            out.append(tables[table].setdefault(key, AgingRow(key, label)))
        return [*out, total]

    for service, klass, cycle_id, name, cents in grid:
        for row in rows_for(service, klass, cycle_id):
            row.buckets[name] += int(cents)
    for service, klass, cycle_id, cents in credits:
        for row in rows_for(service, klass, cycle_id):
            row.credit_cents += int(cents)
    return AgingReport(
        as_of,
        sorted(tables["service"].values(), key=lambda r: _service_rank(r.key)),
        sorted(tables["class"].values(), key=lambda r: r.key),
        sorted(tables["cycle"].values(), key=lambda r: r.label),
        total,
        accounts_open,
    )


def balances_total(session: Session, as_of: date) -> int:
    """The sum of every account's balance on ``as_of`` (what the aging's net must equal)."""
    return int(
        session.scalar(
            select(func.coalesce(func.sum(LedgerEntry.amount_cents), 0))
            .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
            .where(LedgerEntry.account_id.is_not(None), LedgerTransaction.effective_on <= as_of)
        )
        or 0
    )


def account_aging(session: Session, account_id: int, as_of: date) -> dict[str, dict[str, int]]:
    """One account's aging by service as the report computes it (for the account page and
    tests): service -> bucket -> open cents, with ``credit`` -> {"credit": cents}."""
    charges, leftover = _open_charges(as_of, by_service=True)
    bucket = _bucket_expr(charges.c.due, as_of)
    out: dict[str, dict[str, int]] = {}
    for service, name, cents in session.execute(
        select(charges.c.service, bucket, func.sum(charges.c.open_cents))
        .where(charges.c.account_id == account_id, charges.c.open_cents > 0)
        .group_by(charges.c.service, bucket)
    ):
        out.setdefault(service or CREDIT, dict.fromkeys(BUCKETS, 0))[name] += int(cents)
    for service, cents in session.execute(
        select(leftover.c.service, leftover.c.left_cents).where(leftover.c.account_id == account_id)
    ):
        out.setdefault(service or CREDIT, dict.fromkeys(BUCKETS, 0))
        out[service or CREDIT][CREDIT] = int(cents)
    return out


# --- The delinquency list (call list) -------------------------------------------------------


@dataclass(frozen=True)
class CallFilters:
    minimum_cents: int = 1
    min_days: int = 1
    cycle_id: int | None = None
    customer_class: str | None = None
    route_id: int | None = None
    has_phone: bool = False
    exclude_held: bool = True
    exclude_plans: bool = True
    exclude_disputed: bool = True


@dataclass(frozen=True)
class CallRow:
    account_id: int
    number: str
    name: str
    phone: str
    customer_class: str
    cycle: str
    route: str
    address: str
    balance_cents: int
    past_due_cents: int
    oldest_due: date
    days_past_due: int
    last_payment_on: date | None
    last_payment_cents: int | None


def call_list(
    session: Session, as_of: date, filters: CallFilters, limit: int | None = None
) -> tuple[list[CallRow], int]:
    """Accounts past due on ``as_of`` by the account's own aging (what its notices say),
    filtered, most past due first. Returns the rows (at most ``limit``) and how many match."""
    charges, _left = _open_charges(as_of, by_service=False)
    balances = (
        select(LedgerEntry.account_id.label("account_id"), func.sum(LedgerEntry.amount_cents).label("balance"))
        .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
        .where(LedgerEntry.account_id.is_not(None), LedgerTransaction.effective_on <= as_of)
        .group_by(LedgerEntry.account_id)
        .subquery("balances")
    )
    past = (
        select(
            charges.c.account_id,
            func.sum(charges.c.open_cents).label("past_due"),
            func.min(charges.c.due).label("oldest"),
        )
        .where(charges.c.open_cents > 0, charges.c.due < as_of)
        .group_by(charges.c.account_id)
        .subquery("past")
    )
    conditions: list[ColumnElement[bool]] = [
        past.c.past_due >= max(filters.minimum_cents, 1),
        past.c.oldest <= as_of - timedelta(days=max(filters.min_days, 1)),
    ]
    if filters.cycle_id is not None:
        conditions.append(Account.cycle_id == filters.cycle_id)
    if filters.customer_class:
        conditions.append(Account.customer_class == filters.customer_class)
    if filters.route_id is not None:
        conditions.append(Premise.route_id == filters.route_id)
    if filters.has_phone:
        conditions.append(and_(Customer.phone.is_not(None), func.trim(Customer.phone) != ""))
    if filters.exclude_held:
        conditions.append(
            ~select(CollectionHold.id)
            .where(
                CollectionHold.account_id == Account.id,
                CollectionHold.released_at.is_(None),
                or_(CollectionHold.until_on.is_(None), CollectionHold.until_on >= as_of),
            )
            .exists()
        )
    if filters.exclude_plans:
        conditions.append(
            ~select(PaymentPlan.id).where(PaymentPlan.account_id == Account.id, PaymentPlan.status == "active").exists()
        )
    if filters.exclude_disputed:
        conditions.append(
            ~select(Dispute.id).where(Dispute.account_id == Account.id, Dispute.status == "open").exists()
        )
    base = (
        select(
            Account.id,
            Account.number,
            Customer.name,
            Customer.phone,
            Account.customer_class,
            BillingCycle.code,
            Route.code,
            Premise.address_line1,
            Premise.address_line2,
            balances.c.balance,
            past.c.past_due,
            past.c.oldest,
        )
        .select_from(past)
        .join(Account, Account.id == past.c.account_id)
        .join(balances, balances.c.account_id == Account.id)
        .join(Customer, Customer.id == Account.customer_id)
        .join(Premise, Premise.id == Account.premise_id)
        .join(BillingCycle, BillingCycle.id == Account.cycle_id)
        .outerjoin(Route, Route.id == Premise.route_id)
        .where(*conditions)
    )
    count = int(session.scalar(select(func.count()).select_from(base.subquery())) or 0)
    query = base.order_by(past.c.past_due.desc(), Account.number)
    if limit is not None:
        query = query.limit(limit)
    rows = session.execute(query).all()
    ids = [r[0] for r in rows]
    last = _last_payments(session, ids, as_of)
    out = []
    for aid, number, name, phone, klass, cycle, route, line1, line2, balance, past_due, oldest in rows:
        paid_on, paid_cents = last.get(aid, (None, None))
        out.append(
            CallRow(
                aid,
                number,
                name,
                phone or "",
                klass,
                cycle,
                route or "",
                f"{line1} {line2}" if line2 else line1,
                int(balance),
                int(past_due),
                oldest,
                (as_of - oldest).days,
                paid_on,
                paid_cents,
            )
        )
    return out, count


def _last_payments(session: Session, ids: list[int], as_of: date) -> dict[int, tuple[date, int]]:
    """Each account's last payment on or before ``as_of`` from the ledger (every channel; one
    returned since is left out): its date and amount (that day's payments together)."""
    from sqlalchemy.orm import aliased

    from . import bulk

    out: dict[int, tuple[date, int]] = {}
    reversal = aliased(LedgerTransaction)
    for part in bulk.chunks(session, ids):
        paid = (
            select(
                LedgerEntry.account_id.label("account_id"),
                LedgerTransaction.effective_on.label("day"),
                func.sum(-LedgerEntry.amount_cents).label("cents"),
            )
            .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
            .where(
                bulk.among(session, LedgerEntry.account_id, part),
                LedgerTransaction.kind == ledger.Kind.PAYMENT.value,
                LedgerTransaction.effective_on <= as_of,
                ~select(reversal.id).where(reversal.reverses_id == LedgerTransaction.id).exists(),
            )
            .group_by(LedgerEntry.account_id, LedgerTransaction.effective_on)
            .subquery()
        )
        last = select(paid.c.account_id, func.max(paid.c.day).label("day")).group_by(paid.c.account_id).subquery()
        for aid, day, cents in session.execute(
            select(paid.c.account_id, paid.c.day, paid.c.cents).join(
                last, and_(last.c.account_id == paid.c.account_id, last.c.day == paid.c.day)
            )
        ):
            out[aid] = (day, int(cents))
    return out


# --- The annual shutoff report ----------------------------------------------------------------


def is_residential(customer_class: str | None) -> bool:
    return (customer_class or "").upper().startswith("RESIDENTIAL")


@dataclass(frozen=True)
class ShutoffYear:
    year: int
    residential: int
    other: int

    @property
    def total(self) -> int:
        return self.residential + self.other


def shutoff_report(session: Session, tz: tzinfo = UTC) -> list[ShutoffYear]:
    """Shutoffs for nonpayment carried out (done ``shutoff`` work orders), per calendar year
    in the agency's time zone, residential and other (the account's customer class)."""
    counts: dict[int, list[int]] = {}
    for done_at, due_on, klass in session.execute(
        select(WorkOrder.completed_at, WorkOrder.due_on, Account.customer_class)
        .join(Account, Account.id == WorkOrder.account_id)
        .where(WorkOrder.kind == "shutoff", WorkOrder.status == "done")
    ):
        year = _local(done_at, tz).year if done_at is not None else due_on.year
        row = counts.setdefault(year, [0, 0])
        row[0 if is_residential(klass) else 1] += 1
    return [ShutoffYear(y, r, o) for y, (r, o) in sorted(counts.items(), reverse=True)]


def _local(at: datetime, tz: tzinfo) -> datetime:
    return at.astimezone(tz)


def years_of(rows: Iterable[ShutoffYear]) -> list[int]:
    return [r.year for r in rows]
