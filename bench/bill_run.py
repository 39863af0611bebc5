"""A month of a demo district calculated and posted by 1 and then 2 worker processes, each
side by side with a raw COPY of the rows it wrote, on PostgreSQL.

    .venv/bin/python bench/bill_run.py --database postgresql://postgres@127.0.0.1/bench_billrun \
        [--accounts 100000] [--cycles 1] [--workers 1,2] [--chunk 1000] [--keep] [--profile FILE]

Builds the district with `portal demo` (unless --keep finds one), its accounts in one
billing cycle by default so that the cycle bills every account. Then, for each number of
workers in --workers (in that order), it bills the month after the last run: loads a read
for every meter of cycle C1, creates the run, starts the `portal worker` processes and
waits until they are listening, queues the chunks and times calculation, approval and
posting until the run is posted. Right after each run it copies the rows that run wrote
(bills, lines, usage, ledger transactions and entries: the same counts) into empty twin
tables with COPY, and prints both rates, their ratio, the load average and the slowest
chunk against the median (from procrastinate's job events).

--workers 0 runs every chunk in this process (no queue); with --profile FILE it does so
under cProfile and writes the statistics to FILE (read them with `python -m pstats FILE`).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import statistics
import subprocess
import sys
import time
from datetime import date
from decimal import Decimal
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import Engine, event, func, select, text  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from portal.adapters.clock import system_clock  # noqa: E402
from portal.adapters.database import make_engine, sessions_for  # noqa: E402
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
    parser.add_argument("--workers", default="1,2", help="worker counts, one run each, in order (0: in-process)")
    parser.add_argument("--chunk", type=int, default=bill_runs_chunk())
    parser.add_argument("--keep", action="store_true", help="reuse a district already in the database")
    parser.add_argument("--profile", help="with --workers 0: write cProfile statistics to this file")
    args = parser.parse_args()
    url = normalise_database_url(args.database)
    engine = make_engine(url)
    started = time.monotonic()
    try:
        build_demo(
            engine,
            accounts=args.accounts,
            seed=1,
            progress=True,
            today=date(2026, 10, 20),
            reset=not args.keep,
            cycles=args.cycles,
        )
    except DemoExists:
        pass
    print(f"district ready in {time.monotonic() - started:.0f} s")
    results = []
    for workers in [int(w) for w in args.workers.split(",")]:
        run_id, supervisor_id = prepare_run(engine)
        result = bill(engine, url, run_id, supervisor_id, workers, args.chunk, args.profile)
        result["rows"], result["copy"] = copy_rate(url, run_id)  # the anchor, right after the run
        result["load"] = os.getloadavg()[0]
        report(result)
        results.append(result)
    print()
    print(
        "| workers | accounts | chunk | calculate | post | total | bills/s | raw COPY | ratio "
        "| slowest/median chunk | load |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        total = r["calc"] + r["post"]
        print(
            f"| {r['workers']} | {r['accounts']:,} | {r['chunk']} | {r['calc']:.1f} s | {r['post']:.1f} s "
            f"| {total:.1f} s | {r['accounts'] / total:,.0f} | {r['copy']:.2f} s | {r['copy'] / total:.3f} "
            f"| {r['spread']} | {r['load']:.1f} |"
        )


def bill_runs_chunk() -> int:
    from portal.services.bill_run_chunks import CHUNK_ACCOUNTS

    return CHUNK_ACCOUNTS


def prepare_run(engine: Engine) -> tuple[int, int]:
    """A new run of cycle C1 for the month after the last one, with a read for every meter."""
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
        supervisor = s.scalar(select(User.id).where(User.email == "supervisor@demo.example"))
        assert supervisor is not None
        return run.id, supervisor


def bill(engine: Engine, url: str, run_id: int, supervisor_id: int, workers: int, chunk: int, profile: str | None):  # type: ignore[no-untyped-def]
    settings = Settings(database_url=url)
    env = {**os.environ, "DATABASE_URL": url}
    in_process = workers == 0
    with engine.connect() as conn:
        first_job = conn.scalar(text("SELECT COALESCE(MAX(id), 0) FROM procrastinate_jobs"))
        before = conn.scalar(text("SELECT count(*) FROM procrastinate_workers"))
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "portal.cli", "worker"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(workers)
    ]
    profiler = cProfile.Profile() if profile and in_process else None
    if in_process and not BACKENDS:
        # In-process, the CPU this process and its PostgreSQL backends spend is counted too:
        # on a machine other sessions load, it varies far less than the time on the clock.
        event.listen(sessions_for(url).kw["bind"], "connect", lambda conn, _rec: BACKENDS.add(conn.info.backend_pid))
    cpu0, pg0 = time.process_time(), {pid: backend_cpu(pid) for pid in BACKENDS}
    try:
        # Workers run all day: their start-up is not part of a run.
        deadline = time.monotonic() + 60
        while procs and time.monotonic() < deadline:
            with engine.connect() as conn:
                if conn.scalar(text("SELECT count(*) FROM procrastinate_workers")) >= before + workers:
                    break
            time.sleep(0.2)
        if profiler:
            profiler.enable()
        t0 = time.monotonic()
        dispatch(settings, run_id, "calculate", chunk=chunk, in_process=in_process)
        wait(engine, run_id, BillRunStatus.CALCULATED)
        t_calc = time.monotonic() - t0
        with Session(engine) as s, s.begin():
            bill_runs.approve(s, s.get(BillRun, run_id), s.get(User, supervisor_id), now=system_clock())
        t1 = time.monotonic()
        dispatch(settings, run_id, "post", supervisor_id, chunk=chunk, in_process=in_process)
        wait(engine, run_id, BillRunStatus.POSTED)
        t_post = time.monotonic() - t1
        if profiler:
            profiler.disable()
            profiler.dump_stats(profile)
        pg = sum(backend_cpu(pid) - pg0.get(pid, 0.0) for pid in BACKENDS)
        cpu = (time.process_time() - cpu0, pg) if in_process else None
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=30)
    with Session(engine) as s:
        total = s.get(BillRun, run_id).accounts_total
    return {
        "workers": workers,
        "accounts": total,
        "chunk": chunk,
        "calc": t_calc,
        "post": t_post,
        "spread": chunk_spread(engine, first_job) if procs else "",
        "cpu": cpu,
    }


#: The PostgreSQL backends of the portal's own sessions in this process (in-process runs).
BACKENDS: set[int] = set()


def backend_cpu(pid: int) -> float:
    """CPU seconds (user and system) a PostgreSQL backend on this machine has used so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:  # closed by the pool meanwhile
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def chunk_spread(engine: Engine, first_job: int) -> str:
    """Slowest chunk against the median, per step, from the jobs' started and succeeded events."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT j.task_name, EXTRACT(EPOCH FROM max(e.at) FILTER (WHERE e.type = 'succeeded') "
                "- max(e.at) FILTER (WHERE e.type = 'started')) FROM procrastinate_jobs j "
                "JOIN procrastinate_events e ON e.job_id = j.id WHERE j.id > :first "
                "AND j.task_name LIKE 'bill_run.%' GROUP BY j.id, j.task_name"
            ),
            {"first": first_job},
        ).all()
    out = []
    for step in ("calculate", "post"):
        times = [float(t) for name, t in rows if name == f"bill_run.{step}_chunk" and t is not None]
        if times:
            out.append(f"{step} {max(times):.2f}/{statistics.median(times):.2f} s")
    return ", ".join(out)


def report(r: dict) -> None:
    total = r["calc"] + r["post"]
    print(f"workers: {r['workers']}; accounts in the cycle: {r['accounts']:,}; chunk: {r['chunk']}")
    rate = r["accounts"] / total
    print(f"  calculate: {r['calc']:.1f} s; post: {r['post']:.1f} s; total {total:.1f} s = {rate:,.0f} bills/s")
    print(f"  rows written (bills, lines, usage, ledger transactions and entries): {r['rows']:,}")
    print(f"  raw COPY of the same rows: {r['copy']:.2f} s = {r['accounts'] / r['copy']:,.0f} bills/s")
    print(f"  ratio of the run to COPY: {r['copy'] / total:.3f} (target at least 0.333)")
    if r["cpu"]:
        mine, pg = r["cpu"]
        print(f"  CPU: this process {mine:.1f} s, its PostgreSQL backends {pg:.1f} s (the COPY: its wall time above)")
    if r["spread"]:
        print(f"  slowest/median chunk: {r['spread']}")
    print(f"  load average: {r['load']:.1f}")


def wait(engine: Engine, run_id: int, status: str) -> None:
    while True:
        with Session(engine) as s:
            if s.get(BillRun, run_id).status == status:
                return
        time.sleep(0.05)


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
