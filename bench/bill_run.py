"""One full cycle of a demo district calculated and posted by worker processes, on PostgreSQL.

    .venv/bin/python bench/bill_run.py --database postgresql://postgres@127.0.0.1/bench \
        [--accounts 100000] [--cycles 1] [--workers 2] [--chunk 500] [--keep]

Builds the district with `portal demo` (unless --keep finds one), its accounts
in one billing cycle by default so that the cycle bills every account; loads a read
for every meter of cycle C1 for the next period, creates the run, queues its
chunks, starts --workers `portal worker` processes, and times calculation and
posting until the run is posted. Then it copies the rows the run wrote (bills,
lines, ledger transactions and entries) into empty twin tables with COPY, in the
same session, and prints both rates and their ratio.
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import time
from datetime import date
from decimal import Decimal
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import func, select  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from portal.adapters.clock import system_clock  # noqa: E402
from portal.adapters.database import make_engine  # noqa: E402
from portal.billing_core import bill_runs  # noqa: E402
from portal.billing_core.models import Account, BillRun, Meter, MeterRead, Service, User  # noqa: E402
from portal.billing_core.status import BillRunStatus  # noqa: E402
from portal.demo import DemoExists, build_demo  # noqa: E402
from portal.jobs import dispatch  # noqa: E402
from portal.settings import Settings, normalise_database_url  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database", required=True, help="PostgreSQL URL (the database is rebuilt unless --keep)")
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--cycles", type=int, default=1, help="billing cycles of the district; the run bills the first")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--chunk", type=int, default=500)
    parser.add_argument("--keep", action="store_true", help="reuse a district already in the database")
    args = parser.parse_args()
    url = normalise_database_url(args.database)
    engine = make_engine(url)
    today = date(2026, 10, 20)
    started = time.monotonic()
    try:
        build_demo(
            engine, accounts=args.accounts, seed=1, progress=True, today=today, reset=not args.keep, cycles=args.cycles
        )
    except DemoExists:
        pass
    print(f"district ready in {time.monotonic() - started:.0f} s")

    with Session(engine) as s, s.begin():
        run = s.scalar(select(BillRun).where(BillRun.status != BillRunStatus.CANCELLED).order_by(BillRun.id.desc()))
        if run is None or run.status == BillRunStatus.POSTED:
            # A new district bills October 5 to November 5; with --keep, the month after the last run.
            start = run.period_end if run is not None else date(2026, 10, 5)
            end = date(start.year + start.month // 12, start.month % 12 + 1, start.day)
            meters = s.execute(
                select(Meter.id, func.max(MeterRead.value))
                .join(MeterRead, MeterRead.meter_id == Meter.id)
                .join(Service, Service.meter_id == Meter.id)
                .join(Account, Account.id == Service.account_id)
                .where(Account.cycle_id == 1)
                .group_by(Meter.id)
            ).all()
            s.execute(
                MeterRead.__table__.insert(),
                [
                    {
                        "meter_id": m,
                        "read_on": end,
                        "value": v + Decimal(8 + m % 9),
                        "source": "amr",
                        "status": "valid",
                    }
                    for m, v in meters
                ],
            )
            run = bill_runs.create_run(s, "C1", start, end)
        run_id, total = run.id, run.accounts_total
        supervisor = s.scalar(select(User).where(User.email == "supervisor@demo.example"))
        supervisor_id = supervisor.id
        if run.status == BillRunStatus.CREATED:
            pass
    settings = Settings(database_url=url)
    env = {**os.environ, "DATABASE_URL": url}
    in_process = args.workers == 0  # --workers 0: every chunk in this process (no queue)
    workers = (
        []
        if in_process
        else [
            subprocess.Popen(
                [sys.executable, "-m", "portal.cli", "worker"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for _ in range(args.workers)
        ]
    )
    try:
        t0 = time.monotonic()
        dispatch(settings, run_id, "calculate", chunk=args.chunk, in_process=in_process)
        wait(engine, run_id, BillRunStatus.CALCULATED)
        t_calc = time.monotonic() - t0
        with Session(engine) as s, s.begin():
            bill_runs.approve(s, s.get(BillRun, run_id), s.get(User, supervisor_id), now=system_clock())
        t1 = time.monotonic()
        dispatch(settings, run_id, "post", supervisor_id, chunk=args.chunk, in_process=in_process)
        wait(engine, run_id, BillRunStatus.POSTED)
        t_post = time.monotonic() - t1
    finally:
        for w in workers:
            w.terminate()
        for w in workers:
            w.wait(timeout=30)
    elapsed = t_calc + t_post
    rows, copy_seconds = copy_rate(url, run_id)
    print(f"accounts in the cycle: {total:,}; workers: {args.workers}; chunk: {args.chunk}")
    print(f"calculate: {t_calc:.1f} s; post: {t_post:.1f} s; total {elapsed:.1f} s = {total / elapsed:,.0f} bills/s")
    print(f"rows written (bills, lines, usage, ledger transactions and entries): {rows:,}")
    print(f"raw COPY of the same rows: {copy_seconds:.2f} s = {total / copy_seconds:,.0f} bills/s")
    print(f"ratio of the run to COPY: {copy_seconds / elapsed:.3f} (target at least 0.333)")


def wait(engine, run_id: int, status: str) -> None:  # type: ignore[no-untyped-def]
    while True:
        with Session(engine) as s:
            if s.get(BillRun, run_id).status == status:
                return
        time.sleep(0.2)


def copy_rate(url: str, run_id: int) -> tuple[int, float]:
    """COPY the run's rows out, then time COPY of them into empty twin tables."""
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    queries = {
        "bill": f"SELECT * FROM bill WHERE bill_run_id = {run_id}",
        "bill_line": f"SELECT l.* FROM bill_line l JOIN bill b ON b.id = l.bill_id WHERE b.bill_run_id = {run_id}",
        "bill_usage": f"SELECT u.* FROM bill_usage u JOIN bill b ON b.id = u.bill_id WHERE b.bill_run_id = {run_id}",
        "ledger_transaction": "SELECT t.* FROM ledger_transaction t JOIN bill b ON b.ledger_transaction_id = t.id "
        f"WHERE b.bill_run_id = {run_id}",
        "ledger_entry": "SELECT e.* FROM ledger_entry e JOIN bill b ON b.ledger_transaction_id = e.transaction_id "
        f"WHERE b.bill_run_id = {run_id}",
    }
    data: dict[str, bytes] = {}
    rows = 0
    with psycopg.connect(dsn) as conn:
        for table, query in queries.items():
            buf = io.BytesIO()
            with conn.cursor().copy(f"COPY ({query}) TO STDOUT") as copy:
                for chunk in copy:
                    buf.write(chunk)
            data[table] = buf.getvalue()
            rows += data[table].count(b"\n")
        for table in queries:
            conn.execute(f"CREATE TEMP TABLE twin_{table} (LIKE {table} INCLUDING ALL)")
        start = time.monotonic()
        for table, payload in data.items():
            with conn.cursor().copy(f"COPY twin_{table} FROM STDIN") as copy:
                copy.write(payload)
        conn.commit()
        seconds = time.monotonic() - start
    return rows, seconds


if __name__ == "__main__":
    main()
