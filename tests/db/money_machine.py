"""The money state machine: random sequences of every money operation, with the ledger
checked after every step (issue 14, Quality).

``MoneyMachine`` is the base. It gives each sequence a small district in a database
transaction that is rolled back at the end (so thousands of sequences share one database),
staff of every role, and a clock; its own rules post bills, take online payments and move
the clock. Each area adds its operations as a mixin class named ``...Rules`` in a module of
``tests/db/money_rules/`` (``test_money_machine.py`` finds them all), calling its SERVICE
functions as the office would. What a mixin may use:

- ``self.sessions``: a ``sessionmaker`` for the services (``adapters.database.transaction``
  works with it; a commit there is a savepoint of the sequence's transaction);
- ``self.accounts``: the account ids (``self.numbers[id]`` is the account number);
- ``self.staff``: ``User`` rows by role: ``csr``, ``specialist``, ``cashier``, ``cashier2``,
  ``supervisor``, ``supervisor2``, ``admin``;
- ``self.today`` (a ``date``) and ``self.now`` (an aware ``datetime``), moved by ``next_days``;
- ``self.expect_refused(fn)``: run ``fn`` and accept the errors an office would see for a
  refused action (``InvalidInput``, ``FieldErrors``, ``NotAllowed``, ``BillingError``).
  Inside, the failed attempt's savepoint is rolled back, so nothing half-written stays.

Mixins add their own invariants for what they own (drawer totals, no refund above the
credit, ...), decorated ``@after_writes`` (not ``@invariant()``). After every step that wrote
anything the base checks the whole ledger (``ledger_check.run``) and that no account's balance
holds a liability (deposits held are never owed).

What makes a sequence cheap (issue 14: thousands of them in CI's time): one connection for the
whole test, each sequence a transaction on it that is rolled back; and an invariant runs only
when the database changed since it last passed. Every statement the sequence sends is
counted (a cursor-execute listener, and COPY on PostgreSQL through the driver's cursor);
anything but a read (SELECT, SAVEPOINT, RELEASE, ROLLBACK) counts as a write, so a step that
was refused, found nothing to do or only moved the clock leaves the database as the last
check saw it, and the check would read the same rows again. The seed is checked once.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any, ClassVar

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from sqlalchemy import Connection, Engine, event, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from portal.adapters.database import transaction
from portal.billing_core import ledger, ledger_check, payments, posting, users
from portal.billing_core.errors import BillingError, FieldErrors, InvalidInput, NotAllowed
from portal.billing_core.models import LedgerEntry, Payment, User

from .factories import district

START = date(2026, 3, 2)
ROLES = {
    "csr": "csr",
    "specialist": "specialist",
    "cashier": "cashier",
    "cashier2": "cashier",
    "supervisor": "supervisor",
    "supervisor2": "supervisor",
    "admin": "admin",
}
REFUSED = (InvalidInput, FieldErrors, NotAllowed, BillingError)

cents = st.integers(min_value=1, max_value=40_000)

#: ``PORTAL_MONEY_MACHINE_PROGRESS=N``: print a line every N sequences (for long runs, with ``-s``).
PROGRESS = int(os.environ.get("PORTAL_MONEY_MACHINE_PROGRESS", "0"))

#: Statements that change nothing an invariant reads.
READS = ("SELECT", "SAVEPOINT", "RELEASE", "ROLLBACK", "BEGIN", "SHOW")


def after_writes(check: Callable[[Any], None]) -> Any:
    """``@invariant()`` that runs only when the sequence wrote something since it last passed
    (the database is then what it was when it passed, so it holds). Hypothesis still calls it
    after every step; the precondition is the test."""
    name = check.__qualname__

    @functools.wraps(check)
    def checked(self: MoneyMachine) -> None:
        check(self)
        self.verified[name] = self.writes[0]

    return precondition(lambda self: self.verified.get(name, 0) != self.writes[0])(invariant()(checked))


def _count_writes(connection: Connection, writes: list[int]) -> None:
    @event.listens_for(connection, "before_cursor_execute")
    def _note(_conn, _cursor, statement, _params, _context, _many) -> None:  # type: ignore[no-untyped-def]
        if not statement.lstrip()[:10].upper().startswith(READS):
            writes[0] += 1

    if connection.dialect.name == "postgresql":
        import psycopg

        raw = connection.connection.driver_connection
        assert isinstance(raw, psycopg.Connection)
        base = raw.cursor_factory

        class Counting(base):  # type: ignore[valid-type, misc]
            def copy(self, *args: Any, **kwargs: Any) -> Any:  # bulk.insert_rows: COPY past SQLAlchemy
                writes[0] += 1
                return super().copy(*args, **kwargs)

        raw.cursor_factory = Counting


class MoneyMachine(RuleBasedStateMachine):
    #: Set by ``seed`` (one database per test; each sequence is rolled back).
    engine: ClassVar[Engine]

    #: The district and staff, written once per database by ``seed`` and shared by every sequence.
    seeded: ClassVar[dict[str, Any]]

    #: The one connection every sequence runs on (its transaction rolled back at teardown).
    conn: ClassVar[Connection]

    #: Statements that may have written, counted on ``conn`` (``_count_writes``).
    writes: ClassVar[list[int]]

    @classmethod
    def seed(cls, engine: Engine) -> None:
        """Write the district and staff once (committed); each sequence then runs in a
        transaction of its own that is rolled back, so it starts from exactly this."""
        cls.engine = engine
        factory = sessionmaker(engine, expire_on_commit=False)
        now = datetime(START.year, START.month, START.day, 17, tzinfo=UTC)
        with transaction(factory) as session:
            accounts = district(session, 3)
            staff = {
                key: users.create_user(session, f"{key}@machine.example", "machine password 1", role, now=now)
                for key, role in ROLES.items()
            }
        cls.seeded = {
            "accounts": [a.id for a in accounts],
            "numbers": {a.id: a.number for a in accounts},
            "staff": {key: user.id for key, user in staff.items()},
        }
        with factory() as session:  # the seed itself, once: each sequence checks only what it wrote
            assert ledger_check.run(session) == []
        cls.conn = engine.connect()
        cls.writes = [0]
        _count_writes(cls.conn, cls.writes)
        cls.counted = {"sequences": 0, "checks": 0, "failed": 0}

    #: Sequences and steps run (``checks`` counts the rounds of invariants: one after each
    #: sequence's start and one after each step), for the test's report.
    counted: ClassVar[dict[str, int]]

    @classmethod
    def finish(cls) -> None:
        cls.conn.close()

    def check_invariants(self, *args: Any, **kwargs: Any) -> None:
        self.counted["checks"] += 1
        try:
            super().check_invariants(*args, **kwargs)  # type: ignore[misc]
        except BaseException:
            self.counted["failed"] += 1  # Hypothesis then shrinks it and reports it at the end
            raise

    def __init__(self) -> None:
        super().__init__()
        self.outer = self.conn.begin()
        self.counted["sequences"] += 1
        if PROGRESS and self.counted["sequences"] % PROGRESS == 0:  # a long run says how far it got
            done, failed = self.counted["sequences"], self.counted["failed"]
            print(
                f"money machine: {done} sequences started, {failed} invariant failures so far",
                file=sys.stderr,
                flush=True,
            )
        if self.engine.dialect.name == "sqlite":
            # pysqlite begins a transaction only before a write: make the sequence's
            # transaction real now, so the services' savepoints nest inside it.
            self.conn.execute(text("DELETE FROM auth_failure WHERE 1 = 0"))
        self.sessions: sessionmaker[Session] = sessionmaker(
            bind=self.conn, join_transaction_mode="create_savepoint", expire_on_commit=False
        )
        self.today = START
        self.now = datetime(START.year, START.month, START.day, 17, tzinfo=UTC)
        self.accounts: list[int] = list(self.seeded["accounts"])
        self.numbers: dict[int, str] = dict(self.seeded["numbers"])
        with self.sessions() as session:
            ids = self.seeded["staff"]
            by_id = {u.id: u for u in session.scalars(select(User).where(User.id.in_(ids.values())))}
            self.staff: dict[str, User] = {key: by_id[uid] for key, uid in ids.items()}
        self._keys = 0
        #: The write count each invariant last passed at (``after_writes``); the seed passed.
        self.verified: dict[str, int] = {}
        self.writes[0] = 0

    def teardown(self) -> None:
        self.outer.rollback()

    # --- helpers for mixins ---------------------------------------------------------------

    def key(self, prefix: str) -> str:
        """A fresh idempotency key or reference for this sequence."""
        self._keys += 1
        return f"{prefix}-{self._keys}"

    def expect_refused(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn``; a refusal the office would see is fine (and wrote nothing)."""
        try:
            return fn()
        except REFUSED:
            return None

    # --- the base's own operations --------------------------------------------------------

    @rule(account=st.integers(0, 2), water=cents, sewer=st.integers(0, 20_000))
    def post_bill(self, account: int, water: int, sewer: int) -> None:
        acct = self.accounts[account]
        with transaction(self.sessions) as session:
            posting.post(
                session,
                ledger.bill_transaction(
                    acct, self.today, self.today + timedelta(days=21), {"water": water, "sewer": sewer}
                ),
                acct,
                posted_at=self.now,
            )

    @rule(account=st.integers(0, 2), amount=cents)
    def pay_online(self, account: int, amount: int) -> None:
        acct = self.accounts[account]
        with transaction(self.sessions) as session:
            payment = Payment(
                account_id=acct,
                amount_cents=amount,
                channel="online",
                method="card",
                received_on=self.today,
                status="pending",
                idempotency_key=self.key("online"),
                processor_id=self.key("pi"),
            )
            session.add(payment)
            session.flush()
            payments.apply(session, payment, "succeeded", self.today, self.now)

    @rule(days=st.integers(1, 45))
    def next_days(self, days: int) -> None:
        self.today += timedelta(days=days)
        self.now += timedelta(days=days)

    # --- what must hold after every step --------------------------------------------------

    @after_writes
    def the_ledger_is_sound(self) -> None:
        with self.sessions() as session:
            problems = ledger_check.run(session)
        assert problems == [], problems

    @after_writes
    def balances_hold_only_receivables(self) -> None:
        with self.sessions() as session:
            wrong = session.scalar(
                select(func.count(LedgerEntry.id)).where(
                    LedgerEntry.account_id.is_not(None), ~LedgerEntry.gl_account.like(f"{ledger.AR}:%")
                )
            )
        assert wrong == 0
