"""The daily delinquency run and holds, one use case per function: today's action list (the
page), previewing and posting a day's run (a specialist previews, a supervisor posts), the
run split into chunks for the workers (one job per chunk of accounts), holding an account
out of the run and releasing it, and the account page's Collections panel.

Each takes its collaborators (session or session factory, clock values) from its caller,
checks the actor's permission and audits what it changes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from ..adapters.database import transaction
from ..adapters.queue import JobQueue
from ..billing_core import audit, collection_facts, collection_run, ladder, permissions
from ..billing_core.errors import FieldErrors, InvalidInput, NotFound
from ..billing_core.models import Account, CollectionAction, CollectionHold, CollectionRun, User
from ..billing_core.permissions import Action

#: Accounts per job on the workers.
CHUNK = collection_run.CHUNK_ACCOUNTS


def _account(session: Session, number: str) -> Account:
    account = session.scalar(select(Account).where(Account.number == number.strip()))
    if account is None:
        raise NotFound(f"no account {number}")
    return account


# --- The action list -------------------------------------------------------------------------


@dataclass(frozen=True)
class ActionRow:
    action: CollectionAction
    number: str
    name: str


@dataclass(frozen=True)
class ActionList:
    on: date
    run: CollectionRun | None
    rows: list[ActionRow]
    #: Step -> status -> count, for the whole run (not only the filtered rows).
    counts: dict[str, Counter[str]]
    step: str | None
    runs: list[CollectionRun]
    holds: list[tuple[CollectionHold, str]]
    can_preview: bool
    can_post: bool
    can_hold: bool
    business_day: bool = True


LIST_LIMIT = 500


def action_list(session: Session, user: User, on: date, step: str | None = None) -> ActionList:
    """What the run of ``on`` does (or would do) to which accounts and why, filterable by step."""
    permissions.require(user, Action.COLLECTIONS_VIEW)
    if step is not None and step not in collection_run.STEP_ORDER:
        step = None
    run = session.scalar(select(CollectionRun).where(CollectionRun.run_on == on))
    rows: list[ActionRow] = []
    counts: dict[str, Counter[str]] = {}
    if run is not None:
        for kind, status, n in session.execute(
            select(CollectionAction.step, CollectionAction.status, func.count())
            .where(CollectionAction.run_id == run.id)
            .group_by(CollectionAction.step, CollectionAction.status)
        ):
            counts.setdefault(kind, Counter())[status] = int(n)
        query = (
            select(CollectionAction, Account.number, Account.customer_id)
            .join(Account, Account.id == CollectionAction.account_id)
            .where(CollectionAction.run_id == run.id)
            .order_by(CollectionAction.step, Account.number)
            .limit(LIST_LIMIT)
        )
        if step:
            query = query.where(CollectionAction.step == step)
        from ..billing_core.models import Customer

        found = session.execute(query).all()
        names = dict(
            session.execute(
                select(Customer.id, Customer.name).where(Customer.id.in_({r[2] for r in found} or {-1}))
            ).all()
        )
        rows = [ActionRow(a, number, names.get(cid, "")) for a, number, cid in found]
        rows.sort(key=lambda r: (collection_run.STEP_ORDER.index(r.action.step), r.number))
    runs = list(session.scalars(select(CollectionRun).order_by(CollectionRun.run_on.desc()).limit(30)))
    holds = [
        (h, number)
        for h, number in session.execute(
            select(CollectionHold, Account.number)
            .join(Account, Account.id == CollectionHold.account_id)
            .where(CollectionHold.released_at.is_(None))
            .order_by(CollectionHold.held_at.desc())
            .limit(200)
        ).all()
    ]
    return ActionList(
        on=on,
        run=run,
        rows=rows,
        counts=dict(sorted(counts.items(), key=lambda kv: collection_run.STEP_ORDER.index(kv[0]))),
        step=step,
        runs=runs,
        holds=holds,
        can_preview=permissions.can(user.role, Action.COLLECTIONS_PREVIEW),
        can_post=permissions.can(user.role, Action.COLLECTIONS_POST),
        can_hold=permissions.can(user.role, Action.COLLECTIONS_HOLD),
        business_day=is_business_day(session, on),
    )


# --- Preview and post --------------------------------------------------------------------------


#: How many days back a missed day's run may still be run (a job that did not run).
CATCH_UP_DAYS = 7


def run_day_of(raw: str, today: date) -> date:
    """The day a person asks to run: today (empty), or a missed day up to a week back."""
    raw = (raw or "").strip()
    if not raw:
        return today
    try:
        on = date.fromisoformat(raw)
    except ValueError:
        raise FieldErrors.one("on", "Give the day as YYYY-MM-DD.") from None
    if on > today:
        raise FieldErrors.one("on", "A day still to come cannot be run.")
    if (today - on).days > CATCH_UP_DAYS:
        raise FieldErrors.one("on", "Only the last %(days)s days can still be run.", days=CATCH_UP_DAYS)
    return on


def is_business_day(session: Session, on: date) -> bool:
    from ..billing_core import shutoff_gate

    return shutoff_gate.is_business_day(on, collection_facts.closed_days(session, on))


def may_run(user: User, post: bool) -> None:
    """Refuse (``NotAllowed``) unless ``user`` may preview, or post, the run."""
    permissions.require(user, Action.COLLECTIONS_POST if post else Action.COLLECTIONS_PREVIEW)


def run(
    factory: sessionmaker[Session], user: User | None, on: date, now: datetime, *, post: bool
) -> collection_run.ChunkResult:
    """The whole run of ``on`` here, in one transaction: preview (``post=False``, a
    specialist or supervisor) or post (a supervisor). ``user`` None is the daily job."""
    if user is not None:
        may_run(user, post)
    with transaction(factory) as session:
        actor = session.get(User, user.id) if user is not None else None
        return collection_run.run_day(session, on, now, post=post, actor=actor)


def run_chunk_job(
    factory: sessionmaker[Session],
    clock: Callable[[], datetime],
    run_id: int,
    account_ids: list[int],
    post: bool,
    actor_id: int | None = None,
) -> int:
    """One chunk of a day's run (a worker's job): safe to run again, or on two workers."""
    with transaction(factory) as session:
        run_row = session.get(CollectionRun, run_id)
        if run_row is None:
            return 0
        actor = session.get(User, actor_id) if actor_id is not None else None
        result = collection_run.run_chunk(session, run_row, account_ids, clock(), post=post, actor=actor)
        collection_run.finish(session, run_row, clock(), actor, post, run_row.accounts_evaluated)
        return sum(result.posted.values()) if post else sum(result.planned.values())


def dispatch(
    factory: sessionmaker[Session],
    queue: JobQueue,
    on: date,
    now: datetime,
    *,
    post: bool,
    actor_id: int | None = None,
    chunk: int = CHUNK,
) -> int:
    """Split the run of ``on`` into one job per chunk of accounts (``collections.run_chunk``).
    Plans are reviewed first, here, once. Returns the number of chunks."""
    with transaction(factory) as session:
        collection_run._review_plans(session, on, now)
        run_row = collection_run.run_for(session, on)
        # Every step falls on a business day: on any other day there is nothing to do.
        ids = collection_run.candidates(session, on) if is_business_day(session, on) else []
        run_row.accounts_evaluated = len(ids)
        parts = [ids[i : i + chunk] for i in range(0, len(ids), chunk)]
        if not parts:  # nothing to evaluate (or not a business day): the run is done already
            collection_run.finish(session, run_row, now, None, post, 0)
        elif post and run_row.status != "posted":
            run_row.status = "posting"
        run_id = run_row.id
    queue.defer_many(
        "collections.run_chunk",
        [{"run_id": run_id, "account_ids": p, "post": post, "actor_id": actor_id} for p in parts],
    )
    return len(parts)


def summary(result: collection_run.ChunkResult, post: bool) -> list[str]:
    """Counts per step in plain lines (the CLI prints them)."""
    lines = [f"{result.accounts} accounts evaluated"]
    for step in collection_run.STEP_ORDER:
        done = (result.posted if post else result.planned)[step]
        refused, skipped = result.refused[step], result.skipped[step]
        if done or refused or skipped:
            label = collection_run.STEP_LABELS[step]
            extra = "".join([f", {refused} refused" if refused else "", f", {skipped} skipped" if skipped else ""])
            lines.append(f"  {label}: {done} {'posted' if post else 'planned'}{extra}")
    if len(lines) == 1:
        lines.append("  nothing posted: every step due is done" if post else "  nothing due")
    if result.fees_cents:
        lines.append(f"  late fees posted: ${result.fees_cents / 100:,.2f}")
    for why, n in sorted(result.left_out.items()):
        if why != "paid":
            lines.append(f"  left out ({why}): {n}")
    return lines


# --- Holds -------------------------------------------------------------------------------------


def hold(
    factory: sessionmaker[Session], user: User, number: str, reason: str, until: str, now: datetime, today: date
) -> int:
    """Hold an account out of the run (a supervisor), with a reason, optionally until a date."""
    permissions.require(user, Action.COLLECTIONS_HOLD)
    errors: dict[str, InvalidInput] = {}
    reason = (reason or "").strip()[:1000]
    if not reason:
        errors["reason"] = InvalidInput("Say why the account is held out of collections.", "reason")
    until_on: date | None = None
    if (until or "").strip():
        try:
            until_on = date.fromisoformat(until.strip())
            if until_on < today:
                errors["until"] = InvalidInput("The date the hold ends cannot be in the past.", "until")
        except ValueError:
            errors["until"] = InvalidInput("Give the date as YYYY-MM-DD, or leave it empty.", "until")
    with transaction(factory) as session:
        account = _account(session, number)
        if active_hold(session, account.id) is not None:
            errors["reason"] = InvalidInput("This account is already held; release it first.", "reason")
        if errors:
            raise FieldErrors(errors)
        item = CollectionHold(account_id=account.id, reason=reason, until_on=until_on, held_by_id=user.id, held_at=now)
        session.add(item)
        session.flush()
        audit.record(
            session,
            "collections.hold",
            actor=user,
            entity_type="collection_hold",
            entity_id=item.id,
            after={"account": account.number, "reason": reason, "until_on": until_on.isoformat() if until_on else None},
        )
        return item.id


def release(factory: sessionmaker[Session], user: User, number: str, now: datetime) -> int:
    permissions.require(user, Action.COLLECTIONS_HOLD)
    with transaction(factory) as session:
        account = _account(session, number)
        item = active_hold(session, account.id)
        if item is None:
            raise FieldErrors.one("release", "This account is not held.")
        item.released_at, item.released_by_id = now, user.id
        audit.record(
            session,
            "collections.release",
            actor=user,
            entity_type="collection_hold",
            entity_id=item.id,
            before={"account": account.number, "reason": item.reason},
            after={"released_at": now.isoformat()},
        )
        return item.id


def active_hold(session: Session, account_id: int) -> CollectionHold | None:
    return session.scalar(
        select(CollectionHold).where(CollectionHold.account_id == account_id, CollectionHold.released_at.is_(None))
    )


# --- The account page's panel ------------------------------------------------------------------


@dataclass(frozen=True)
class Panel:
    account: Account
    episode: str | None
    steps: list[ladder.DatedStep]
    actions: list[CollectionAction]
    hold: CollectionHold | None
    can_hold: bool
    closed: frozenset[date] = field(default_factory=frozenset)


def panel(session: Session, user: User, number: str, on: date) -> Panel:
    permissions.require(user, Action.COLLECTIONS_VIEW)
    account = _account(session, number)
    episode, steps, actions = collection_run.episode_steps(session, account, on)
    return Panel(
        account=account,
        episode=episode,
        steps=steps,
        actions=actions[:100],
        hold=active_hold(session, account.id),
        can_hold=permissions.can(user.role, Action.COLLECTIONS_HOLD),
        closed=collection_facts.closed_days(session, on),
    )
