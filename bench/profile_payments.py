"""Profile counter payments (``services.counter.take_payment``) on PostgreSQL: the SQL
statements each payment sends (a ``before_cursor_execute`` listener, COPY counted apart)
and a cProfile of the whole loop.

    .venv/bin/python bench/profile_payments.py --database postgresql://postgres@127.0.0.1/bench_payments \
        [--accounts 500] [--payments 300] [--keep] [--sql] [--top 30]

Builds the demo district as ``bench/payments.py`` does (unless ``--keep``), then takes
``--payments`` cash payments one transaction each. ``--sql`` prints one payment's
statements in order.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import random
import re
import sys
import time
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg  # noqa: E402
from sqlalchemy import event, select  # noqa: E402
from sqlalchemy.orm import sessionmaker  # noqa: E402

from portal.adapters.database import make_engine, transaction  # noqa: E402
from portal.billing_core import users  # noqa: E402
from portal.billing_core.models import Account, CashDrawer, User  # noqa: E402
from portal.demo import DemoExists, build_demo  # noqa: E402
from portal.services import counter  # noqa: E402
from portal.settings import normalise_database_url  # noqa: E402

CASHIER = "bench-cashier@example.org"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database", required=True)
    parser.add_argument("--accounts", type=int, default=500)
    parser.add_argument("--payments", type=int, default=300)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--sql", action="store_true", help="print one payment's statements")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--no-profile", action="store_true", help="time the loop only")
    args = parser.parse_args()
    engine = make_engine(normalise_database_url(args.database))
    try:
        build_demo(
            engine, accounts=args.accounts, seed=1, progress=False, today=date(2026, 11, 22), reset=not args.keep
        )
    except DemoExists:
        pass
    factory = sessionmaker(engine, expire_on_commit=False)
    now = datetime(2026, 11, 23, 17, tzinfo=UTC)
    with transaction(factory) as s:
        cashier = s.scalar(select(User).where(User.email == CASHIER)) or users.create_user(
            s, CASHIER, "bench password, long enough", "cashier", now=now
        )
        drawer = s.scalar(select(CashDrawer).where(CashDrawer.cashier_id == cashier.id, CashDrawer.status == "open"))
        if drawer is None:
            counter.open_drawer(s, cashier, "Bench", "150.00", date(2026, 11, 23), now)
        numbers = list(s.scalars(select(Account.number).order_by(Account.id)))
        cashier_id = cashier.id
    rng = random.Random(7)
    plan = [(rng.choice(numbers), f"{rng.randint(500, 20000) / 100:.2f}") for _ in range(args.payments)]

    statements: list[str] = []
    current = ["(connect)"]
    by_statement: Counter[str] = Counter()

    @event.listens_for(engine, "before_cursor_execute")
    def _count(_conn, _cursor, statement, _params, _context, _executemany) -> None:  # type: ignore[no-untyped-def]
        statements.append(" ".join(statement.split())[:160])
        current[0] = " ".join(statement.split()[:4])[:50]

    def one(number: str, amount: str) -> None:
        with transaction(factory) as s:
            user = s.get(User, cashier_id)
            assert user is not None
            counter.take_payment(s, user, [counter.Line(number, amount)], counter.Tender("cash"), now)

    one(*plan[0])
    if args.sql:
        for line in statements:
            print("  ", line)
    print(f"statements for one payment: {len(statements)} (COPY is not seen by the listener)")
    statements.clear()
    waited = [0.0, 0]
    real_wait = psycopg.Connection.wait

    def timed_wait(self, gen, *a, **k):  # type: ignore[no-untyped-def]
        t = time.perf_counter()
        try:
            return real_wait(self, gen, *a, **k)
        finally:
            waited[0] += time.perf_counter() - t
            waited[1] += 1
            by_statement[current[0] if gen.__name__ != "_commit_gen" else "COMMIT"] += time.perf_counter() - t

    psycopg.Connection.wait = timed_wait  # type: ignore[method-assign]
    profiler = cProfile.Profile()
    t0, cpu0 = time.perf_counter(), time.process_time()
    if not args.no_profile:
        profiler.enable()
    for number, amount in plan[1:]:
        one(number, amount)
    profiler.disable()
    took, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    n = len(plan) - 1
    under = "without" if args.no_profile else "under"
    print(
        f"{n} payments in {took:.2f} s {under} the profiler: {1000 * took / n:.2f} ms each,"
        f" {1000 * cpu / n:.2f} ms of this process's CPU"
    )
    print(
        f"statements a payment: {len(statements) / n:.1f}; waiting for the server {1000 * waited[0] / n:.2f} ms"
        f" a payment in {waited[1] / n:.1f} waits (round trips and COPY steps, the pool's ping included)"
    )
    for text_, count in Counter(s.split(" ")[0] for s in statements).most_common():
        print(f"  {text_:10} {count / n:.2f}")
    print("waiting after each statement (the ping and BEGIN count with the statement before them), ms a payment:")
    for text_, seconds in by_statement.most_common(16):
        print(f"  {text_:50} {1000 * seconds / n:.2f}")
    if not args.no_profile:
        by_package: Counter[str] = Counter()
        for (filename, _line, _name), (_cc, _nc, tottime, _ct, _callers) in pstats.Stats(profiler).stats.items():  # type: ignore[attr-defined]
            match = re.search(r"site-packages/([^/]+)|/(portal|bench)/", filename)
            by_package[(match.group(1) or match.group(2)) if match else "python"] += tottime
        print("own time by package, ms a payment:")
        for package, seconds in by_package.most_common(8):
            print(f"  {package:12} {1000 * seconds / n:.2f}")
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(args.top)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(args.top)


if __name__ == "__main__":
    main()
