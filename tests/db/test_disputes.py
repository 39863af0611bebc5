"""The register of disputes (``billing_core/disputes.py``, ``services/disputes.py``) on both
databases: staff and resident openings, their checks, decisions, permissions, the open
amounts the daily run keeps out of late fees, and the gate's facts."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from portal.billing_core import collection_facts, disputes, ledger, posting
from portal.billing_core.errors import FieldErrors, NotAllowed, NotFound
from portal.billing_core.models import Account, AuditEvent, Bill, Dispute, User, UserAccountLink
from portal.services import disputes as service

from .factories import district

D = date(2026, 3, 2)
NOW = datetime(2026, 3, 2, 17, 0, tzinfo=UTC)


def billed(session: Session, accounts: int = 2) -> list[tuple[Account, Bill]]:
    out = []
    for i, account in enumerate(district(session, accounts)):
        txn = posting.post(
            session, ledger.bill_transaction(account.id, D, D + timedelta(days=21), {"water": 8_000}), account.id
        )
        bill = Bill(
            number=f"B-{i}",
            account_id=account.id,
            period_start=D - timedelta(days=30),
            period_end=D,
            bill_date=D,
            due_date=D + timedelta(days=21),
            previous_balance_cents=0,
            current_charges_cents=8_000,
            total_due_cents=8_000,
            status="posted",
            ledger_transaction_id=txn.id,
        )
        session.add(bill)
        session.flush()
        out.append((account, bill))
    return out


def person(session: Session, role: str, account: Account | None = None) -> User:
    user = User(email=f"{role}-{account.id if account else 0}@example.net", role=role)
    session.add(user)
    session.flush()
    if account is not None:
        session.add(UserAccountLink(user_id=user.id, account_id=account.id))
        session.flush()
    return user


def test_staff_open_and_a_supervisor_decides(session: Session) -> None:
    (a, bill), (b, _bill_b) = billed(session)
    csr, supervisor = person(session, "csr"), person(session, "supervisor")
    for values, field in [
        ({"kind": "loan", "reason": "x"}, "kind"),
        ({"kind": "dispute", "amount": "5.00", "reason": "x"}, "bill"),
        ({"kind": "dispute", "bill": "NOPE", "amount": "5.00", "reason": "x"}, "bill"),
        ({"kind": "dispute", "bill": "B-0", "amount": "80.01", "reason": "x"}, "amount"),
        ({"kind": "dispute", "bill": "B-0", "amount": "", "reason": "x"}, "amount"),
        ({"kind": "appeal", "amount": "-1", "reason": "x"}, "amount"),
        ({"kind": "appeal", "amount": "0", "reason": " "}, "reason"),
    ]:
        with pytest.raises(FieldErrors) as refused:
            service.open_by_staff(session, csr, a.number, values, NOW)
        assert field in refused.value.errors, (values, refused.value.errors)
    with pytest.raises(FieldErrors):  # the bill of another account is not this account's
        service.open_by_staff(
            session, csr, b.number, {"kind": "dispute", "bill": "B-0", "amount": "1", "reason": "x"}, NOW
        )
    assert session.scalar(select(func.count()).select_from(Dispute)) == 0
    dispute = service.open_by_staff(
        session, csr, a.number, {"kind": "dispute", "bill": "B-0", "amount": "30.00", "reason": "High read"}, NOW
    )
    appeal = service.open_by_staff(session, csr, a.number, {"kind": "appeal", "amount": "", "reason": "Shutoff"}, NOW)
    assert (dispute.bill_id, dispute.amount_cents, dispute.opened_via, appeal.amount_cents) == (
        bill.id,
        3_000,
        "staff",
        0,
    )
    assert disputes.disputed_cents(session, [a.id, b.id]) == {a.id: 3_000}
    assert collection_facts.facts_for(session, a.id, D).pending_disputes == 2  # the gate refuses a shutoff
    with pytest.raises(NotAllowed):
        service.decide(session, csr, dispute.id, "upheld", "ok", NOW)
    with pytest.raises(FieldErrors) as refused:
        service.decide(session, supervisor, dispute.id, "maybe", "", NOW)
    assert set(refused.value.errors) == {"decision", "note"} and dispute.status == "open"
    service.decide(session, supervisor, dispute.id, "upheld", "Meter misread; credit the difference", NOW)
    assert (dispute.status, dispute.decided_by_id) == ("upheld", supervisor.id)
    with pytest.raises(FieldErrors):
        service.decide(session, supervisor, dispute.id, "denied", "again", NOW)
    assert disputes.disputed_cents(session, [a.id]) == {a.id: 0}  # the appeal is still open (no amount)
    service.decide(session, supervisor, appeal.id, "withdrawn", "Paid in full", NOW)
    assert disputes.disputed_cents(session, [a.id]) == {}
    assert collection_facts.facts_for(session, a.id, D).pending_disputes == 0
    actions = sorted(session.scalars(select(AuditEvent.action).where(AuditEvent.entity_type == "dispute")))
    assert actions == ["dispute.opened", "dispute.opened", "dispute.upheld", "dispute.withdrawn"]
    for role in ("cashier", "field"):
        with pytest.raises(NotAllowed):
            service.open_by_staff(session, person(session, role), a.number, {"kind": "appeal", "reason": "x"}, NOW)
    register = service.register(session, supervisor, "all", "", "staff", a.number)
    assert {d.id for d in register.rows} == {dispute.id, appeal.id}
    assert service.register(session, supervisor, "open").rows == []


def test_a_resident_disputes_their_own_bill_only(session: Session) -> None:
    (a, bill), (b, other_bill) = billed(session)
    resident = person(session, "customer", a)
    with pytest.raises(NotFound):
        service.open_by_resident(session, resident, b.number, other_bill.number or "", {"reason": "x"}, NOW)
    with pytest.raises(NotFound):
        service.open_by_resident(session, resident, a.number, other_bill.number or "", {"reason": "x"}, NOW)
    for values, field in [
        ({"amount": "80.01", "reason": "x"}, "amount"),
        ({"amount": "0", "reason": "x"}, "amount"),
        ({"amount": "abc", "reason": "x"}, "amount"),
        ({"amount": "5", "reason": ""}, "reason"),
        ({"amount": "5", "reason": "x" * 2001}, "reason"),
    ]:
        with pytest.raises(FieldErrors) as refused:
            service.open_by_resident(session, resident, a.number, "B-0", values, NOW)
        assert field in refused.value.errors
    assert session.scalar(select(func.count()).select_from(Dispute)) == 0
    whole = service.open_by_resident(
        session, resident, a.number, "B-0", {"amount": "", "reason": "Never used it"}, NOW, "10.0.0.1"
    )
    assert (whole.amount_cents, whole.opened_via, whole.bill_id, whole.opened_by_id) == (
        8_000,
        "resident",
        bill.id,
        resident.id,
    )
    with pytest.raises(FieldErrors, match="already disputed"):
        service.open_by_resident(session, resident, a.number, "B-0", {"amount": "1", "reason": "Again"}, NOW)
    assert disputes.disputed_cents(session, [a.id, b.id]) == {a.id: 8_000}
    page = service.resident_bill(session, resident, a.number, "B-0")
    assert [d.id for d in page.disputes] == [whole.id]
