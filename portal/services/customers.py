"""The resident's own pages: the dashboard, one account, its bills and water use, paperless
billing, and linking an account to the sign-in.

Every lookup is scoped to the accounts linked to the sign-in: an account or bill that is not
linked to it does not exist for it (``NotFound``, a 404 page). Each function is one use case
in the caller's transaction (the session it is handed); it reads no clock, ``as_of`` and
``now`` come from the caller.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from decimal import Decimal

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from ..billing_core import (
    accounts,
    aging,
    arrangements,
    audit,
    autopay,
    bill_status,
    collection_facts,
    delinquency,
    ladder_versions,
    payments,
    statements,
    users,
)
from ..billing_core.accounts import AccountSummary, BillDocument, UsageMonth
from ..billing_core.bill_status import BillStatus, PastDue
from ..billing_core.errors import NotFound
from ..billing_core.models import Account, ArrangementRequest, Bill, BillLine, CollectionAction, Payment, User
from ..billing_core.plans import NextInstallment
from . import plans


def account_numbers(session: Session, account_ids: Iterable[int | None]) -> dict[int, str]:
    """Account id -> account number, for the ids given (None ignored)."""
    ids = {i for i in account_ids if i is not None}
    if not ids:
        return {}
    return {
        row.id: row.number for row in session.execute(select(Account.id, Account.number).where(Account.id.in_(ids)))
    }


def my_account(session: Session, user: User, number: str) -> Account:
    """One of the accounts linked to ``user`` by its number, or ``NotFound``."""
    account = accounts.account_for_user(session, user, number)
    if account is None:
        raise NotFound(number)
    return account


def my_bill(session: Session, user: User, number: str, bill_number: str) -> tuple[Account, Bill]:
    """A bill (with its lines) on one of ``user``'s accounts, or ``NotFound``."""
    account = accounts.account_for_user(session, user, number)
    bill = accounts.bill_with_lines(session, account.id, bill_number) if account else None
    if account is None or bill is None:
        raise NotFound(bill_number)
    return account, bill


def outlook_for(
    session: Session, summary: AccountSummary, as_of: date, postings: list[aging.Posting] | None = None
) -> delinquency.Outlook:
    """The dashboard's dates from the ladder: the policy version in force, the account's
    ladder, the steps the daily run already took in this delinquency (its ``CollectionAction``
    rows), the closures, and what protects the account from a shutoff (the gate's facts).
    ``postings``: the account's ledger, when the caller read it already."""
    account = summary.account
    version, rules = ladder_versions.current(session, as_of)
    services = [s for s in account.services if s.started_on <= as_of and (s.ended_on is None or s.ended_on > as_of)]
    ladder = ladder_versions.ladder_of(account, services, rules)
    oldest = summary.aging.oldest_past_due
    done: dict[str, date] = {}
    late_fee_cents = None
    episode = ladder_versions.episode(session, account.id, oldest)
    if episode is not None:
        steps = statements.once(
            ("customers.outlook.steps",),
            lambda: select(CollectionAction.step, CollectionAction.posted_on, CollectionAction.amount_cents).where(
                CollectionAction.account_id == bindparam("account_id"),
                CollectionAction.episode == bindparam("episode"),
                CollectionAction.status == "posted",
            ),
        )
        for step, posted_on, amount in session.execute(steps, {"account_id": account.id, "episode": episode}):
            if posted_on is not None:
                done[step] = posted_on
                if step == "late_fee":
                    late_fee_cents = amount
    facts = collection_facts.facts_for_many(
        session, [account.id], as_of, postings=None if postings is None else {account.id: postings}
    )[account.id]
    protections = []
    if facts.medical_certification and facts.financial_inability and facts.willing_to_plan:
        protections.append("medical_certification")
    if facts.pending_disputes:
        protections.append("pending_dispute")
    if facts.kept_plan:
        protections.append("kept_plan")
    return delinquency.outlook(
        summary.balance_cents,
        summary.past_due_cents,
        oldest,
        summary.due_date,
        as_of,
        delinquency.Policy(holidays=facts.closed_days),
        ladder=ladder,
        rules=rules,
        done=done,
        late_fee_charged_cents=late_fee_cents,
        disputed_cents=facts.disputed_cents,
        customer_class=account.customer_class,
        can_shut_off=facts.has_shutoff_service,
        protections=protections,
    )


