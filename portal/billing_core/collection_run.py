"""The daily delinquency run: every delinquent account walked up its ladder once a day.

For each account the run finds its **episode**: the oldest bill still unpaid past its due
date (``bill:<bill id>``), or, for a final account (service stopped), its final bill
(``final:<bill id>``). It dates the episode's steps with ``ladder.schedule`` (or
``ladder.final_schedule``) and plans each step due on or before the run's date that is not
yet done: a late fee, a past-due notice, the final (shutoff) notice, a door tag, a shutoff
order (only when ``shutoff_gate.check`` refuses nothing), and for a final account a
collection-agency referral, a lien on the parcel (sewer and sanitation) and a write-off
(pending someone's approval). An account held out of collections, keeping a payment plan or
an extension, or paid up is skipped; paying the episode's bill ends the episode, so the
ladder stops.

**Once only.** ``CollectionAction``'s unique (account, episode, step) is the guarantee:
actions go in with INSERT ... ON CONFLICT DO NOTHING, and an action is posted (its fee,
notice or order written) only by the transaction whose conditional UPDATE moved it from
``planned`` to ``posted``. Posting also locks the chunk's accounts (as payments do), so a
payment and the run never interleave, and two workers on the same chunk take turns: the
second finds every step done. Running a date twice, or on two workers at once, makes each
fee, notice and order exactly once.

**Preview, then post.** ``run_chunk(..., post=False)`` writes the action list (status
``planned``, or ``refused`` with the gate's rule, or ``skipped`` with why) and posts
nothing. ``post=True`` evaluates again (a payment since the preview stops the step) and
posts what is still due. A refused shutoff is evaluated again the next day.

Everything is set-based per chunk of accounts: one query per kind of fact, never one per
account (``collection_facts.facts_for_many``, ``postings_for_many``).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import and_, case, func, select, update
from sqlalchemy.orm import Session, selectinload

from . import aging, audit, bulk, collection_facts, ladder, ledger, payments, posting, shutoff_gate
from .ladder_policy import SHUTOFF_SERVICES, TAX_ROLL_SERVICES, Ladder, LadderPolicy
from .models import (
    Account,
    Bill,
    CollectionAction,
    CollectionReferral,
    CollectionRun,
    DelinquencyPolicyVersion,
    LedgerEntry,
    LedgerTransaction,
    Notice,
    Service,
    User,
    WorkOrder,
    WriteOff,
)

#: Accounts per chunk (one transaction, one job on the workers).
CHUNK_ACCOUNTS = 2000
#: Where late fees are earned: the fee revenue, late-fee line (the receivable is the
#: ``fees`` service's, as for the returned-payment fee).
LATE_FEE_REVENUE = f"{ledger.FEE_REVENUE}:LATE"
#: The notice each notice step writes (``Notice.kind``).
NOTICE_KINDS = {"past_due_notice": "past_due", "final_notice": "final", "door_tag": "door_tag"}
#: Every step in the order the action list shows them.
STEP_ORDER = (
    "late_fee",
    "past_due_notice",
    "final_notice",
    "door_tag",
    "shutoff_order",
    "collection_referral",
    "tax_roll_lien",
    "write_off",
)
STEP_LABELS = {
    "late_fee": "Late fee",
    "past_due_notice": "Past-due notice",
    "final_notice": "Final (shutoff) notice",
    "door_tag": "Door tag",
    "shutoff_order": "Shutoff order",
    "collection_referral": "Collection agency referral",
    "tax_roll_lien": "Tax roll lien",
    "write_off": "Write-off",
}
FINAL_STATUSES = ("final", "closed")
#: Statuses the run may still change (a posted, skipped or cancelled action is settled).
OPEN_STATUSES = ("planned", "refused")


# --- The policy in force --------------------------------------------------------------------


def current_policy(session: Session, on: date) -> tuple[DelinquencyPolicyVersion | None, LadderPolicy]:
    """The stored policy version in force on ``on`` (``ladder_versions.current``)."""
    from . import ladder_versions

    return ladder_versions.current(session, on)


#: Main service order (water first), as ``ladder_versions.main_service`` chooses it.
_MAIN_ORDER = ("water", *[s for s in SHUTOFF_SERVICES if s != "water"])


def main_service(types: Iterable[str]) -> str:
    kinds = set(types)
    for kind in _MAIN_ORDER:
        if kind in kinds:
            return kind
    return min(kinds) if kinds else "*"


# --- Other parts' interfaces, local until their branches land --------------------------------


def _disputed_cents(session: Session, account_ids: Sequence[int]) -> dict[int, int]:
    from . import disputes

    return disputes.disputed_cents(session, list(account_ids))


def _kept(session: Session, account_ids: Sequence[int], on: date, facts: dict[int, shutoff_gate.Facts]) -> set[int]:
    from . import plans

    return plans.kept(session, list(account_ids), on)


def _review_plans(session: Session, on: date, now: datetime) -> list[int]:
    """``plans.review`` (breaks plans with a missed installment) before the run."""
    from . import plans

    return plans.review(session, on, now)


def issue_notice(
    session: Session,
    account: Account,
    kind: str,
    on: date,
    amount_cents: int,
    deadline_on: date | None,
    shutoff_on: date | None,
    action_id: int | None,
    now: datetime,
) -> list[Notice]:
    from . import notices

    return notices.issue(session, account, kind, on, amount_cents, deadline_on, shutoff_on, action_id, now)


def open_order(
    session: Session,
    account: Account,
    kind: str,
    due_on: date,
    amount_cents: int | None,
    deadline_on: date | None,
    action_id: int | None,
    now: datetime,
    created_by_id: int | None = None,
) -> WorkOrder:
    from . import field_orders

    return field_orders.open_order(
        session, account, kind, due_on, amount_cents, deadline_on, action_id, now, created_by_id=created_by_id
    )


# --- Evaluating one chunk ------------------------------------------------------------------


@dataclass
class Planned:
    """One step the run wants today for one account (before it is written)."""

    account_id: int
    episode: str
    step: str
    due_on: date
    status: str = "planned"
    amount_cents: int | None = None
    reason: str = ""
    rule: str | None = None
    #: For posting: the notice's deadline and shutoff date; a lien's amounts by service.
    deadline_on: date | None = None
    shutoff_on: date | None = None
    by_service: dict[str, int] = field(default_factory=dict)

    @property
    def key(self) -> tuple[int, str, str]:
        return (self.account_id, self.episode, self.step)


@dataclass
class ChunkResult:
    accounts: int = 0
    #: Step -> actions planned (preview) or posted (post) today.
    planned: Counter[str] = field(default_factory=Counter)
    posted: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    #: Accounts left out, by why (held, plan, paid).
    left_out: Counter[str] = field(default_factory=Counter)
    fees_cents: int = 0

    def add(self, other: ChunkResult) -> None:
        self.accounts += other.accounts
        self.planned.update(other.planned)
        self.posted.update(other.posted)
        self.refused.update(other.refused)
        self.skipped.update(other.skipped)
        self.left_out.update(other.left_out)
        self.fees_cents += other.fees_cents


def _money(cents: int) -> str:
    return f"${cents / 100:,.2f}"


def evaluate(
    session: Session,
    account_ids: Sequence[int],
    on: date,
    policy: LadderPolicy,
    closed: frozenset[date],
    existing: dict[tuple[int, str, str], CollectionAction],
    left_out: Counter[str],
) -> tuple[list[Planned], dict[int, str]]:
    """What each account's ladder asks today. Returns the planned steps and each
    evaluated account's current episode (absent: none, the account is paid up)."""
    ids = sorted(set(account_ids))
    postings = collection_facts.postings_for_many(session, ids)
    facts = collection_facts.facts_for_many(session, ids, on, closed, postings=postings)
    accounts = {
        a.id: a
        for part in bulk.chunks(session, ids)
        for a in session.scalars(
            select(Account).where(bulk.among(session, Account.id, part)).options(selectinload(Account.premise))
        )
    }
    services: dict[int, set[str]] = defaultdict(set)
    bills: dict[int, list[tuple[int, date]]] = defaultdict(list)
    for part in bulk.chunks(session, ids):
        for account_id, kind in session.execute(
            select(Service.account_id, Service.service_type).where(bulk.among(session, Service.account_id, part))
        ):
            services[account_id].add(kind)
        for bill_id, account_id, due in session.execute(
            select(Bill.id, Bill.account_id, Bill.due_date)
            .where(bulk.among(session, Bill.account_id, part), Bill.status == "posted")
            .order_by(Bill.account_id, Bill.due_date, Bill.id)
        ):
            bills[account_id].append((bill_id, due))
    disputed = _disputed_cents(session, ids)
    kept = _kept(session, ids, on, facts)
    finals = [a for a in ids if a in accounts and accounts[a].status in FINAL_STATUSES]
    final_services = _open_by_service(session, finals) if finals else {}
    done_by_episode: dict[tuple[int, str], dict[str, date]] = defaultdict(dict)
    for (account_id, episode, step), row in existing.items():
        if row.status in ("posted", "skipped"):
            done_by_episode[(account_id, episode)][step] = row.posted_on or row.due_on

    out: list[Planned] = []
    episodes: dict[int, str] = {}
    for account_id in ids:
        account = accounts.get(account_id)
        if account is None:
            continue
        aged = aging.age(postings.get(account_id, ()), on)
        lad = policy.ladder_for(main_service(services.get(account_id, ())), account.customer_class)
        if account.status in FINAL_STATUSES:
            if aged.balance_cents <= 0 or not bills.get(account_id):
                left_out["paid"] += 1
                continue
            final_bill_id, final_due = bills[account_id][-1]
            episode = f"final:{final_bill_id}"
            episodes[account_id] = episode
            if facts[account_id].on_hold:
                left_out["held"] += 1
                continue
            done = done_by_episode.get((account_id, episode), {})
            for dated in ladder.final_schedule(lad, final_due, done, closed):
                if dated.done or dated.on > on:
                    continue
                out.append(
                    _final_step(
                        session, account, lad, dated.kind, episode, on, aged.balance_cents, final_services, existing
                    )
                )
            continue
        # In service: the oldest bill whose own charge is still open past its due date.
        due_dates = {charge.due_date for charge in aged.open_charges if charge.due_date < on}
        bill = next(((bid, due) for bid, due in bills.get(account_id, ()) if due in due_dates), None)
        if bill is None or aged.past_due_cents <= 0:
            left_out["paid"] += 1
            continue
        episode = f"bill:{bill[0]}"
        episodes[account_id] = episode
        if facts[account_id].on_hold:
            left_out["held"] += 1
            continue
        if account_id in kept:
            left_out["plan"] += 1
            continue
        done = done_by_episode.get((account_id, episode), {})
        steps = ladder.schedule(lad, policy, bill[1], done, closed, today=on)
        dates = {s.kind: s.on for s in steps}
        shutoff_on = dates.get("shutoff_order")
        past_due = aged.past_due_cents
        fee_today = 0
        for dated in steps:
            if dated.done or dated.on > on:
                continue
            item = Planned(account_id, episode, dated.kind, dated.on)
            if dated.kind == "late_fee":
                fee = lad.late_fee
                base = max(past_due - disputed.get(account_id, 0), 0)
                if fee is None or account.customer_class in fee.exempt_classes:
                    item.status, item.reason = "skipped", f"The {account.customer_class} class pays no late fee."
                elif fee.amount(base) <= 0:
                    item.status = "skipped"
                    item.reason = f"{_money(base)} past due (not in dispute) is under the late fee's minimum."
                else:
                    item.amount_cents = fee_today = fee.amount(base)
                    item.reason = f"{_money(base)} past due since {bill[1].isoformat()} (not in dispute)."
            elif dated.kind in ("past_due_notice", "final_notice"):
                item.amount_cents = past_due + fee_today
                item.shutoff_on = shutoff_on if dated.kind == "final_notice" else None
                following = [s.on for s in steps if s.on > dated.on]
                item.deadline_on = (shutoff_on if dated.kind == "final_notice" else None) or (
                    min(following) if following else None
                )
                item.reason = f"{_money(past_due)} past due since {bill[1].isoformat()}."
            elif dated.kind == "door_tag":
                item.amount_cents = past_due + fee_today
                item.deadline_on = item.shutoff_on = shutoff_on
                item.reason = (
                    f"Shutoff possible on {shutoff_on.isoformat() if shutoff_on else '-'}; {_money(past_due)} past due."
                )
            elif dated.kind == "shutoff_order":
                tag = lad.step("door_tag")
                refusals = shutoff_gate.check(
                    facts[account_id],
                    on,
                    policy,
                    door_tag_hours=(tag.hours_before or 48) if tag is not None else None,
                    minimum_cents=lad.minimum_shutoff_cents,
                )
                item.amount_cents = past_due
                if refusals:
                    item.status, item.rule = "refused", refusals[0].rule
                    item.reason = " ".join(r.message for r in refusals)
                else:
                    item.reason = (
                        f"{_money(past_due)} past due since {bill[1].isoformat()}; every rule of the gate holds."
                    )
            out.append(item)
    return out, episodes


