"""The collection reports on SQLite and PostgreSQL: the aging (its sums equal the balances,
its buckets, its per-service split against ``aging.age``), the call list's filters, and the
annual shutoff report's counts by year and residential/other; their CSV and XLSX files."""

from __future__ import annotations

import csv
import io
import random
import re
import zipfile
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from portal.billing_core import aging, ledger, payments, posting
from portal.billing_core import collection_reports as reports
from portal.billing_core.errors import FieldErrors, NotAllowed
from portal.billing_core.models import (
    Account,
    BillingCycle,
    CollectionHold,
    Customer,
    Dispute,
    LedgerEntry,
    LedgerTransaction,
    PaymentPlan,
    Premise,
    Route,
    WorkOrder,
)
from portal.services import collection_reports as service

from .adjust_helpers import staff
from .factories import district

NOW = datetime(2026, 11, 20, 17, tzinfo=UTC)
AS_OF = date(2026, 11, 20)


def bill(session: Session, account: Account, bill_on: date, due_on: date, **by_service: int) -> None:
    posting.post(session, ledger.bill_transaction(account.id, bill_on, due_on, by_service), account.id, posted_at=NOW)


def pay(session: Session, account: Account, on: date, cents: int) -> None:
    payments.post_received(session, [payments.Received(account.id, cents, "mail", "test")], on, NOW)


def service_postings(session: Session, account_id: int, as_of: date) -> dict[str, list[aging.Posting]]:
    """The reference: each service's own postings (unapplied credit as ``credit``)."""
    out: dict[str, list[aging.Posting]] = defaultdict(list)
    rows = session.execute(
        select(
            LedgerEntry.service_type, LedgerTransaction.effective_on, LedgerTransaction.due_on, LedgerEntry.amount_cents
        )
        .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
        .where(LedgerEntry.account_id == account_id, LedgerTransaction.effective_on <= as_of)
        .order_by(LedgerTransaction.effective_on, LedgerTransaction.id)
    )
    for service_type, eff, due, cents in rows:
        out[service_type or "credit"].append(aging.Posting(eff, cents, due))
    return out


def random_history(session: Session, n: int, seed: int) -> list[Account]:
    rng = random.Random(seed)
    accounts = district(session, n)
    for a in accounts:
        day = date(2026, 1, 5)
        while day < AS_OF:
            bill(session, a, day, day + timedelta(days=21), water=rng.randint(1000, 9000), sewer=rng.randint(0, 4000))
            if rng.random() < 0.6:
                pay(session, a, day + timedelta(days=rng.randint(5, 40)), rng.randint(500, 15000))
            if rng.random() < 0.1:
                posting.post(
                    session,
                    ledger.adjustment_transaction(a.id, day + timedelta(days=3), "sewer", -rng.randint(100, 3000), "c"),
                    a.id,
                    posted_at=NOW,
                )
            day += timedelta(days=rng.choice((28, 31, 35)))
    session.flush()
    return accounts


