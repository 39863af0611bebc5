"""One account, for the office: finding it, its page (money, bills, payments, autopay, what
the customer asked for online, a final bill held for review), stopping its service with a
final bill, working a held final bill, one bill's page and its void-and-rebill.

Each function is one use case in the caller's transaction (the session it is handed); who
may take it is checked here, from ``permissions``. A refusal changes nothing: the step's
writes are in a savepoint undone before the error is raised."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import Select, bindparam, func, select
from sqlalchemy.orm import Session, joinedload, selectinload

from ..billing_core import (
    accounts,
    aging,
    arrangements,
    autopay,
    bill_runs,
    bill_status,
    customers,
    payments,
    permissions,
    reads,
    service_requests,
    statements,
)
from ..billing_core.errors import FieldErrors, InvalidInput, NotFound
from ..billing_core.models import (
    Account,
    AccountStatus,
    ArrangementRequest,
    AutopayEnrollment,
    Bill,
    BillLine,
    BillUsage,
    FinalBillReview,
    LedgerTransaction,
    Meter,
    MeterRead,
    Payment,
    Service,
    ServiceRequest,
    User,
)
from ..billing_core.permissions import Action


def search(session: Session, query: str) -> list[Account]:
    """Accounts matching a number, a name or part of an address (none for an empty query)."""
    return accounts.search(session, query) if query else []


def _account(session: Session, number: str) -> Account:
    stmt = statements.once(
        ("accounts.staff_account",),
        lambda: (
            select(Account)
            .where(Account.number == bindparam("number"))
            .options(
                # What every account page shows, in two statements: the account with its customer,
                # premise and cycle, then its services with their meters and rate schedules.
                joinedload(Account.customer),
                joinedload(Account.premise),
                joinedload(Account.cycle),
                selectinload(Account.services).options(joinedload(Service.meter), joinedload(Service.rate_schedule)),
            )
        ),
    )
    account = session.scalars(stmt, {"number": number}).first()
    if account is None:
        raise NotFound(f"account {number}")
    return account


def _meters(account: Account) -> list[Meter]:
    """The meters of the account's services still running: each needs a final read."""
    return list({s.meter.id: s.meter for s in account.services if s.meter is not None and s.ended_on is None}.values())


@dataclass(frozen=True)
class AccountPage:
    account: Account
    #: The day the balance and aging are as of.
    as_of: date
    summary: accounts.AccountSummary
    enrollment: AutopayEnrollment | None
    service_requests: list[ServiceRequest]
    plans: list[ArrangementRequest]
    #: Payments that overpaid, waiting for a refund decision.
    refund_review: list[Payment]
    #: Every meter of the account's services, once each (one meter may serve water and sewer).
    meters: list[Meter]
    #: The meters of the services still running: each needs a final read to stop service.
    active_meters: list[Meter]
    #: meter id -> its latest three reads, newest first.
    last_reads: dict[int, list[MeterRead]]
    #: service id -> the last day of service, for services that ended.
    last_days: dict[int, date]
    #: One page of bills (``BILLS_PAGE``), newest first; ``bills_page`` counts from 1.
    bills: list[Bill]
    #: One page of ledger rows (``LEDGER_PAGE``), newest first, each with the balance after it.
    ledger: list[accounts.LedgerRow]
    #: A final bill held for review, with its reads checked again as they stand now.
    held: FinalBillReview | None
    held_checks: list[bill_runs.FinalReadCheck]
    held_by: User | None
    #: meter id (as the held reads key it) -> serial.
    held_serials: dict[str, str]
    #: Why the held reads cannot be checked any more (the meter's reads changed since): the
    #: reviewer corrects the read.
    held_error: InvalidInput | None
    #: Active and nothing held: service may be stopped here.
    stoppable: bool
    bills_page: int = 1
    #: Older bills than this page's exist (the page links to them).
    older_bills: bool = False
    ledger_page: int = 1
    ledger_pages: int = 1


#: Bills and ledger rows the account page shows at a time (older pages are linked).
BILLS_PAGE = 24
LEDGER_PAGE = 50


