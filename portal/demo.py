"""A deterministic synthetic district for trying the portal and for benchmarks.

``build_demo(engine, accounts=N, seed=S, today=D)`` always builds the same
district for the same N, S and D: premises with addresses, customers (some
holding several accounts), meters, water + sewer + sanitation services, cycles
and routes, rate schedules (water from the City of Chino's OWRS file), 24
months of reads, bills and payments, and demo sign-ins.

Bills are rated by ``billing_core.rating`` and posted as balanced ledger
transactions built by ``billing_core.ledger``; only the writing is bulk (COPY
on PostgreSQL, executemany on SQLite), so the demo's data obey the same rules
as the portal's.
"""

from __future__ import annotations

import itertools
import json
import multiprocessing
import os
import random
import sqlite3
import sys
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, insert, select, text
from sqlalchemy.orm import Session

from .billing_core import ledger, owrs, posting, rating, references
from .billing_core.models import Account, Base, User
from .billing_core.numbers import account_number
from .billing_core.status import BillStatus, PaymentStatus
from .billing_core.users import create_user
from .migrate import alembic_config, upgrade
from .settings import Settings

DATA = Path(__file__).resolve().parent / "data"
CHINO_FILE = DATA / "chino-2017-10-01.owrs"
DEMO_PASSWORD = "demo-password-2026"
MONTHS = 24
BATCH_ACCOUNTS = 2000
#: The stored words, looked up once (the history loop writes millions of rows).
BILL_POSTED, PAYMENT_POSTED = BillStatus.POSTED.value, PaymentStatus.POSTED.value
REFERENCE_TABLES = ("billing_cycle", "route", "rate_schedule", "rate_schedule_version")
BULK_TABLES = (
    "customer",
    "premise",
    "meter",
    "account",
    "service",
    "meter_read",
    "ledger_transaction",
    "ledger_entry",
    "bill",
    "bill_line",
    "payment",
)

STREETS = [
    "Oak",
    "Pine",
    "Maple",
    "Cedar",
    "Elm",
    "Walnut",
    "Sycamore",
    "Willow",
    "Magnolia",
    "Juniper",
    "Central",
    "Riverside",
    "Edison",
    "Francis",
    "Philadelphia",
    "Schaefer",
    "Chino",
    "Benson",
    "Ramona",
    "Norton",
    "Monte Vista",
    "Pipeline",
    "Euclid",
    "Grove",
    "Mountain",
    "Yorba",
    "Eucalyptus",
    "Kimball",
    "Pine Creek",
    "Meadow",
    "Sunrise",
    "Vista",
    "Canyon",
    "Ridge",
    "Orchard",
    "Vineyard",
    "Dairy",
    "Mission",
    "Lincoln",
    "Jefferson",
    "Washington",
    "Madison",
    "Monroe",
    "Garfield",
    "Sierra",
    "Shasta",
    "Tahoe",
    "Mariposa",
    "Sequoia",
    "Redwood",
    "Poppy",
    "Lupine",
    "Sage",
    "Yucca",
]
SUFFIXES = ["St", "Ave", "Blvd", "Dr", "Ln", "Ct", "Way", "Pl", "Rd"]
FIRST = [
    "Maria",
    "Jose",
    "James",
    "Mary",
    "Juan",
    "Linda",
    "Robert",
    "Patricia",
    "Michael",
    "Jennifer",
    "David",
    "Elizabeth",
    "Luis",
    "Ana",
    "Carlos",
    "Sofia",
    "Daniel",
    "Susan",
    "Wei",
    "Mei",
    "Minh",
    "Thi",
    "Jessica",
    "Sarah",
    "Kevin",
    "Karen",
    "Jorge",
    "Rosa",
    "Anthony",
    "Lisa",
    "Thomas",
    "Nancy",
    "Miguel",
    "Carmen",
    "Hiroshi",
    "Yuki",
    "Priya",
    "Arjun",
    "Fatima",
    "Omar",
    "Grace",
    "Samuel",
]
LAST = [
    "Garcia",
    "Hernandez",
    "Lopez",
    "Martinez",
    "Smith",
    "Johnson",
    "Nguyen",
    "Kim",
    "Lee",
    "Brown",
    "Rodriguez",
    "Gonzalez",
    "Perez",
    "Sanchez",
    "Ramirez",
    "Torres",
    "Williams",
    "Jones",
    "Davis",
    "Miller",
    "Wilson",
    "Anderson",
    "Tran",
    "Chen",
    "Wang",
    "Patel",
    "Flores",
    "Rivera",
    "Gomez",
    "Diaz",
    "Reyes",
    "Cruz",
    "Morales",
    "Ortiz",
    "Gutierrez",
    "Chavez",
    "Ramos",
    "Castillo",
    "Moore",
    "Taylor",
    "Thomas",
    "Jackson",
    "White",
    "Harris",
    "Martin",
    "Thompson",
    "Young",
    "Allen",
]
BUSINESS = [
    "Market",
    "Dental",
    "Auto Repair",
    "Bakery",
    "Cleaners",
    "Taqueria",
    "Pharmacy",
    "Fitness",
    "Nursery",
    "Pet Hospital",
    "Laundromat",
    "Printing",
    "Tire",
    "Cafe",
    "Daycare",
]
MAKES = [
    ("Badger", "Recordall M25"),
    ("Neptune", "T-10"),
    ("Sensus", "iPERL"),
    ("Mueller", "SSR"),
    ("Master Meter", "Octave"),
]
ZIPS = ["91708", "91710", "91710", "91710"]

