"""The collection reports on a district, on PostgreSQL: how long the aging report, the
delinquency call list (and its CSV) and the annual shutoff report take.

    .venv/bin/python bench/collection_reports.py --database postgresql://postgres@127.0.0.1/bench_reports \
        [--accounts 20000] [--keep]

Builds a demo district (unless --keep finds one), then times each report on the demo's
"today" (warm: the second of two runs) and checks that the aging's net equals the balances.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import func, select  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from portal.adapters.database import make_engine  # noqa: E402
from portal.billing_core import collection_reports as reports  # noqa: E402
from portal.billing_core.models import Account, LedgerEntry  # noqa: E402
from portal.demo import DemoExists, build_demo  # noqa: E402
from portal.services import collection_reports as service  # noqa: E402
from portal.settings import normalise_database_url  # noqa: E402

TODAY = date(2026, 11, 22)


def timed(label: str, fn, runs: int = 2):  # type: ignore[no-untyped-def]
    best = None
    result = None
    for _ in range(runs):
        t0 = time.monotonic()
        result = fn()
        took = time.monotonic() - t0
        best = took if best is None else min(best, took)
    print(f"{label}: {best * 1000:.0f} ms")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database", required=True, help="PostgreSQL URL (rebuilt unless --keep)")
    parser.add_argument("--accounts", type=int, default=20_000)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    engine = make_engine(normalise_database_url(args.database))
    started = time.monotonic()
    try:
        build_demo(engine, accounts=args.accounts, seed=1, progress=False, today=TODAY, reset=not args.keep)
    except DemoExists:
        pass
    print(f"district ready in {time.monotonic() - started:.0f} s")
    with Session(engine) as s:
        accounts = s.scalar(select(func.count()).select_from(Account))
        entries = s.scalar(select(func.count()).select_from(LedgerEntry))
        print(f"{accounts:,} accounts, {entries:,} ledger entries")
        report = timed("aging report (by service, class, cycle)", lambda: reports.aging_report(s, TODAY))
        total = reports.balances_total(s, TODAY)
        print(
            f"  net {report.total.net_cents / 100:,.2f}, balances {total / 100:,.2f}, "
            f"equal: {report.total.net_cents == total}"
        )
        timed("aging XLSX", lambda: service.aging_xlsx(report))
        rows, count = timed(
            "call list (all past due, default filters)", lambda: reports.call_list(s, TODAY, reports.CallFilters())
        )
        print(f"  {count:,} accounts past due")
        page = service.CallPage(TODAY, reports.CallFilters(), rows, count, [], [], [])
        timed("call list CSV", lambda: service.call_csv(page))
        timed("call list page (first 500)", lambda: reports.call_list(s, TODAY, reports.CallFilters(), limit=500))
        timed("annual shutoff report", lambda: reports.shutoff_report(s))


if __name__ == "__main__":
    main()
