"""Lookups by long lists of ids stay within each database's parameter limits."""

from datetime import date
from zoneinfo import ZoneInfo

from sqlalchemy import String, func, select
from sqlalchemy.orm import Session

from portal.billing_core import autopay
from portal.billing_core.bulk import among, chunks
from portal.billing_core.models import Meter

from .factories import district


def test_among_in_chunks_finds_rows_by_any_number_of_values(session: Session) -> None:
    district(session, 3)
    serials = [f"T{i:06d}" for i in range(1, 100_001)]  # three of them exist
    found = 0
    for part in chunks(session, serials):
        found += session.scalar(select(func.count(Meter.id)).where(among(session, Meter.serial, part, String())))
    assert found == 3
    ids = list(range(1, 100_001))
    assert (
        sum(
            session.scalar(select(func.count(Meter.id)).where(among(session, Meter.id, part)))
            for part in chunks(session, ids)
        )
        == 3
    )
    assert list(chunks(session, [])) == []


def test_autopay_notice_dates_for_a_large_due_date(session: Session) -> None:
    """Once one IN list with every bill of the due date: over SQLite's 32,766 and
    PostgreSQL's 65,535 parameters for a large city."""
    bills = [(bill_id, 1, date(2026, 11, 7)) for bill_id in range(1, 70_001)]  # none sent yet
    dates = autopay.notice_dates(session, bills, ZoneInfo("America/Los_Angeles"))
    assert len(dates) == 70_000 and set(dates.values()) == {None}
