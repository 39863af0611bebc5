"""The audit trail viewer (services/audit_log.py, billing_core/audit.py's search): each filter,
pages, plain words, the CSV export and its formula escaping."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.orm import Session, sessionmaker

from portal.billing_core import audit, users
from portal.billing_core.errors import NotAllowed
from portal.billing_core.models import WorkOrder
from portal.services import audit_log as service

from .factories import district

TZ = ZoneInfo("America/Los_Angeles")
NOW = datetime(2026, 11, 22, 18, 0, tzinfo=UTC)


def _event(session: Session, action: str, at: datetime, **kwargs):  # type: ignore[no-untyped-def]
    event = audit.record(session, action, **kwargs)
    event.occurred_at = at
    return event


@pytest.fixture
def trail(session: Session):  # type: ignore[no-untyped-def]
    """Two accounts, a supervisor, a clerk named Pat, and a few events on each."""
    one, two = district(session, 2)
    boss = users.create_user(session, "boss@x.org", "a long password", "supervisor", now=NOW)
    pat = users.create_user(session, "pat@x.org", "a long password", "csr", display_name="Pat Lee", now=NOW)
    order = WorkOrder(kind="turn_on", account_id=one.id, premise_id=one.premise_id, due_on=date(2026, 11, 23))
    session.add(order)
    session.flush()
    # 2026-11-22 07:30 UTC is 2026-11-21 23:30 in the office (Pacific time).
    _event(
        session,
        "account.paperless",
        datetime(2026, 11, 22, 7, 30, tzinfo=UTC),
        actor=pat,
        entity_type="account",
        entity_id=one.id,
        before={"paperless": False},
        after={"paperless": True},
        remote_addr="192.0.2.9",
    )
    _event(
        session,
        "customer.identity_viewed",
        datetime(2026, 11, 22, 9, 0, tzinfo=UTC),
        actor=pat,
        entity_type="customer",
        entity_id=one.customer_id,
        detail="customer.birth_date",
    )
    _event(
        session,
        "work_order.opened",
        datetime(2026, 11, 22, 10, 0, tzinfo=UTC),
        actor=boss,
        entity_type="work_order",
        entity_id=order.id,
        after={"kind": "turn_on"},
    )
    _event(
        session,
        "account.paperless",
        datetime(2026, 11, 22, 11, 0, tzinfo=UTC),
        actor=boss,
        entity_type="account",
        entity_id=two.id,
        after={"paperless": True},
    )
    _event(
        session,
        "user.role",
        datetime(2026, 11, 20, 12, 0, tzinfo=UTC),
        actor=boss,
        entity_type="user",
        entity_id=pat.id,
        before={"role": "specialist"},
        after={"role": "csr"},
        detail='=HYPERLINK("http://evil.example")',
    )
    _event(session, "user_session.odd", datetime(2026, 11, 20, 12, 0, tzinfo=UTC))
    session.flush()
    return one, two, boss, pat


def _whats(page: service.AuditPage) -> list[tuple[str, str]]:
    return [(r.event.action, r.about) for r in page.rows]


def test_each_filter_finds_its_events(session: Session, trail) -> None:  # type: ignore[no-untyped-def]
    one, two, boss, pat = trail
    search = lambda **v: service.search(session, boss, v, "", TZ)  # noqa: E731
    assert len(search().rows) == 6
    by_account = search(account=one.number)
    assert {r.event.action for r in by_account.rows} == {
        "account.paperless",
        "customer.identity_viewed",
        "work_order.opened",
    }
    assert f"account {one.number}" in [r.about for r in by_account.rows]
    assert {r.who for r in search(person="pat").rows} == {"Pat Lee (pat@x.org)"}
    assert len(search(person="BOSS@x.org").rows) == 3
    assert [r.event.action for r in search(kind="user").rows] == ["user.role"]  # not user_session.odd
    assert len(search(kind="account.paperless").rows) == 2
    assert [r.event.action for r in search(kind="user_").rows] == ["user_session.odd"]
    # The office's calendar: 07:30 UTC on the 22nd was the evening of the 21st.
    assert [r.event.action for r in search(since="2026-11-21", until="2026-11-21").rows] == ["account.paperless"]
    assert len(search(since="2026-11-22").rows) == 3
    assert len(search(account=one.number, person="boss", kind="work_order").rows) == 1

    errors = search(account="99999999", person="nobody", kind="nothing", since="22/11/2026").errors
    assert set(errors) == {"account", "person", "kind", "since"}
    assert "until" in search(since="2026-11-22", until="2026-11-21").errors
    with pytest.raises(NotAllowed):
        service.search(session, pat, {}, "", TZ)


def test_rows_say_who_what_before_after_when_and_from_where(session: Session, trail) -> None:  # type: ignore[no-untyped-def]
    one, _two, boss, pat = trail
    rows = service.search(session, boss, {"account": one.number}, "", TZ).rows
    paperless = next(r for r in rows if r.event.action == "account.paperless")
    assert paperless.what == "Paperless billing changed" and paperless.changes == [("paperless", "false", "true")]
    assert paperless.when == "2026-11-21 23:30:00 PST" and paperless.event.remote_addr == "192.0.2.9"
    assert paperless.link == f"/staff/accounts/{one.number}"
    assert audit.changes({"kind": "a", "x": 1}, {"kind": "a", "x": 2, "y": None}) == [("x", 1, 2)]
    assert audit.changes(None, {"kind": "a"}) == [("kind", None, "a")]
    viewed = next(r for r in rows if r.event.action == "customer.identity_viewed")
    assert viewed.what.startswith("Customer's identity facts viewed") and viewed.who == "Pat Lee (pat@x.org)"
    assert audit.describe("work_order.not_done") == "Work order not done"
    assert audit.describe("meter.received") == "Meter: received" and audit.describe("odd") == "odd"


def test_pages_of_fifty_newest_first(session: Session, trail) -> None:  # type: ignore[no-untyped-def]
    _one, _two, boss, _pat = trail
    start = datetime(2026, 10, 1, tzinfo=UTC)
    for i in range(52):
        _event(session, "bill_run.create", start + timedelta(minutes=i // 2), detail=str(i))  # ties on time too
    session.flush()
    first = service.search(session, boss, {"kind": "bill_run"}, "", TZ)
    assert len(first.rows) == 50 and first.older
    assert [r.event.detail for r in first.rows[:3]] == ["51", "50", "49"]
    rest = service.search(session, boss, {"kind": "bill_run"}, first.older, TZ)
    assert [r.event.detail for r in rest.rows] == ["1", "0"] and rest.older is None


def test_the_csv_export_streams_the_search_with_formulas_disarmed(
    session: Session, sessions: sessionmaker[Session], trail, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    _one, _two, boss, _pat = trail
    session.commit()
    monkeypatch.setattr(service, "EXPORT_BATCH", 2)  # several batches, each its own read
    export = service.export(session, boss, {"person": "boss"}, TZ, sessions, "192.0.2.1")
    session.commit()
    chunks = list(export.lines())
    assert len(chunks) == 3  # the header and two events, two more, the end
    rows = list(csv.reader(io.StringIO("".join(chunks))))
    assert rows[0] == service.CSV_HEADER
    # The export is itself an event of the person exporting, the newest.
    assert [r[2] for r in rows[1:]] == ["audit.exported", "account.paperless", "work_order.opened", "user.role"]
    role = rows[4]
    assert role[0] == "2026-11-20T04:00:00-08:00" and role[1] == "boss@x.org"
    assert role[6] == '{"role": "specialist"}' and role[7] == '{"role": "csr"}'
    assert role[9] == '\'=HYPERLINK("http://evil.example")'  # shown as text, never run
    exported = service.search(session, boss, {"kind": "audit.exported"}, "", TZ).rows
    assert [(r.event.detail, r.event.remote_addr) for r in exported] == [("person=boss", "192.0.2.1")]
