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
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, and_, case, cast, func, literal, or_, select, text
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


def _key(by_service: bool) -> ColumnElement:
    return func.coalesce(LedgerEntry.service_type, "") if by_service else literal("")


def _partitions(as_of: date, by_service: bool, account_ids: Any = None):  # type: ignore[no-untyped-def]
    """One row per partition (an account's service, or an account): ``account_id``,
    ``service``, ``net`` (its balance on ``as_of``), ``b0``..``b3`` (what is open in the
    buckets current .. 61-90) and ``recent_open`` (their sum); what is open beyond that,
    ``net - recent_open`` when the net is positive, is over 90 days past due.

    Credits pay the oldest charges first, so what is open is the newest charges adding up to
    the net: only charges due in the last 90 days are needed one by one (a window over them,
    newest first); everything older that is still open is over 90 days, whichever it is. So
    the whole ledger is only summed (no sort), and only three months of it are windowed."""
    key = _key(by_service)
    floor = as_of - timedelta(days=90)
    entries = select(LedgerEntry.account_id, key.label("service"), LedgerEntry.amount_cents.label("amount")).where(
        LedgerEntry.account_id.is_not(None)
    )
    later = (
        select(LedgerEntry.account_id, key.label("service"), (-LedgerEntry.amount_cents).label("amount"))
        .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
        .where(LedgerEntry.account_id.is_not(None), LedgerTransaction.effective_on > as_of)
    )
    if account_ids is not None:
        entries = entries.where(LedgerEntry.account_id.in_(account_ids))
        later = later.where(LedgerEntry.account_id.in_(account_ids))
    moves = entries.union_all(later).subquery("moves")
    nets = (
        select(moves.c.account_id, moves.c.service, cast(func.sum(moves.c.amount), BigInteger).label("net"))
        .group_by(moves.c.account_id, moves.c.service)
        .cte("nets")
    )
    due = func.coalesce(LedgerTransaction.due_on, LedgerTransaction.effective_on)
    keys: list[Any] = [
        LedgerEntry.account_id,
        LedgerTransaction.id,
        LedgerTransaction.effective_on,
        LedgerTransaction.due_on,
    ]
    if by_service:
        keys.insert(1, LedgerEntry.service_type)
    recent_q = (
        select(
            LedgerEntry.account_id.label("account_id"),
            key.label("service"),
            LedgerTransaction.id.label("tid"),
            LedgerTransaction.effective_on.label("eff"),
            due.label("due"),
            cast(func.sum(LedgerEntry.amount_cents), BigInteger).label("amount"),
        )
        .join(LedgerEntry, LedgerEntry.transaction_id == LedgerTransaction.id)
        .where(LedgerEntry.account_id.is_not(None), LedgerTransaction.effective_on <= as_of, due >= floor)
        .group_by(*keys)
        .having(func.sum(LedgerEntry.amount_cents) > 0)
    )
    if account_ids is not None:
        recent_q = recent_q.where(LedgerEntry.account_id.in_(account_ids))
    recent = recent_q.subquery("recent")
    newest_first = select(
        recent.c.account_id,
        recent.c.service,
        recent.c.due,
        recent.c.amount,
        func.sum(recent.c.amount)
        .over(
            partition_by=(recent.c.account_id, recent.c.service),
            order_by=(recent.c.due.desc(), recent.c.eff.desc(), recent.c.tid.desc()),
            rows=(None, 0),
        )
        .label("upto"),
    ).subquery("newest_first")
    nf = newest_first
    owed_positive = select(nets.c.account_id, nets.c.service, nets.c.net).where(nets.c.net > 0).subquery("owing")
    room = owed_positive.c.net - (nf.c.upto - nf.c.amount)
    open_cents = case((room <= 0, 0), (room >= nf.c.amount, nf.c.amount), else_=room)
    opened = (
        select(nf.c.account_id, nf.c.service, nf.c.due, open_cents.label("open_cents"))
        .join(
            owed_positive, and_(owed_positive.c.account_id == nf.c.account_id, owed_positive.c.service == nf.c.service)
        )
        .subquery("opened")
    )
    bucket = _bucket_expr(opened.c.due, as_of)

    def in_bucket(name: str) -> ColumnElement:
        return func.sum(case((bucket == name, opened.c.open_cents), else_=0))

    per = (
        select(
            opened.c.account_id,
            opened.c.service,
            in_bucket(BUCKETS[0]).label("b0"),
            in_bucket(BUCKETS[1]).label("b1"),
            in_bucket(BUCKETS[2]).label("b2"),
            in_bucket(BUCKETS[3]).label("b3"),
            func.sum(opened.c.open_cents).label("recent_open"),
            func.min(case((opened.c.open_cents > 0, opened.c.due))).label("oldest_recent"),
        )
        .group_by(opened.c.account_id, opened.c.service)
        .subquery("per")
    )
    zero = literal(0)
    return (
        select(
            nets.c.account_id,
            nets.c.service,
            nets.c.net,
            func.coalesce(per.c.b0, zero).label("b0"),
            func.coalesce(per.c.b1, zero).label("b1"),
            func.coalesce(per.c.b2, zero).label("b2"),
            func.coalesce(per.c.b3, zero).label("b3"),
            func.coalesce(per.c.recent_open, zero).label("recent_open"),
            per.c.oldest_recent,
        )
        .select_from(nets)
        .outerjoin(per, and_(per.c.account_id == nets.c.account_id, per.c.service == nets.c.service))
        .where(nets.c.net != 0)
        .subquery("partitions")
    )


