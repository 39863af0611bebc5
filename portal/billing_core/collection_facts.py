"""The facts the shutoff gate reads (``shutoff_gate.Facts``), from the database, for many
accounts at once: a handful of set-based queries per chunk of accounts, so the daily run
over a whole district never asks account by account."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import date
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    CompoundSelect,
    Date,
    Integer,
    String,
    and_,
    bindparam,
    cast,
    func,
    literal,
    null,
    or_,
    select,
    union_all,
)
from sqlalchemy.orm import Session

from . import aging, bulk, holidays, statements
from .ladder_policy import SHUTOFF_SERVICES
from .models import (
    AgencyClosure,
    CollectionHold,
    Dispute,
    LedgerEntry,
    LedgerTransaction,
    Notice,
    PaymentPlan,
    Service,
    ShutoffProtection,
    UTCDateTime,
    WorkOrder,
)
from .shutoff_gate import Facts


def closed_days(session: Session, on: date) -> frozenset[date]:
    """Weekdays the office is closed around ``on``: the state's and nation's holidays of this
    year and the next, and the agency's own closures."""
    stmt = statements.once(
        ("collection_facts.closures",),
        lambda: select(AgencyClosure.day).where(
            AgencyClosure.day >= bindparam("first"), AgencyClosure.day <= bindparam("last")
        ),
    )
    own = session.scalars(stmt, {"first": date(on.year - 1, 1, 1), "last": date(on.year + 1, 12, 31)}).all()
    return holidays.around(on) | frozenset(own)


def postings_for_many(session: Session, account_ids: Sequence[int]) -> dict[int, list[aging.Posting]]:
    """Each account's postings (``posting.account_postings`` for many), oldest first."""
    out: dict[int, list[aging.Posting]] = defaultdict(list)
    for part in bulk.chunks(session, account_ids):
        rows = session.execute(
            select(
                LedgerEntry.account_id,
                LedgerTransaction.effective_on,
                LedgerTransaction.due_on,
                func.sum(LedgerEntry.amount_cents),
            )
            .join(LedgerTransaction, LedgerEntry.transaction_id == LedgerTransaction.id)
            .where(bulk.among(session, LedgerEntry.account_id, part))
            .group_by(
                LedgerEntry.account_id, LedgerTransaction.id, LedgerTransaction.effective_on, LedgerTransaction.due_on
            )
            .order_by(LedgerEntry.account_id, LedgerTransaction.effective_on, LedgerTransaction.id)
        ).all()
        for account_id, eff, due, amount in rows:
            if amount and account_id is not None:
                out[account_id].append(aging.Posting(eff, int(amount), due))
    return out


#: The parts of ``_facts_statement``: each binds the chunk's ids once.
FACT_KINDS = 7


def _facts_statement(name: str) -> CompoundSelect:
    """The gate's facts of the accounts ``:ids`` on ``:on``, one round trip: each fact's rows
    tagged with what they are (UNION ALL)."""
    on = bindparam("on", type_=Date())

    def among(column: Any) -> ColumnElement[bool]:
        return statements.among(name, column, "ids")

    day, at, text, n = cast(null(), Date), cast(null(), UTCDateTime), cast(null(), String), cast(null(), Integer)
    cents = cast(null(), BigInteger)
    return union_all(
        select(literal("notice"), Notice.account_id, Notice.issued_on, at, text, n, cents).where(
            among(Notice.account_id),
            Notice.kind == "final",
            Notice.addressee == "customer",
            Notice.issued_on <= on,
        ),
        select(literal("tag"), WorkOrder.account_id, day, WorkOrder.completed_at, text, n, cents).where(
            among(WorkOrder.account_id),
            WorkOrder.kind == "door_tag",
            WorkOrder.status == "done",
        ),
        select(
            literal("dispute"),
            Dispute.account_id,
            day,
            at,
            text,
            func.count(),
            cast(func.coalesce(func.sum(Dispute.amount_cents), 0), BigInteger),
        )
        .where(among(Dispute.account_id), Dispute.status == "open")
        .group_by(Dispute.account_id),
        select(literal("plan"), PaymentPlan.account_id, day, at, text, n, cents).where(
            among(PaymentPlan.account_id), PaymentPlan.status == "active"
        ),
        select(literal("protection"), ShutoffProtection.account_id, day, at, ShutoffProtection.kind, n, cents).where(
            among(ShutoffProtection.account_id),
            ShutoffProtection.revoked_at.is_(None),
            ShutoffProtection.starts_on <= on,
            or_(ShutoffProtection.ends_on.is_(None), ShutoffProtection.ends_on >= on),
        ),
        select(literal("hold"), CollectionHold.account_id, day, at, text, n, cents).where(
            among(CollectionHold.account_id),
            CollectionHold.released_at.is_(None),
            or_(CollectionHold.until_on.is_(None), CollectionHold.until_on >= on),
        ),
        select(literal("service"), Service.account_id, day, at, text, n, cents).where(
            among(Service.account_id),
            Service.service_type.in_(SHUTOFF_SERVICES),
            Service.started_on <= on,
            or_(Service.ended_on.is_(None), and_(Service.ended_on > on)),
        ),
    )


