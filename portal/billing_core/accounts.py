"""Reading accounts: summaries for customers and staff, search, the ledger view."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

from sqlalchemy import Select, bindparam, func, or_, select
from sqlalchemy.orm import Session, joinedload, selectinload

from . import aging, statements
from .models import (
    Account,
    Bill,
    BillLine,
    BillUsage,
    Customer,
    LedgerEntry,
    LedgerTransaction,
    Meter,
    Premise,
    Service,
    User,
    UserAccountLink,
)
from .numbers import normalise_account_number
from .posting import Posting, account_postings
from .status import BillStatus


@dataclass(frozen=True)
class AccountSummary:
    account: Account
    balance_cents: int
    amount_due_cents: int
    due_date: date | None
    past_due_cents: int
    days_past_due: int
    aging: aging.Aging
    last_bill: Bill | None

    @property
    def has_credit(self) -> bool:
        return self.balance_cents < 0


def latest_posted_bill(session: Session, account_id: int) -> Bill | None:
    """The account's latest posted bill (by bill date, then id), or None."""
    stmt = statements.once(
        ("accounts.latest_posted_bill",),
        lambda: (
            select(Bill)
            .where(Bill.account_id == bindparam("account_id"), Bill.status == BillStatus.POSTED)
            .order_by(Bill.bill_date.desc(), Bill.id.desc())
            .limit(1)
        ),
    )
    return session.scalars(stmt, {"account_id": account_id}).first()


def summarise(
    session: Session,
    account: Account,
    as_of: date,
    postings: Sequence[aging.Posting] | None = None,
    newest_bills: Sequence[Bill] = (),
) -> AccountSummary:
    """``postings``: the account's ledger as ``account_postings`` reads it, when the caller
    already has it (``bill_status.postings_of``). ``newest_bills``: the account's newest
    bills as ``bills_for_account`` lists them (its first page), when the caller has them:
    the latest posted bill is then the first posted one among them, if any is."""
    aged = aging.age(account_postings(session, account.id) if postings is None else postings, as_of)
    last_bill = next((b for b in newest_bills if b.status == BillStatus.POSTED), None)
    if last_bill is None:
        last_bill = latest_posted_bill(session, account.id)
    return AccountSummary(
        account=account,
        balance_cents=aged.balance_cents,
        amount_due_cents=max(aged.balance_cents, 0),
        due_date=last_bill.due_date if last_bill else None,
        past_due_cents=aged.past_due_cents,
        days_past_due=aged.days_past_due,
        aging=aged,
        last_bill=last_bill,
    )


def accounts_for_user(session: Session, user: User) -> list[Account]:
    """The accounts a customer sign-in is linked to, with what a summary shows."""
    return list(
        session.scalars(
            select(Account)
            .join(UserAccountLink, UserAccountLink.account_id == Account.id)
            .where(UserAccountLink.user_id == user.id)
            .options(joinedload(Account.premise), joinedload(Account.customer))
            .order_by(Account.number)
        )
    )


def account_for_user(session: Session, user: User, account_number: str) -> Account | None:
    """One account by number, only if this customer sign-in is linked to it."""
    stmt = statements.once(
        ("accounts.account_for_user",),
        lambda: (
            select(Account)
            .join(UserAccountLink, UserAccountLink.account_id == Account.id)
            .where(UserAccountLink.user_id == bindparam("user_id"), Account.number == bindparam("number"))
            .options(joinedload(Account.premise), joinedload(Account.customer))
        ),
    )
    return session.scalars(stmt, {"user_id": user.id, "number": account_number}).first()


def bills_for_account(session: Session, account_id: int, limit: int | None = None, offset: int = 0) -> list[Bill]:
    def build() -> Select[Bill]:
        stmt = (
            select(Bill)
            .where(Bill.account_id == bindparam("account_id"), Bill.status != BillStatus.DRAFT)
            .order_by(Bill.bill_date.desc(), Bill.id.desc())
        )
        return stmt.limit(bindparam("limit")).offset(bindparam("offset")) if limit else stmt

    stmt = statements.once(("accounts.bills_for_account", bool(limit)), build)
    return list(session.scalars(stmt, {"account_id": account_id, "limit": limit, "offset": offset}))


def bill_count(session: Session, account_id: int) -> int:
    """The account's bills that ``bills_for_account`` lists (all but drafts)."""
    return int(
        session.scalar(
            select(func.count()).select_from(Bill).where(Bill.account_id == account_id, Bill.status != BillStatus.DRAFT)
        )
        or 0
    )


def bill_with_lines(session: Session, account_id: int, bill_number: str) -> Bill | None:
    return session.scalars(
        select(Bill)
        .where(Bill.account_id == account_id, Bill.number == bill_number, Bill.status != BillStatus.DRAFT)
        .options(selectinload(Bill.lines))
    ).first()


def lines_by_service(bill: Bill) -> list[tuple[str, list[BillLine], int]]:
    """A bill's lines grouped by service, in the order they appear, with each subtotal."""
    groups: dict[str, list[BillLine]] = {}
    for line in bill.lines:
        groups.setdefault(line.service_type, []).append(line)
    return [(service, lines, sum(line.amount_cents for line in lines)) for service, lines in groups.items()]