def _open_by_service(session: Session, account_ids: Sequence[int]) -> dict[int, dict[str, int]]:
    out: dict[int, dict[str, int]] = defaultdict(dict)
    for part in bulk.chunks(session, account_ids):
        for account_id, service, total in session.execute(
            select(LedgerEntry.account_id, LedgerEntry.service_type, func.sum(LedgerEntry.amount_cents))
            .where(bulk.among(session, LedgerEntry.account_id, part), LedgerEntry.service_type.is_not(None))
            .group_by(LedgerEntry.account_id, LedgerEntry.service_type)
        ):
            if account_id is not None and service is not None:
                out[account_id][service] = int(total or 0)
    return out


def _final_step(
    session: Session,
    account: Account,
    lad: Ladder,
    kind: str,
    episode: str,
    on: date,
    balance: int,
    by_service: dict[int, dict[str, int]],
    existing: dict[tuple[int, str, str], CollectionAction],
) -> Planned:
    item = Planned(account.id, episode, kind, on)
    parcel = account.premise.parcel_number
    lienable = {s: c for s, c in by_service.get(account.id, {}).items() if s in TAX_ROLL_SERVICES and c > 0 and parcel}
    if kind == "collection_referral":
        lien_later = lad.step("tax_roll_lien") is not None
        amount = balance - (sum(lienable.values()) if lien_later else 0)
        if amount <= 0:
            item.status, item.reason = "skipped", "What is owed goes to the property tax roll instead."
        else:
            item.amount_cents = amount
            item.reason = f"Final balance {_money(balance)} unpaid; {_money(amount)} to the collection agency."
    elif kind == "tax_roll_lien":
        if not lienable:
            item.status = "skipped"
            item.reason = "No sewer or sanitation balance, or no parcel number on the premise."
        else:
            item.amount_cents = sum(lienable.values())
            item.by_service = lienable
            item.reason = f"Sewer and sanitation {_money(item.amount_cents)} on parcel {parcel}."
    else:  # write_off
        liened = existing.get((account.id, episode, "tax_roll_lien"))
        minus = liened.amount_cents or 0 if liened is not None and liened.status == "posted" else 0
        amount = max(balance - minus, 0)
        if amount <= 0:
            item.status, item.reason = "skipped", "Nothing left to write off."
        else:
            item.amount_cents = amount
            item.reason = f"Final balance {_money(amount)} still unpaid: proposed for write-off (needs approval)."
    return item


