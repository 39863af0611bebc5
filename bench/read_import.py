"""One day's AMI read file for a 100,000-meter district imported by the portal, side by side
with a raw COPY of the same rows into twin tables of ``meter_read``, on PostgreSQL.

    .venv/bin/python bench/read_import.py --database postgresql://postgres@127.0.0.1/bench_reads_district \
        [--meters 100000] [--history 6] [--rounds 3] [--keep]

Builds the district with COPY (``--keep`` reuses it): customers, premises and accounts (1 %
of them final), one installed 6-dial meter each with its water service, ``--history``
monthly reads a meter (October 5 2026 the last); and two twins of ``meter_read`` holding the
same reads: ``twin_read_keyed`` with the same primary key, unique key, checks and foreign
keys, ``twin_read_bare`` with none of them. The file is an ``ami-interval-export`` with one
register read per meter on November 5 (every 1000th meter used 100 CCF instead of 10, so
the review queue gets some; the final accounts' reads are use on an inactive account).

Each round times, one after the other: the portal's ``import_reads`` of the file in its own
transaction (committed), the same file again (nothing added), then a raw COPY of the rows
the import wrote (copied out first, untimed) into each twin (committed); then it deletes
what the round wrote and vacuums. It prints every round, the median and the ratios.
``build_meters`` and ``ami_file`` are shared with tests/db/test_read_import.py.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import text  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from portal.billing_core.bulk import insert_rows, reserve_ids  # noqa: E402
from portal.billing_core.models import Meter, MeterRead  # noqa: E402

READ_DAY = date(2026, 11, 5)
COLUMNS = "id, meter_id, read_on, value, source, status, created_at, import_id, exception, reviewed_by_id"


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


def _dsn(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def build(url: str, meters: int, history: int) -> None:
    """The district, with COPY: meter ``i`` (serial ``serial(i)``) at premise ``i + 1`` on
    account ``i + 1``; every 100th account (50, 150, ...) final."""
    import psycopg

    from portal.adapters.database import make_engine
    from portal.migrate import upgrade

    base, name = _dsn(url).rsplit("/", 1)
    with psycopg.connect(f"{base}/postgres", autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    now = datetime(2026, 10, 1, 12, tzinfo=UTC)
    months = [date(2026, 10 - k, 5) for k in range(history - 1, -1, -1)]
    with psycopg.connect(_dsn(url)) as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO billing_cycle (id, code, name, frequency, read_day) VALUES (1, 'C1', 'Cycle 1', 'monthly', 5)"
        )
        cur.execute(
            "INSERT INTO rate_schedule (id, code, name, service_type, customer_class) "
            "VALUES (1, 'W', 'Water', 'water', 'RESIDENTIAL_SINGLE')"
        )
        ids = range(1, meters + 1)
        with cur.copy("COPY customer (id, name, preferred_language, created_at, kind) FROM STDIN") as cp:
            for i in ids:
                cp.write_row((i, f"Customer {i}", "en", now, "person"))
        with cur.copy(
            "COPY premise (id, address_line1, city, state, zip, inside_city_limits, dwelling_units) FROM STDIN"
        ) as cp:
            for i in ids:
                cp.write_row((i, f"{100 + i} Oak St", "Chino", "CA", "91710", True, 1))
        with cur.copy(
            "COPY account (id, number, customer_id, premise_id, customer_class, cycle_id, status, opened_on, "
            "closed_on, autopay, paperless, cash_only) FROM STDIN"
        ) as cp:
            for i in ids:
                final = i % 100 == 50
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
                        date(2026, 10, 1) if final else None,
                        False,
                        False,
                        False,
                    )
                )
        with cur.copy(
            "COPY meter (id, serial, size, dials, multiplier, unit, status, premise_id, installed_on) FROM STDIN"
        ) as cp:
            for i in ids:
                cp.write_row((i, serial(i - 1), '5/8"', 6, Decimal(1), "CCF", "installed", i, date(2020, 1, 1)))
        with cur.copy(
            "COPY service (id, account_id, service_type, rate_schedule_id, meter_id, options, started_on, ended_on) "
            "FROM STDIN"
        ) as cp:
            for i in ids:
                cp.write_row((i, i, "water", 1, i, "{}", date(2020, 1, 1), None))
        with cur.copy("COPY meter_read (meter_id, read_on, value, source, status, created_at) FROM STDIN") as cp:
            for i in ids:
                start = 1000 + (i - 1) % 500
                for k, day in enumerate(months):
                    cp.write_row((i, day, Decimal(start + 10 * k), "ami", "valid", now))
        for table in ("customer", "premise", "account", "meter", "service", "billing_cycle", "rate_schedule"):
            cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
        cur.execute("CREATE TABLE twin_read_keyed (LIKE meter_read INCLUDING ALL)")
        cur.execute(
            "ALTER TABLE twin_read_keyed ADD FOREIGN KEY (meter_id) REFERENCES meter (id), "
            "ADD FOREIGN KEY (import_id) REFERENCES read_import (id), "
            "ADD FOREIGN KEY (reviewed_by_id) REFERENCES user_account (id)"
        )
        cur.execute("INSERT INTO twin_read_keyed SELECT * FROM meter_read")
        cur.execute("CREATE TABLE twin_read_bare (LIKE meter_read)")
    vacuum(url)


def vacuum(url: str) -> None:
    import psycopg

    with psycopg.connect(_dsn(url), autocommit=True) as conn:
        for table in ("meter_read", "twin_read_keyed", "twin_read_bare", "meter", "read_import", "audit_event"):
            conn.execute(f"VACUUM ANALYZE {table}")


def one_round(url: str, engine, content: bytes) -> dict[str, float]:  # type: ignore[no-untyped-def]
    import psycopg

    from portal.billing_core.read_import import import_reads

    cpu: dict[str, float] = {}

    def load(name: str):  # type: ignore[no-untyped-def]
        with Session(engine) as session, session.begin():
            backend = session.execute(text("SELECT pg_backend_pid()")).scalar_one()
            server, client = backend_cpu(backend), time.process_time()
            report = import_reads(
                session,
                content,
                name,
                "csv",
                layout_name="ami-interval-export",
                today=READ_DAY,
                now=datetime.now(UTC),
                actor_label="bench",
            )
        cpu["client"], cpu["server"] = time.process_time() - client, backend_cpu(backend) - server
        return report

    started = time.perf_counter()
    report = load("ami.csv")
    portal = time.perf_counter() - started
    portal_cpu = dict(cpu)
    assert report.ok and report.added == content.count(b"\n") - 1, (report.added, report.rejected[:3])
    started = time.perf_counter()
    again = load("ami-again.csv")
    twice = time.perf_counter() - started
    assert again.already_imported_at is not None and again.added == 0
    with psycopg.connect(_dsn(url)) as conn:
        buf = io.BytesIO()
        with conn.cursor().copy(
            f"COPY (SELECT {COLUMNS} FROM meter_read WHERE import_id = {report.import_id}) TO STDOUT"
        ) as cp:
            for chunk in cp:
                buf.write(chunk)
        payload = buf.getvalue()
        times = {}
        backend = conn.info.backend_pid
        for twin in ("keyed", "bare"):
            server = backend_cpu(backend)
            started = time.perf_counter()
            with conn.cursor().copy(f"COPY twin_read_{twin} ({COLUMNS}) FROM STDIN") as cp:
                cp.write(payload)
            conn.commit()
            times[twin] = time.perf_counter() - started
            times[f"{twin} cpu"] = backend_cpu(backend) - server
        for statement in (
            f"DELETE FROM twin_read_keyed WHERE import_id = {report.import_id}",
            "TRUNCATE twin_read_bare",
            f"DELETE FROM meter_read WHERE import_id = {report.import_id}",
            f"DELETE FROM audit_event WHERE action = 'reads.import' AND entity_id = '{report.import_id}'",
            f"DELETE FROM read_import WHERE id = {report.import_id}",
        ):
            conn.execute(statement)
        conn.commit()
    vacuum(url)
    return {
        "portal": portal,
        "twice": twice,
        "keyed": times["keyed"],
        "bare": times["bare"],
        "added": report.added,
        "exceptions": report.exceptions,
        "portal client cpu": portal_cpu["client"],
        "portal server cpu": portal_cpu["server"],
        "keyed cpu": times["keyed cpu"],
        "bare cpu": times["bare cpu"],
    }


def backend_cpu(pid: int) -> float:
    """CPU seconds a PostgreSQL backend has used (user + system), when the server runs on this
    machine (else NaN): on a loaded machine the part of the wall-clock time spent working."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    from portal.adapters.database import make_engine
    from portal.settings import normalise_database_url

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database", required=True, help="a PostgreSQL database to (re)build and use")
    parser.add_argument("--meters", type=int, default=100_000)
    parser.add_argument("--history", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="reuse the district already built")
    args = parser.parse_args()
    url = normalise_database_url(args.database)
    if not url.startswith("postgresql"):
        parser.error("the benchmark runs on PostgreSQL (tests/db/test_read_import.py covers SQLite)")
    if not args.keep:
        started = time.perf_counter()
        build(url, args.meters, args.history)
        print(
            f"district of {args.meters:,} meters x {args.history} reads built in {time.perf_counter() - started:.1f} s"
        )
    content = ami_file(args.meters, args.history)
    engine = make_engine(url)
    rounds = []
    for n in range(1, args.rounds + 1):
        r = one_round(url, engine, content)
        rounds.append(r)
        print(
            f"round {n}: portal {r['portal']:.2f} s ({r['added'] / r['portal']:,.0f} reads/s, {r['exceptions']:,} "
            f"for review; the same file again {r['twice'] * 1000:.0f} ms); raw COPY keyed {r['keyed']:.2f} s, "
            f"bare {r['bare']:.2f} s; ratio {r['keyed'] / r['portal']:.3f} keyed, {r['bare'] / r['portal']:.3f} bare; "
            f"load average {os.getloadavg()[0]:.1f}",
            flush=True,
        )
        print(
            f"    CPU: portal {r['portal client cpu']:.2f} s in Python + {r['portal server cpu']:.2f} s in its "
            f"PostgreSQL backend; raw COPY keyed {r['keyed cpu']:.2f} s, bare {r['bare cpu']:.2f} s in theirs",
            flush=True,
        )
    engine.dispose()
    med = {k: statistics.median(r[k] for r in rounds) for k in ("portal", "keyed", "bare")}
    cpu = {k: statistics.median(r[k] for r in rounds) for k in ("portal client cpu", "portal server cpu", "keyed cpu")}
    reads = rounds[0]["added"]
    print(
        f"median of {len(rounds)}: portal {med['portal']:.2f} s = {reads / med['portal']:,.0f} reads/s; "
        f"raw COPY into the keyed twin {med['keyed']:.2f} s = {reads / med['keyed']:,.0f} rows/s "
        f"(ratio {med['keyed'] / med['portal']:.3f}), into the bare twin {med['bare']:.2f} s = "
        f"{reads / med['bare']:,.0f} rows/s (ratio {med['bare'] / med['portal']:.3f}); target 0.33"
    )
    paired = [r["keyed"] / r["portal"] for r in rounds]
    paired_cpu = [r["keyed cpu"] / (r["portal client cpu"] + r["portal server cpu"]) for r in rounds]
    print(
        f"median of the rounds' own ratios against the keyed twin: {statistics.median(paired):.3f} by the wall "
        f"clock, {statistics.median(paired_cpu):.3f} by CPU; target 0.33"
    )
    portal_cpu = cpu["portal client cpu"] + cpu["portal server cpu"]
    print(
        f"median CPU: portal {cpu['portal client cpu']:.2f} s Python + {cpu['portal server cpu']:.2f} s PostgreSQL = "
        f"{portal_cpu:.2f} s; raw COPY keyed {cpu['keyed cpu']:.2f} s (ratio {cpu['keyed cpu'] / portal_cpu:.3f})"
    )


if __name__ == "__main__":
    main()