@dataclass(frozen=True)
class LedgerRow:
    transaction: LedgerTransaction
    amount_cents: int
    running_balance_cents: int


def ledger_with_running_balance(session: Session, account_id: int) -> list[LedgerRow]:
    """Every transaction touching the account, newest first, with the balance after it."""
    txns = session.scalars(
        select(LedgerTransaction)
        .where(LedgerTransaction.id.in_(select(LedgerEntry.transaction_id).where(LedgerEntry.account_id == account_id)))
        .options(selectinload(LedgerTransaction.entries))
        .order_by(LedgerTransaction.effective_on, LedgerTransaction.id)
    ).all()
    rows: list[LedgerRow] = []
    running = 0
    for txn in txns:
        amount = sum(e.amount_cents for e in txn.entries if e.account_id == account_id)
        running += amount
        rows.append(LedgerRow(txn, amount, running))
    rows.reverse()
    return rows


def search(session: Session, query: str, limit: int = 50) -> list[Account]:
    """Find accounts by account number, customer name, service address or meter serial."""
    text = (query or "").strip()
    if not text:
        return []
    stmt = select(Account).options(joinedload(Account.customer), joinedload(Account.premise))
    digits = normalise_account_number(text)
    like = f"%{_escape_like(text.lower())}%"
    serial_match = (
        select(Service.account_id).join(Meter, Meter.id == Service.meter_id).where(Meter.serial == text.upper())
    )
    conditions = [
        Account.customer_id.in_(select(Customer.id).where(func.lower(Customer.name).like(like, escape="\\"))),
        Account.premise_id.in_(select(Premise.id).where(func.lower(Premise.address_line1).like(like, escape="\\"))),
        Account.id.in_(serial_match),
    ]
    if digits and len(digits) >= 4:
        conditions.append(Account.number.like(f"{digits}%"))
    stmt = stmt.where(or_(*conditions)).order_by(Account.number).limit(limit)
    return list(session.scalars(stmt).unique())


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


VOLUME_UNITS = ("CCF", "kgal", "kL", "gal")
#: How far back a bill's usage chart reaches: 13 monthly periods and some slack.
HISTORY_DAYS = 420


@dataclass(frozen=True)
class BillDocument:
    """Everything a printed bill shows."""

    account: Account
    bill: Bill
    groups: list[tuple[str, list[BillLine], int]]
    usages: list
    history: list[tuple[date, Decimal]]
    past_due_cents: int
    scan_line: str
    #: The meter reads section: ``bill_reads.MeterReads`` per meter.
    reads: list = field(default_factory=list)


def bill_document(session: Session, account: Account, bill: Bill) -> BillDocument:
    """The bill as it was issued: what was past due is counted from the postings up to its
    bill date, so the page, a PDF made later and the print file all say the same."""
    from .bill_reads import for_bills as reads_for_bills
    from .numbers import scan_line

    # Use per period from the water lines billed by volume (every bill has them; reads may be gone).
    recent = session.execute(
        select(Bill.id, Bill.period_end)
        .where(Bill.account_id == account.id, Bill.status == BillStatus.POSTED, Bill.bill_date <= bill.bill_date)
        .order_by(Bill.period_end.desc())
        .limit(13)
    ).all()
    used: dict[int, Decimal] = {bill_id: Decimal(0) for bill_id, _ in recent}
    for bill_id, qty in session.execute(
        select(BillLine.bill_id, BillLine.quantity).where(
            BillLine.bill_id.in_(list(used)), BillLine.service_type == "water", BillLine.unit.in_(VOLUME_UNITS)
        )
    ):
        used[bill_id] += qty
    history = [(end, used[bill_id]) for bill_id, end in reversed(recent)]
    aged = aging.age(
        [p for p in account_postings(session, account.id) if p.effective_date <= bill.bill_date], bill.bill_date
    )
    return BillDocument(
        account=account,
        bill=bill,
        groups=lines_by_service(bill),
        usages=list(
            session.scalars(
                select(BillUsage)
                .where(BillUsage.bill_id == bill.id)
                .options(
                    joinedload(BillUsage.meter), joinedload(BillUsage.previous_read), joinedload(BillUsage.current_read)
                )
            )
        ),
        history=history,
        past_due_cents=max(aged.past_due_cents, 0),
        scan_line=scan_line(account.number, bill.total_due_cents),
        reads=reads_for_bills(session, [bill])[bill.id],
    )