@dataclass(frozen=True)
class Partition:
    account_id: int
    service: str
    net: int
    buckets: dict[str, int]
    oldest_recent: date | None

    @property
    def credit_cents(self) -> int:
        return -self.net if self.net < 0 else 0


def _partition(row: Any) -> Partition:
    aid, service, net, b0, b1, b2, b3, recent, oldest = row[:9]
    net = int(net)
    values = [int(b0), int(b1), int(b2), int(b3)]
    over = net - int(recent) if net > 0 else 0
    return Partition(aid, service, net, dict(zip(BUCKETS, [*values, over], strict=True)), oldest)


def _oldest_exact(session: Session, account_ids: list[int], as_of: date) -> dict[int, date]:
    """The oldest open charge's due date of accounts whose open charges reach back beyond
    the 90-day window (few: the long delinquent), by a window over all their charges."""
    from . import bulk

    out: dict[int, date] = {}
    for part in bulk.chunks(session, account_ids):
        charges, _left = _open_charges(as_of, by_service=False, account_ids=part)
        for aid, oldest in session.execute(
            select(charges.c.account_id, func.min(charges.c.due))
            .where(charges.c.open_cents > 0)
            .group_by(charges.c.account_id)
        ):
            out[aid] = oldest
    return out


def _open_charges(as_of: date, by_service: bool, account_ids: Any = None):  # type: ignore[no-untyped-def]
    """Every charge's open part (all of the ledger, windowed): account_id, service, due,
    open_cents; and each partition's credit left over. ``_partitions`` is the fast form; this
    one is exact for every charge and used for the few accounts that need it."""
    service = _key(by_service)
    due = func.coalesce(LedgerTransaction.due_on, LedgerTransaction.effective_on)
    keys: list[Any] = [
        LedgerEntry.account_id,
        LedgerTransaction.id,
        LedgerTransaction.effective_on,
        LedgerTransaction.due_on,
    ]
    if by_service:
        keys.insert(1, LedgerEntry.service_type)
    postings_q = (
        select(
            LedgerEntry.account_id.label("account_id"),
            service.label("service"),
            LedgerTransaction.id.label("tid"),
            LedgerTransaction.effective_on.label("eff"),
            due.label("due"),
            cast(func.sum(LedgerEntry.amount_cents), BigInteger).label("amount"),
        )
        .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
        .where(LedgerEntry.account_id.is_not(None), LedgerTransaction.effective_on <= as_of)
        .group_by(*keys)
    )
    if account_ids is not None:
        postings_q = postings_q.where(LedgerEntry.account_id.in_(account_ids))
    postings = postings_q.cte("postings")
    credits = (
        select(postings.c.account_id, postings.c.service, func.sum(-postings.c.amount).label("credit"))
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
    customer class and billing cycle: one query (``_partitions``), one row per account's
    service, added up here."""
    _fast(session)
    parts = _partitions(as_of, by_service=True)
    rows = session.execute(
        select(parts, Account.customer_class, Account.cycle_id).join(Account, Account.id == parts.c.account_id)
    ).all()
    cycles = {
        cid: f"{code} {name}"
        for cid, code, name in session.execute(select(BillingCycle.id, BillingCycle.code, BillingCycle.name))
    }
    tables: dict[str, dict[str, AgingRow]] = {"service": {}, "class": {}, "cycle": {}}
    total = AgingRow("total", "Total")
    owing: set[int] = set()
    for row in rows:
        p = _partition(row)
        klass, cycle_id = row[9], row[10]
        service = p.service or CREDIT
        keys = (
            ("service", service, service.capitalize()),
            ("class", klass, klass.replace("_", " ").capitalize()),
            ("cycle", str(cycle_id), cycles.get(cycle_id, str(cycle_id))),
        )
        targets = [tables[t].setdefault(k, AgingRow(k, label)) for t, k, label in keys]
        for target in (*targets, total):
            for name, cents in p.buckets.items():
                target.buckets[name] += cents
            target.credit_cents += p.credit_cents
        if p.net > 0:
            owing.add(p.account_id)
    return AgingReport(
        as_of,
        sorted(tables["service"].values(), key=lambda r: _service_rank(r.key)),
        sorted(tables["class"].values(), key=lambda r: r.key),
        sorted(tables["cycle"].values(), key=lambda r: r.label),
        total,
        len(owing),
    )


def _fast(session: Session) -> None:
    """On PostgreSQL, room to hash and sort a district's ledger in memory for this transaction."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL work_mem = '64MB'"))


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
    """One account's aging by service as the report computes it (for tests and the account
    page): service -> bucket -> open cents, and ``credit`` -> cents paid beyond its charges."""
    parts = _partitions(as_of, by_service=True, account_ids=[account_id])
    out: dict[str, dict[str, int]] = {}
    for row in session.execute(select(parts)):
        p = _partition(row)
        out[p.service or CREDIT] = {**p.buckets, CREDIT: p.credit_cents}
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
    _fast(session)
    parts = _partitions(as_of, by_service=False)
    past_due = parts.c.net - parts.c.b0
    conditions: list[ColumnElement[bool]] = [parts.c.net > 0, past_due >= max(filters.minimum_cents, 1)]
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
    found = session.execute(
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
            parts.c.net,
            past_due,
            parts.c.recent_open,
            parts.c.oldest_recent,
        )
        .select_from(parts)
        .join(Account, Account.id == parts.c.account_id)
        .join(Customer, Customer.id == Account.customer_id)
        .join(Premise, Premise.id == Account.premise_id)
        .join(BillingCycle, BillingCycle.id == Account.cycle_id)
        .outerjoin(Route, Route.id == Premise.route_id)
        .where(*conditions)
    ).all()
    # Open charges reaching back beyond the 90-day window: their oldest date, exactly.
    long_ago = [r[0] for r in found if int(r[9]) > int(r[11])]
    exact = _oldest_exact(session, long_ago, as_of) if long_ago else {}
    latest_due = as_of - timedelta(days=max(filters.min_days, 1))
    kept = []
    for r in found:
        oldest = exact.get(r[0], r[12])
        if oldest is not None and oldest <= latest_due:
            kept.append((r, oldest))
    kept.sort(key=lambda x: (-int(x[0][10]), x[0][1]))
    count = len(kept)
    if limit is not None:
        kept = kept[:limit]
    last = _last_payments(session, [r[0] for r, _o in kept], as_of)
    out = []
    for (aid, number, name, phone, klass, cycle, route, line1, line2, net, past, _ro, _or), oldest in kept:
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
                int(net),
                int(past),
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
        paid = and_(
            bulk.among(session, LedgerTransaction.account_id, part),
            LedgerTransaction.kind == ledger.Kind.PAYMENT.value,
            LedgerTransaction.effective_on <= as_of,
            ~select(reversal.id).where(reversal.reverses_id == LedgerTransaction.id).exists(),
        )
        last = (
            select(
                LedgerTransaction.account_id.label("account_id"), func.max(LedgerTransaction.effective_on).label("day")
            )
            .where(paid)
            .group_by(LedgerTransaction.account_id)
            .subquery("last")
        )
        for aid, day, cents in session.execute(
            select(LedgerTransaction.account_id, LedgerTransaction.effective_on, func.sum(-LedgerEntry.amount_cents))
            .join(
                last,
                and_(last.c.account_id == LedgerTransaction.account_id, last.c.day == LedgerTransaction.effective_on),
            )
            .join(
                LedgerEntry,
                and_(
                    LedgerEntry.transaction_id == LedgerTransaction.id,
                    LedgerEntry.account_id == LedgerTransaction.account_id,
                ),
            )
            .where(paid)
            .group_by(LedgerTransaction.account_id, LedgerTransaction.effective_on)
        ):
            if aid is not None:
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
