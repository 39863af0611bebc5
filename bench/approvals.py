"""The approvals queue and the supervisor dashboard on a district, on PostgreSQL: how long the
queue (everything waiting, and one kind) and the dashboard take with many items waiting.

    .venv/bin/python bench/approvals.py --database postgresql://postgres@127.0.0.1/bench_approvals \
        [--accounts 20000] [--waiting 500] [--keep]

Builds a demo district (unless --keep finds one), adds ``--waiting`` items of each kind that
waits (adjustments, refunds, write-offs, service and plan requests, rate versions) and open
work orders and cases ten times as many, then times each page's service call (warm: the
best of three runs).
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import func, insert, select  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from portal.adapters.database import make_engine  # noqa: E402
from portal.billing_core.models import (  # noqa: E402
    Account,
    Adjustment,
    ArrangementRequest,
    RateScheduleVersion,
    Refund,
    ServiceCase,
    ServiceRequest,
    User,
    WorkOrder,
    WriteOff,
)
from portal.demo import DemoExists, build_demo  # noqa: E402
from portal.services import approvals, supervision  # noqa: E402
from portal.settings import normalise_database_url  # noqa: E402

TODAY = date(2026, 11, 22)
NOW = datetime(2026, 11, 22, 18, tzinfo=UTC)


def timed(label: str, fn, runs: int = 3):  # type: ignore[no-untyped-def]
    best = None
    result = None
    for _ in range(runs):
        t0 = time.monotonic()
        result = fn()
        took = time.monotonic() - t0
        best = took if best is None else min(best, took)
    print(f"{label}: {best * 1000:.0f} ms")
    return result


def fill(session: Session, n: int) -> None:
    """``n`` waiting items of each kind (and 10 n open work orders and cases), spread over
    the accounts and the last 60 days."""
    accounts = session.execute(select(Account.id, Account.premise_id).order_by(Account.id)).all()
    staff = {u.role: u.id for u in session.scalars(select(User).where(User.role != "customer"))}
    customer = session.scalar(select(User.id).where(User.role == "customer"))
    version = session.scalars(select(RateScheduleVersion)).first()
    assert version is not None and customer is not None

    def at(i: int) -> datetime:
        return NOW - timedelta(days=i % 60, minutes=i)

    def acct(i: int) -> tuple[int, int]:
        aid, pid = accounts[(i * 7919) % len(accounts)]
        return aid, pid

    rows = range(n)
    session.execute(
        insert(Adjustment),
        [
            {
                "account_id": acct(i)[0],
                "service_type": "water",
                "amount_cents": 20_000 + i,
                "reason_code": "billing_error",
                "status": "pending",
                "prepared_by_id": staff["specialist"],
                "prepared_at": at(i),
            }
            for i in rows
        ],
    )
    session.execute(
        insert(Refund),
        [
            {
                "account_id": acct(i)[0],
                "amount_cents": 100 + i,
                "reason": "overpaid",
                "method": "check",
                "status": "requested",
                "requested_by_id": staff["csr"],
                "requested_at": at(i),
            }
            for i in rows
        ],
    )
    session.execute(
        insert(WriteOff),
        [
            {
                "account_id": acct(i)[0],
                "amount_cents": 100 + i,
                "reason": "gone",
                "status": "pending",
                "prepared_by_id": staff["specialist"],
                "prepared_at": at(i),
            }
            for i in rows
        ],
    )
    session.execute(
        insert(ArrangementRequest),
        [
            {
                "account_id": acct(i)[0],
                "user_id": customer,
                "status": "submitted",
                "total_cents": 10_000,
                "down_payment_cents": 0,
                "installments": 3,
                "first_due_on": TODAY + timedelta(days=10),
                "created_at": at(i),
            }
            for i in rows
        ],
    )
    session.execute(
        insert(ServiceRequest),
        [
            {
                "kind": "stop",
                "status": "submitted",
                "user_id": customer,
                "account_id": acct(i)[0],
                "stop_on": TODAY + timedelta(days=20),
                "contact_name": "Pat",
                "contact_email": "pat@example.net",
                "deposit_cents": 0,
                "created_at": at(i),
                "updated_at": at(i),
            }
            for i in rows
        ],
    )
    session.execute(
        insert(RateScheduleVersion),
        [
            {
                "schedule_id": version.schedule_id,
                "effective_on": date(2030, 1, 1) + timedelta(days=i),
                "definition": version.definition,
                "status": "proposed",
                "proposed_by_id": staff["supervisor"],
                "created_at": at(i),
            }
            for i in rows
        ],
    )
    people = [staff["field"], staff["supervisor"], None]
    session.execute(
        insert(WorkOrder),
        [
            {
                "kind": "re_read",
                "account_id": acct(i)[0],
                "premise_id": acct(i)[1],
                "status": "open",
                "reason": "bench",
                "due_on": TODAY + timedelta(days=(i % 20) - 10),
                "assigned_to_id": people[i % 3],
                "created_at": at(i),
            }
            for i in range(10 * n)
        ],
    )
    office = [staff["csr"], staff["specialist"], None]
    session.execute(
        insert(ServiceCase),
        [
            {
                "number": f"B-{i}",
                "kind": "complaint",
                "account_id": acct(i)[0],
                "channel": "phone",
                "subject": "bench",
                "description": "bench",
                "status": "open",
                "due_on": TODAY + timedelta(days=(i % 20) - 10),
                "assigned_to_id": office[i % 3],
                "opened_at": at(i),
            }
            for i in range(10 * n)
        ],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database", required=True, help="PostgreSQL URL (rebuilt unless --keep)")
    parser.add_argument("--accounts", type=int, default=20_000)
    parser.add_argument("--waiting", type=int, default=500)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    engine = make_engine(normalise_database_url(args.database))
    started = time.monotonic()
    try:
        build_demo(engine, accounts=args.accounts, seed=1, progress=False, today=TODAY, reset=not args.keep)
        with Session(engine) as s, s.begin():
            fill(s, args.waiting)
    except DemoExists:
        pass
    print(f"district ready in {time.monotonic() - started:.0f} s")
    with Session(engine) as s:
        accounts = s.scalar(select(func.count()).select_from(Account))
        supervisor = s.scalar(select(User).where(User.role == "supervisor"))
        assert supervisor is not None
        page = timed("approvals queue, everything", lambda: approvals.queue(s, supervisor, TODAY))
        print(f"  {accounts:,} accounts, {len(page.rows):,} waiting")
        timed("approvals queue, one kind (refunds)", lambda: approvals.queue(s, supervisor, TODAY, kind="refund"))
        board = timed("supervisor dashboard", lambda: supervision.dashboard(s, supervisor, TODAY))
        print(f"  {sum(q.count for q in board.queues):,} open in the queues, {len(board.people)} people")


if __name__ == "__main__":
    main()