def test_aging_sums_equal_balances_and_each_service_ages_as_aging_age_says(session: Session) -> None:
    accounts = random_history(session, 6, seed=3)
    for as_of in (AS_OF, date(2026, 6, 30)):
        report = reports.aging_report(session, as_of)
        balances = sum(
            sum(p.amount_cents for ps in service_postings(session, a.id, as_of).values() for p in ps) for a in accounts
        )
        assert report.total.net_cents == balances == reports.balances_total(session, as_of)
        for table in (report.by_service, report.by_class, report.by_cycle):
            assert sum(r.net_cents for r in table) == report.total.net_cents
            for b in reports.BUCKETS:
                assert sum(r.buckets[b] for r in table) == report.total.buckets[b]
        expected_total = dict.fromkeys(reports.BUCKETS, 0)
        for a in accounts:
            got = reports.account_aging(session, a.id, as_of)
            for service_type, postings in service_postings(session, a.id, as_of).items():
                want = aging.age(postings, as_of)
                have = got.get(service_type, {})
                assert {b: have.get(b, 0) for b in reports.BUCKETS} == want.buckets, (a.number, service_type)
                assert have.get("credit", 0) == want.credit_cents
                for b in reports.BUCKETS:
                    expected_total[b] += want.buckets[b]
        assert report.total.buckets == expected_total
        # The call list ages each account whole, as aging.age does.
        rows, _count = reports.call_list(
            session, as_of, reports.CallFilters(exclude_held=False, exclude_plans=False, exclude_disputed=False)
        )
        listed = {r.account_id: r for r in rows}
        for a in accounts:
            want = aging.age([p for p in posting.account_postings(session, a.id) if p.effective_date <= as_of], as_of)
            if want.past_due_cents > 0 and want.balance_cents > 0:
                got_row = listed[a.id]
                assert (got_row.past_due_cents, got_row.oldest_due) == (want.past_due_cents, want.oldest_past_due)
                assert got_row.balance_cents == want.balance_cents
            else:
                assert a.id not in listed
    # Postings after the as-of date are left out.
    assert reports.aging_report(session, date(2025, 12, 31)).total.net_cents == 0


def test_buckets_follow_days_past_due_at_each_boundary(session: Session) -> None:
    (a,) = district(session, 1)
    for days, cents in ((0, 1), (1, 10), (30, 100), (31, 1000), (60, 10_000), (61, 100_000), (90, 1_000_000)):
        due = AS_OF - timedelta(days=days)
        bill(session, a, due - timedelta(days=21), due, water=cents)
    bill(session, a, date(2026, 1, 1), AS_OF - timedelta(days=91), sewer=7)
    report = reports.aging_report(session, AS_OF)
    assert report.total.buckets == {
        "current": 1,
        "1-30": 110,
        "31-60": 11_000,
        "61-90": 1_100_000,
        "over 90": 7,
    }
    water = next(r for r in report.by_service if r.key == "water")
    sewer = next(r for r in report.by_service if r.key == "sewer")
    assert (water.open_cents, sewer.buckets["over 90"], report.accounts_open) == (1_111_111, 7, 1)
    # A payment goes to water first (the ledger's service order), and within water to the oldest.
    pay(session, a, AS_OF, 100_000 + 10_000)
    report = reports.aging_report(session, AS_OF)
    water = next(r for r in report.by_service if r.key == "water")
    assert water.buckets["61-90"] == 1_000_000 - 110_000 + 100_000 and water.buckets["31-60"] == 11_000
    assert report.total.net_cents == reports.balances_total(session, AS_OF)
    # Paid beyond the balance: the credit shows, and the net is still the balance.
    pay(session, a, AS_OF, 2_000_000)
    report = reports.aging_report(session, AS_OF)
    assert report.total.open_cents == 0 and report.total.credit_cents == 2_110_000 - 1_111_118
    assert report.total.net_cents == posting.account_balance(session, a.id)


