from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, text

from portal.adapters.database import make_engine
from portal.billing_core import accounts, posting
from portal.billing_core.models import (
    Account,
    Bill,
    BillLine,
    LedgerEntry,
    LedgerTransaction,
    Payment,
    User,
)
from portal.demo import DemoExists, build_demo
from tests.conftest import DEMO_ACCOUNTS, fresh_database

TODAY = date(2026, 11, 22)


def fingerprint(engine: Engine) -> tuple:
    with engine.connect() as conn:
        return (
            conn.execute(text("SELECT count(*), sum(total_due_cents), sum(current_charges_cents) FROM bill")).one(),
            conn.execute(text("SELECT count(*), sum(amount_cents) FROM payment")).one(),
            conn.execute(text("SELECT address_line1 FROM premise ORDER BY id LIMIT 3")).all(),
            conn.execute(text("SELECT serial, size FROM meter ORDER BY id LIMIT 3")).all(),
            conn.execute(
                text("SELECT count(*), sum(abs(amount_cents)), max(id), max(transaction_id) FROM ledger_entry")
            ).one(),
        )


def test_the_same_seed_builds_the_same_district(templates: dict[str, str], tmp_path: Path) -> None:
    prints = []
    for kind in ("sqlite", "postgresql", "sqlite"):
        url, drop = fresh_database(kind, templates, tmp_path)
        engine = make_engine(url)
        result = build_demo(engine, accounts=25, seed=3, progress=False, today=TODAY)
        assert (result.accounts, result.bills) == (25, 25 * 24)
        prints.append(fingerprint(engine))
        engine.dispose()
        drop()  # type: ignore[operator]
    assert prints[0] == prints[1] == prints[2]


def test_parallel_workers_build_the_same_district(templates: dict[str, str], tmp_path: Path) -> None:
    prints = []
    for kind, workers in (("sqlite", 1), ("postgresql", 1), ("postgresql", 2)):
        url, drop = fresh_database(kind, templates, tmp_path)
        engine = make_engine(url)
        build_demo(engine, accounts=30, seed=5, progress=False, today=TODAY, workers=workers, chunk_accounts=7)
        prints.append(fingerprint(engine))
        engine.dispose()
        drop()  # type: ignore[operator]
    assert prints[0] == prints[1] == prints[2]
    assert prints[0][0][0] == 30 * 24


def test_a_second_run_keeps_the_district(demo_engine: Engine) -> None:
    with pytest.raises(DemoExists):
        build_demo(demo_engine, accounts=5, seed=1, progress=False, today=TODAY)


def test_the_demo_ledger_balances_and_agrees_with_the_bills(demo_engine: Engine) -> None:
    with demo_engine.connect() as conn:
        assert conn.scalar(select(func.sum(LedgerEntry.amount_cents))) == 0
        unbalanced = conn.execute(
            select(LedgerEntry.transaction_id)
            .group_by(LedgerEntry.transaction_id)
            .having(func.sum(LedgerEntry.amount_cents) != 0)
        ).all()
        assert unbalanced == []
        # Every bill's charges = its lines = its ledger transaction's receivables.
        lines = dict(
            conn.execute(select(BillLine.bill_id, func.sum(BillLine.amount_cents)).group_by(BillLine.bill_id)).all()
        )
        ar = dict(
            conn.execute(
                select(LedgerEntry.transaction_id, func.sum(LedgerEntry.amount_cents))
                .where(LedgerEntry.account_id.is_not(None))
                .group_by(LedgerEntry.transaction_id)
            ).all()
        )
        bills = conn.execute(select(Bill.id, Bill.current_charges_cents, Bill.ledger_transaction_id)).all()
        assert len(bills) == DEMO_ACCOUNTS * 24
        for bill_id, charges, txn_id in bills:
            assert lines[bill_id] == charges == ar[txn_id]
        payments = conn.execute(select(Payment.amount_cents, Payment.ledger_transaction_id)).all()
        for amount, txn_id in payments:
            assert ar[txn_id] == -amount
        assert conn.scalar(
            select(func.count()).select_from(LedgerTransaction).where(LedgerTransaction.kind == "bill")
        ) == len(bills)


def test_the_demo_has_the_mix_a_billing_office_sees(demo_engine: Engine) -> None:
    from sqlalchemy.orm import Session

    with Session(demo_engine) as session:
        all_accounts = session.scalars(select(Account)).all()
        summaries = [accounts.summarise(session, a, TODAY) for a in all_accounts]
        assert any(s.past_due_cents > 0 and s.days_past_due > 60 for s in summaries), "some delinquent"
        assert any(s.past_due_cents == 0 for s in summaries), "most pay on time"
        assert any(a.autopay for a in all_accounts)
        for s in summaries:
            last = s.last_bill
            # The last bill's total due is the balance it left, less what was paid since.
            paid_since = session.scalar(
                select(func.coalesce(func.sum(Payment.amount_cents), 0)).where(
                    Payment.account_id == s.account.id, Payment.received_on >= last.bill_date
                )
            )
            assert s.balance_cents == last.total_due_cents - paid_since
            assert s.balance_cents == posting.account_balance(session, s.account.id)
        emails = set(session.scalars(select(User.email)))
        assert {
            "admin@demo.example",
            "supervisor@demo.example",
            "resident@demo.example",
            "pastdue@demo.example",
        } <= emails
        landlord = session.scalar(select(User).where(User.email == "landlord@demo.example"))
        assert len(landlord.accounts) > 1
