"""The daily delinquency run for a 100,000-account district on PostgreSQL, by 1 and by 2
worker processes.

    .venv/bin/python bench/delinquency.py --database postgresql://postgres@127.0.0.1/bench_run \
        [--accounts 100000] [--delinquent 0.12] [--workers 1,2] [--chunk 2000] [--keep]

Builds a lean district with COPY (``--keep`` reuses it): customers, premises, accounts with
water and sewer, four monthly bills each (August to November 2026) and their ledger
transactions; most accounts paid every bill due, a share (``--delinquent``, 12 %) stopped
paying one, two or three months ago, a few of them with an open dispute, a payment plan or
a hold, 1 % final accounts (service stopped, final bill unpaid). Every account owes its
November bill (not yet due), so the run evaluates the whole district.

For each worker count it copies the built database (``CREATE DATABASE ... TEMPLATE``),
starts the ``portal worker`` processes, and times two days: Friday 20 November 2026, the
first run (every delinquent account's steps to date: late fees, notices, door tags,
referrals), then Tuesday 24 November, a later day before the November bills fall due (the
district evaluated again, a few steps due). It prints accounts evaluated per second and the actions posted.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import func, select  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from portal.adapters.database import make_engine  # noqa: E402
from portal.billing_core.models import CollectionAction, CollectionRun, User  # noqa: E402
from portal.jobs import dispatch_collections  # noqa: E402
from portal.migrate import upgrade  # noqa: E402
from portal.settings import Settings, normalise_database_url  # noqa: E402

BILL_DAYS = [date(2026, 8, 5), date(2026, 9, 5), date(2026, 10, 5), date(2026, 11, 5)]
DAYS = [date(2026, 11, 20), date(2026, 11, 24)]


def admin(url: str) -> psycopg.Connection:
    base = url.replace("postgresql+psycopg://", "postgresql://").rsplit("/", 1)[0]
    return psycopg.connect(f"{base}/postgres", autocommit=True)


def db_name(url: str) -> str:
    return url.rsplit("/", 1)[1]


def with_name(url: str, name: str) -> str:
    return f"{url.rsplit('/', 1)[0]}/{name}"


def build(url: str, accounts: int, delinquent: float, seed: int = 1) -> None:
    name = db_name(url)
    with admin(url) as a:
        a.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        a.execute(f'CREATE DATABASE "{name}"')
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    rng = random.Random(seed)
    now = datetime(2026, 11, 1, 12, tzinfo=UTC)
    t0 = time.monotonic()
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        cur = conn.cursor()
        cur.execute(
            "INSERT INTO billing_cycle (id, code, name, frequency, read_day) VALUES (1, 'C1', 'Cycle 1', 'monthly', 5)"
        )
        cur.execute(
            "INSERT INTO rate_schedule (id, code, name, service_type, customer_class) VALUES "
            "(1, 'W', 'Water', 'water', 'RESIDENTIAL_SINGLE'), (2, 'S', 'Sewer', 'sewer', 'RESIDENTIAL_SINGLE')"
        )
        cur.execute(
            "INSERT INTO user_account (email, role, active, created_at, language, notify_receipts, notify_updates) "
            "VALUES ('supervisor@bench.example', 'supervisor', true, now(), 'en', true, true)"
        )
        profiles: list[str] = []
        for _ in range(accounts):
            r = rng.random()
            if r < 0.01:
                profiles.append("final")
            elif r < 0.01 + delinquent:
                profiles.append(rng.choice(("one", "one", "one", "two", "two", "three")))
            else:
                profiles.append("paid")
        with cur.copy(
            "COPY customer ("
            "id, name, email, mailing_line1, mailing_city, mailing_state, mailing_zip, preferred_language, "
            "created_at) FROM STDIN"
        ) as cp:
            for i in range(1, accounts + 1):
                landlord = i % 20 == 0
                cp.write_row(
                    (
                        i,
                        f"Customer {i}",
                        f"c{i}@bench.example",
                        f"{i} Harbor Way" if landlord else None,
                        "Long Beach" if landlord else None,
                        "CA" if landlord else None,
                        "90802" if landlord else None,
                        "es" if i % 4 == 0 else "en",
                        now,
                    )
                )
        with cur.copy(
            "COPY premise ("
            "id, address_line1, city, state, zip, parcel_number, inside_city_limits, dwelling_units) FROM STDIN"
        ) as cp:
            for i in range(1, accounts + 1):
                cp.write_row(
                    (i, f"{100 + i} Oak St", "Chino", "CA", "91710", f"{1000 + i // 100}-{i % 100:03d}-01", True, 1)
                )
        with cur.copy(
            "COPY account ("
            "id, number, customer_id, premise_id, customer_class, cycle_id, status, opened_on, closed_on, "
            "autopay, paperless, cash_only) FROM STDIN"
        ) as cp:
            for i, p in enumerate(profiles, 1):
                final = p == "final"
                cp.write_row(
                    (
                        i,
                        f"{i:08d}",
                        i,
                        i,
                        "RESIDENTIAL_SINGLE",
                        1,
                        "final" if final else "active",
                        date(2020, 1, 1),
                        date(2026, 9, 30) if final else None,
                        False,
                        False,
                        False,
                    )
                )
        with cur.copy(
            "COPY service (account_id, service_type, rate_schedule_id, options, started_on, ended_on) FROM STDIN"
        ) as cp:
            for i, p in enumerate(profiles, 1):
                ended = date(2026, 10, 1) if p == "final" else None
                cp.write_row((i, "water", 1, "{}", date(2020, 1, 1), ended))
                cp.write_row((i, "sewer", 2, "{}", date(2020, 1, 1), ended))
        txn_id = entry_id = bill_id = 0
        txns, entries, bills = [], [], []
        for i, p in enumerate(profiles, 1):
            months = BILL_DAYS[:2] if p == "final" else BILL_DAYS
            unpaid_from = {"paid": 3, "one": 2, "two": 1, "three": 0, "final": 0}[p]
            paid = 0
            for m, bill_day in enumerate(months):
                cents = 6_000 + rng.randrange(0, 9_000)
                water = cents * 7 // 10
                due = bill_day + timedelta(days=21)
                txn_id += 1
                txns.append((txn_id, "bill", i, bill_day, due, "Bill", now))
                for gl, amount, acct, svc in (
                    ("AR:WATER", water, i, "water"),
                    ("REVENUE:WATER", -water, None, "water"),
                    ("AR:SEWER", cents - water, i, "sewer"),
                    ("REVENUE:SEWER", water - cents, None, "sewer"),
                ):
                    entry_id += 1
                    entries.append((entry_id, txn_id, gl, acct, svc, amount))
                bill_id += 1
                bills.append(
                    (
                        bill_id,
                        f"B{bill_id:09d}",
                        i,
                        bill_day - timedelta(days=31),
                        bill_day,
                        bill_day,
                        due,
                        0,
                        0,
                        cents,
                        cents,
                        "posted",
                        False,
                        txn_id,
                    )
                )
                if m < unpaid_from and m < 3:
                    paid += cents
            if paid:
                txn_id += 1
                on = BILL_DAYS[unpaid_from - 1] + timedelta(days=18)
                txns.append((txn_id, "payment", i, on, None, "Payment", now))
                for gl, amount, acct in (("CASH:CHECK", paid, None), ("AR:WATER", -paid, i)):
                    entry_id += 1
                    entries.append((entry_id, txn_id, gl, acct, "water" if acct else None, amount))
        with cur.copy(
            "COPY ledger_transaction (id, kind, account_id, effective_on, due_on, memo, posted_at) FROM STDIN"
        ) as cp:
            for row in txns:
                cp.write_row(row)
        with cur.copy(
            "COPY ledger_entry (id, transaction_id, gl_account, account_id, service_type, amount_cents) FROM STDIN"
        ) as cp:
            for row in entries:
                cp.write_row(row)
        with cur.copy(
            "COPY bill ("
            "id, number, account_id, period_start, period_end, bill_date, due_date, previous_balance_cents, "
            "payments_since_cents, current_charges_cents, total_due_cents, status, estimated, "
            "ledger_transaction_id) FROM STDIN"
        ) as cp:
            for row in bills:
                cp.write_row(row)
        # A few delinquent accounts dispute a bill, keep a plan, or are held.
        late = [i for i, p in enumerate(profiles, 1) if p in ("two", "three")]
        rng.shuffle(late)
        for i in late[: len(late) // 50]:
            cur.execute(
                "INSERT INTO dispute (account_id, kind, amount_cents, status, reason, opened_via, opened_at) "
                "VALUES (%s, 'dispute', 3000, 'open', 'Bench dispute', 'staff', now())",
                (i,),
            )
        for i in late[len(late) // 50 : len(late) // 25]:
            cur.execute(
                "INSERT INTO payment_plan (account_id, kind, status, total_cents, down_payment_cents, "
                "starts_on, grace_days, note, created_at) "
                "VALUES (%s, 'plan', 'active', 10000, 0, '2026-11-01', 10, '', now())",
                (i,),
            )
        for i in late[len(late) // 25 : len(late) // 20]:
            cur.execute(
                "INSERT INTO collection_hold (account_id, reason, held_by_id, held_at) "
                "VALUES (%s, 'Bench hold', 1, now())",
                (i,),
            )
        for table in ("customer", "premise", "account", "service", "ledger_transaction", "ledger_entry", "bill"):
            cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
        conn.commit()
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    counts = {p: profiles.count(p) for p in sorted(set(profiles))}
    print(
        f"district built in {time.monotonic() - t0:.0f} s: {accounts:,} accounts {counts}; "
        f"{len(txns):,} ledger transactions, {len(entries):,} entries, {len(bills):,} bills"
    )


def wait_for_jobs(url: str) -> None:
    plain = url.replace("postgresql+psycopg://", "postgresql://")
    while True:
        with psycopg.connect(plain) as conn:
            left = conn.execute(
                "SELECT count(*) FROM procrastinate_jobs WHERE task_name = 'collections.run_chunk' "
                "AND status IN ('todo', 'doing')"
            ).fetchone()[0]
            failed = conn.execute(
                "SELECT count(*) FROM procrastinate_jobs "
                "WHERE task_name = 'collections.run_chunk' AND status = 'failed'"
            ).fetchone()[0]
        if failed:
            raise RuntimeError(f"{failed} chunk jobs failed")
        if not left:
            return
        time.sleep(0.1)


def time_day(url: str, on: date, workers: int, chunk: int, actor_id: int) -> tuple[float, int, int]:
    settings = Settings(database_url=url)
    t0 = time.monotonic()
    dispatch_collections(settings, on, True, actor_id, in_process=workers == 0, chunk=chunk)
    if workers:
        wait_for_jobs(url)
    elapsed = time.monotonic() - t0
    engine = make_engine(url)
    with Session(engine) as s:
        run = s.scalar(select(CollectionRun).where(CollectionRun.run_on == on))
        posted = s.scalar(
            select(func.count())
            .select_from(CollectionAction)
            .where(CollectionAction.run_id == run.id, CollectionAction.status == "posted")
        )
        evaluated = run.accounts_evaluated
    engine.dispose()
    return elapsed, evaluated, posted or 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--database", required=True, help="PostgreSQL URL of the built district (rebuilt unless --keep)"
    )
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--delinquent", type=float, default=0.12)
    parser.add_argument("--workers", default="1,2", help="worker counts to time, e.g. 1,2 (0: in this process)")
    parser.add_argument("--chunk", type=int, default=2000)
    parser.add_argument("--keep", action="store_true", help="reuse the district already built")
    args = parser.parse_args()
    url = normalise_database_url(args.database)
    if not args.keep:
        build(url, args.accounts, args.delinquent)
    for n in [int(w) for w in args.workers.split(",")]:
        copy = with_name(url, f"{db_name(url)}_w{n}")
        with admin(url) as a:
            a.execute(f'DROP DATABASE IF EXISTS "{db_name(copy)}" WITH (FORCE)')
            a.execute(f'CREATE DATABASE "{db_name(copy)}" TEMPLATE "{db_name(url)}"')
        engine = make_engine(copy)
        with Session(engine) as s:
            actor_id = s.scalar(select(User.id).where(User.email == "supervisor@bench.example"))
        engine.dispose()
        env = {**os.environ, "DATABASE_URL": copy}
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "portal.cli", "worker"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for _ in range(n)
        ]
        try:
            time.sleep(2 if n else 0)  # the workers' start-up is not counted
            for on in DAYS:
                elapsed, evaluated, posted = time_day(copy, on, n, args.chunk, actor_id)
                print(
                    f"workers {n}, {on} ({'first run' if on == DAYS[0] else 'a later day'}): the district of "
                    f"{args.accounts:,} accounts in {elapsed:.1f} s = {args.accounts / elapsed:,.0f} accounts/s; "
                    f"{evaluated:,} delinquent evaluated in full ({evaluated / elapsed:,.0f}/s); "
                    f"{posted:,} actions posted"
                )
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(timeout=30)


if __name__ == "__main__":
    main()