def test_call_list_filters(session: Session) -> None:
    accounts = district(session, 6)
    people = staff(session)
    cycle2 = BillingCycle(code="C2", name="Cycle 2", frequency="monthly", read_day=15)
    route = Route(code="R9", name="Route 9", cycle_id=accounts[0].cycle_id)
    session.add_all([cycle2, route])
    session.flush()
    for i, a in enumerate(accounts):
        bill(session, a, date(2026, 8, 1), date(2026, 8, 22), water=10_000 * (i + 1))  # 90 days late
        bill(session, a, date(2026, 10, 1), date(2026, 10, 22), water=1_000)  # 29 days late
    a0, a1, a2, a3, a4, a5 = accounts
    bill(session, a2, date(2026, 4, 10), date(2026, 5, 1), sewer=5_000)  # beyond the 90-day window
    pay(session, a0, date(2026, 11, 2), 10_000)  # a0 pays the old bill: only 29 days late now
    a1.customer_class = "COMMERCIAL"
    a2.cycle_id = cycle2.id
    session.get(Premise, a3.premise_id).route_id = route.id  # type: ignore[union-attr]
    session.get(Customer, a4.customer_id).phone = "909-555-0100"  # type: ignore[union-attr]
    session.add(CollectionHold(account_id=a5.id, reason="council", held_by_id=people["supervisor"].id, held_at=NOW))
    session.add(Dispute(account_id=a4.id, amount_cents=500, reason="read", opened_at=NOW))
    session.add(PaymentPlan(account_id=a3.id, total_cents=5000, starts_on=AS_OF, created_at=NOW))
    session.flush()

    def numbers(**kw: object) -> list[str]:
        rows, count = reports.call_list(session, AS_OF, reports.CallFilters(**kw))  # type: ignore[arg-type]
        assert count == len(rows)
        return [r.number for r in rows]

    # Held, on a plan and disputed are out by default; most past due first.
    assert numbers() == [a2.number, a1.number, a0.number]
    everyone = numbers(exclude_held=False, exclude_plans=False, exclude_disputed=False)
    assert everyone == [a5.number, a4.number, a3.number, a2.number, a1.number, a0.number]
    assert numbers(exclude_held=False) == [a5.number, a2.number, a1.number, a0.number]
    assert numbers(minimum_cents=25_000) == [a2.number]
    assert numbers(min_days=60) == [a2.number, a1.number]
    assert numbers(cycle_id=cycle2.id) == [a2.number]
    assert numbers(customer_class="COMMERCIAL") == [a1.number]
    assert numbers(route_id=route.id, exclude_plans=False) == [a3.number]
    assert numbers(has_phone=True, exclude_disputed=False) == [a4.number]
    rows, _ = reports.call_list(session, AS_OF, reports.CallFilters())
    r0 = next(r for r in rows if r.number == a0.number)
    assert (r0.past_due_cents, r0.oldest_due, r0.days_past_due) == (1_000, date(2026, 10, 22), 29)
    assert (r0.last_payment_on, r0.last_payment_cents, r0.balance_cents) == (date(2026, 11, 2), 10_000, 1_000)
    # The past due equals aging.age over the account's postings.
    for r in rows:
        want = aging.age(posting.account_postings(session, r.account_id), AS_OF)
        assert (r.past_due_cents, r.oldest_due) == (want.past_due_cents, want.oldest_past_due)
    # The form: bad input is named by field; the CSV has the rows, cells made safe.
    with pytest.raises(FieldErrors) as bad:
        service.call_page(session, people["csr"], {"minimum": "lots", "days": "0", "cycle": "999"}, AS_OF)
    assert set(bad.value.errors) == {"minimum", "days", "cycle"}
    session.get(Customer, a2.customer_id).name = "=HYPERLINK(1)"  # type: ignore[union-attr]
    page = service.call_page(session, people["csr"], {"days": "60"}, AS_OF)
    parsed = list(csv.reader(io.StringIO(service.call_csv(page))))
    assert parsed[0] == service.CALL_HEADER
    assert [row[0] for row in parsed[1:]] == [a2.number, a1.number]
    assert parsed[1][1:2] + parsed[1][8:11] == ["'=HYPERLINK(1)", "360.00", "2026-05-01", "203"]