# --- Writing the action list and posting -------------------------------------------------


def _insert_nothing_on_conflict(session: Session, model: Any, keys: list[str]) -> Any:
    """INSERT ... ON CONFLICT (keys) DO NOTHING, in PostgreSQL's or SQLite's words."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(model).on_conflict_do_nothing(index_elements=keys)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(model).on_conflict_do_nothing(index_elements=keys)


def _insert_ignore(session: Session, rows: list[dict[str, Any]]) -> None:
    """The new steps in, one executemany of a Core statement (no ORM bookkeeping)."""
    if rows:
        stmt = _insert_nothing_on_conflict(session, CollectionAction.__table__, ["account_id", "episode", "step"])
        session.connection().execute(stmt, rows)


def _existing(session: Session, account_ids: Sequence[int]) -> dict[tuple[int, str, str], CollectionAction]:
    out: dict[tuple[int, str, str], CollectionAction] = {}
    for part in bulk.chunks(session, account_ids):
        for row in session.scalars(
            select(CollectionAction).where(bulk.among(session, CollectionAction.account_id, part))
        ):
            out[(row.account_id, row.episode, row.step)] = row
    return out


def run_for(session: Session, on: date) -> CollectionRun:
    """The run of ``on``, made once (two workers asking at once get the same row)."""
    found = session.scalar(select(CollectionRun).where(CollectionRun.run_on == on))
    if found is not None:
        return found
    version, _policy = current_policy(session, on)
    values = {"run_on": on, "status": "previewed", "policy_version_id": version.id if version else None}
    session.execute(_insert_nothing_on_conflict(session, CollectionRun, ["run_on"]).values(**values))
    run = session.scalar(select(CollectionRun).where(CollectionRun.run_on == on))
    assert run is not None
    return run


def candidates(session: Session, on: date) -> list[int]:
    """The accounts the run evaluates, found in SQL over the whole district: each with
    something past due (its balance is more than its charges not yet due: credits pay the
    oldest charges first, so what is open is the newest), each stopped account that owes,
    and each with an action still open (planned or refused: the run settles it, e.g. when
    the bill was paid). Every other account is paid up or not yet due: nothing to do."""
    falls = func.coalesce(LedgerTransaction.due_on, LedgerTransaction.effective_on)
    per_txn = (
        select(
            LedgerEntry.account_id.label("account_id"),
            func.sum(LedgerEntry.amount_cents).label("net"),
            falls.label("falls"),
        )
        .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
        .where(LedgerEntry.account_id.is_not(None))
        .group_by(LedgerEntry.account_id, LedgerTransaction.id, falls)
        .subquery()
    )
    balance = func.sum(per_txn.c.net)
    not_due = func.sum(case((and_(per_txn.c.net > 0, per_txn.c.falls >= on), per_txn.c.net), else_=0))
    rows = session.execute(
        select(per_txn.c.account_id, balance, not_due).group_by(per_txn.c.account_id).having(balance > 0)
    ).all()
    past_due = {a for a, bal, fresh in rows if a is not None and int(bal) - int(fresh or 0) > 0}
    owing = {a for a, _bal, _fresh in rows if a is not None}
    finals = set(session.scalars(select(Account.id).where(Account.status.in_(FINAL_STATUSES)))) & owing
    open_ = session.scalars(
        select(CollectionAction.account_id).where(CollectionAction.status.in_(OPEN_STATUSES)).distinct()
    ).all()
    return sorted(past_due | finals | set(open_))


def run_chunk(
    session: Session,
    run: CollectionRun,
    account_ids: Sequence[int],
    now: datetime,
    *,
    post: bool,
    actor: User | None = None,
    policy: LadderPolicy | None = None,
    policy_version_id: int | None = None,
    closed: frozenset[date] | None = None,
) -> ChunkResult:
    """Evaluate ``account_ids`` on the run's date and write their actions; with ``post``,
    post what is due (fees, notices, orders) for the rows this call moves to posted.
    In the caller's transaction. ``policy``: injected (tests); else the one in force."""
    on = run.run_on
    ids = sorted(set(account_ids))
    result = ChunkResult(accounts=len(ids))
    if not ids:
        return result
    if policy is None:
        version, policy = current_policy(session, on)
        policy_version_id = version.id if version else None
    if closed is None:
        closed = collection_facts.closed_days(session, on)
    bulk.custom_plans(session)
    if post:
        # Payments lock their accounts too: the run never acts on a balance being paid.
        payments.lock_accounts(session, ids)
    existing = _existing(session, ids)
    wanted, episodes = evaluate(session, ids, on, policy, closed, existing, result.left_out)

    # 1. New steps in (a concurrent run's rows win the race: ON CONFLICT DO NOTHING).
    fresh = [p for p in wanted if p.key not in existing]
    _insert_ignore(
        session,
        [
            {
                "run_id": run.id,
                "account_id": p.account_id,
                "episode": p.episode,
                "step": p.step,
                "status": p.status,
                "due_on": p.due_on,
                "posted_on": on if p.status == "skipped" else None,
                "amount_cents": p.amount_cents,
                "reason": p.reason,
                "rule": p.rule,
                "policy_version_id": policy_version_id,
                "created_at": now,
            }
            for p in fresh
        ],
    )
    # 2. Open steps evaluated again (a refused shutoff may pass today).
    again = [
        {
            "id": existing[p.key].id,
            "run_id": run.id,
            "status": p.status,
            "due_on": p.due_on,
            "posted_on": on if p.status == "skipped" else None,
            "amount_cents": p.amount_cents,
            "reason": p.reason,
            "rule": p.rule,
            "policy_version_id": policy_version_id,
        }
        for p in wanted
        if p.key in existing and existing[p.key].status in OPEN_STATUSES
    ]
    if again:
        session.execute(update(CollectionAction), again)
    # 3. Open steps of an episode that ended (its bill was paid) are settled as skipped;
    #    those of today's run no longer wanted (held since the preview) leave the run.
    wanted_keys = {p.key for p in wanted}
    ended = [
        {"id": row.id, "status": "skipped", "posted_on": on, "reason": "The bill was paid: the ladder stopped."}
        for key, row in existing.items()
        if row.status in OPEN_STATUSES and episodes.get(key[0]) != key[1]
    ]
    if ended:
        session.execute(update(CollectionAction), ended)
    dropped = [
        {"id": row.id, "run_id": None}
        for key, row in existing.items()
        if row.status in OPEN_STATUSES
        and row.run_id == run.id
        and key not in wanted_keys
        and episodes.get(key[0]) == key[1]
    ]
    if dropped:
        session.execute(update(CollectionAction), dropped)
    session.expire_all()

    for p in wanted:
        if p.status == "planned":
            result.planned[p.step] += 1
        elif p.status == "refused":
            result.refused[p.step] += 1
        elif p.key not in existing or existing[p.key].status in OPEN_STATUSES:
            result.skipped[p.step] += 1
    if not post:
        return result

    # 4. Claim: only the rows this transaction moves from planned to posted are posted.
    postable = {p.key: p for p in wanted if p.status == "planned" and not (p.step == "write_off" and actor is None)}
    rows = {
        (r.account_id, r.episode, r.step): r.id
        for part in bulk.chunks(session, ids)
        for r in session.execute(
            select(CollectionAction.id, CollectionAction.account_id, CollectionAction.episode, CollectionAction.step)
            .where(bulk.among(session, CollectionAction.account_id, part))
            .where(CollectionAction.status == "planned", CollectionAction.run_id == run.id)
        )
    }
    claim_ids = sorted(rows[k] for k in postable if k in rows)
    claimed: list[tuple[int, int, str, str]] = []
    for start in range(0, len(claim_ids), bulk.IN_CHUNK):
        part = claim_ids[start : start + bulk.IN_CHUNK]
        claimed += [
            (r.id, r.account_id, r.episode, r.step)
            for r in session.execute(
                update(CollectionAction)
                .where(CollectionAction.id.in_(part), CollectionAction.status == "planned")
                .values(status="posted", posted_on=on)
                .returning(
                    CollectionAction.id, CollectionAction.account_id, CollectionAction.episode, CollectionAction.step
                )
                .execution_options(synchronize_session=False)
            )
        ]
    if claimed:
        _post_claimed(session, run, claimed, postable, now, actor, result)
    return result