# (class, share, water schedule, sewer schedule, sanitation schedule)
CLASSES = [
    ("RESIDENTIAL_SINGLE", 0.88, "W-RES-SF", "S-RES", "T-RES"),
    ("RESIDENTIAL_MULTI", 0.06, "W-RES-MF", "S-RES", "T-RES"),
    ("COMMERCIAL", 0.05, "W-COM", "S-COM", "T-COM"),
    ("IRRIGATION", 0.01, "W-IRR", None, None),
]
SIZE_WEIGHTS = {
    "RESIDENTIAL_SINGLE": [('5/8"', 55), ('3/4"', 33), ('1"', 12)],
    "RESIDENTIAL_MULTI": [('1"', 40), ('1 1/2"', 40), ('2"', 20)],
    "COMMERCIAL": [('3/4"', 20), ('1"', 30), ('1 1/2"', 25), ('2"', 20), ('3"', 5)],
    "IRRIGATION": [('1"', 40), ('1 1/2"', 35), ('2"', 25)],
}
MEAN_USAGE = {"RESIDENTIAL_SINGLE": 12, "RESIDENTIAL_MULTI": 40, "COMMERCIAL": 55, "IRRIGATION": 70}
# Summer use runs high in the Inland Empire; January is the low month.
SEASON = [0.75, 0.75, 0.85, 0.95, 1.10, 1.30, 1.45, 1.50, 1.35, 1.10, 0.90, 0.80]
PROFILES = [("ontime", 60), ("autopay", 15), ("late", 17), ("delinquent", 5), ("partial", 3)]
# The first accounts are made to order, so every district, however small, has
# the customers the printed sign-ins promise: one paying on time, one behind,
# and a landlord holding the next few accounts.
SHOWCASE = {0: "ontime", 1: "delinquent", 2: "landlord"}

SEWER_RES = {"unit": "CCF", "components": [{"type": "fixed", "description": "Sewer service charge", "amount": "38.52"}]}
SEWER_COM = {
    "unit": "CCF",
    "components": [
        {"type": "fixed", "description": "Sewer service charge", "amount": "25.00"},
        {"type": "uniform", "description": "Sewer volume charge", "price": "3.15"},
    ],
}
TRASH_RES = {
    "unit": "each",
    "components": [
        {
            "type": "fixed_by_option",
            "option": "cart_size",
            "description": "Trash, recycling and green waste",
            "label": "{value}-gallon carts",
            "values": {"35": "24.10", "64": "28.65", "96": "36.80"},
        },
    ],
}
TRASH_COM = {
    "unit": "each",
    "components": [
        {"type": "fixed", "description": "Commercial bin, 3 cubic yards, weekly pickup", "amount": "185.00"},
    ],
}


@dataclass
class DemoResult:
    accounts: int = 0
    bills: int = 0
    payments: int = 0
    reads: int = 0
    seconds: float = 0.0
    password: str = DEMO_PASSWORD
    sign_ins: list[tuple[str, str, str]] = field(default_factory=list)


def chino_owrs_definition(customer_class: str) -> dict[str, Any]:
    """The demo's water rates: the class imported from Chino's OWRS file, as the importer stores it."""
    from .billing_core.rate_schedules import _jsonable

    file = owrs.load_path(CHINO_FILE)
    return {
        "format": "owrs",
        "class": customer_class,
        "unit": file.bill_unit,
        "metadata": _jsonable(file.metadata),
        "rate_structure": _jsonable(file.classes[customer_class]),
        "source": CHINO_FILE.name,
    }


def chino_water_definition(customer_class: str) -> dict[str, Any]:
    """A rate version definition built from the City of Chino's OWRS file."""
    block = owrs.load_path(CHINO_FILE).classes[customer_class]  # numbers are Decimal already
    sizes = {k.replace("|", " "): f"{v:.2f}" for k, v in block["service_charge"]["values"].items()}
    return {
        "unit": "CCF",
        "source": "City of Chino OWRS, effective 2017-10-01",
        "components": [
            {"type": "fixed_by_meter_size", "description": "Water service charge", "values": sizes},
            {
                "type": "uniform",
                "description": "Water usage",
                "price": f"{block['flat_rate_commodity']:.2f}",
            },
        ],
    }


