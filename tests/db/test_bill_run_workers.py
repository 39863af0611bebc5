"""A bill run spread over real procrastinate workers on PostgreSQL: kill a worker
mid-run, run the step again, and every account is billed exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from portal.adapters.clock import system_clock
from portal.adapters.database import make_engine
from portal.billing_core import bill_runs
from portal.billing_core.models import Bill, BillRun, LedgerEntry, LedgerTransaction, Meter, MeterRead, User
from portal.demo import build_demo
from portal.jobs import dispatch
from portal.settings import Settings
from tests.conftest import fresh_database


@pytest.fixture
def pg(templates: dict[str, str], tmp_path: Path) -> Iterator[tuple[str, Engine]]:
    url, drop = fresh_database("postgresql", templates, tmp_path)
    engine = make_engine(url)
    build_demo(engine, accounts=60, seed=5, progress=False, today="2026-10-20", workers=1)
    with Session(engine) as s, s.begin():
        for meter_id, value in s.execute(
            select(Meter.id, func.max(MeterRead.value))
            .join(MeterRead, MeterRead.meter_id == Meter.id)
            .group_by(Meter.id)
        ):
            s.add(MeterRead(meter_id=meter_id, read_on=date(2026, 11, 5), value=value + 12, source="amr"))
    yield url, engine
    engine.dispose()
    drop()  # type: ignore[operator]


def start_worker(url: str) -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": url}
    return subprocess.Popen(
        [sys.executable, "-m", "portal.cli", "worker", "--concurrency", "2"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wait_for(check, timeout: float = 60) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the workers")
        time.sleep(0.1)


def count(engine: Engine, sql: str) -> int:
    with engine.connect() as conn:
        return conn.scalar(text(sql))


def test_killed_worker_then_rerun_bills_everyone_exactly_once(pg: tuple[str, Engine]) -> None:
    url, engine = pg
    settings = Settings(database_url=url)
    with Session(engine) as s, s.begin():
        run = bill_runs.create_run(s, "C1", date(2026, 10, 5), date(2026, 11, 5))
        run_id, total = run.id, run.accounts_total
        supervisor = s.scalar(select(User.id).where(User.email == "supervisor@demo.example"))
    drafts = f"SELECT count(*) FROM bill WHERE bill_run_id = {run_id}"

    # Calculate on the queue; kill the worker as soon as it has done part of the run.
    assert dispatch(settings, run_id, "calculate", chunk=2) == (total + 1) // 2
    worker = start_worker(url)
    wait_for(lambda: count(engine, drafts) > 0)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    assert count(engine, drafts) < total, "the worker was killed part way"
    # Run the step again: every chunk is queued once more and redone safely.
    dispatch(settings, run_id, "calculate", chunk=2)
    worker = start_worker(url)
    try:
        wait_for(lambda: count(engine, f"SELECT count(*) FROM bill_run WHERE id = {run_id} AND status = 'calculated'"))
        assert count(engine, drafts) == total
        with Session(engine) as s, s.begin():
            bill_runs.approve(s, s.get(BillRun, run_id), s.get(User, supervisor), now=system_clock())
        dispatch(settings, run_id, "post", supervisor, chunk=2)
        wait_for(lambda: count(engine, f"SELECT count(*) FROM bill_run WHERE id = {run_id} AND status = 'posted'"))
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    # Again, as if the post had died: nothing changes.
    entries = count(engine, "SELECT count(*) FROM ledger_entry")
    dispatch(settings, run_id, "post", supervisor, in_process=True)
    assert count(engine, "SELECT count(*) FROM ledger_entry") == entries

    with Session(engine) as s:
        per_account = s.execute(
            select(Bill.account_id, func.count()).where(Bill.bill_run_id == run_id).group_by(Bill.account_id)
        ).all()
        assert len(per_account) == total and all(n == 1 for _, n in per_account)
        posted = s.scalars(select(Bill).where(Bill.bill_run_id == run_id, Bill.status == "posted")).all()
        assert posted and all(b.ledger_transaction_id for b in posted)
        txn_ids = [b.ledger_transaction_id for b in posted]
        assert len(set(txn_ids)) == len(txn_ids)
        assert s.scalar(select(func.count(LedgerTransaction.id)).where(LedgerTransaction.id.in_(txn_ids))) == len(
            txn_ids
        )
        assert s.scalar(select(func.sum(LedgerEntry.amount_cents))) == 0
