"""Field orders on both databases: opened once, done / not done by field staff, cancelled by
the office, all audited; a payment in full (through the payment path every channel takes)
cancels the pending shutoff and, when the water is off, queues the reconnection the same
day with the policy's fee (after hours, the low-income caps); a plan made does likewise;
and a payment on an account not in collections costs the hook one query."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from portal.billing_core import field_orders, ladder_policy, ledger, payments, posting
from portal.billing_core.errors import FieldErrors, NotAllowed
from portal.billing_core.models import (
    Account,
    AuditEvent,
    CollectionAction,
    DelinquencyPolicyVersion,
    LedgerEntry,
    LedgerTransaction,
    Payment,
    ShutoffProtection,
    User,
    WorkOrder,
)

from .factories import district

BILLED = date(2026, 1, 2)
DUE = date(2026, 1, 23)
ON = date(2026, 3, 24)  # a Tuesday, 60 days after the due date
#: 10:00 and 19:00 in Chino on ON.
BUSINESS = datetime(2026, 3, 24, 17, 0, tzinfo=UTC)
EVENING = datetime(2026, 3, 25, 2, 0, tzinfo=UTC)
OWED = 20_000


def owing(session: Session, n: int = 1) -> list[Account]:
    accounts = district(session, n)
    for account in accounts:
        posting.post(session, ledger.bill_transaction(account.id, BILLED, DUE, {"water": OWED}), account.id)
    return accounts


def person(session: Session, role: str) -> User:
    user = User(email=f"{role}@example.net", role=role)
    session.add(user)
    session.flush()
    return user


def pay(session: Session, account: Account, cents: int, now: datetime = BUSINESS) -> Payment:
    payment = Payment(
        account_id=account.id, amount_cents=cents, channel="online", method="card", received_on=ON, status="pending"
    )
    session.add(payment)
    session.flush()
    payments.apply(session, payment, "succeeded", ON, now)
    assert payment.status == "posted"
    return payment


def shut_off(session: Session, account: Account, crew: User) -> WorkOrder:
    order = field_orders.open_order(session, account, "shutoff", ON, OWED, ON, None, BUSINESS)
    done = field_orders.parse_completion(order, ON, "09:15", "1234.5", "L-77")
    field_orders.complete(session, crew, order, done, BUSINESS)
    return order


def fees(session: Session, account: Account) -> list[int]:
    return list(
        session.scalars(
            select(LedgerEntry.amount_cents)
            .join(LedgerTransaction, LedgerTransaction.id == LedgerEntry.transaction_id)
            .where(LedgerTransaction.kind == "fee", LedgerEntry.account_id == account.id)
            .order_by(LedgerEntry.id)
        )
    )


def test_an_order_is_opened_once_and_worked_by_field_staff(session: Session) -> None:
    (account,) = owing(session)
    step = CollectionAction(account_id=account.id, episode="bill:1", step="door_tag", status="posted", due_on=ON)
    session.add(step)
    session.flush()
    tag = field_orders.open_order(session, account, "door_tag", ON, OWED, ON + timedelta(days=2), step.id, BUSINESS)
    assert field_orders.open_order(session, account, "door_tag", ON, OWED, None, step.id, BUSINESS).id == tag.id
    assert step.work_order_id == tag.id
    assert (tag.premise_id, tag.amount_cents, tag.status) == (account.premise_id, OWED, "open")
    crew, clerk = person(session, "field"), person(session, "csr")
    # What field staff must say, each next to its field; nothing changes.
    with pytest.raises(FieldErrors) as bad:
        field_orders.parse_completion(tag, ON, "25:99", "-3", "")
    assert set(bad.value.errors) == {"time", "meter_read", "lock_or_tag"}
    shutoff = field_orders.open_order(session, account, "shutoff", ON, OWED, ON, None, BUSINESS)
    with pytest.raises(FieldErrors) as bad:
        field_orders.parse_completion(shutoff, ON, "10:00", "", "")
    assert set(bad.value.errors) == {"meter_read", "lock_or_tag"}
    done = field_orders.parse_completion(tag, ON, "10:05", "", "T-1001")
    with pytest.raises(NotAllowed):
        field_orders.complete(session, clerk, tag, done, BUSINESS)  # the office does not do field work
    field_orders.complete(session, crew, tag, done, BUSINESS)
    assert (tag.status, tag.lock_or_tag, tag.completed_by_id) == ("done", "T-1001", crew.id)
    assert tag.completed_at == datetime(2026, 3, 24, 17, 5, tzinfo=UTC)  # 10:05 in Chino
    with pytest.raises(FieldErrors):
        field_orders.complete(session, crew, tag, done, BUSINESS)  # done once
    # Not done needs a reason; "other" needs words.
    with pytest.raises(FieldErrors) as bad:
        field_orders.not_done(session, crew, shutoff, "other", " ", BUSINESS)
    assert set(bad.value.errors) == {"detail"}
    field_orders.not_done(session, crew, shutoff, "no_access", "dog in the yard", BUSINESS)
    assert shutoff.status == "not_done" and "dog in the yard" in (shutoff.not_done_reason or "")
    # The office cancels, with a reason; field staff cannot.
    again = field_orders.open_order(session, account, "shutoff", ON + timedelta(days=1), OWED, ON, None, BUSINESS)
    assert again.id != shutoff.id
    with pytest.raises(NotAllowed):
        field_orders.cancel(session, crew, again, "no", BUSINESS)
    with pytest.raises(FieldErrors):
        field_orders.cancel(session, clerk, again, "  ", BUSINESS)
    field_orders.cancel(session, clerk, again, "Opened by mistake", BUSINESS)
    assert (again.status, again.cancelled_reason) == ("cancelled", "Opened by mistake")
    actions = session.scalars(select(AuditEvent.action).where(AuditEvent.entity_type == "work_order")).all()
    assert sorted(actions) == sorted(
        ["work_order.opened"] * 3 + ["work_order.done", "work_order.not_done", "work_order.cancelled"]
    )


def test_a_payment_in_full_cancels_the_pending_shutoff(session: Session) -> None:
    partial, full, quiet = owing(session, 3)
    orders = {
        a.id: (
            field_orders.open_order(session, a, "door_tag", ON, OWED, ON, None, BUSINESS),
            field_orders.open_order(session, a, "shutoff", ON, OWED, ON, None, BUSINESS),
        )
        for a in (partial, full)
    }
    pay(session, partial, OWED - 1)
    assert [o.status for o in orders[partial.id]] == ["open", "open"]
    pay(session, full, OWED)
    assert [o.status for o in orders[full.id]] == ["cancelled", "cancelled"]
    assert orders[full.id][1].cancelled_reason == f"Paid in full on {ON.isoformat()}"
    assert session.scalar(select(func.count()).select_from(WorkOrder).where(WorkOrder.kind == "reconnect")) == 0
    assert fees(session, full) == []
    # A payment on an account not in collections costs the hook one query.
    statements: list[str] = []

    def count(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
        statements.append(statement)

    bind = session.get_bind()
    event.listen(bind, "before_cursor_execute", count)
    try:
        field_orders.after_payment(session, [quiet.id], ON, BUSINESS)
        assert len(statements) == 1 and "work_order" in statements[0]
        statements.clear()
        # Thousands of accounts at once (a lockbox file), one of them with an open order.
        field_orders.after_payment(session, [*range(1, 3000), quiet.id], ON, BUSINESS)
    finally:
        event.remove(bind, "before_cursor_execute", count)
    assert 1 <= len(statements) <= 3 and all("work_order" in s or "ledger" in s for s in statements)
    assert [o.status for o in orders[partial.id]] == ["open", "open"]


def test_paying_a_shut_off_account_queues_the_reconnection_and_its_fee(session: Session) -> None:
    day, evening, low_income = owing(session, 3)
    crew = person(session, "field")
    shutoffs = {a.id: shut_off(session, a, crew) for a in (day, evening, low_income)}
    session.add(ShutoffProtection(account_id=low_income.id, kind="low_income", starts_on=date(2026, 1, 1)))
    # The office's own fees, above the Act's low-income caps.
    policy = replace(
        ladder_policy.DEFAULT,
        ladders=(
            replace(
                ladder_policy.DEFAULT.ladders[0],
                reconnection_fee_cents=8_000,
                reconnection_after_hours_fee_cents=20_000,
            ),
        ),
    )
    session.add(DelinquencyPolicyVersion(version=1, effective_on=date(2026, 1, 1), body=policy.to_dict()))
    session.flush()
    pay(session, day, OWED, BUSINESS)
    pay(session, evening, OWED, EVENING)
    pay(session, low_income, OWED, EVENING)
    for account, after_hours, fee in ((day, False, 8_000), (evening, True, 20_000), (low_income, True, 15_000)):
        (recon,) = session.scalars(
            select(WorkOrder).where(WorkOrder.account_id == account.id, WorkOrder.kind == "reconnect")
        ).all()
        assert (recon.status, recon.due_on, recon.after_hours) == ("open", ON, after_hours)
        assert (recon.follows_id, recon.amount_cents) == (shutoffs[account.id].id, fee)
        assert fees(session, account) == [fee]
        assert session.get(LedgerTransaction, recon.fee_transaction_id).kind == "fee"  # type: ignore[union-attr]
    # In business hours too the low-income fee is capped; without the protection it is not.
    assert field_orders.reconnection_fee(session, low_income, ON, after_hours=False) == 5_000
    assert field_orders.reconnection_fee(session, evening, ON, after_hours=False) == 8_000
    # A second payment queues nothing more.
    pay(session, day, 8_000)
    assert session.scalar(select(func.count()).select_from(WorkOrder).where(WorkOrder.kind == "reconnect")) == 3
    # The reconnection done tells the customer.
    (recon,) = session.scalars(select(WorkOrder).where(WorkOrder.account_id == day.id, WorkOrder.kind == "reconnect"))
    issued = field_orders.complete(
        session, crew, recon, field_orders.parse_completion(recon, ON, "11:00", "1234.5", ""), BUSINESS
    )
    assert [(n.kind, n.account_id) for n in issued] == [("reconnected", day.id)]
    assert recon.meter_read == Decimal("1234.5")


def test_a_plan_made_cancels_the_shutoff_and_reconnects(session: Session) -> None:
    pending, off = owing(session, 2)
    crew = person(session, "field")
    order = field_orders.open_order(session, pending, "shutoff", ON, OWED, ON, None, BUSINESS)
    shut_off(session, off, crew)
    field_orders.after_promise(session, pending.id, ON, BUSINESS)
    field_orders.after_promise(session, off.id, ON, BUSINESS)
    assert order.status == "cancelled" and "Payment plan" in (order.cancelled_reason or "")
    (recon,) = session.scalars(select(WorkOrder).where(WorkOrder.account_id == off.id, WorkOrder.kind == "reconnect"))
    assert recon.amount_cents == 5_000 and not recon.after_hours
    # The office may also queue one by hand, but not twice for one shutoff.
    clerk = person(session, "csr")
    with pytest.raises(FieldErrors):
        field_orders.queue_reconnection(session, clerk, off, ON, BUSINESS)


def test_after_hours_is_outside_business_hours_on_business_days() -> None:
    class NoClosures:
        def scalars(self, _query, _params=None):  # type: ignore[no-untyped-def]
            return self

        def all(self):  # type: ignore[no-untyped-def]
            return []

    s = NoClosures()
    assert not field_orders.after_hours_at(s, BUSINESS)  # type: ignore[arg-type]
    assert field_orders.after_hours_at(s, EVENING)  # type: ignore[arg-type]
    assert field_orders.after_hours_at(s, datetime(2026, 3, 28, 17, 0, tzinfo=UTC))  # type: ignore[arg-type]  # Saturday
    assert field_orders.after_hours_at(s, datetime(2026, 11, 26, 18, 0, tzinfo=UTC))  # type: ignore[arg-type]  # Thanksgiving
