"""One day's AMI read file imported into a city's meters: reads per second, on PostgreSQL or SQLite.

    .venv/bin/python bench/read_import.py --database postgresql://postgres@127.0.0.1/bench_reads \
        [--meters 100000] [--history 6]
    .venv/bin/python bench/read_import.py --database sqlite:///var/bench_reads.sqlite3

Empties the database (migrates it first), then writes ``--meters`` installed meters, each
with ``--history`` monthly reads, and times ``import_reads`` on an ``ami-interval-export``
file with one read per meter (every 1000th one high, so the review queue gets some).
``build_meters`` and ``ami_file`` are shared with tests/db/test_read_import.py.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy.orm import Session  # noqa: E402

from portal.billing_core.bulk import insert_rows, reserve_ids  # noqa: E402
from portal.billing_core.models import Meter, MeterRead  # noqa: E402

READ_DAY = date(2026, 11, 5)


def serial(i: int) -> str:
    return f"AMI{i:07d}"


def build_meters(session: Session, meters: int, history: int = 6, deep_every: int = 1) -> None:
    """``meters`` installed 6-dial meters (serials AMI0000000...), each with monthly reads up
    to October 5 2026, 10 CCF a month from 1000 + i % 500: ``history`` of them for every
    ``deep_every``-th meter (counting from meter ``deep_every - 1``), the last one only for
    the others (a test's quicker set-up)."""
    ids = reserve_ids(session, "meter", meters)
    insert_rows(
        session,
        Meter.__table__,
        ["id", "serial", "size", "dials", "multiplier", "unit", "status"],
        [(mid, serial(i), '5/8"', 6, Decimal(1), "CCF", "installed") for i, mid in enumerate(ids)],
    )
    now = datetime.now(UTC)
    months = [date(2026, 10 - k, 5) for k in range(history - 1, -1, -1)]
    rows = []
    for i, mid in enumerate(ids):
        start = 1000 + i % 500
        for k, day in enumerate(months):
            if k == history - 1 or i % deep_every == deep_every - 1:
                rows.append((mid, day, Decimal(start + 10 * k), "ami", "valid", now))
    insert_rows(session, MeterRead.__table__, ["meter_id", "read_on", "value", "source", "status", "created_at"], rows)
    session.flush()


def ami_file(meters: int, history: int = 6, high_every: int = 1000) -> bytes:
    """The November 5 register reads of every meter ``build_meters`` made: 10 CCF more than
    October, except every ``high_every``-th meter, which used 100."""
    lines = ["EndpointID,MeterNumber,RegisterRead,ReadDateTime"]
    for i in range(meters):
        last = 1000 + i % 500 + 10 * (history - 1)
        use = 100 if i % high_every == high_every - 1 else 10
        lines.append(f"EP{i:07d},{serial(i)},{last + use},2026-11-05 00:15:00")
    return ("\n".join(lines) + "\n").encode()


def main() -> None:
    from sqlalchemy import text

    from portal.adapters.database import make_engine
    from portal.billing_core.read_import import import_reads
    from portal.migrate import upgrade
    from portal.settings import normalise_database_url

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database", required=True, help="a database to empty and use")
    parser.add_argument("--meters", type=int, default=100_000)
    parser.add_argument("--history", type=int, default=6)
    args = parser.parse_args()
    engine = make_engine(normalise_database_url(args.database))
    upgrade(engine)
    with Session(engine) as session, session.begin():
        for table in ("meter_read", "read_import", "audit_event", "service", "meter"):
            session.execute(text(f"DELETE FROM {table}"))
    started = time.perf_counter()
    with Session(engine) as session, session.begin():
        build_meters(session, args.meters, args.history)
    built = time.perf_counter() - started
    content = ami_file(args.meters, args.history)
    started = time.perf_counter()
    with Session(engine) as session, session.begin():
        report = import_reads(
            session,
            content,
            "ami.csv",
            "csv",
            layout_name="ami-interval-export",
            today=READ_DAY,
            now=datetime.now(UTC),
            actor_label="bench",
        )
    took = time.perf_counter() - started
    print(
        f"{engine.dialect.name}: {args.meters} meters x {args.history} reads built in {built:.1f} s; "
        f"imported {report.added} reads ({report.exceptions} for review, {len(report.rejected)} rejected) "
        f"in {took:.1f} s: {report.added / took:,.0f} reads/s"
    )


if __name__ == "__main__":
    main()
