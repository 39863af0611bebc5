"""Counter payments on PostgreSQL: how many a second the portal posts one by one, as a
cashier would (each its own transaction, through ``services.counter.take_payment``), and,
in the same run, the rate of raw single-row autocommit inserts of the same rows (receipt,
payment, ledger transaction and its entries, with plain psycopg), and the ratio.

    .venv/bin/python bench/payments.py --database postgresql://postgres@127.0.0.1/bench_payments \
        [--accounts 1000] [--payments 2000] [--keep]

Builds a demo district (unless --keep finds one), opens a drawer for a bench cashier and
takes ``--payments`` cash payments across the accounts. The raw inserts then write a copy
of every row those payments wrote (new ids, receipt numbers suffixed ``-raw``), one INSERT
per row in autocommit, which is the floor a single-payment path cannot beat by much. The
target is a ratio of at least 0.5. (The bank/lockbox file figures are in bench/lockbox.py.)
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg  # noqa: E402
from sqlalchemy import select  # noqa: E402
from sqlalchemy.orm import Session, sessionmaker  # noqa: E402

from portal.adapters.database import make_engine, transaction  # noqa: E402
from portal.billing_core import users  # noqa: E402
from portal.billing_core.models import (  # noqa: E402
    Account,
    CashDrawer,
    CounterReceipt,
    LedgerEntry,
    LedgerTransaction,
    Payment,
    User,
)
from portal.demo import DemoExists, build_demo  # noqa: E402
from portal.services import counter  # noqa: E402
from portal.settings import normalise_database_url  # noqa: E402

CASHIER = "bench-cashier@example.org"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database", required=True, help="PostgreSQL URL (rebuilt unless --keep)")
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--payments", type=int, default=2000)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    url = normalise_database_url(args.database)
    if not url.startswith("postgresql"):
        sys.exit("this benchmark is for PostgreSQL")
    engine = make_engine(url)
    started = time.monotonic()
    try:
        build_demo(
            engine, accounts=args.accounts, seed=1, progress=False, today=date(2026, 11, 22), reset=not args.keep
        )
    except DemoExists:
        pass
    print(f"district ready in {time.monotonic() - started:.0f} s")
    factory = sessionmaker(engine, expire_on_commit=False)
    now = datetime(2026, 11, 23, 17, tzinfo=UTC)
    with transaction(factory) as s:
        cashier = s.scalar(select(User).where(User.email == CASHIER)) or users.create_user(
            s, CASHIER, "bench password, long enough", "cashier", now=now
        )
        drawer = s.scalar(select(CashDrawer).where(CashDrawer.cashier_id == cashier.id, CashDrawer.status == "open"))
        if drawer is None:
            drawer = counter.open_drawer(s, cashier, "Bench", "150.00", date(2026, 11, 23), now)
        numbers = list(s.scalars(select(Account.number).order_by(Account.id)))
        cashier_id, drawer_id = cashier.id, drawer.id
    rng = random.Random(7)
    plan = [(rng.choice(numbers), f"{rng.randint(500, 20000) / 100:.2f}") for _ in range(args.payments)]
    receipt_ids: list[int] = []
    t0 = time.monotonic()
    for number, amount in plan:
        with transaction(factory) as s:
            user = s.get(User, cashier_id)
            assert user is not None
            receipt = counter.take_payment(s, user, [counter.Line(number, amount)], counter.Tender("cash"), now)
            receipt_ids.append(receipt.id)
    t_service = time.monotonic() - t0
    service_rate = len(plan) / t_service

    # The same rows, read back, to write again one INSERT at a time.
    with Session(engine) as s:
        receipts = {r.id: r for r in s.scalars(select(CounterReceipt).where(CounterReceipt.id.in_(receipt_ids)))}
        pays = list(s.scalars(select(Payment).where(Payment.receipt_id.in_(receipt_ids)).order_by(Payment.id)))
        txns = {
            t.id: t
            for t in s.scalars(
                select(LedgerTransaction).where(LedgerTransaction.id.in_([p.ledger_transaction_id for p in pays]))
            )
        }
        entries: dict[int, list[LedgerEntry]] = {}
        for e in s.scalars(select(LedgerEntry).where(LedgerEntry.transaction_id.in_(list(txns)))):
            entries.setdefault(e.transaction_id, []).append(e)
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    rows = 0
    with psycopg.connect(dsn, autocommit=True) as conn:
        t0 = time.monotonic()
        for p in pays:
            r = receipts[p.receipt_id]  # type: ignore[index]
            (rid,) = conn.execute(
                "INSERT INTO counter_receipt (number, drawer_id, taken_by_id, taken_at, tender, total_cents,"
                " tendered_cents, change_cents, language) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
                (r.number + "-raw", drawer_id, cashier_id, now, r.tender, r.total_cents, r.tendered_cents, 0, "en"),
            ).fetchone()  # type: ignore[misc]
            t = txns[p.ledger_transaction_id]  # type: ignore[index]
            (tid,) = conn.execute(
                "INSERT INTO ledger_transaction (kind, account_id, effective_on, memo, posted_at, posted_by_id)"
                " VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
                (t.kind, t.account_id, t.effective_on, t.memo, now, cashier_id),
            ).fetchone()  # type: ignore[misc]
            for e in entries[t.id]:
                conn.execute(
                    "INSERT INTO ledger_entry (transaction_id, gl_account, account_id, service_type, amount_cents)"
                    " VALUES (%s, %s, %s, %s, %s)",
                    (tid, e.gl_account, e.account_id, e.service_type, e.amount_cents),
                )
                rows += 1
            conn.execute(
                "INSERT INTO payment (account_id, amount_cents, channel, method, received_on, reference, status,"
                " ledger_transaction_id, created_at, user_id, drawer_id, receipt_id, settled_at)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    p.account_id,
                    p.amount_cents,
                    "counter",
                    "cash",
                    p.received_on,
                    r.number + "-raw",
                    "posted",
                    tid,
                    now,
                    cashier_id,
                    drawer_id,
                    rid,
                    now,
                ),
            )
            rows += 3
        t_raw = time.monotonic() - t0
    raw_rate = len(pays) / t_raw
    print(
        f"{len(plan)} counter payments through the service, one transaction each: "
        f"{t_service:.1f} s = {service_rate:.0f} payments/s"
    )
    print(
        f"the same rows as raw autocommit inserts ({rows} rows, one INSERT each): "
        f"{t_raw:.1f} s = {raw_rate:.0f} payments/s"
    )
    print(f"ratio: {service_rate / raw_rate:.2f} (target >= 0.5)")
    # The copies' payment and receipt rows go again (their ledger rows stay: the ledger is append-only).
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DELETE FROM payment WHERE reference LIKE %s", ("%-raw",))
        conn.execute("DELETE FROM counter_receipt WHERE number LIKE %s", ("%-raw",))


if __name__ == "__main__":
    main()