def _post_claimed(
    session: Session,
    run: CollectionRun,
    claimed: list[tuple[int, int, str, str]],
    planned: dict[tuple[int, str, str], Planned],
    now: datetime,
    actor: User | None,
    result: ChunkResult,
) -> None:
    on = run.run_on
    actor_id = actor.id if actor is not None else None
    account_ids = sorted({c[1] for c in claimed})
    accounts = {
        a.id: a
        for part in bulk.chunks(session, account_ids)
        for a in session.scalars(
            select(Account)
            .where(bulk.among(session, Account.id, part))
            .options(selectinload(Account.customer), selectinload(Account.premise))
        )
    }
    links: dict[int, dict[str, Any]] = {}
    orders: dict[int, WorkOrder] = {}
    fees = [(c, planned[(c[1], c[2], c[3])]) for c in claimed if c[3] == "late_fee"]
    if fees:
        txns = [
            ledger.Transaction(
                ledger.Kind.FEE,
                on,
                (
                    ledger.Entry(ledger.receivable(ledger.FEES), p.amount_cents or 0, p.account_id, ledger.FEES),
                    ledger.Entry(LATE_FEE_REVENUE, -(p.amount_cents or 0), None, ledger.FEES),
                ),
                memo=f"Late fee ({p.episode.replace(':', ' ')})",
            )
            for _c, p in fees
        ]
        txn_ids = posting.post_many(
            session, txns, account_ids=[p.account_id for _c, p in fees], posted_at=now, posted_by_id=actor_id
        )
        for (c, p), tid in zip(fees, txn_ids, strict=True):
            links[c[0]] = {"ledger_transaction_id": tid}
            result.fees_cents += p.amount_cents or 0
    for action_id, account_id, _episode, step in claimed:
        p = planned[(account_id, _episode, step)]
        account = accounts[account_id]
        result.posted[step] += 1
        if step in ("past_due_notice", "final_notice"):
            issue_notice(
                session,
                account,
                NOTICE_KINDS[step],
                on,
                p.amount_cents or 0,
                p.deadline_on,
                p.shutoff_on,
                action_id,
                now,
            )
        elif step == "door_tag":
            orders[action_id] = open_order(
                session, account, "door_tag", on, p.amount_cents, p.deadline_on, action_id, now, created_by_id=actor_id
            )
            issue_notice(
                session, account, "door_tag", on, p.amount_cents or 0, p.deadline_on, p.shutoff_on, action_id, now
            )
        elif step == "shutoff_order":
            orders[action_id] = open_order(
                session, account, "shutoff", on, p.amount_cents, None, action_id, now, created_by_id=actor_id
            )
        elif step == "collection_referral":
            session.add(
                CollectionReferral(
                    account_id=account_id,
                    kind="agency",
                    amount_cents=p.amount_cents,
                    status="proposed",
                    prepared_by_id=actor_id,
                    prepared_at=now,
                    action_id=action_id,
                )
            )
        elif step == "tax_roll_lien":
            for service, cents in sorted(p.by_service.items()):
                session.add(
                    CollectionReferral(
                        account_id=account_id,
                        kind="tax_roll",
                        amount_cents=cents,
                        service_type=service,
                        parcel_number=account.premise.parcel_number,
                        status="proposed",
                        prepared_by_id=actor_id,
                        prepared_at=now,
                        action_id=action_id,
                    )
                )
        elif step == "write_off":
            assert actor_id is not None
            session.add(
                WriteOff(
                    account_id=account_id,
                    amount_cents=p.amount_cents,
                    reason=f"Collections: {p.reason}",
                    status="pending",
                    prepared_by_id=actor_id,
                    prepared_at=now,
                )
            )
    session.flush()  # the notices, orders and referrals in one go
    for action_id, order in orders.items():
        links[action_id] = {"work_order_id": order.id}
    if links:
        session.execute(update(CollectionAction), [{"id": k, **v} for k, v in links.items()])
    audit.record(
        session,
        "collections.posted",
        actor=actor,
        actor_label=None if actor else "delinquency run",
        entity_type="collection_run",
        entity_id=run.id,
        after={"run_on": on.isoformat(), "actions": len(claimed), "by_step": dict(result.posted)},
    )