def bill_before_autopay(summary: AccountSummary, outlook: autopay.Outlook, tz: tzinfo) -> bool:
    """Is the latest bill still the customer's to pay, having come before autopay was on?"""
    return bill_status.before_autopay(outlook.enrollment, summary.last_bill, summary.balance_cents, tz)


def past_due_for(
    session: Session, summary: AccountSummary, as_of: date, charges: list[bill_status.Charge] | None = None
) -> PastDue | None:
    """The bills the past-due amount is made of (None when nothing is past due)."""
    if summary.past_due_cents <= 0:
        return None
    return bill_status.past_due(session, summary.account.id, as_of, charges)


@dataclass(frozen=True)
class Home:
    """The dashboard: every linked account, keyed by account number."""

    summaries: list[AccountSummary]
    outlooks: dict[str, delinquency.Outlook]
    plans: dict[str, ArrangementRequest | None]
    autopays: dict[str, autopay.Outlook]
    before_autopay: dict[str, bool]
    past_dues: dict[str, PastDue | None]
    as_of: date


def home(session: Session, user: User, as_of: date, tz: tzinfo) -> Home:
    # One ledger read an account serves its aging, past-due list and the gate's facts.
    linked = accounts.accounts_for_user(session, user)
    charges = {a.id: bill_status.account_charges(session, a.id) for a in linked}
    ledgers: dict[int, list[aging.Posting]] = {}
    summaries = []
    for a in linked:
        ledgers[a.id] = bill_status.postings_of(charges[a.id])
        summaries.append(accounts.summarise(session, a, as_of, ledgers[a.id]))
    autopays = {
        s.account.number: autopay.outlook(session, s.account, s.balance_cents, as_of, tz, s.last_bill)
        for s in summaries
    }
    return Home(
        summaries=summaries,
        outlooks={s.account.number: outlook_for(session, s, as_of, ledgers[s.account.id]) for s in summaries},
        plans={s.account.number: arrangements.open_for(session, s.account.id) for s in summaries},
        autopays=autopays,
        before_autopay={s.account.number: bill_before_autopay(s, autopays[s.account.number], tz) for s in summaries},
        past_dues={s.account.number: past_due_for(session, s, as_of, charges[s.account.id]) for s in summaries},
        as_of=as_of,
    )


@dataclass(frozen=True)
class AccountPage:
    summary: AccountSummary
    outlook: delinquency.Outlook
    plan: ArrangementRequest | None
    autopay_outlook: autopay.Outlook
    before_autopay: bool
    past_due: PastDue | None
    bills: list[Bill]
    statuses: dict[int, BillStatus]
    payments: list[Payment]
    as_of: date
    next_installment: NextInstallment | None = None
    bills_page: int = 1
    older_bills: bool = False


#: Bills on one page of the account page; older ones are a link away.
BILLS_PAGE = 24


