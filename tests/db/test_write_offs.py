"""Write-offs of final balances, with approval, and recoveries, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from portal.billing_core import ledger, ledger_check, payments, posting
from portal.billing_core.errors import FieldErrors, InvalidInput, NotAllowed
from portal.billing_core.models import LedgerEntry, Payment, WriteOff
from portal.services import write_offs as service

from .adjust_helpers import NOW, TODAY, history, staff, tiered_account


def _final(session: Session):  # type: ignore[no-untyped-def]
    account = tiered_account(session)
    people = staff(session)
    history(session, account, ["10", "12"])
    account.status = "final"
    session.flush()
    return account, people


def _pay(session: Session, account_id: int, cents: int, key: str) -> Payment:
    p = Payment(
        account_id=account_id,
        amount_cents=cents,
        channel="online",
        method="card",
        received_on=TODAY,
        status="pending",
        idempotency_key=key,
    )
    session.add(p)
    session.flush()
    payments.apply(session, p, "succeeded", TODAY, NOW)
    return p


def test_prepared_then_approved_moves_receivables_to_bad_debt(session: Session) -> None:
    account, people = _final(session)
    owed = posting.account_balance(session, account.id)
    item = service.prepare(
        session, people["specialist"], account.number, {"amount": f"{owed / 100:.2f}", "reason": "agency"}, NOW
    )
    assert (item.status, item.ledger_transaction_id) == ("pending", None)
    assert posting.account_balance(session, account.id) == owed
    assert ledger_check.run(session) == []
    with pytest.raises(NotAllowed):
        service.decide(session, people["specialist"], item.id, "approve", "", TODAY, NOW)
    service.decide(session, people["supervisor"], item.id, "approve", "", TODAY, NOW)
    assert item.status == "posted" and posting.account_balance(session, account.id) == 0
    bad_debt = session.scalar(
        select(func.sum(LedgerEntry.amount_cents)).where(
            LedgerEntry.transaction_id == item.ledger_transaction_id, LedgerEntry.gl_account == ledger.BAD_DEBT
        )
    )
    assert bad_debt == owed
    assert ledger_check.run(session) == []
    # A later payment is still accepted, and recorded as a recovery.
    paid = _pay(session, account.id, 3000, "later-1")
    assert paid.status == "posted" and paid.recovery_cents == 3000
    assert posting.account_balance(session, account.id) == 0
    assert ledger_check.run(session) == []


def test_the_preparer_does_not_approve_and_a_rejection_says_why(session: Session) -> None:
    account, people = _final(session)
    item = service.prepare(session, people["supervisor"], account.number, {"amount": "10", "reason": "r"}, NOW)
    with pytest.raises(NotAllowed, match="prepared this"):
        service.decide(session, people["supervisor"], item.id, "approve", "", TODAY, NOW)
    with pytest.raises(FieldErrors):
        service.decide(session, people["admin"], item.id, "reject", "", TODAY, NOW)
    service.decide(session, people["admin"], item.id, "reject", "still collecting", TODAY, NOW)
    assert (item.status, item.ledger_transaction_id, item.decision_note) == ("rejected", None, "still collecting")
    assert ledger_check.run(session) == []


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"amount": "9999", "reason": "r"}, "amount"),
        ({"amount": "1.234", "reason": "r"}, "amount"),
        ({"amount": "0", "reason": "r"}, "amount"),
        ({"amount": "-5", "reason": "r"}, "amount"),
        ({"amount": "10", "reason": " "}, "reason"),
    ],
)
def test_a_bad_write_off_writes_nothing(session: Session, values: dict[str, str], field: str) -> None:
    account, people = _final(session)
    with pytest.raises(FieldErrors) as err:
        service.prepare(session, people["specialist"], account.number, values, NOW)
    assert field in err.value.errors
    assert session.scalar(select(func.count()).select_from(WriteOff)) == 0


def test_an_active_account_is_not_written_off(session: Session) -> None:
    account, people = _final(session)
    account.status = "active"
    with pytest.raises(FieldErrors) as err:
        service.prepare(session, people["specialist"], account.number, {"amount": "10", "reason": "r"}, NOW)
    assert "account" in err.value.errors


def test_a_payment_after_preparing_makes_the_approval_refuse_more_than_is_owed(session: Session) -> None:
    account, people = _final(session)
    owed = posting.account_balance(session, account.id)
    item = service.prepare(
        session, people["specialist"], account.number, {"amount": f"{owed / 100:.2f}", "reason": "r"}, NOW
    )
    _pay(session, account.id, 1000, "before-approval")
    with pytest.raises(InvalidInput, match="now owes"):
        service.decide(session, people["supervisor"], item.id, "approve", "", TODAY, NOW)
    assert item.status == "pending"


def test_a_cashier_may_not_prepare(session: Session) -> None:
    account, people = _final(session)
    with pytest.raises(NotAllowed):
        service.prepare(session, people["cashier"], account.number, {"amount": "10", "reason": "r"}, NOW)
