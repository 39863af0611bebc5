"""A bill run step in chunks of accounts, one job each (``bill_run.calculate_chunk``,
``bill_run.post_chunk``). Every chunk is safe to run again: calculating replaces the
chunk's drafts, posting skips bills already posted. A job that dies half way is simply
run again.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import accumulate

from sqlalchemy.orm import Session, sessionmaker

from ..adapters.clock import Clock
from ..adapters.database import transaction
from ..adapters.queue import JobQueue, Progress
from ..billing_core import bill_runs
from ..billing_core.errors import InvalidInput
from ..billing_core.models import BillRun, User

CHUNK_ACCOUNTS = 500


def calculate_chunk(factory: sessionmaker[Session], clock: Clock, run_id: int, account_ids: list[int]) -> int:
    with transaction(factory) as session:
        run = session.get(BillRun, run_id)
        if run is None:
            return 0
        return bill_runs.calculate(session, run, account_ids, now=clock()).accounts


def post_chunk(factory: sessionmaker[Session], clock: Clock, run_id: int, account_ids: list[int], actor_id: int) -> int:
    with transaction(factory) as session:
        run = session.get(BillRun, run_id)
        actor = session.get(User, actor_id)
        if run is None or actor is None:
            return 0
        return bill_runs.post(session, run, actor, account_ids, now=clock()).accounts


def dispatch(
    factory: sessionmaker[Session],
    queue: JobQueue,
    run_id: int,
    step: str,
    actor_id: int | None = None,
    chunk: int = CHUNK_ACCOUNTS,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Split a run's step (``calculate`` or ``post``) into chunks and queue them. Returns the
    number of chunks. In-process, ``progress`` hears the accounts done out of all of them."""
    with factory() as session:
        run = session.get(BillRun, run_id)
        if run is None:
            raise InvalidInput(f"no bill run {run_id}", "run")
        ids = bill_runs.cycle_accounts(session, run.cycle_id)
    parts = bill_runs.chunks(ids, chunk)
    done = list(accumulate(len(part) for part in parts))
    told: Progress | None = None
    if progress is not None:
        report = progress

        def told(n: int) -> None:
            report(done[n - 1], len(ids))

    if step == "calculate":
        queue.defer_many("bill_run.calculate_chunk", [{"run_id": run_id, "account_ids": p} for p in parts], told)
    else:
        assert actor_id is not None or not (parts and queue.in_process), "posting needs the actor"
        queue.defer_many(
            "bill_run.post_chunk", [{"run_id": run_id, "account_ids": p, "actor_id": actor_id} for p in parts], told
        )
    return len(parts)