class _Bulk:
    """Writes rows fast: COPY on PostgreSQL, executemany on SQLite."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.pg = engine.dialect.name == "postgresql"
        # One connection: the ledger goes in through posting.post_many on it, the rest
        # through its driver connection, all in the same transaction.
        self.conn = engine.connect()
        self.raw = self.conn.connection
        self._dates: dict[date, Any] = {}
        self._instants: dict[date, Any] = {}
        self._moments: dict[date, datetime] = {}
        if not self.pg:
            # The values SQLAlchemy's SQLite types would have stored. The rows
            # are consistent by construction, so foreign keys are checked once
            # at the end (PRAGMA foreign_key_check) rather than row by row.
            sqlite3.register_adapter(Decimal, str)
            cur = self.raw.cursor()
            cur.execute("PRAGMA foreign_keys=OFF")
            cur.execute("PRAGMA synchronous=OFF")
            cur.close()

    def day(self, d: date | None) -> Any:
        """A date as the database takes it (cached: the same days recur a lot)."""
        if d is None or self.pg:
            return d
        out = self._dates.get(d)
        if out is None:
            out = self._dates[d] = d.isoformat()
        return out

    def instant(self, d: date) -> Any:
        """Midnight UTC of a day, as the database takes an aware instant."""
        out = self._instants.get(d)
        if out is None:
            moment = self.moment(d)
            out = self._instants[d] = moment if self.pg else moment.strftime("%Y-%m-%d %H:%M:%S.%f")
        return out

    def moment(self, d: date) -> datetime:
        """Midnight UTC of a day, as an aware datetime (what ``posting.post_many`` takes)."""
        out = self._moments.get(d)
        if out is None:
            out = self._moments[d] = datetime.combine(d, datetime.min.time(), tzinfo=UTC)
        return out

    def write(self, table: str, columns: Sequence[str], rows: list[tuple]) -> None:
        if not rows:
            return
        cur = self.raw.cursor()
        try:
            if self.pg:
                with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
            else:
                marks = ", ".join("?" for _ in columns)
                cur.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)
        finally:
            cur.close()

    def post(self, ledger_rows: list[tuple]) -> None:
        """Write transactions (rows of transaction, account id, id, entry ids) through the
        ledger's one writer, posted at midnight of their day."""
        if not ledger_rows:
            return
        posting.post_many(
            self.conn,
            [t for t, _aid, _tid, _eids in ledger_rows],
            account_ids=[aid for _t, aid, _tid, _eids in ledger_rows],
            posted_at=[self.moment(t.effective_date) for t, _aid, _tid, _eids in ledger_rows],
            ids=[tid for _t, _aid, tid, _eids in ledger_rows],
            entry_ids=[eid for *_x, eids in ledger_rows for eid in eids],
        )

    def commit(self) -> None:
        if self.conn.in_transaction():
            self.conn.commit()
        self.raw.commit()

    def drop_indexes(self, tables: Sequence[str]) -> list[Any]:
        """Secondary indexes (and on PostgreSQL, foreign keys, checked row by row
        by triggers) slow a bulk load more than rebuilding them after it."""
        from sqlalchemy.schema import DropConstraint

        dropped: list[Any] = []
        cur = self.raw.cursor()
        for name in tables:
            table = Base.metadata.tables[name]
            for index in table.indexes:
                cur.execute(f"DROP INDEX IF EXISTS {index.name}")
                dropped.append(index)
            if self.pg:
                for fk in table.foreign_key_constraints:
                    if any(c.name == col for c in fk.columns for col, _ in references.SET_CHECKED.get(name, [])):
                        continue  # a trigger checks it (references.py), not a constraint
                    cur.execute(str(DropConstraint(fk).compile(dialect=self.engine.dialect)))
                    dropped.append(fk)
            if self.pg and name in references.SET_CHECKED:
                cur.execute(f"ALTER TABLE {name} DISABLE TRIGGER check_refs_{name}_insert")
                dropped.append(name)
        cur.close()
        self.raw.commit()
        return dropped

    def create_indexes(self, dropped: list[Any]) -> None:
        """Rebuild what ``drop_indexes`` took away; re-adding a foreign key checks every row."""
        from sqlalchemy import Index
        from sqlalchemy.schema import AddConstraint, CreateIndex

        cur = self.raw.cursor()
        for item in dropped:
            if isinstance(item, str):  # a table whose references a trigger checks: check them all once
                cur.execute(f"ALTER TABLE {item} ENABLE TRIGGER check_refs_{item}_insert")
                for column, parent in references.SET_CHECKED[item]:
                    cur.execute(
                        f"SELECT count(*) FROM {item} c WHERE c.{column} IS NOT NULL "
                        f"AND NOT EXISTS (SELECT 1 FROM {parent} p WHERE p.id = c.{column})"
                    )
                    if cur.fetchone()[0]:
                        raise RuntimeError(f"demo rows of {item}.{column} refer to no {parent}")
                continue
            ddl = CreateIndex(item) if isinstance(item, Index) else AddConstraint(item)
            cur.execute(str(ddl.compile(dialect=self.engine.dialect)))
        cur.close()
        self.raw.commit()

    def check_foreign_keys(self) -> None:
        if self.pg:
            return
        cur = self.raw.cursor()
        problems = cur.execute("PRAGMA foreign_key_check").fetchall()
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()
        if problems:
            raise RuntimeError(f"demo rows break foreign keys: {problems[:5]}")

    def close(self) -> None:
        self.conn.close()


def _weighted(rng: random.Random, pairs: Sequence[tuple[Any, float]]) -> Any:
    total = sum(w for _, w in pairs)
    x = rng.random() * total
    for value, weight in pairs:
        x -= weight
        if x < 0:
            return value
    return pairs[-1][0]


def _add_months(d: date, months: int) -> date:
    y, m = divmod(d.month - 1 + months, 12)
    return date(d.year + y, m + 1, d.day)


class _Progress:
    def __init__(self, total: int, enabled: bool) -> None:
        self.total, self.enabled, self.start = total, enabled, time.monotonic()

    def finish(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")
            sys.stderr.flush()

    def update(self, done: int) -> None:
        if not self.enabled:
            return
        width = 30
        filled = int(width * done / max(self.total, 1))
        elapsed = time.monotonic() - self.start
        sys.stderr.write(
            f"\r[{'#' * filled}{'.' * (width - filled)}] {done:,}/{self.total:,} accounts  {elapsed:6.1f} s"
        )
        sys.stderr.flush()


def _existing_accounts(engine: Engine) -> int:
    with Session(engine) as session:
        return session.scalar(select(func.count(Account.id))) or 0


def reset_database(engine: Engine) -> None:
    """Drop every table of ours (the ledger refuses deletes) and migrate afresh."""
    from alembic import command

    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "base")
    upgrade(engine)


