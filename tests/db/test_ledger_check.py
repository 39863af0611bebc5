"""``portal ledger check``: a sound ledger says ``ledger ok``; each kind of damage is named."""

from datetime import date, timedelta

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from portal.billing_core import ledger, ledger_check, posting
from portal.billing_core.models import Payment
from portal.cli import main

from .factories import district

D = date(2026, 3, 1)


def _history(session: Session) -> int:
    (acct,) = district(session, 1)
    bill = posting.post(session, ledger.bill_transaction(acct.id, D, D + timedelta(days=21), {"water": 5000}), acct.id)
    pay = posting.post(
        session,
        ledger.payment_transaction(acct.id, D, 7000, "counter", posting.open_by_service(session, acct.id)),
        acct.id,
    )
    session.add(
        Payment(
            account_id=acct.id,
            amount_cents=7000,
            channel="counter",
            method="cash",
            received_on=D,
            status="posted",
            ledger_transaction_id=pay.id,
        )
    )
    posting.reverse(session, bill.id, D + timedelta(days=2), "billing error")
    session.commit()
    return acct.id


def test_a_sound_ledger_has_no_problems(session: Session) -> None:
    _history(session)
    assert ledger_check.run(session) == []


def _raw(session: Session, sql: str) -> None:
    session.execute(text(sql))
    session.commit()


def test_an_unbalanced_transaction_is_named(session: Session) -> None:
    acct = _history(session)
    _raw(
        session,
        f"INSERT INTO ledger_transaction (id, kind, account_id, effective_on, memo, posted_at) "
        f"VALUES (900, 'adjustment', {acct}, '2026-03-05', 'x', '2026-03-05 00:00:00')",
    )
    _raw(
        session,
        f"INSERT INTO ledger_entry (transaction_id, gl_account, account_id, service_type, amount_cents) "
        f"VALUES (900, 'AR:WATER', {acct}, 'water', 100), (900, 'ADJUSTMENTS', NULL, 'water', -90)",
    )
    assert ledger_check.run(session) == ["transaction 900 does not balance: its entries sum to 10 cents"]


def test_a_partial_reversal_and_an_empty_transaction_are_named(session: Session) -> None:
    acct = _history(session)
    _raw(
        session,
        f"INSERT INTO ledger_transaction (id, kind, account_id, effective_on, memo, posted_at) VALUES "
        f"(901, 'adjustment', {acct}, '2026-03-05', 'x', '2026-03-05 00:00:00'), "
        f"(902, 'reversal', {acct}, '2026-03-05', 'x', '2026-03-05 00:00:00'), "
        f"(903, 'fee', {acct}, '2026-03-05', 'x', '2026-03-05 00:00:00')",
    )
    _raw(
        session,
        f"INSERT INTO ledger_entry (transaction_id, gl_account, account_id, service_type, amount_cents) VALUES "
        f"(901, 'AR:WATER', {acct}, 'water', 100), (901, 'ADJUSTMENTS', NULL, 'water', -100), "
        f"(902, 'AR:SEWER', {acct}, 'sewer', -100), (902, 'ADJUSTMENTS', NULL, 'water', 100)",
    )
    problems = ledger_check.run(session)
    assert "reversal 902 does not say which transaction it reverses" in problems
    assert "transaction 903 has no entries" in problems


def test_a_liability_on_a_balance_and_a_short_payment_are_named(session: Session) -> None:
    acct = _history(session)
    _raw(
        session,
        f"INSERT INTO ledger_transaction (id, kind, account_id, effective_on, memo, posted_at) VALUES "
        f"(904, 'deposit', {acct}, '2026-03-05', 'x', '2026-03-05 00:00:00'), "
        f"(905, 'payment', {acct}, '2026-03-05', 'x', '2026-03-05 00:00:00')",
    )
    _raw(
        session,
        f"INSERT INTO ledger_entry (transaction_id, gl_account, account_id, service_type, amount_cents) VALUES "
        f"(904, 'AR:DEPOSIT', {acct}, 'deposit', 100), (904, '{ledger.DEPOSITS_HELD}', {acct}, NULL, -100), "
        f"(905, 'CASH:COUNTER', NULL, NULL, 400), (905, 'AR:WATER', {acct}, 'water', -400)",
    )
    _raw(
        session,
        f"INSERT INTO payment (account_id, amount_cents, channel, method, received_on, status, "
        f"ledger_transaction_id, created_at) VALUES ({acct}, 500, 'counter', 'cash', '2026-03-05', 'posted', 905, "
        f"'2026-03-05 00:00:00')",
    )
    problems = ledger_check.run(session)
    assert any(f"transaction 904 puts {ledger.DEPOSITS_HELD} on an account's balance" in p for p in problems)
    assert any("of 500 cents took in 400 cents of cash" in p for p in problems)


def test_the_command_prints_ledger_ok_or_the_problems(
    engine: Engine, session: Session, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", engine.url.render_as_string(hide_password=False))
    acct = _history(session)
    assert main(["ledger", "check"]) == 0
    assert capsys.readouterr().out == "ledger ok\n"
    _raw(
        session,
        f"INSERT INTO ledger_transaction (id, kind, account_id, effective_on, memo, posted_at) "
        f"VALUES (906, 'fee', {acct}, '2026-03-05', 'x', '2026-03-05 00:00:00')",
    )
    assert main(["ledger", "check"]) == 1
    out = capsys.readouterr()
    assert out.out == "transaction 906 has no entries\n" and "1 problem found" in out.err