def test_shutoff_report_counts_by_year_and_residential_or_other(session: Session) -> None:
    accounts = district(session, 3)
    people = staff(session)
    accounts[2].customer_class = "COMMERCIAL"
    session.flush()

    def order(a: Account, status: str, kind: str, at: datetime | None) -> None:
        session.add(
            WorkOrder(
                kind=kind,
                account_id=a.id,
                premise_id=a.premise_id,
                status=status,
                due_on=(at or NOW).date(),
                completed_at=at,
                created_at=NOW,
            )
        )

    order(accounts[0], "done", "shutoff", datetime(2025, 3, 3, 18, tzinfo=UTC))
    order(accounts[1], "done", "shutoff", datetime(2025, 7, 3, 18, tzinfo=UTC))
    order(accounts[2], "done", "shutoff", datetime(2025, 7, 4, 18, tzinfo=UTC))
    order(accounts[0], "done", "shutoff", datetime(2026, 2, 3, 18, tzinfo=UTC))
    # 2 a.m. UTC on New Year's Day is still 31 December in California.
    order(accounts[1], "done", "shutoff", datetime(2026, 1, 1, 2, tzinfo=UTC))
    order(accounts[1], "not_done", "shutoff", datetime(2026, 3, 3, 18, tzinfo=UTC))
    order(accounts[1], "open", "shutoff", None)
    order(accounts[2], "done", "reconnect", datetime(2025, 7, 5, 18, tzinfo=UTC))
    order(accounts[2], "done", "door_tag", datetime(2025, 7, 2, 18, tzinfo=UTC))
    session.flush()
    from zoneinfo import ZoneInfo

    rows = service.shutoffs(session, people["csr"], ZoneInfo("America/Los_Angeles"))
    assert [(r.year, r.residential, r.other, r.total) for r in rows] == [(2026, 1, 0, 1), (2025, 3, 1, 4)]
    text = service.shutoff_csv(rows, "Demo Water District")
    parsed = list(csv.reader(io.StringIO(text)))
    assert parsed[1] == ["Demo Water District", "2026", "1", "0", "1"]
    assert parsed[2] == ["Demo Water District", "2025", "3", "1", "4"]
    field = next(p for p in people.values() if p.role == "cashier")
    assert service.shutoffs(session, field, UTC)  # cashiers see the reports too
    from portal.billing_core import users

    crew = users.create_user(session, "crew@x.org", "a long password", "field", now=NOW)
    with pytest.raises(NotAllowed):
        service.shutoffs(session, crew, UTC)


def _sheet_text(data: bytes) -> dict[str, str]:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        names = z.namelist()
        shared = z.read("xl/sharedStrings.xml").decode() if "xl/sharedStrings.xml" in names else ""
        out = {"shared": shared, "workbook": z.read("xl/workbook.xml").decode()}
        for n in names:
            if n.startswith("xl/worksheets/sheet"):
                out[n] = z.read(n).decode()
        return out


def test_aging_csv_and_xlsx_carry_the_report(session: Session) -> None:
    (a,) = district(session, 1)
    people = staff(session)
    bill(session, a, date(2026, 8, 1), date(2026, 8, 22), water=12_345, sewer=2_000)
    bill(session, a, date(2026, 11, 1), date(2026, 11, 22), water=1_000)
    report = service.aging(session, people["csr"], AS_OF)
    parsed = list(csv.reader(io.StringIO(service.aging_csv(report))))
    assert parsed[0] == service.AGING_HEADER
    water = next(r for r in parsed if r[1] == "service" and r[2] == "Water")
    assert water[3:] == ["10.00", "0.00", "0.00", "123.45", "0.00", "133.45", "0.00", "133.45"]
    totals = [r for r in parsed if r[2] == "Total"]
    assert len(totals) == 3 and all(r[-1] == "153.45" for r in totals)
    data = service.aging_xlsx(report)
    sheets = _sheet_text(data)
    assert re.findall(r'<sheet name="([^"]+)"', sheets["workbook"]) == ["By service", "By class", "By cycle"]
    assert "Receivables aging as of 2026-11-20" in sheets["shared"] and "Water" in sheets["shared"]
    first = sheets["xl/worksheets/sheet1.xml"]
    assert "<v>123.45</v>" in first and "<v>153.45</v>" in first
    assert "<f>" not in "".join(v for k, v in sheets.items() if k.startswith("xl/worksheets"))
    svg = service.aging_chart(report)
    assert svg.startswith("<svg") and 'role="img"' in svg and "$143.45" in svg
    field = staff_field(session)
    with pytest.raises(NotAllowed):
        service.aging(session, field, AS_OF)


def staff_field(session: Session):  # type: ignore[no-untyped-def]
    from portal.billing_core import users

    return users.create_user(session, "field@x.org", "a long password", "field", now=NOW)