def build_demo(
    engine: Engine,
    accounts: int = 500,
    seed: int = 1,
    progress: bool = True,
    today: str | date | None = None,
    reset: bool = False,
    workers: int | None = None,
    chunk_accounts: int = BATCH_ACCOUNTS,
    cycles: int = 4,
) -> DemoResult:
    """Build the district. On PostgreSQL, ``workers`` processes (default: one per
    core, at most 4) generate and load chunks side by side; the district is the
    same whatever their number, because each chunk has its own random stream and
    its own id ranges."""
    started = time.monotonic()
    if accounts < 1:
        raise ValueError("the demo needs at least one account")
    if not 1 <= cycles <= 4:
        raise ValueError("the demo has 1 to 4 billing cycles")
    upgrade(engine)
    if reset:
        reset_database(engine)
    elif _existing_accounts(engine):
        raise DemoExists(_existing_accounts(engine))
    if today is None:
        today = datetime.now(Settings.from_env().tz).date()
    elif isinstance(today, str):
        today = date.fromisoformat(today)
    if workers is None:
        workers = min(4, os.cpu_count() or 1)
    result = _Builder(engine, accounts, seed, today, progress, chunk_accounts, cycles).run(max(1, workers))
    result.seconds = time.monotonic() - started
    return result


class DemoExists(Exception):
    def __init__(self, count: int) -> None:
        super().__init__(f"the database already holds {count:,} accounts; use --reset to rebuild it")
        self.count = count


# Ids a chunk may use per account, per table: chunk k's ids for a table start
# after (first account index of k) x (its stride), so chunks never collide and
# ids do not depend on how many workers there were. Premises, meters and
# accounts take the account's own index.
ID_STRIDES = {
    "customer": 1,
    "service": 3,
    "meter_read": MONTHS + 1,
    "bill": MONTHS,
    "bill_line": MONTHS * 8,
    "ledger_transaction": MONTHS * 3 + 8,
    "ledger_entry": MONTHS * 16,
    "payment": MONTHS * 2 + 2,
}


@dataclass
class _ChunkOutcome:
    bills: int
    payments: int
    reads: int
    picks: dict[str, list[int]]