def _ledger_page(
    session: Session, account_id: int, page: int
) -> tuple[list[accounts.LedgerRow], int, int, list[aging.Posting]]:
    """One page of the account's ledger, newest first, with the balance after each row:
    each transaction's amount on the account summed in the database (one row a
    transaction, not its entries), then only the page's transactions loaded. Also the
    account's postings as ``posting.account_postings`` reads them (the same rows), for its
    aging."""
    running, balances, postings = 0, [], []
    for txn_id, effective_on, due_on, _reverses, amount in bill_status.transaction_amounts(session, account_id):
        running += amount
        balances.append((txn_id, amount, running))
        if amount:
            postings.append(aging.Posting(effective_on, amount, due_on))
    balances.reverse()
    pages = max(1, -(-len(balances) // LEDGER_PAGE))
    page = min(max(page, 1), pages)
    shown = balances[(page - 1) * LEDGER_PAGE : page * LEDGER_PAGE]
    name = statements.dialect(session)
    txns_stmt = statements.once(
        ("accounts.ledger_page", name),
        lambda: select(LedgerTransaction).where(statements.among(name, LedgerTransaction.id, "ids")),
    )
    txns = {t.id: t for t in session.scalars(txns_stmt, {"ids": [i for i, _, _ in shown]})} if shown else {}
    return [accounts.LedgerRow(txns[i], amount, after) for i, amount, after in shown], page, pages, postings


def _last_reads(session: Session, meter_ids: list[int], n: int = 3) -> dict[int, list[MeterRead]]:
    """Each meter's latest ``n`` reads, newest first, in one query."""
    if not meter_ids:
        return {}
    name = statements.dialect(session)

    def build() -> Select[MeterRead]:
        ranked = (
            select(
                MeterRead.id,
                func.row_number()
                .over(partition_by=MeterRead.meter_id, order_by=(MeterRead.read_on.desc(), MeterRead.id.desc()))
                .label("rank"),
            )
            .where(statements.among(name, MeterRead.meter_id, "ids"))
            .subquery()
        )
        return (
            select(MeterRead)
            .join(ranked, ranked.c.id == MeterRead.id)
            .where(ranked.c.rank <= bindparam("n"))
            .order_by(MeterRead.read_on.desc(), MeterRead.id.desc())
        )

    found = session.scalars(statements.once(("accounts.last_reads", name), build), {"ids": meter_ids, "n": n}).all()
    out: dict[int, list[MeterRead]] = {m: [] for m in meter_ids}
    for read in found:
        out[read.meter_id].append(read)
    return out


def account_page(
    session: Session, number: str, *, as_of: date, bills_page: int = 1, ledger_page: int = 1
) -> AccountPage:
    """Everything the staff account page shows; bills and the ledger one page at a time
    (``bills_page``, ``ledger_page``: 1 is the newest)."""
    account = _account(session, number)
    meters = list({s.meter.id: s.meter for s in account.services if s.meter is not None}.values())
    last_reads = _last_reads(session, [m.id for m in meters])
    bills_page = max(bills_page, 1)
    bills = accounts.bills_for_account(session, account.id, BILLS_PAGE + 1, (bills_page - 1) * BILLS_PAGE)
    ledger, ledger_page, ledger_pages, postings = _ledger_page(session, account.id, ledger_page)
    held = bill_runs.held_for_account(session, account.id)
    checks: list[bill_runs.FinalReadCheck] = []
    held_error = None
    held_serials: dict[str, str] = {}
    if held is not None:
        try:
            checks = bill_runs.review_checks(session, held)
        except InvalidInput as exc:
            held_error = exc
        held_serials = {
            str(meter_id): serial
            for meter_id, serial in session.execute(
                select(Meter.id, Meter.serial).where(Meter.id.in_([int(k) for k in held.reads]))
            )
        }
    return AccountPage(
        account=account,
        as_of=as_of,
        summary=accounts.summarise(session, account, as_of, postings),
        enrollment=autopay.active_enrollment(session, account.id),
        service_requests=service_requests.for_account(session, account.id),
        plans=arrangements.for_account(session, account.id),
        refund_review=payments.to_review(session, account.id),
        meters=meters,
        active_meters=_meters(account),
        last_reads=last_reads,
        last_days={s.id: s.ended_on - timedelta(days=1) for s in account.services if s.ended_on},
        bills=bills[:BILLS_PAGE],
        ledger=ledger,
        held=held,
        held_checks=checks,
        held_by=session.get(User, held.entered_by_id) if held else None,
        held_serials=held_serials,
        held_error=held_error,
        stoppable=account.status == AccountStatus.ACTIVE and held is None,
        bills_page=bills_page,
        older_bills=len(bills) > BILLS_PAGE,
        ledger_page=ledger_page,
        ledger_pages=ledger_pages,
    )


def _number(text: str, field: str, what: str) -> Decimal:
    """A read typed on a staff form: plain ASCII digits, as every read (``reads.parse_read``;
    the meter's dials are checked where the read is used)."""
    try:
        return reads.parse_read(text, field)
    except InvalidInput as exc:
        raise InvalidInput(f"Enter {what} as a number, 0 or more ({exc.message}).", field) from exc


#: The stop form's fields (besides a final read per meter, ``read-<meter id>``); a refusal
#: that names none of them is shown at the form's top (``final``).
STOP_FIELDS = ("stop_on", "mailing_line1", "mailing_city", "mailing_state", "mailing_zip")


@dataclass(frozen=True)
class FinalBillOutcome:
    """What stopping service (or approving a held final bill) came to."""

    #: The posted final bill's number; None when it is held for review.
    bill_number: str | None
    #: Why it is held (``bill_runs.FINAL_REASONS`` codes); empty when it posted.
    held_reasons: list[str]
    #: The customers' stop requests completed by it: each is told once this is saved.
    completed_requests: list[int]


def stop_service(
    session: Session,
    actor: User,
    number: str,
    values: dict[str, str],
    *,
    now: datetime,
    today: date,
    remote_addr: str | None,
) -> FinalBillOutcome:
    """Stop an account's service and post its final bill, from the stop form: ``stop_on``
    (the last day of service), ``read-<meter id>`` (each running meter's final read) and an
    optional forwarding address (``mailing_*``), where the final bill goes. The bill is held
    for review instead when a read is far beyond the account's history or the day is still
    ahead. When it posts, the customer's open stop requests are completed.

    A refusal changes nothing and raises ``FieldErrors`` by the form's field (``final`` for
    the form as a whole)."""
    permissions.require(actor, Action.BILLS_FINAL)
    account = _account(session, number)
    try:
        try:
            stop_on = service_requests.parse_day(values.get("stop_on", ""), "en")
        except ValueError as exc:
            example = service_requests.date_example(today, "en")
            raise InvalidInput(
                f"Enter the last day of service as the date field shows it, for example {example}.", "stop_on"
            ) from exc
        final_reads: dict[int, Decimal] = {}
        for meter in _meters(account):
            field = f"read-{meter.id}"
            final_reads[meter.id] = _number(values.get(field, ""), field, f"the final read of meter {meter.serial}")
        forward = customers.parse_mailing_address(
            values.get("mailing_line1", ""),
            values.get("mailing_city", ""),
            values.get("mailing_state", ""),
            values.get("mailing_zip", ""),
        )
        with session.begin_nested():  # the reads, the final bill and the address, or none of them
            stop = bill_runs.stop_service(
                session, account, stop_on, final_reads, actor, today, forward=forward, remote_addr=remote_addr, now=now
            )
            if stop.bill_id is None:  # held for review
                return FinalBillOutcome(None, stop.reasons.split(","), [])
            bill = session.get(Bill, stop.bill_id)
            assert bill is not None and bill.number is not None
            done = service_requests.complete_stops_for(session, account, actor, now, today)
    except InvalidInput as exc:
        session.expire_all()
        named = exc.field or ""
        raise FieldErrors({named if named in STOP_FIELDS or named.startswith("read-") else "final": exc}) from exc
    return FinalBillOutcome(bill.number, [], done)


#: What may be done to a final bill held for review.
REVIEW_ACTIONS = ("approve", "correct")


def review_final_bill(
    session: Session,
    actor: User,
    number: str,
    action: str,
    values: dict[str, str],
    *,
    now: datetime,
    today: date,
    remote_addr: str | None,
) -> FinalBillOutcome:
    """Approve and post an account's final bill held for review (``action`` ``approve``:
    the customer's open stop requests are completed), or correct its reads (``correct``:
    ``correct-<meter id>`` and a ``reason``; it stays held). A refusal changes nothing and
    raises ``FieldErrors`` (``correct-<meter id>``, ``reason``, or ``review`` for the whole)."""
    permissions.require(actor, Action.BILLS_FINAL_APPROVE if action == "approve" else Action.BILLS_FINAL_CORRECT)
    account = _account(session, number)
    review = bill_runs.held_for_account(session, account.id)
    if review is None:
        raise NotFound(f"final bill held for account {number}")
    try:
        with session.begin_nested():
            if action == "approve":
                bill = bill_runs.approve_final(session, review, actor, today, remote_addr=remote_addr, now=now)
                assert bill.number is not None
                done = service_requests.complete_stops_for(session, account, actor, now, today)
                return FinalBillOutcome(bill.number, [], done)
            corrections = {}
            for meter_id in review.reads:
                field = f"correct-{meter_id}"
                if values.get(field, ""):
                    corrections[int(meter_id)] = _number(values[field], field, "the corrected read")
            if not corrections:
                raise InvalidInput("Enter the corrected read of a meter.", f"correct-{min(review.reads)}")
            for corrected_id, value in corrections.items():
                try:
                    bill_runs.correct_final_read(
                        session,
                        review,
                        corrected_id,
                        value,
                        values.get("reason", ""),
                        actor,
                        today,
                        remote_addr,
                        now=now,
                    )
                except InvalidInput as exc:
                    raise InvalidInput(
                        exc.message, "reason" if exc.field == "reason" else f"correct-{corrected_id}"
                    ) from exc
    except InvalidInput as exc:
        session.expire_all()
        named = exc.field or ""
        raise FieldErrors({named if named.startswith("correct-") or named == "reason" else "review": exc}) from exc
    return FinalBillOutcome(None, [r for r in review.reasons.split(",") if r], [])


@dataclass(frozen=True)
class BillPage:
    account: Account
    bill: Bill
    #: The bill's lines by service: (service, lines, total cents).
    groups: list[tuple[str, list[BillLine], int]]
    #: The meter uses with a closing read (what a void-and-rebill may correct).
    usages: list[BillUsage]


def _bill(session: Session, number: str, bill_number: str) -> tuple[Account, Bill]:
    account = session.scalar(select(Account).where(Account.number == number))
    bill = accounts.bill_with_lines(session, account.id, bill_number) if account else None
    if account is None or bill is None:
        raise NotFound(f"bill {bill_number} of account {number}")
    return account, bill


def bill_page(session: Session, number: str, bill_number: str) -> BillPage:
    account, bill = _bill(session, number, bill_number)
    return BillPage(
        account, bill, accounts.lines_by_service(bill), [u for u in bill.usages if u.current_read_id is not None]
    )


def void_and_rebill(
    session: Session,
    actor: User,
    number: str,
    bill_number: str,
    values: dict[str, str],
    *,
    now: datetime,
    today: date,
    remote_addr: str | None,
) -> str:
    """Void a posted bill and post its rebill, with a ``reason`` and, optionally, corrected
    closing reads (``read-<meter id>``); the new bill's number. A refusal changes nothing and
    raises ``InvalidInput`` (its field ``read-<meter id>`` when a corrected read is wrong)."""
    permissions.require(actor, Action.BILLS_VOID)
    _account, bill = _bill(session, number, bill_number)
    try:
        corrected: dict[int, Decimal] = {}
        for usage in bill.usages:
            field = f"read-{usage.meter_id}"
            if usage.current_read_id is not None and values.get(field):
                corrected[usage.meter_id] = _number(values[field], field, "the corrected read")
        with session.begin_nested():  # all of it, or none of it
            new = bill_runs.void_and_rebill(
                session,
                bill,
                actor,
                values.get("reason", ""),
                today,
                remote_addr=remote_addr,
                corrected_reads=corrected,
                now=now,
            )
    except InvalidInput:
        session.expire_all()
        raise
    assert new.number is not None
    return new.number


def bill_document(session: Session, number: str, bill_number: str) -> accounts.BillDocument:
    """Everything the printed bill shows (the page and its PDF)."""
    account, bill = _bill(session, number, bill_number)
    return accounts.bill_document(session, account, bill)