def finish(
    session: Session, run: CollectionRun, now: datetime, actor: User | None, posted: bool, evaluated: int
) -> None:
    """The run's totals, counted from its actions (a chunk run again counts nothing twice)."""
    counts = dict(
        session.execute(
            select(CollectionAction.status, func.count())
            .where(CollectionAction.run_id == run.id)
            .group_by(CollectionAction.status)
        ).all()
    )
    run.accounts_evaluated = evaluated
    run.actions_planned = int(counts.get("planned", 0)) + int(counts.get("refused", 0))
    run.actions_posted = int(counts.get("posted", 0))
    if posted:
        run.status = "posted"
        run.posted_at, run.posted_by_id = now, actor.id if actor else None
    else:
        run.previewed_at, run.previewed_by_id = now, actor.id if actor else None
    audit.record(
        session,
        "collections.posted" if posted else "collections.previewed",
        actor=actor,
        actor_label=None if actor else "delinquency run",
        entity_type="collection_run",
        entity_id=run.id,
        after={"run_on": run.run_on.isoformat(), "evaluated": evaluated, **{k: int(v) for k, v in counts.items()}},
    )


def run_day(
    session: Session,
    on: date,
    now: datetime,
    *,
    post: bool,
    actor: User | None = None,
    policy: LadderPolicy | None = None,
    chunk: int = CHUNK_ACCOUNTS,
) -> ChunkResult:
    """The whole run of ``on`` in this transaction (SQLite, tests, the CLI in-process):
    plans reviewed first, then every candidate in chunks."""
    _review_plans(session, on, now)
    run = run_for(session, on)
    version_id = None
    if policy is None:
        version, policy = current_policy(session, on)
        version_id = version.id if version else None
    closed = collection_facts.closed_days(session, on)
    total = ChunkResult()
    if not shutoff_gate.is_business_day(on, closed):
        # Every step falls on a business day (``ladder.schedule``): nothing is due today.
        finish(session, run, now, actor, post, 0)
        return total
    ids = candidates(session, on)
    for start in range(0, len(ids), chunk):
        total.add(
            run_chunk(
                session,
                run,
                ids[start : start + chunk],
                now,
                post=post,
                actor=actor,
                policy=policy,
                policy_version_id=version_id,
                closed=closed,
            )
        )
    if post:
        run.status = "posting"
    finish(session, run, now, actor, post, len(ids))
    return total


