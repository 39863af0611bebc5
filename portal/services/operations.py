"""What an operator's probes and scrapes read from the database (issue 17: ops).

``readiness``: can the portal reach its database and its job queue now. ``figures``: the
job queue's depth and age, bill runs by status with the running ones' progress, and the
payments by channel and outcome, counted from the rows at the moment of the scrape, so the
figures are the same whichever web process answers and include what the workers did.
``portal/observability.py`` turns them into Prometheus metrics and the ``/readyz`` answer.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from ..billing_core.models import BillRun, Payment
from ..billing_core.status import BillRunStatus

log = logging.getLogger(__name__)

#: procrastinate's job statuses worth watching: waiting, running, and given up on.
QUEUE_STATUSES = ("todo", "doing", "failed")
#: A bill run with work under way (its chunks are on the queue or being run).
RUNNING = (BillRunStatus.CALCULATING.value, BillRunStatus.POSTING.value)


@dataclass(frozen=True)
class QueueFigure:
    queue: str
    status: str
    jobs: int
    #: Seconds since the oldest of these jobs was deferred (the database's clock).
    oldest_seconds: float


@dataclass(frozen=True)
class RunProgress:
    run_id: int
    status: str
    accounts_done: int
    accounts_total: int


@dataclass(frozen=True)
class Figures:
    #: None: no queue table to read (SQLite, or jobs run in the portal process).
    queue: list[QueueFigure] | None
    runs_by_status: dict[str, int]
    running: list[RunProgress]
    #: (channel, status) -> payments.
    payments: dict[tuple[str, str], int] = field(default_factory=dict)


def _queue(session: Session) -> list[QueueFigure]:
    rows = session.execute(
        text(
            "SELECT j.queue_name, j.status::text, count(*), "
            "coalesce(extract(epoch FROM now() - min(e.at)), 0) "
            "FROM procrastinate_jobs j "
            "LEFT JOIN procrastinate_events e ON e.job_id = j.id AND e.type = 'deferred' "
            f"WHERE j.status::text IN ({', '.join(repr(s) for s in QUEUE_STATUSES)}) "
            "GROUP BY j.queue_name, j.status ORDER BY 1, 2"
        )
    )
    return [QueueFigure(q, s, int(n), float(age)) for q, s, n, age in rows]


def figures(factory: sessionmaker[Session], *, with_queue: bool) -> Figures:
    """Read-only, one short transaction. ``with_queue``: procrastinate's tables are there
    (PostgreSQL with workers)."""
    with factory() as session, session.begin():
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text("SET LOCAL statement_timeout = 5000"))
        queue = _queue(session) if with_queue else None
        runs = {
            status: int(n)
            for status, n in session.execute(select(BillRun.status, func.count(BillRun.id)).group_by(BillRun.status))
        }
        running = [
            RunProgress(run_id, status, done or 0, total or 0)
            for run_id, status, done, total in session.execute(
                select(BillRun.id, BillRun.status, BillRun.accounts_done, BillRun.accounts_total)
                .where(BillRun.status.in_(RUNNING))
                .order_by(BillRun.id)
            )
        ]
        payments = {
            (channel, status): int(n)
            for channel, status, n in session.execute(
                select(Payment.channel, Payment.status, func.count(Payment.id)).group_by(
                    Payment.channel, Payment.status
                )
            )
        }
    return Figures(queue, runs, running, payments)


def readiness(factory: sessionmaker[Session], *, with_queue: bool) -> dict[str, str]:
    """Each check's result: ``ok``, ``in-process`` (no queue to reach: jobs run in the
    portal), ``failed`` or ``not checked`` (the database failed first). Never raises."""
    checks = {"database": "failed", "queue": "not checked"}
    try:
        with factory() as session, session.begin():
            if session.get_bind().dialect.name == "postgresql":
                session.execute(text("SET LOCAL statement_timeout = 2000"))
            session.execute(text("SELECT 1"))
            checks["database"] = "ok"
            if not with_queue:
                checks["queue"] = "in-process"
            else:
                checks["queue"] = "failed"
                session.execute(text("SELECT 1 FROM procrastinate_jobs LIMIT 1"))
                checks["queue"] = "ok"
    except Exception:  # a probe answers, it does not raise
        log.warning("readiness: %s failed", "queue" if checks["database"] == "ok" else "database", exc_info=True)
    return checks
