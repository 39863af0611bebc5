"""Posting a run's drafts: bill numbers and balanced ledger transactions, many at a time.

Bills already posted are skipped, so a post that stops half way can be run again. A held
draft (``drafting.HOLDING``) stays a draft when the run posts.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from .. import audit, ledger, permissions
from ..bulk import among, custom_plans, update_rows
from ..errors import InvalidInput
from ..models import Bill, BillLine, BillRun, LedgerEntry, LedgerTransaction, User
from ..permissions import Action
from ..posting import post_many
from ..status import BILL_RUN_TRANSITIONS, BillRunStatus, BillStatus, move
from .drafting import HOLDING, RunStep
from .rows import balances, lock_run, plain_rows, run_drafts


def post(
    session: Session, run: BillRun, actor: User, account_ids: Iterable[int] | None = None, *, now: datetime
) -> RunStep:
    """Post the run's drafts (or some of them): bill numbers and balanced ledger transactions,
    posted at ``now``. Bills already posted are skipped, so posting again finishes an
    interrupted post."""
    permissions.require(actor, Action.BILL_RUNS_APPROVE)
    if run.status not in (BillRunStatus.APPROVED, BillRunStatus.POSTING, BillRunStatus.POSTED):
        raise InvalidInput(f"run {run.id} is {run.status}; approve it before posting", "status")
    if run.status == BillRunStatus.APPROVED:
        move(BILL_RUN_TRANSITIONS, run, BillRunStatus.POSTING)
    custom_plans(session)
    if account_ids is None:
        stmt = select(*POSTING, Bill.bill_run_id).where(Bill.bill_run_id == run.id, Bill.status == BillStatus.DRAFT)
    else:
        stmt = run_drafts(session, run, list(account_ids), *POSTING[1:])
    held = 0
    ready = []
    for row in plain_rows(session, stmt.order_by(Bill.account_id)):
        if row.bill_run_id != run.id:
            continue
        if _holding(row.exceptions):
            held += 1
        else:
            ready.append(row)
    post_bills(session, ready, actor, now)
    lock_run(session, run)
    # Cheap at every chunk: the first draft that is not held ends the search. A draft has no
    # number yet, and asking for that too lets PostgreSQL look among the drafts (the number's
    # index) instead of every bill the run has posted so far.
    unposted = session.scalar(
        select(Bill.id)
        .where(Bill.number.is_(None), Bill.bill_run_id == run.id, Bill.status == BillStatus.DRAFT, _not_held())
        .limit(1)
    )
    if unposted is None and run.status != BillRunStatus.POSTED:
        held_total = session.scalar(
            select(func.count(Bill.id)).where(
                Bill.number.is_(None), Bill.bill_run_id == run.id, Bill.status == BillStatus.DRAFT
            )
        )
        move(BILL_RUN_TRANSITIONS, run, BillRunStatus.POSTED)
        run.posted_at, run.posted_by_id = now, actor.id
        audit.record(
            session, "bill_run.post", actor=actor, entity_type="bill_run", entity_id=run.id, after={"held": held_total}
        )
    return RunStep(run, len(ready), held)


#: The columns of a draft that posting reads (``post_bills`` takes rows of them).
POSTING = (
    Bill.id,
    Bill.account_id,
    Bill.exceptions,
    Bill.period_start,
    Bill.period_end,
    Bill.bill_date,
    Bill.due_date,
    Bill.current_charges_cents,
)


def _holding(exceptions: str | None) -> bool:
    return any(code in HOLDING for code in (exceptions or "").split(","))


def _not_held():  # type: ignore[no-untyped-def]
    """SQL for "this draft's exceptions hold none of HOLDING" (no code is part of another)."""
    return or_(Bill.exceptions.is_(None), and_(*(Bill.exceptions.not_like(f"%{code}%") for code in HOLDING)))


BILL_POSTED = (
    "number",
    "previous_balance_cents",
    "payments_since_cents",
    "total_due_cents",
    "ledger_transaction_id",
    "status",
)


def post_bills(session: Session, bills: Sequence[Any], actor: User | None, now: datetime) -> None:
    """Post drafts together (rows with the columns of POSTING): a few grouped queries for
    the accounts' figures, one batch of ledger transactions and entries (``posting.post_many``),
    one update of the bills."""
    if not bills:
        return
    bill_ids = [b.id for b in bills]
    ids = [b.account_id for b in bills]
    by_bill: dict[int, dict[str, int]] = defaultdict(dict)
    for bill_id, service, cents in session.execute(
        select(BillLine.bill_id, BillLine.service_type, func.sum(BillLine.amount_cents))
        .where(among(session, BillLine.bill_id, bill_ids))
        .group_by(BillLine.bill_id, BillLine.service_type)
    ):
        by_bill[bill_id][service] = int(cents)
    figures = balances(session, ids)
    last_bill = (
        select(Bill.account_id, func.max(Bill.bill_date).label("last"))
        .where(among(session, Bill.account_id, ids), Bill.status == BillStatus.POSTED)
        .group_by(Bill.account_id)
        .subquery()
    )
    # Credits since each account's last bill, reached through its own transactions (indexed by account).
    credits = dict(
        session.execute(
            select(LedgerTransaction.account_id, func.sum(LedgerEntry.amount_cents))
            .join(
                LedgerEntry,
                (LedgerEntry.transaction_id == LedgerTransaction.id)
                & (LedgerEntry.account_id == LedgerTransaction.account_id),
            )
            .join(last_bill, last_bill.c.account_id == LedgerTransaction.account_id)
            .where(
                among(session, LedgerTransaction.account_id, ids),
                LedgerTransaction.effective_on >= last_bill.c.last,
                LedgerEntry.amount_cents < 0,
            )
            .group_by(LedgerTransaction.account_id)
        ).all()
    )
    charged: list[int] = []  # the bills that post a transaction (not those of nothing)
    txns: list[ledger.Transaction] = []
    for bill in bills:
        by_service = by_bill.get(bill.id, {})
        if any(by_service.values()):
            charged.append(bill.id)
            txns.append(
                ledger.bill_transaction(
                    bill.account_id,
                    bill.bill_date,
                    bill.due_date,
                    by_service,
                    memo=f"Bill for {bill.period_start:%m/%d/%Y} to {bill.period_end - timedelta(days=1):%m/%d/%Y}",
                )
            )
    account_of = {b.id: b.account_id for b in bills}
    posted_ids = post_many(
        session,
        txns,
        account_ids=[account_of[bill_id] for bill_id in charged],
        posted_at=now,
        posted_by_id=actor.id if actor else None,
    )
    txn_ids = dict(zip(charged, posted_ids, strict=True))
    updates = []
    for bill in bills:
        balance = figures.get(bill.account_id, 0)
        credits_since = -int(credits.get(bill.account_id) or 0)
        updates.append(
            (
                bill.id,
                f"{bill.id:09d}",
                balance + credits_since,
                credits_since,
                balance + bill.current_charges_cents,
                txn_ids.get(bill.id),
                BillStatus.POSTED.value,
            )
        )
    update_rows(session, Bill.__table__, BILL_POSTED, updates)
    # Bills this session already holds as objects were changed behind its back.
    posted = set(bill_ids)
    for obj in list(session.identity_map.values()):
        if isinstance(obj, Bill) and obj.id in posted:
            session.expire(obj)
