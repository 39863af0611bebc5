"""A 20,000-row lockbox file imported over a demo district, against a raw COPY of the same rows.

    .venv/bin/python bench/lockbox.py --database postgresql://postgres@127.0.0.1/bench_lockbox \
        [--accounts 2000] [--rows 20000]

Empties the database and builds a demo district (``portal.demo.build_demo``), writes a CSV
lockbox file (standard layout) of ``--rows`` remittances spread over its accounts (scan lines
and account numbers alike), and times ``services.lockbox.import_file`` on it in one
transaction. Then, in the same run, it COPYs the very rows the import wrote (its payments,
their ledger transactions and entries) into twin tables (``CREATE TABLE ... (LIKE ...
INCLUDING ALL)``: the same columns, defaults and indexes, no foreign keys or triggers) and
prints rows per second for both and the ratio (issue 14's target: at least 0.33).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import pstats
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import select, text  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from portal.billing_core.models import Account  # noqa: E402
from portal.billing_core.numbers import scan_line  # noqa: E402

TODAY = date(2026, 11, 22)
TWINS = ("payment", "ledger_transaction", "ledger_entry")


def lockbox_file(numbers: list[str], rows: int) -> bytes:
    """``rows`` remittances over ``numbers``: every other one by scan line, $12.34 to $99.99."""
    out = io.StringIO()
    out.write("Reference,Account,ScanLine,Amount,CheckNumber,DepositDate\n")
    for i in range(rows):
        number = numbers[i % len(numbers)]
        cents = 1234 + (i * 7919) % 8766
        scan = scan_line(number, cents) if i % 2 else ""
        account = "" if i % 2 else number
        out.write(f"LB{i:08d},{account},{scan},{cents // 100}.{cents % 100:02d},{100000 + i},2026-11-21\n")
    return out.getvalue().encode()


def _profiling(engine):  # type: ignore[no-untyped-def]
    """A running cProfile, and the seconds each statement took (a cursor-execute listener;
    COPY timed through psycopg's ``Copy``)."""
    import cProfile

    import psycopg
    from sqlalchemy import event

    spent: dict[str, float] = {}
    began: list[float] = []

    @event.listens_for(engine, "before_cursor_execute")
    def _before(_c, _cur, _statement, _p, _ctx, _many):  # type: ignore[no-untyped-def]
        began.append(time.perf_counter())

    @event.listens_for(engine, "after_cursor_execute")
    def _after(_c, _cur, statement, _p, _ctx, _many):  # type: ignore[no-untyped-def]
        key = " ".join(statement.split())[:90]
        spent[key] = spent.get(key, 0.0) + time.perf_counter() - began.pop()

    real_copy = psycopg.Cursor.copy

    @contextlib.contextmanager
    def timed_copy(self, statement, *a, **k):  # type: ignore[no-untyped-def]
        t = time.perf_counter()
        with real_copy(self, statement, *a, **k) as copy:
            yield copy
        key = str(statement)[:90]
        spent[key] = spent.get(key, 0.0) + time.perf_counter() - t

    psycopg.Cursor.copy = timed_copy  # type: ignore[method-assign]
    profiler = cProfile.Profile()
    profiler.enable()
    return profiler, spent


def main() -> None:
    from portal.adapters.database import make_engine
    from portal.billing_core import users
    from portal.demo import build_demo
    from portal.services import lockbox
    from portal.settings import normalise_database_url

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database", required=True, help="a PostgreSQL database to empty and use")
    parser.add_argument("--accounts", type=int, default=2000)
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument(
        "--profile", action="store_true", help="cProfile the import and time each statement it sends (slows it down)"
    )
    args = parser.parse_args()
    engine = make_engine(normalise_database_url(args.database))
    if engine.dialect.name != "postgresql":
        raise SystemExit("bench/lockbox.py measures PostgreSQL (COPY)")
    with engine.begin() as conn:  # empty it (faster than the migrations' downgrade)
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    started = time.perf_counter()
    build_demo(engine, accounts=args.accounts, seed=3, progress=False, today=TODAY)
    print(f"demo district of {args.accounts} accounts built in {time.perf_counter() - started:.0f} s")
    with Session(engine) as session, session.begin():
        numbers = list(session.scalars(select(Account.number).order_by(Account.id)))
        actor = users.create_user(session, "bench@example.org", "bench password 2026", "specialist")
        actor_id = actor.id
        for twin in TWINS:
            for suffix in ("", "_bare"):
                session.execute(text(f"DROP TABLE IF EXISTS bench_{twin}{suffix}"))
                session.execute(text(f"CREATE TABLE bench_{twin}{suffix} (LIKE {twin} INCLUDING ALL)"))
            # The twin has the real table's foreign keys and triggers too (the "_bare" one has none).
            for (definition,) in session.execute(
                text(
                    "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
                    "WHERE conrelid = CAST(:t AS regclass) AND contype = 'f'"
                ),
                {"t": twin},
            ):
                session.execute(text(f"ALTER TABLE bench_{twin} ADD {definition}"))
            for (definition,) in session.execute(
                text(
                    "SELECT pg_get_triggerdef(oid) FROM pg_trigger "
                    "WHERE tgrelid = CAST(:t AS regclass) AND NOT tgisinternal"
                ),
                {"t": twin},
            ):
                session.execute(
                    text(
                        definition.replace("TRIGGER ", "TRIGGER bench_", 1).replace(
                            f" ON public.{twin} ", f" ON public.bench_{twin} "
                        )
                    )
                )
    content = lockbox_file(numbers, args.rows)
    now = datetime.now(UTC)
    with Session(engine) as session:
        session.execute(text("ANALYZE"))
        session.commit()
    profiler, spent = _profiling(engine) if args.profile else (None, {})
    started = time.perf_counter()
    with Session(engine) as session, session.begin():
        from portal.billing_core.models import User

        report = lockbox.import_file(
            session, session.get(User, actor_id), content, "bench.csv", "csv", None, today=TODAY, now=now
        )
    took = time.perf_counter() - started
    if profiler is not None:
        profiler.disable()
        print(f"import under the profiler: {took:.2f} s; the statements it sent, slowest first (s, incl. COPY):")
        for statement, seconds in sorted(spent.items(), key=lambda kv: -kv[1])[:15]:
            print(f"  {seconds:6.2f}  {statement}")
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(35)
    if report.matched != args.rows:
        raise SystemExit(f"expected {args.rows} matched rows, got {report.counts()}")

    # The same rows, raw: read back what the import wrote, then COPY it into the twins.
    with engine.connect() as conn:
        raw = conn.connection.driver_connection
        assert raw is not None
        batch = f"(SELECT batch_id FROM payment_import WHERE id = {report.import_id})"
        queries = {
            "payment": f"SELECT * FROM payment WHERE batch_id = {batch}",
            "ledger_transaction": "SELECT t.* FROM ledger_transaction t JOIN payment p "
            f"ON p.ledger_transaction_id = t.id WHERE p.batch_id = {batch}",
            "ledger_entry": "SELECT e.* FROM ledger_entry e JOIN payment p "
            f"ON p.ledger_transaction_id = e.transaction_id WHERE p.batch_id = {batch}",
        }
        data: dict[str, list[tuple]] = {}
        columns: dict[str, list[str]] = {}
        with raw.cursor() as cur:
            for twin, query in queries.items():
                cur.execute(query)
                columns[twin] = [d.name for d in cur.description or ()]
                data[twin] = list(cur.fetchall())
        raw.commit()
        took_copy: dict[str, float] = {}
        for suffix in ("", "_bare"):
            started = time.perf_counter()
            with raw.cursor() as cur:
                for twin in TWINS:
                    with cur.copy(f"COPY bench_{twin}{suffix} ({', '.join(columns[twin])}) FROM STDIN") as copy:
                        for row in data[twin]:
                            copy.write_row(row)
            raw.commit()
            took_copy[suffix] = time.perf_counter() - started
        with raw.cursor() as cur:
            for twin in TWINS:
                cur.execute(f"DROP TABLE bench_{twin}, bench_{twin}_bare")
        raw.commit()
    rows = args.rows
    ours = rows / took
    entries = len(data["ledger_entry"])
    print(
        f"import: {rows} rows ({report.counts()}) in {took:.2f} s: {ours:,.0f} rows/s\n"
        f"raw COPY of the same {len(data['payment'])} payments, {len(data['ledger_transaction'])} transactions, "
        f"{entries} entries"
    )
    for suffix, what in (("", "twins with the real tables' keys and triggers"), ("_bare", "bare twins (no keys)")):
        copied = rows / took_copy[suffix]
        print(f"  into {what}: {took_copy[suffix]:.2f} s: {copied:,.0f} rows/s; ratio {ours / copied:.2f}")
    print("target: ratio >= 0.33")


if __name__ == "__main__":
    main()