def episode_steps(
    session: Session, account: Account, on: date, policy: LadderPolicy | None = None
) -> tuple[str | None, list[ladder.DatedStep], list[CollectionAction]]:
    """One account's current episode, its dated steps, and every action of the account
    (newest first): the account page's panel."""
    if policy is None:
        _version, policy = current_policy(session, on)
    closed = collection_facts.closed_days(session, on)
    postings = collection_facts.postings_for_many(session, [account.id]).get(account.id, [])
    aged = aging.age(postings, on)
    actions = list(
        session.scalars(
            select(CollectionAction)
            .where(CollectionAction.account_id == account.id)
            .order_by(CollectionAction.id.desc())
        )
    )
    types = session.scalars(select(Service.service_type).where(Service.account_id == account.id)).all()
    lad = policy.ladder_for(main_service(types), account.customer_class)
    bills = session.execute(
        select(Bill.id, Bill.due_date)
        .where(Bill.account_id == account.id, Bill.status == "posted")
        .order_by(Bill.due_date, Bill.id)
    ).all()
    if account.status in FINAL_STATUSES:
        if aged.balance_cents <= 0 or not bills:
            return None, [], actions
        episode = f"final:{bills[-1][0]}"
        done = {
            a.step: a.posted_on or a.due_on
            for a in actions
            if a.episode == episode and a.status in ("posted", "skipped")
        }
        return episode, ladder.final_schedule(lad, bills[-1][1], done, closed), actions
    due_dates = {c.due_date for c in aged.open_charges if c.due_date < on}
    bill = next(((bid, due) for bid, due in bills if due in due_dates), None)
    if bill is None:
        return None, [], actions
    episode = f"bill:{bill[0]}"
    done = {
        a.step: a.posted_on or a.due_on for a in actions if a.episode == episode and a.status in ("posted", "skipped")
    }
    return episode, ladder.schedule(lad, policy, bill[1], done, closed, today=on), actions


__all__ = [
    "CHUNK_ACCOUNTS",
    "LATE_FEE_REVENUE",
    "STEP_LABELS",
    "STEP_ORDER",
    "ChunkResult",
    "candidates",
    "episode_steps",
    "evaluate",
    "finish",
    "run_chunk",
    "run_day",
    "run_for",
]