def account_page(
    session: Session, user: User, number: str, as_of: date, tz: tzinfo, bills_page: int = 1
) -> AccountPage:
    """One account: what is owed and what comes next, and one page of bills (``BILLS_PAGE``,
    newest first; ``bills_page`` counts from 1)."""
    account = my_account(session, user, number)
    # One ledger read serves the aging, the bills' states, the past-due list and the gate's facts.
    charges = bill_status.account_charges(session, account.id)
    ledger = bill_status.postings_of(charges)
    bills_page = max(bills_page, 1)
    bills = accounts.bills_for_account(session, account.id, BILLS_PAGE + 1, (bills_page - 1) * BILLS_PAGE)
    if not bills and bills_page > 1:  # a page past the end: the last one
        bills_page = max(1, -(-accounts.bill_count(session, account.id) // BILLS_PAGE))
        bills = accounts.bills_for_account(session, account.id, BILLS_PAGE + 1, (bills_page - 1) * BILLS_PAGE)
    summary = accounts.summarise(session, account, as_of, ledger, bills if bills_page == 1 else ())
    autopay_outlook = autopay.outlook(session, account, summary.balance_cents, as_of, tz, summary.last_bill)
    return AccountPage(
        summary=summary,
        outlook=outlook_for(session, summary, as_of, ledger),
        plan=arrangements.open_for(session, account.id),
        autopay_outlook=autopay_outlook,
        before_autopay=bill_before_autopay(summary, autopay_outlook, tz),
        past_due=past_due_for(session, summary, as_of, charges),
        bills=bills[:BILLS_PAGE],
        statuses=bill_status.statuses(charges, bills[:BILLS_PAGE], as_of),
        payments=payments.recent(session, account.id),
        as_of=as_of,
        next_installment=plans.next_installment(session, account.id, as_of),
        bills_page=bills_page,
        older_bills=len(bills) > BILLS_PAGE,
    )


@dataclass(frozen=True)
class BillPage:
    account: Account
    bill: Bill
    groups: list[tuple[str, list[BillLine], int]]
    status: BillStatus


def bill_page(session: Session, user: User, number: str, bill_number: str, as_of: date) -> BillPage:
    account, bill = my_bill(session, user, number, bill_number)
    status = bill_status.for_bills(session, account.id, [bill], as_of)[bill.id]
    return BillPage(account=account, bill=bill, groups=accounts.lines_by_service(bill), status=status)


def bill_document(session: Session, user: User, number: str, bill_number: str) -> BillDocument:
    """The printable bill (and the PDF's content) of a bill on one of ``user``'s accounts."""
    account, bill = my_bill(session, user, number, bill_number)
    return accounts.bill_document(session, account, bill)


@dataclass(frozen=True)
class Usage:
    """Water use by month: the last 12 months beside the same months a year before."""

    account: Account
    history: list[UsageMonth]
    unit: str
    this_total: Decimal | int
    last_total: Decimal | int
    #: Percent change on the year before, when every month has a figure to compare with.
    change: int | None


def usage(session: Session, user: User, number: str) -> Usage:
    account = my_account(session, user, number)
    history, unit = accounts.usage_history(session, account.id)
    this_total = sum((m.this_year or 0) for m in history)
    last_total = sum((m.last_year or 0) for m in history)
    compared = all(m.last_year is not None for m in history if m.this_year is not None) and last_total > 0
    change = round((this_total - last_total) * 100 / last_total) if compared else None
    return Usage(account, history, unit, this_total, last_total, change)


def set_paperless(session: Session, user: User, number: str, on: bool, remote_addr: str | None) -> str | None:
    """Turn paperless billing on or off on one of ``user``'s accounts. Bill-ready emails go to
    the customer's email on file; when there is none, the sign-in's address becomes it.
    Audited. Returns the email on file afterwards."""
    account = my_account(session, user, number)
    before = {"paperless": account.paperless, "email": account.customer.email}
    account.paperless = on
    if on and not account.customer.email:
        account.customer.email = user.email
    audit.record(
        session,
        "account.paperless",
        actor=user,
        entity_type="account",
        entity_id=account.id,
        before=before,
        after={"paperless": on, "email": account.customer.email},
        remote_addr=remote_addr,
    )
    return account.customer.email


def link_account(
    session: Session,
    user: User,
    account_number: str,
    service_zip: str,
    amount_due: str,
    now: datetime,
    remote_addr: str | None,
) -> Account | None:
    """Link an account to ``user`` from facts on its latest bill (``users.link_account``):
    the account, or None for every refusal alike (facts that did not match, or a limit
    reached). Raises ``InvalidInput`` for a form filled in wrongly (nothing checked). Each
    try is audited, with the number tried when it failed."""
    result = users.link_account(session, user, account_number, service_zip, amount_due, now, remote_addr)
    tried = f"account number {account_number[:20]}"
    audit.record(
        session,
        "account.linked" if result.account else "account.link_failed",
        actor=user,
        entity_type="account",
        entity_id=result.account.id if result.account else None,
        remote_addr=remote_addr,
        detail=None
        if result.account
        else (f"too many tries, not checked: {tried}" if result.retry_after else f"tried {tried}"),
    )
    return result.account