def bill_documents(session: Session, bill_ids: Sequence[int]) -> list[BillDocument]:
    """Documents for many bills at once (a slice of a print file), in the order given, in a
    fixed number of queries. The past-due amount is as of each bill's date."""
    from .bill_reads import for_bills as reads_for_bills
    from .numbers import scan_line

    bills = {
        b.id: b
        for b in session.scalars(
            select(Bill)
            .where(Bill.id.in_(list(bill_ids)))
            .options(
                selectinload(Bill.lines),
                selectinload(Bill.account).options(joinedload(Account.customer), joinedload(Account.premise)),
            )
        )
    }
    if not bills:
        return []
    usages: dict[int, list[BillUsage]] = defaultdict(list)
    for usage in session.scalars(
        select(BillUsage)
        .where(BillUsage.bill_id.in_(list(bills)))
        .options(joinedload(BillUsage.meter))
        .order_by(BillUsage.id)
    ):
        usages[usage.bill_id].append(usage)
    account_ids = list({b.account_id for b in bills.values()})
    since = min(b.period_end for b in bills.values()) - timedelta(days=HISTORY_DAYS)
    recent: dict[int, list[tuple[int, date, date]]] = defaultdict(list)
    for bill_id, account_id, period_end, bill_date in session.execute(
        select(Bill.id, Bill.account_id, Bill.period_end, Bill.bill_date)
        .where(Bill.account_id.in_(account_ids), Bill.status == BillStatus.POSTED, Bill.period_end >= since)
        .order_by(Bill.period_end, Bill.id)
    ):
        recent[account_id].append((bill_id, period_end, bill_date))
    used: dict[int, Decimal] = defaultdict(Decimal)
    for bill_id, quantity in session.execute(
        select(BillLine.bill_id, func.sum(BillLine.quantity))
        .where(
            BillLine.bill_id.in_([r[0] for rows in recent.values() for r in rows]),
            BillLine.service_type == "water",
            BillLine.unit.in_(VOLUME_UNITS),
        )
        .group_by(BillLine.bill_id)
    ):
        used[bill_id] = quantity
    postings: dict[int, list[Posting]] = defaultdict(list)
    for owner_id, effective_on, due_on, amount in session.execute(
        select(
            LedgerEntry.account_id,
            LedgerTransaction.effective_on,
            LedgerTransaction.due_on,
            func.sum(LedgerEntry.amount_cents),
        )
        .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
        .where(LedgerEntry.account_id.in_(account_ids))
        .group_by(
            LedgerEntry.account_id, LedgerTransaction.id, LedgerTransaction.effective_on, LedgerTransaction.due_on
        )
        .order_by(LedgerEntry.account_id, LedgerTransaction.effective_on, LedgerTransaction.id)
    ):
        if amount and owner_id is not None:  # never None: the query asks for these accounts
            postings[owner_id].append(Posting(effective_on, int(amount), due_on))
    meter_reads = reads_for_bills(session, list(bills.values()))
    docs = []
    for bill_id in bill_ids:
        bill = bills.get(bill_id)
        if bill is None:
            continue
        history = [(end, used[b]) for b, end, billed in recent[bill.account_id] if billed <= bill.bill_date][-13:]
        aged = aging.age([p for p in postings[bill.account_id] if p.effective_date <= bill.bill_date], bill.bill_date)
        docs.append(
            BillDocument(
                account=bill.account,
                bill=bill,
                groups=lines_by_service(bill),
                usages=usages[bill.id],
                history=history,
                past_due_cents=max(aged.past_due_cents, 0),
                scan_line=scan_line(bill.account.number, bill.total_due_cents),
                reads=meter_reads[bill.id],
            )
        )
    return docs


@dataclass(frozen=True)
class UsageMonth:
    """Water used in the bills that ended in one month, and in the same month a year before."""

    month: date
    this_year: Decimal | None
    last_year: Decimal | None


def usage_history(session: Session, account_id: int, months: int = 12) -> tuple[list[UsageMonth], str]:
    """The last ``months`` months of water use, by the month each bill's period ended,
    beside the same months a year earlier (None: no bill ended that month). Also the unit."""
    bills = session.execute(
        select(Bill.id, Bill.period_end)
        .where(Bill.account_id == account_id, Bill.status == BillStatus.POSTED)
        .order_by(Bill.period_end.desc())
        .limit(months * 2 + 2)
    ).all()
    if not bills:
        return [], ""
    ends = {bill_id: end for bill_id, end in bills}
    used: dict[tuple[int, int], Decimal] = {}
    unit = ""
    for bill_id, qty, line_unit in session.execute(
        select(BillLine.bill_id, BillLine.quantity, BillLine.unit).where(
            BillLine.bill_id.in_(list(ends)), BillLine.service_type == "water", BillLine.unit.in_(VOLUME_UNITS)
        )
    ):
        key = (ends[bill_id].year, ends[bill_id].month)
        used[key] = used.get(key, Decimal(0)) + qty
        unit = unit or line_unit
    for end in ends.values():  # a bill with no volume line still shows as 0, not "no bill"
        used.setdefault((end.year, end.month), Decimal(0))
    latest = bills[0].period_end
    history = []
    for back in range(months - 1, -1, -1):
        index = latest.year * 12 + latest.month - 1 - back
        year, month = divmod(index, 12)
        history.append(
            UsageMonth(date(year, month + 1, 1), used.get((year, month + 1)), used.get((year - 1, month + 1)))
        )
    return history, unit or "CCF"