def facts_for_many(
    session: Session,
    account_ids: Sequence[int],
    on: date,
    closed: frozenset[date] | None = None,
    postings: dict[int, list[aging.Posting]] | None = None,
) -> dict[int, Facts]:
    """``Facts`` of each account on ``on``. ``postings``: what ``postings_for_many`` already
    read for these accounts (the daily run reads them once for the ladder and the gate)."""
    ids = sorted(set(account_ids))
    if closed is None:
        closed = closed_days(session, on)
    if postings is None:
        postings = postings_for_many(session, ids)
    notices: dict[int, list[date]] = defaultdict(list)
    tags: dict[int, list[date]] = defaultdict(list)
    disputes: dict[int, int] = defaultdict(int)
    disputed: dict[int, int] = defaultdict(int)
    plans: set[int] = set()
    protections: dict[int, set[str]] = defaultdict(set)
    holds: set[int] = set()
    shutoffable: set[int] = set()
    name = statements.dialect(session)
    facts = statements.once(("collection_facts.facts", name), lambda: _facts_statement(name))
    for part in bulk.chunks(session, ids, per_statement=FACT_KINDS):
        for what, account_id, on_day, done_at, kind, count, amount in session.execute(facts, {"ids": part, "on": on}):
            if account_id is None:
                continue
            if what == "notice":
                notices[account_id].append(on_day)
            elif what == "tag":
                if done_at is not None and done_at.date() <= on:
                    tags[account_id].append(done_at.date())
            elif what == "dispute":
                disputes[account_id] = int(count)
                disputed[account_id] = int(amount or 0)
            elif what == "plan":
                plans.add(account_id)
            elif what == "protection":
                protections[account_id].add(kind)
            elif what == "hold":
                holds.add(account_id)
            else:
                shutoffable.add(account_id)
    out: dict[int, Facts] = {}
    for account_id in ids:
        aged = aging.age(postings.get(account_id, ()), on)
        kinds = protections.get(account_id, set())
        out[account_id] = Facts(
            oldest_unpaid_due=aged.oldest_past_due,
            past_due_cents=aged.past_due_cents,
            shutoff_notices=tuple(sorted(notices.get(account_id, ()))),
            door_tags=tuple(sorted(tags.get(account_id, ()))),
            pending_disputes=disputes.get(account_id, 0),
            disputed_cents=disputed.get(account_id, 0),
            kept_plan=account_id in plans,
            medical_certification="medical_certification" in kinds,
            financial_inability="financial_inability" in kinds,
            willing_to_plan="willing_to_plan" in kinds,
            on_hold=account_id in holds,
            has_shutoff_service=account_id in shutoffable,
            closed_days=closed,
        )
    return out


def facts_for(session: Session, account_id: int, on: date) -> Facts:
    return facts_for_many(session, [account_id], on)[account_id]


def low_income(session: Session, account_id: int, on: date) -> bool:
    """Whether the account qualifies for the Act's reconnection fee caps on ``on``."""
    return (
        session.scalar(
            select(func.count())
            .select_from(ShutoffProtection)
            .where(
                ShutoffProtection.account_id == account_id,
                ShutoffProtection.kind.in_(("low_income", "financial_inability")),
                ShutoffProtection.revoked_at.is_(None),
                ShutoffProtection.starts_on <= on,
                or_(ShutoffProtection.ends_on.is_(None), ShutoffProtection.ends_on >= on),
            )
        )
        or 0
    ) > 0
