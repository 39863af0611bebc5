"""Lookups by long lists of ids stay within each database's parameter limits."""

from datetime import date
from zoneinfo import ZoneInfo

import pytest
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


def test_the_gates_facts_stay_within_stock_sqlites_variable_limit(session: Session) -> None:
    """The facts statement binds a chunk's ids once in each of its parts: on SQLite a chunk is
    cut so the whole statement stays under the 32,766 variables stock SQLite allows (this
    machine's build allows more, so the test lowers the limit)."""
    import sqlite3

    from portal.billing_core import collection_facts

    if session.get_bind().dialect.name != "sqlite":
        pytest.skip("PostgreSQL binds one array whatever the number of ids")
    raw = session.connection().connection.dbapi_connection
    assert isinstance(raw, sqlite3.Connection)
    before = raw.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 32766)
    try:
        facts = collection_facts.facts_for_many(session, list(range(1, 5001)), date(2026, 11, 22))
    finally:
        raw.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, before)
    assert len(facts) == 5000 and not any(f.pending_disputes or f.on_hold for f in facts.values())
