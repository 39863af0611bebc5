"""Bill PDFs and a run's print file, on PostgreSQL.

    .venv/bin/python bench/print_file.py --database postgresql://postgres@127.0.0.1/bench_print \\
        [--accounts 20000] [--workers 2] [--part 200]

Builds a demo district (its accounts in four cycles: 5,000 bills in cycle C1 at the
default size), bills cycle C1 in-process,
then times (1) one bill's PDF on demand with a warm browser, the way the portal
serves it, and (2) delivering the run: every mailed bill rendered in slices by
--workers `portal worker` processes and joined into one PDF in ZIP order, plus
the mail-house CSV.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import func, select  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from portal import documents  # noqa: E402
from portal.adapters.database import make_engine  # noqa: E402
from portal.adapters.printer import AsyncPrinter  # noqa: E402
from portal.billing_core import accounts, bill_runs, delivery  # noqa: E402
from portal.billing_core.models import Account, Bill, BillRun, Meter, MeterRead, PrintFile, Service, User  # noqa: E402
from portal.demo import build_demo  # noqa: E402
from portal.jobs import dispatch, dispatch_delivery  # noqa: E402
from portal.settings import Settings, normalise_database_url  # noqa: E402
from portal.templating import make_templates  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database", required=True, help="PostgreSQL URL (rebuilt)")
    parser.add_argument("--accounts", type=int, default=20000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--part", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=1, help="jobs each worker runs at once")
    args = parser.parse_args()
    url = normalise_database_url(args.database)
    engine = make_engine(url)
    build_demo(engine, accounts=args.accounts, seed=1, progress=False, today=date(2026, 10, 20), reset=True)
    files = tempfile.mkdtemp(prefix="print-bench-")
    settings = replace(Settings(), database_url=url, files_dir=files, smtp_port=1)  # no email is sent: see below
    with Session(engine) as s, s.begin():
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
                {"meter_id": m, "read_on": date(2026, 11, 5), "value": v + Decimal(8 + m % 9), "source": "amr"}
                for m, v in meters
            ],
        )
        # Every account on paper, so the print file holds the whole cycle.
        s.execute(Account.__table__.update().values(paperless=False))
        run_id = bill_runs.create_run(s, "C1", date(2026, 10, 5), date(2026, 11, 5)).id
        supervisor_id = s.scalar(select(User.id).where(User.email == "supervisor@demo.example"))
    dispatch(settings, run_id, "calculate", in_process=True)
    with Session(engine) as s, s.begin():
        bill_runs.approve(s, s.get(BillRun, run_id), s.get(User, supervisor_id), now=datetime.now(UTC))
    dispatch(settings, run_id, "post", supervisor_id, in_process=True)

    # (1) One bill's PDF on demand, warm browser, as the portal's PDF route does it.
    env = make_templates().env
    with Session(engine) as s:
        bill_ids = list(s.scalars(select(Bill.id).where(Bill.bill_run_id == run_id).limit(20)))
        htmls = [
            documents.bill_html(env, settings, accounts.bill_document(s, b.account, b))
            for b in (s.get(Bill, i) for i in bill_ids)
        ]

    async def one_by_one() -> list[float]:
        printer = AsyncPrinter(settings.chromium)
        await printer.pdf(htmls[0])  # start the browser
        times = []
        for html in htmls:
            t = time.perf_counter()
            await printer.pdf(html, tagged=True)
            times.append(time.perf_counter() - t)
        await printer.close()
        return times

    times = asyncio.run(one_by_one())
    print(
        f"one bill's PDF, warm browser: median {statistics.median(times) * 1000:.0f} ms, "
        f"slowest {max(times) * 1000:.0f} ms (requirement: under 300 ms)"
    )

    # (2) The print file, by worker processes.
    with Session(engine) as s, s.begin():
        pf = delivery.start(
            s, s.get(BillRun, run_id), s.get(User, supervisor_id), part_size=args.part, now=datetime.now(UTC)
        )
        pf_id, total = pf.id, pf.bills_total
    env_vars = {**os.environ, "DATABASE_URL": url, "FILES_DIR": files}
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "portal.cli", "worker", "--concurrency", str(args.concurrency)],
            env=env_vars,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(args.workers)
    ]
    try:
        time.sleep(3)  # let the workers start (and not count their start-up)
        t0 = time.monotonic()
        dispatch_delivery(settings, pf_id, in_process=False)
        while True:
            with Session(engine) as s:
                pf = s.get(PrintFile, pf_id)
                if pf.status == "ready":
                    break
            time.sleep(0.2)
        elapsed = time.monotonic() - t0
    finally:
        for w in workers:
            w.terminate()
        for w in workers:
            w.wait(timeout=30)
    size = Path(pf.pdf_path).stat().st_size
    print(
        f"print file: {total:,} bills in {elapsed:.1f} s = {total / elapsed:,.0f} bills/s with {args.workers} workers"
    )
    print(f"  {pf.parts_total} slices of {args.part}; joined PDF {size / 1e6:.1f} MB; requirement: 100 bills/s")


if __name__ == "__main__":
    main()