class _Builder:
    def __init__(
        self,
        engine: Engine,
        n: int,
        seed: int,
        today: date,
        progress: bool,
        chunk_accounts: int = BATCH_ACCOUNTS,
        cycles: int = 4,
    ) -> None:
        self.engine, self.n, self.seed, self.today = engine, n, seed, today
        self.cycle_count = cycles
        self.chunk_size = chunk_accounts
        self.url = engine.url.render_as_string(hide_password=False)
        self.progress = _Progress(n, progress)
        self.result = DemoResult()
        self.raters: dict[int, rating.Rater] = {}
        self.plan_reference_data()

    def next_id(self, table: str) -> int:
        return next(self.ids[table])

    # -- reference data -------------------------------------------------
    def plan_reference_data(self) -> None:
        self.cycles = [(i, day) for i, day in enumerate((5, 12, 19, 26)[: self.cycle_count], start=1)]
        # Routes of about 400 stops each, spread over the cycles.
        routes_per_cycle = max(1, (self.n // self.cycle_count + 399) // 400)
        self.route_rows = []
        self.routes: dict[int, list[int]] = {}
        for cycle_id, _day in self.cycles:
            for r in range(1, routes_per_cycle + 1):
                rid = len(self.route_rows) + 1
                self.route_rows.append((rid, f"{cycle_id}-{r:03d}", f"Cycle {cycle_id} route {r}", cycle_id))
                self.routes.setdefault(cycle_id, []).append(rid)
        plan = [
            (
                "W-RES-SF",
                "Water, single-family residential",
                "water",
                "RESIDENTIAL_SINGLE",
                chino_owrs_definition("RESIDENTIAL_SINGLE"),
            ),
            (
                "W-RES-MF",
                "Water, multi-family residential",
                "water",
                "RESIDENTIAL_MULTI",
                chino_owrs_definition("RESIDENTIAL_MULTI"),
            ),
            ("W-COM", "Water, commercial", "water", "COMMERCIAL", chino_owrs_definition("COMMERCIAL")),
            ("W-IRR", "Water, irrigation", "water", "IRRIGATION", chino_owrs_definition("IRRIGATION")),
            ("S-RES", "Sewer, residential flat", "sewer", "RESIDENTIAL_SINGLE", SEWER_RES),
            ("S-COM", "Sewer, commercial by volume", "sewer", "COMMERCIAL", SEWER_COM),
            ("T-RES", "Sanitation, residential carts", "sanitation", "RESIDENTIAL_SINGLE", TRASH_RES),
            ("T-COM", "Sanitation, commercial bin", "sanitation", "COMMERCIAL", TRASH_COM),
        ]
        self.schedule_plan = plan
        self.schedule_ids = {code: sid for sid, (code, *_rest) in enumerate(plan, start=1)}
        # Each schedule has one version, with the schedule's own id.
        self.definitions = {
            sid: (sid, service, definition) for sid, (_c, _n, service, _k, definition) in enumerate(plan, start=1)
        }

    def write_reference_data(self, bulk: _Bulk) -> None:
        bulk.write(
            "billing_cycle",
            ["id", "code", "name", "frequency", "read_day"],
            [(i, f"C{i}", f"Cycle {i} (read on the {day}th)", "monthly", day) for i, day in self.cycles],
        )
        bulk.write("route", ["id", "code", "name", "cycle_id"], self.route_rows)
        effective = date(2017, 10, 1)
        bulk.write(
            "rate_schedule",
            ["id", "code", "name", "service_type", "customer_class", "source"],
            [
                (sid, code, name, service, klass, "City of Chino OWRS file" if service == "water" else "Demo district")
                for sid, (code, name, service, klass, _d) in enumerate(self.schedule_plan, start=1)
            ],
        )
        bulk.write(
            "rate_schedule_version",
            ["id", "schedule_id", "effective_on", "definition", "source", "created_at"],
            [
                (
                    sid,
                    sid,
                    bulk.day(effective),
                    json.dumps(d),
                    d.get("source", "Demo district"),
                    bulk.instant(self.today),
                )
                for sid, (*_x, d) in enumerate(self.schedule_plan, start=1)
            ],
        )

    def rate(
        self, schedule_id: int, quantity: int, meter_size: str | None, cart: str | None, period_end: date
    ) -> list[rating.LineDraft]:
        rater = self.raters.get(schedule_id)
        if rater is None:
            version_id, service, definition = self.definitions[schedule_id]
            rater = self.raters[schedule_id] = rating.Rater(service, definition, version_id)
        usage = rating.Usage(Decimal(quantity), meter_size, {"cart_size": cart} if cart else None)
        return list(rater.rate(usage, period_end=period_end))

    # -- the district -------------------------------------------------------
    def run(self, workers: int) -> DemoResult:
        bulk = _Bulk(self.engine)
        try:
            dropped = bulk.drop_indexes(BULK_TABLES)
            self.write_reference_data(bulk)
            bulk.commit()
        finally:
            bulk.close()
        chunks = range((self.n + self.chunk_size - 1) // self.chunk_size)
        picks: dict[str, list[int]] = {"ontime": [], "delinquent": [], "landlord": []}
        done = 0
        for outcome in self.chunks(chunks, workers):
            self.result.bills += outcome.bills
            self.result.payments += outcome.payments
            self.result.reads += outcome.reads
            for key, found in outcome.picks.items():
                picks[key].extend(found)
            done = min(self.n, done + self.chunk_size)
            self.progress.update(done)
        self.progress.finish()
        bulk = _Bulk(self.engine)
        try:
            bulk.create_indexes(dropped)
            bulk.check_foreign_keys()
        finally:
            bulk.close()
        self.fix_sequences()
        if self.engine.dialect.name == "postgresql":
            with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("ANALYZE"))  # fresh statistics, or the planner guesses badly on new tables
        self.sign_ins({k: sorted(v) for k, v in picks.items()})
        self.autopay_enrollments()
        self.result.accounts = self.n
        return self.result

    def chunks(self, chunks: range, workers: int) -> Iterator[_ChunkOutcome]:
        """Chunk outcomes in chunk order: in worker processes on PostgreSQL, else here."""
        if workers == 1 or len(chunks) == 1 or self.engine.dialect.name != "postgresql":
            bulk = _Bulk(self.engine)
            try:
                for c in chunks:
                    yield self.chunk(bulk, c)
            finally:
                bulk.close()
            return
        global _FORKED_BUILDER
        _FORKED_BUILDER = self
        self.engine.dispose()  # no pooled connection may cross the fork
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            yield from pool.map(_chunk_in_worker, chunks)
        _FORKED_BUILDER = None

    def chunk(self, bulk: _Bulk, c: int) -> _ChunkOutcome:
        """Generate and write chunk c's accounts with their whole history, then commit."""
        offset = c * self.chunk_size
        size = min(self.chunk_size, self.n - offset)
        self.rng = random.Random(f"demo:{self.seed}:{c}")
        self.ids = {t: itertools.count(offset * stride + 1) for t, stride in ID_STRIDES.items()}
        self.D, self.T = bulk.day, bulk.instant
        self.customers_left = 0
        self.current_landlord: int | None = None
        self.picks = {"ontime": [], "delinquent": [], "landlord": []}
        counts = self.batch(bulk, offset, size)
        for table, stride in ID_STRIDES.items():
            if next(self.ids[table]) > (offset + size) * stride + 1:
                raise RuntimeError(f"demo chunk {c} used more {table} ids than its range holds")
        bulk.commit()
        return _ChunkOutcome(*counts, picks=self.picks)

    def fix_sequences(self) -> None:
        if self.engine.dialect.name != "postgresql":
            return
        with self.engine.begin() as conn:
            for table in REFERENCE_TABLES + BULK_TABLES:
                conn.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false)"
                    )
                )

    def batch(self, bulk: _Bulk, offset: int, size: int) -> tuple[int, int, int]:
        rng = self.rng
        rows: dict[str, list[tuple]] = {
            t: []
            for t in (
                "customer",
                "premise",
                "meter",
                "account",
                "service",
                "meter_read",
                "ledger",
                "bill",
                "bill_line",
                "payment",
            )
        }
        for i in range(offset, offset + size):
            klass_row = _weighted(rng, [(c, c[1]) for c in CLASSES])
            if i < len(SHOWCASE):
                klass_row = CLASSES[0]  # the demo sign-ins' accounts are single-family homes
            klass, _share, w_code, s_code, t_code = klass_row
            cycle_id, read_day = self.cycles[i % self.cycle_count]
            route_list = self.routes[cycle_id]
            route_id = route_list[(i // self.cycle_count) % len(route_list)]
            # Premise.
            pid = mid = aid = i + 1
            street = f"{rng.randint(100, 16999)} {rng.choice(STREETS)} {rng.choice(SUFFIXES)}"
            unit = f"Apt {rng.randint(1, 24)}" if klass == "RESIDENTIAL_MULTI" and rng.random() < 0.5 else None
            zip_code = rng.choice(ZIPS)
            rows["premise"].append(
                (
                    pid,
                    street,
                    unit,
                    "Chino",
                    "CA",
                    zip_code,
                    f"{rng.randint(1010, 1060)}-{rng.randint(100, 699)}-{rng.randint(1, 99):02d}",
                    rng.random() < 0.93,
                    rng.choice(["Zone 1", "Zone 2", "Zone 3"]),
                    rng.randint(2, 24) if klass == "RESIDENTIAL_MULTI" else 1,
                    route_id,
                    i // 4 + 1,
                )
            )
            # Customer: landlords and property managers hold several accounts.
            if self.customers_left > 0 and self.current_landlord is not None:
                cid = self.current_landlord
                self.customers_left -= 1
                if klass == "IRRIGATION":
                    klass, w_code, s_code, t_code = CLASSES[0][0], CLASSES[0][2], CLASSES[0][3], CLASSES[0][4]
            else:
                cid = self.next_id("customer")
                if klass == "COMMERCIAL":
                    name = f"{rng.choice(LAST)} {rng.choice(BUSINESS)}"
                else:
                    name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
                email = f"customer{cid}@example.net" if rng.random() < 0.7 else None
                phone = f"(909) 555-{rng.randint(0, 9999):04d}"
                mailing = None
                if (rng.random() < 0.04 and klass != "COMMERCIAL") or SHOWCASE.get(i) == "landlord":
                    mailing = (f"PO Box {rng.randint(100, 9999)}", "Ontario", "CA", "91761")
                    self.current_landlord = cid
                    self.customers_left = rng.randint(1, 4)
                    self.picks["landlord"].append(cid)
                rows["customer"].append(
                    (
                        cid,
                        name,
                        email,
                        phone,
                        *(mailing or (None, None, None, None)),
                        "es" if rng.random() < 0.25 else "en",
                        self.T(self.today),
                    )
                )
            # Meter.
            size = _weighted(rng, SIZE_WEIGHTS[klass])
            make, model = rng.choice(MAKES)
            opened = date(self.today.year - rng.randint(3, 20), rng.randint(1, 12), rng.randint(1, 28))
            rows["meter"].append(
                (
                    mid,
                    f"M{1000000 + mid}",
                    size,
                    make,
                    model,
                    6,
                    Decimal(1),
                    "CCF",
                    "installed",
                    pid,
                    self.D(opened),
                    None,
                    rng.choice(
                        [
                            "Front yard, left of driveway",
                            "Sidewalk box, right side",
                            "Parkway near curb",
                            "Behind side gate (dog)",
                            None,
                        ]
                    ),
                )
            )
            # Account and services.
            number = account_number(aid)
            profile = _weighted(rng, PROFILES)
            if SHOWCASE.get(i) in ("ontime", "delinquent"):
                profile = SHOWCASE[i]
            autopay = profile == "autopay"
            paperless = autopay or rng.random() < 0.2
            rows["account"].append(
                (aid, number, cid, pid, klass, cycle_id, "active", self.D(opened), None, autopay, paperless)
            )
            services = []
            water_sched = self.schedule_ids[w_code]
            services.append((self.next_id("service"), aid, "water", water_sched, mid, "{}", self.D(opened), None))
            cart = None
            if s_code:
                services.append(
                    (self.next_id("service"), aid, "sewer", self.schedule_ids[s_code], None, "{}", self.D(opened), None)
                )
            if t_code:
                if t_code == "T-RES":
                    cart = _weighted(rng, [("35", 30), ("64", 50), ("96", 20)])
                    services.append(
                        (
                            self.next_id("service"),
                            aid,
                            "sanitation",
                            self.schedule_ids[t_code],
                            None,
                            json.dumps({"cart_size": cart}),
                            self.D(opened),
                            None,
                        )
                    )
                else:
                    services.append(
                        (
                            self.next_id("service"),
                            aid,
                            "sanitation",
                            self.schedule_ids[t_code],
                            None,
                            "{}",
                            self.D(opened),
                            None,
                        )
                    )
            rows["service"].extend(services)
            if profile in ("ontime", "delinquent") and klass == "RESIDENTIAL_SINGLE":
                self.picks[profile].append(aid)
            self.history(rows, aid, number, mid, size, klass, read_day, profile, [(s[2], s[3]) for s in services], cart)

        bulk.write(
            "customer",
            [
                "id",
                "name",
                "email",
                "phone",
                "mailing_line1",
                "mailing_city",
                "mailing_state",
                "mailing_zip",
                "preferred_language",
                "created_at",
            ],
            rows["customer"],
        )
        bulk.write(
            "premise",
            [
                "id",
                "address_line1",
                "address_line2",
                "city",
                "state",
                "zip",
                "parcel_number",
                "inside_city_limits",
                "pressure_zone",
                "dwelling_units",
                "route_id",
                "walk_sequence",
            ],
            rows["premise"],
        )
        bulk.write(
            "meter",
            [
                "id",
                "serial",
                "size",
                "make",
                "model",
                "dials",
                "multiplier",
                "unit",
                "status",
                "premise_id",
                "installed_on",
                "removed_on",
                "location_notes",
            ],
            rows["meter"],
        )
        bulk.write(
            "account",
            [
                "id",
                "number",
                "customer_id",
                "premise_id",
                "customer_class",
                "cycle_id",
                "status",
                "opened_on",
                "closed_on",
                "autopay",
                "paperless",
            ],
            rows["account"],
        )
        bulk.write(
            "service",
            ["id", "account_id", "service_type", "rate_schedule_id", "meter_id", "options", "started_on", "ended_on"],
            rows["service"],
        )
        bulk.write(
            "meter_read", ["id", "meter_id", "read_on", "value", "source", "status", "created_at"], rows["meter_read"]
        )
        bulk.post(rows["ledger"])
        bulk.write(
            "bill",
            [
                "id",
                "number",
                "account_id",
                "period_start",
                "period_end",
                "bill_date",
                "due_date",
                "previous_balance_cents",
                "payments_since_cents",
                "current_charges_cents",
                "total_due_cents",
                "status",
                "estimated",
                "ledger_transaction_id",
            ],
            rows["bill"],
        )
        bulk.write(
            "bill_line",
            [
                "id",
                "bill_id",
                "sequence",
                "service_type",
                "description",
                "quantity",
                "unit",
                "unit_price",
                "amount_cents",
                "rate_version_id",
            ],
            rows["bill_line"],
        )
        bulk.write(
            "payment",
            [
                "id",
                "account_id",
                "amount_cents",
                "channel",
                "method",
                "received_on",
                "reference",
                "status",
                "ledger_transaction_id",
                "created_at",
            ],
            rows["payment"],
        )
        return len(rows["bill"]), len(rows["payment"]), len(rows["meter_read"])

    def history(
        self,
        rows: dict[str, list[tuple]],
        aid: int,
        number: str,
        mid: int,
        size: str,
        klass: str,
        read_day: int,
        profile: str,
        services: list[tuple[str, int]],
        cart: str | None,
    ) -> None:
        """24 months of reads, bills and payments for one account, in date order."""
        rng = self.rng
        last_read = date(self.today.year, self.today.month, read_day)
        if last_read + timedelta(days=2) > self.today:
            last_read = _add_months(last_read, -1)
        read_dates = [_add_months(last_read, -k) for k in range(MONTHS, -1, -1)]
        base = MEAN_USAGE[klass] * rng.lognormvariate(0, 0.35)
        value = rng.randint(0, 60000)
        D, T = self.D, self.T
        now = T(self.today)
        rows["meter_read"].append(
            (self.next_id("meter_read"), mid, D(read_dates[0]), Decimal(value), "amr", "valid", now)
        )
        stops_paying = MONTHS - rng.randint(3, 5) if profile == "delinquent" else MONTHS + 1
        open_by_service: dict[str, int] = {}
        balance = 0
        last_bill_balance = 0
        # Payments fall between bills; keep them queued and post each in date order.
        pending: list[tuple[date, int, str, str]] = []

        def post_payments_before(day: date) -> None:
            nonlocal balance
            pending.sort()
            while pending and pending[0][0] < day:
                when, amount, channel, method = pending.pop(0)
                if when > self.today:
                    pending.clear()
                    return
                txn = ledger.payment_transaction(
                    aid, when, amount, channel, open_by_service, memo=f"Payment, {channel} {method}"
                )
                tid = self.write_txn(rows, txn, aid)
                for e in txn.entries:
                    if e.account_id is not None:
                        key = e.service or "credit"
                        open_by_service[key] = open_by_service.get(key, 0) + e.amount_cents
                balance -= amount
                pay_id = self.next_id("payment")
                rows["payment"].append(
                    (pay_id, aid, amount, channel, method, D(when), f"P{pay_id:09d}", PAYMENT_POSTED, tid, T(when))
                )

        for k in range(1, MONTHS + 1):
            start, end = read_dates[k - 1], read_dates[k]
            usage = max(0, int(round(base * SEASON[end.month - 1] * rng.uniform(0.8, 1.2))))
            estimated = rng.random() < 0.01
            value = (value + usage) % 1000000
            rows["meter_read"].append(
                (
                    self.next_id("meter_read"),
                    mid,
                    D(end),
                    Decimal(value),
                    "estimate" if estimated else "amr",
                    "estimated" if estimated else "valid",
                    now,
                )
            )
            bill_date = end + timedelta(days=2)
            due = bill_date + timedelta(days=21)
            post_payments_before(bill_date)
            payments_since = last_bill_balance - balance
            lines: list[rating.LineDraft] = []
            for service, schedule_id in services:
                qty = usage if service in ("water", "sewer") else 0
                lines.extend(
                    self.rate(
                        schedule_id,
                        qty,
                        size if service == "water" else None,
                        cart if service == "sanitation" else None,
                        end,
                    )
                )
            by_service: dict[str, int] = {}
            for line in lines:
                by_service[line.service] = by_service.get(line.service, 0) + line.amount_cents
            current = sum(by_service.values())
            bill_id = self.next_id("bill")
            bill_number = f"{bill_id:09d}"
            txn = ledger.bill_transaction(
                aid,
                bill_date,
                due,
                by_service,
                memo=f"Bill {bill_number} for {start:%m/%d/%Y} to {end:%m/%d/%Y}",
            )
            tid = self.write_txn(rows, txn, aid)
            for service, cents in by_service.items():
                open_by_service[service] = open_by_service.get(service, 0) + cents
            previous = last_bill_balance
            balance += current
            rows["bill"].append(
                (
                    bill_id,
                    bill_number,
                    aid,
                    D(start),
                    D(end),
                    D(bill_date),
                    D(due),
                    previous,
                    payments_since,
                    current,
                    balance,
                    BILL_POSTED,
                    estimated,
                    tid,
                )
            )
            for seq, line in enumerate(lines, start=1):
                rows["bill_line"].append(
                    (
                        self.next_id("bill_line"),
                        bill_id,
                        seq,
                        line.service,
                        line.description,
                        line.quantity,
                        line.unit,
                        line.unit_price,
                        line.amount_cents,
                        line.rate_version_id,
                    )
                )
            last_bill_balance = balance
            # How this customer pays this bill.
            if k >= stops_paying:
                continue
            if profile == "autopay":
                pending.append((due, current, "autopay", rng.choice(["card", "bank"])))
            elif profile == "ontime":
                pending.append(
                    (
                        bill_date + timedelta(days=rng.randint(3, 20)),
                        current,
                        _weighted(rng, [("online", 55), ("mail", 25), ("counter", 12), ("phone", 8)]),
                        rng.choice(["card", "check", "bank"]),
                    )
                )
            elif profile == "late":
                pending.append(
                    (
                        due + timedelta(days=rng.randint(3, 40)),
                        current,
                        _weighted(rng, [("online", 40), ("mail", 30), ("counter", 30)]),
                        rng.choice(["card", "check", "cash"]),
                    )
                )
            elif profile == "partial":
                half = max(100, current // 2)
                pending.append((due + timedelta(days=rng.randint(0, 10)), half, "counter", "cash"))
                if rng.random() < 0.7:
                    pending.append((due + timedelta(days=rng.randint(20, 35)), current - half, "counter", "cash"))
            else:  # delinquent, while still paying
                pending.append((due + timedelta(days=rng.randint(0, 25)), current, "mail", "check"))
        post_payments_before(self.today + timedelta(days=1))

    def write_txn(self, rows: dict[str, list[tuple]], txn: ledger.Transaction, aid: int) -> int:
        """Queue a transaction for ``posting.post_many`` (which checks it balances) with ids
        from this chunk's ranges; returns its id."""
        tid = self.next_id("ledger_transaction")
        rows["ledger"].append((txn, aid, tid, [self.next_id("ledger_entry") for _e in txn.entries]))
        return tid

    # -- sign-ins -------------------------------------------------------------
    def autopay_enrollments(self) -> None:
        """Accounts on autopay signed up on paper before the portal: their authorization is
        on file at the office, and no card or bank account is saved with the processor."""
        from .billing_core.models import AutopayEnrollment

        with Session(self.engine) as session, session.begin():
            rows = session.execute(select(Account.id, Account.opened_on).where(Account.autopay.is_(True))).all()
            if rows:
                session.execute(
                    insert(AutopayEnrollment),
                    [
                        {
                            "account_id": account_id,
                            "status": "active",
                            "method_kind": "us_bank_account",
                            "method_label": "Bank account (paper form)",
                            "authorization_version": "paper",
                            "authorization_text": "Signed paper autopay form, kept at the office.",
                            "authorization_language": "en",
                            "authorized_at": datetime(opened_on.year, opened_on.month, opened_on.day, 12, tzinfo=UTC),
                        }
                        for account_id, opened_on in rows
                    ],
                )

    def sign_ins(self, picks: dict[str, list[int]]) -> None:
        from sqlalchemy.orm import sessionmaker

        from .billing_core.models import UserAccountLink

        factory = sessionmaker(self.engine)
        with factory() as session, session.begin():
            for role in ("admin", "supervisor", "specialist", "csr", "cashier", "field"):
                email = f"{role}@demo.example"
                create_user(session, email, DEMO_PASSWORD, role, display_name=f"Demo {role}")
                self.result.sign_ins.append((role, email, "staff"))

            def number_of(aid: int) -> str:
                return session.scalar(select(Account.number).where(Account.id == aid))

            first = picks["ontime"][0] if picks["ontime"] else 1
            create_user(session, "resident@demo.example", DEMO_PASSWORD, "customer", number_of(first))
            self.result.sign_ins.append(
                ("customer", "resident@demo.example", f"account {number_of(first)}, pays on time")
            )
            if picks["delinquent"]:
                late = picks["delinquent"][0]
                create_user(session, "pastdue@demo.example", DEMO_PASSWORD, "customer", number_of(late))
                self.result.sign_ins.append(
                    ("customer", "pastdue@demo.example", f"account {number_of(late)}, past due")
                )
            if picks["landlord"]:
                cid = picks["landlord"][0]
                ids = session.scalars(select(Account.id).where(Account.customer_id == cid).order_by(Account.id)).all()
                if len(ids) > 1:
                    user = create_user(session, "landlord@demo.example", DEMO_PASSWORD, "customer", number_of(ids[0]))
                    for other in ids[1:]:
                        session.add(UserAccountLink(user_id=user.id, account_id=other))
                    self.result.sign_ins.append(("customer", "landlord@demo.example", f"{len(ids)} accounts"))


_FORKED_BUILDER: _Builder | None = None


def _chunk_in_worker(c: int) -> _ChunkOutcome:
    """Runs in a forked worker process: its own engine, its own connection."""
    from sqlalchemy.pool import NullPool

    from .adapters.database import make_engine

    builder = _FORKED_BUILDER
    assert builder is not None
    engine = make_engine(builder.url, poolclass=NullPool)
    bulk = _Bulk(engine)
    try:
        return builder.chunk(bulk, c)
    finally:
        bulk.close()
        engine.dispose()


def sign_ins(engine: Engine) -> list[tuple[str, str]]:
    with Session(engine) as session:
        return [(u.role, u.email) for u in session.scalars(select(User).order_by(User.id))]
