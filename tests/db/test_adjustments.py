"""Adjustments with maker-checker and the leak helper, on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from portal.billing_core import ledger_check, posting
from portal.billing_core.errors import FieldErrors, InvalidInput, NotAllowed
from portal.billing_core.models import Account, Adjustment, AuditEvent, LedgerTransaction
from portal.billing_core.money_policy import DEFAULT
from portal.services import adjustments as service

from .adjust_helpers import NOW, TODAY, history, staff, tiered_account


def _prep(*args):  # type: ignore[no-untyped-def]
    return service.prepare(*args).adjustment


def _form(**kw: str) -> dict[str, str]:
    return {"service": "water", "amount": "12.50", "direction": "credit", "reason": "courtesy", **kw}


def _setup(session: Session):  # type: ignore[no-untyped-def]
    account = tiered_account(session)
    people = staff(session)
    history(session, account, ["10"] * 11 + ["40"])
    return account, people


def test_within_the_limit_it_posts_at_once(session: Session) -> None:
    account, people = _setup(session)
    before = posting.account_balance(session, account.id)
    item = _prep(session, people["csr"], account.number, _form(amount="25.00"), TODAY, NOW)
    assert item.status == "posted" and item.ledger_transaction_id is not None
    assert posting.account_balance(session, account.id) == before - 2500
    txn = session.get(LedgerTransaction, item.ledger_transaction_id)
    assert txn.kind == "adjustment" and txn.posted_by_id == people["csr"].id
    assert ledger_check.run(session) == []
    event = session.scalar(select(AuditEvent).where(AuditEvent.action == "adjustment.posted"))
    assert event.before["status"] == "pending" and event.after["status"] == "posted"


def test_above_the_limit_it_waits_for_someone_else(session: Session) -> None:
    account, people = _setup(session)
    before = posting.account_balance(session, account.id)
    item = _prep(session, people["specialist"], account.number, _form(amount="250.00"), TODAY, NOW)
    assert (item.status, item.ledger_transaction_id) == ("pending", None)
    assert posting.account_balance(session, account.id) == before
    assert ledger_check.run(session) == []
    with pytest.raises(NotAllowed):  # a specialist may not approve at all
        service.decide(session, people["specialist"], item.id, "approve", "", TODAY, NOW)
    service.decide(session, people["supervisor"], item.id, "approve", "", TODAY, NOW)
    assert item.status == "posted" and item.decided_by_id == people["supervisor"].id
    assert posting.account_balance(session, account.id) == before - 25000
    assert ledger_check.run(session) == []
    with pytest.raises(InvalidInput):
        service.decide(session, people["admin"], item.id, "approve", "", TODAY, NOW)


def test_the_preparer_never_approves_and_limits_bind_the_approver(session: Session) -> None:
    account, people = _setup(session)
    big = _prep(session, people["supervisor"], account.number, _form(amount="1500.00"), TODAY, NOW)
    assert big.status == "pending"
    with pytest.raises(NotAllowed, match="prepared this"):
        service.decide(session, people["supervisor"], big.id, "approve", "", TODAY, NOW)
    other = _prep(session, people["specialist"], account.number, _form(amount="1500.00"), TODAY, NOW)
    with pytest.raises(NotAllowed, match="above what your role may approve"):
        service.decide(session, people["supervisor"], other.id, "approve", "", TODAY, NOW)
    service.decide(session, people["admin"], big.id, "approve", "", TODAY, NOW)
    assert big.status == "posted"


def test_a_rejection_says_why_and_posts_nothing(session: Session) -> None:
    account, people = _setup(session)
    item = _prep(session, people["csr"], account.number, _form(amount="30.00"), TODAY, NOW)
    with pytest.raises(FieldErrors) as err:
        service.decide(session, people["supervisor"], item.id, "reject", " ", TODAY, NOW)
    assert "decision_note" in err.value.errors and item.status == "pending"
    service.decide(session, people["supervisor"], item.id, "reject", "no basis", TODAY, NOW)
    assert (item.status, item.decision_note, item.ledger_transaction_id) == ("rejected", "no basis", None)
    assert ledger_check.run(session) == []


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"amount": "12.345"}, "amount"),
        ({"amount": "0"}, "amount"),
        ({"amount": "abc"}, "amount"),
        ({"amount": "-5", "direction": "credit"}, "amount"),
        ({"service": "gas"}, "service"),
        ({"reason": "because"}, "reason"),
        ({"reason": "other", "note": ""}, "note"),
        ({"bill": "NOPE"}, "bill"),
    ],
)
def test_a_bad_form_writes_nothing(session: Session, values: dict[str, str], field: str) -> None:
    account, people = _setup(session)
    with pytest.raises(FieldErrors) as err:
        _prep(session, people["specialist"], account.number, _form(**values), TODAY, NOW)
    assert field in err.value.errors
    assert session.scalar(select(func.count()).select_from(Adjustment)) == 0


def test_a_debit_against_a_bill_and_a_credit_beyond_what_is_owed(session: Session) -> None:
    account, people = _setup(session)
    bill_number = service.panel(session, people["specialist"], account.number, DEFAULT).bills[0]
    form = _form(amount="10", direction="debit", bill=bill_number)
    debit = _prep(session, people["specialist"], account.number, form, TODAY, NOW)
    assert debit.amount_cents == 1000 and debit.bill_id is not None
    owed = posting.account_balance(session, account.id)
    prepared = service.prepare(
        session, people["admin"], account.number, _form(amount=f"{(owed + 500) / 100:.2f}"), TODAY, NOW
    )
    credit = prepared.adjustment
    assert prepared.becomes_credit_cents == 500
    assert credit.status == "posted" and posting.account_balance(session, account.id) == -500
    assert ledger_check.run(session) == []


def test_a_cashier_may_not_prepare(session: Session) -> None:
    account, people = _setup(session)
    with pytest.raises(NotAllowed):
        _prep(session, people["cashier"], account.number, _form(), TODAY, NOW)


# --- The leak helper -------------------------------------------------------------------------


def test_the_leak_credit_reprices_the_excess_at_the_lowest_tier(session: Session) -> None:
    account, people = _setup(session)
    done = service.leak_credit(session, people["csr"], account.number, {"proof": "Invoice 7781"}, DEFAULT, TODAY, NOW)
    # Above the CSR's $25 limit: it waits. Average 10 CCF; the leak bill used 40:
    # 10 CCF at $6 and 20 at $4 re-priced at $2.
    assert done.working.credit_cents == 8000
    w = done.working.data
    assert (w["average"], w["excess"], len(w["months"])) == ("10.000", "30.000", 11)
    item = done.adjustment
    assert item.amount_cents == -8000 and item.reason_code == "leak" and item.status == "pending"
    assert item.working["credit_cents"] == 8000 and item.repair_proof == "Invoice 7781"
    service.decide(session, people["supervisor"], item.id, "approve", "", TODAY, NOW)
    assert ledger_check.run(session) == []


def test_the_leak_helper_refuses_a_second_within_the_window_and_needs_proof(session: Session) -> None:
    account, people = _setup(session)
    with pytest.raises(FieldErrors) as err:
        service.leak_credit(session, people["specialist"], account.number, {}, DEFAULT, TODAY, NOW)
    assert "proof" in err.value.errors
    service.leak_credit(session, people["supervisor"], account.number, {"proof": "receipt"}, DEFAULT, TODAY, NOW)
    with pytest.raises(FieldErrors) as err:
        service.leak_credit(session, people["supervisor"], account.number, {"proof": "again"}, DEFAULT, TODAY, NOW)
    assert TODAY.isoformat() in err.value.errors["leak"].message
    relaxed = dataclasses.replace(DEFAULT, leak_requires_proof=False, leak_once_per_months=0)
    preview = service.leak_credit(session, people["supervisor"], account.number, {}, relaxed, TODAY, NOW, preview=True)
    assert preview.adjustment is None and preview.working.credit_cents == 8000


def test_no_leak_no_credit(session: Session) -> None:
    account = tiered_account(session)
    people = staff(session)
    history(session, account, ["10", "12", "9"])
    with pytest.raises(FieldErrors) as err:
        service.leak_credit(session, people["supervisor"], account.number, {"proof": "x"}, DEFAULT, TODAY, NOW)
    assert "no leak" in err.value.errors["bill"].message


# --- The command line ------------------------------------------------------------------------


def test_the_commands_prepare_approve_reject_and_work_out_a_leak(
    engine, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    from portal.cli import main

    monkeypatch.setenv("DATABASE_URL", engine.url.render_as_string(hide_password=False))
    with Session(engine) as s, s.begin():
        account, _people = _setup(s)
        number = account.number
    base = ["--account", number, "--service", "water"]
    assert (
        main(["adjustments", "prepare", *base, "--amount", "-12.50", "--reason", "courtesy", "--as", "csr@x.org"]) == 0
    )
    assert "credit $12.50 on water ($12.50), posted" in capsys.readouterr().out
    assert (
        main(
            [
                "adjustments",
                "prepare",
                *base,
                "--amount",
                "-250",
                "--reason",
                "billing_error",
                "--as",
                "specialist@x.org",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "waiting for approval" in out
    adjustment_id = out.split()[1].rstrip(":")
    assert main(["adjustments", "approve", adjustment_id, "--as", "specialist@x.org"]) == 2
    assert "Only a billing supervisor" in capsys.readouterr().err
    assert main(["adjustments", "approve", adjustment_id, "--as", "supervisor@x.org"]) == 0
    assert "posted" in capsys.readouterr().out
    assert main(["adjustments", "prepare", *base, "--amount", "1.234", "--reason", "other", "--as", "csr@x.org"]) == 2
    err = capsys.readouterr().err
    assert "amount:" in err and "note:" in err
    assert main(["adjustments", "prepare", *base, "--amount", "-30", "--reason", "courtesy", "--as", "csr@x.org"]) == 0
    pending_id = capsys.readouterr().out.split()[1].rstrip(":")
    assert main(["adjustments", "reject", pending_id, "--reason", "no", "--as", "supervisor@x.org"]) == 0
    assert "rejected" in capsys.readouterr().out
    assert main(["adjustments", "leak", "--account", number, "--as", "admin@x.org"]) == 2
    assert "proof:" in capsys.readouterr().err
    assert main(["adjustments", "leak", "--account", number, "--proof", "Inv 9", "--as", "admin@x.org"]) == 0
    out = capsys.readouterr().out
    assert "Average of 11 bills: 10.000; excess 30.000" in out and "credit $80.00 on water" in out
    with Session(engine) as s, s.begin():
        s.scalar(select(Account).where(Account.number == number)).status = "closed"
    assert (
        main(
            ["write-offs", "prepare", "--account", number, "--amount", "5", "--why", "gone", "--as", "specialist@x.org"]
        )
        == 0
    )
    write_off_id = capsys.readouterr().out.split()[1]
    assert main(["write-offs", "approve", write_off_id, "--as", "supervisor@x.org"]) == 0
    assert "posted to bad debt" in capsys.readouterr().out
    assert main(["ledger", "check"]) == 0


def test_the_ledger_check_finds_adjustments_and_write_offs_out_of_step(session: Session) -> None:
    from portal.billing_core.models import WriteOff

    account, people = _setup(session)
    posted = _prep(session, people["csr"], account.number, _form(amount="5"), TODAY, NOW)
    session.add_all(
        [
            Adjustment(
                account_id=account.id,
                service_type="water",
                amount_cents=-700,
                reason_code="courtesy",
                status="pending",
                prepared_by_id=people["csr"].id,
                ledger_transaction_id=posted.ledger_transaction_id,
            ),
            Adjustment(
                account_id=account.id,
                service_type="water",
                amount_cents=-900,
                reason_code="courtesy",
                status="posted",
                prepared_by_id=people["csr"].id,
            ),
            Adjustment(
                account_id=account.id,
                service_type="water",
                amount_cents=-100,
                reason_code="courtesy",
                status="posted",
                prepared_by_id=people["csr"].id,
                ledger_transaction_id=posted.ledger_transaction_id,
            ),
            WriteOff(
                account_id=account.id, amount_cents=100, reason="r", status="posted", prepared_by_id=people["csr"].id
            ),
        ]
    )
    session.flush()
    problems = ledger_check.run(session)
    assert any("is pending but has ledger transaction" in p for p in problems)
    assert any("is posted but has no ledger transaction" in p and p.startswith("adjustment") for p in problems)
    assert any("of -100 cents moved the balance by -500 cents" in p for p in problems)
    assert any(p.startswith("write-off") and "no ledger transaction" in p for p in problems)
