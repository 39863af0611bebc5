"""Autopay drafts for one due date, on PostgreSQL: how many drafts a second the portal's
own work allows (finding the day's bills, writing each pending payment, recording the
processor's answer), with an instant stand-in for the processor.

    .venv/bin/python bench/autopay.py --database postgresql://postgres@127.0.0.1/bench_autopay \
        [--accounts 20000] [--keep]

Builds a demo district (unless --keep finds one); its autopay accounts were enrolled on
paper, so the bench gives each a saved payment method. It picks the draft date with the
most bills, times the query that finds them, then drafts them all in this process and
prints drafts per second. A real processor answers in a few hundred milliseconds: that,
not the portal, sets the pace, and more worker processes (``portal worker --concurrency``)
share the chunks of 50 bills.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from collections import Counter
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import select, update  # noqa: E402
from sqlalchemy.orm import Session, sessionmaker  # noqa: E402

from portal.adapters.database import make_engine  # noqa: E402
from portal.adapters.gateway import Intent  # noqa: E402
from portal.billing_core import autopay  # noqa: E402
from portal.billing_core.models import AutopayEnrollment, Bill, Payment  # noqa: E402
from portal.demo import DemoExists, build_demo  # noqa: E402
from portal.jobs import dispatch_autopay  # noqa: E402
from portal.settings import Settings, normalise_database_url  # noqa: E402


class InstantProcessor:
    """Answers every off-session charge at once, as Stripe does for a card that works."""

    publishable_key = "pk_bench"

    def __init__(self) -> None:
        self.ids = itertools.count(1)
        self.calls = 0

    def charge(self, *, amount_cents: int, idempotency_key: str, **_: object) -> Intent:
        self.calls += 1
        return Intent(f"pi_bench_{next(self.ids)}", "succeeded", amount_cents=amount_cents)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database", required=True, help="PostgreSQL URL (rebuilt unless --keep)")
    parser.add_argument("--accounts", type=int, default=20_000)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    url = normalise_database_url(args.database)
    engine = make_engine(url)
    settings = Settings(database_url=url)
    started = time.monotonic()
    try:
        build_demo(
            engine, accounts=args.accounts, seed=1, progress=False, today=date(2026, 11, 22), reset=not args.keep
        )
    except DemoExists:
        pass
    print(f"district ready in {time.monotonic() - started:.0f} s")
    with Session(engine) as s, s.begin():
        s.execute(update(AutopayEnrollment).values(payment_method_id="pm_bench", authorized_at=started_at()))
        s.execute(
            Payment.__table__.delete().where(Payment.channel == "autopay", Payment.processor_id.like("pi_bench%"))
        )
        enrolled = s.scalar(select(AutopayEnrollment.id).limit(1)) is not None
        newest: dict[int, tuple[date, date]] = {}
        for account_id, bill_date, due_date in s.execute(
            select(Bill.account_id, Bill.bill_date, Bill.due_date)
            .join(AutopayEnrollment, AutopayEnrollment.account_id == Bill.account_id)
            .where(Bill.status == "posted")
            .order_by(Bill.account_id, Bill.bill_date.desc())
        ):
            newest.setdefault(account_id, (bill_date, due_date))
        latest = [(a, b, d) for a, (b, d) in newest.items()]
    if not enrolled or not latest:
        sys.exit("no autopay accounts in this district")
    # The busiest draft date after the demo's "today" (bills before it were paid in its history).
    dates = Counter(autopay.draft_date(b, d) for _a, b, d in latest if autopay.draft_date(b, d) > date(2026, 11, 22))
    day, expected = dates.most_common(1)[0]
    factory = sessionmaker(engine, expire_on_commit=False)
    t0 = time.monotonic()
    found = len(autopay.due_bills(factory(), day, settings.tz))
    t_find = time.monotonic() - t0
    processor = InstantProcessor()
    t0 = time.monotonic()
    drafted = dispatch_autopay(settings, day, processor, sessions=factory, in_process=True)
    t_draft = time.monotonic() - t0
    with Session(engine) as s:
        written = s.query(Payment).filter(Payment.processor_id.like("pi_bench%")).count()
    print(f"{len(latest)} accounts on autopay; draft date {day} has {expected} bills; the query found {found}")
    print(f"finding them: {t_find * 1000:.0f} ms")
    print(
        f"drafting {drafted} bills ({processor.calls} processor calls, {written} payments written): "
        f"{t_draft:.1f} s = {drafted / t_draft:.0f} drafts/s in one process"
    )


def started_at():  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    return datetime(2020, 1, 1, tzinfo=UTC)  # enrolled long before any bill in the district


if __name__ == "__main__":
    main()
