"""Payment plans and extensions (``billing_core/plans.py``, ``services/plans.py``) on both
databases: exact installments, change, cancel, installments tracked against real payments
(``payments.post_now``, and many at once through ``post_received``), a returned payment,
breaking after the grace days, completion, extensions, kept(), an approved arrangement
request making its plan, and refusals."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from portal.billing_core import arrangements, ledger, payments, plans, posting
from portal.billing_core.errors import FieldErrors, NotAllowed
from portal.billing_core.ladder_policy import DEFAULT
from portal.billing_core.models import (
    Account,
    ArrangementRequest,
    AuditEvent,
    Payment,
    PaymentPlan,
    PaymentPlanInstallment,
    User,
)
from portal.services import arrangements as arrangement_service
from portal.services import plans as service

from .factories import district

D = date(2026, 3, 2)  # a Monday
NOW = datetime(2026, 3, 2, 17, 0, tzinfo=UTC)
OWED = 100_001  # $1,000.01: odd cents


def owing(session: Session, cents: int = OWED, accounts: int = 1) -> list[Account]:
    """Fresh accounts of one district (made once per database), each owing ``cents``."""
    pool: list[Account] = session.info.setdefault("pool", [])
    if not pool:
        pool += district(session, 16)
    rows = [pool.pop(0) for _ in range(accounts)]
    for account in rows:
        posting.post(
            session,
            ledger.bill_transaction(account.id, D - timedelta(days=70), D - timedelta(days=50), {"water": cents}),
            account.id,
        )
    return rows


def staff(session: Session, role: str = "csr", email: str | None = None) -> User:
    email = email or f"{role}@example.net"
    found = session.scalar(select(User).where(User.email == email))
    if found is not None:
        return found
    user = User(email=email, role=role)
    session.add(user)
    session.flush()
    return user


def pay(session: Session, account: Account, cents: int, on: date) -> Payment:
    """A counter payment posted now, as every channel posts (``payments.post_now``)."""
    payment = Payment(
        account_id=account.id, amount_cents=cents, channel="counter", method="cash", received_on=on, status="pending"
    )
    session.add(payment)
    session.flush()
    payments.post_now(session, payment, on, NOW, memo="Counter payment")
    return payment


def plan_form(**over: str) -> dict[str, str]:
    return {
        "amount": "1000.01",
        "down_payment": "100.00",
        "installments": "4",
        "first_due": (D + timedelta(days=14)).isoformat(),
        "note": "Lost hours at work",
    } | over


def _a_plan_is_exact_to_the_cent_with_the_odd_cents_first(session: Session) -> None:
    (account,) = owing(session)
    csr = staff(session)
    plan = service.create(session, csr, account.number, "plan", plan_form(), D, NOW)
    rows = plan.installments
    assert [r.seq for r in rows] == [0, 1, 2, 3, 4]
    # $900.01 over 4: 225.01 + 225.00 * 3; the down payment is installment 0, due today.
    assert [r.amount_cents for r in rows] == [10_000, 22_501, 22_500, 22_500, 22_500]
    assert sum(r.amount_cents for r in rows) == plan.total_cents == OWED
    assert rows[0].due_on == D and [r.due_on for r in rows[1:]] == [
        arrangements.add_months(D + timedelta(days=14), i) for i in range(4)
    ]
    assert (plan.kind, plan.status, plan.grace_days, plan.starts_on) == ("plan", "active", DEFAULT.plan_grace_days, D)
    assert (
        session.scalar(
            select(func.count()).where(AuditEvent.action == "plan.created", AuditEvent.entity_id == str(plan.id))
        )
        == 1
    )
    # Any amount, any count: the installments add up.
    for total, down, months in [(1, 0, 1), (99_999, 1, 7), (12_345_67, 0, 12), (1_000_00, 999_99, 1)]:
        sched = arrangements.schedule(total, down, months, D)
        assert sum(c for _d, c in sched) == total - down and max(c for _d, c in sched) - min(c for _d, c in sched) <= 1


def _bad_input_is_named_by_field_and_nothing_is_written(session: Session) -> None:
    (account,) = owing(session)
    csr = staff(session)
    before = session.scalar(select(func.count()).select_from(PaymentPlanInstallment))
    cases = [
        ({"amount": "ten"}, "amount"),
        ({"amount": "0"}, "amount"),
        ({"amount": "1000.02"}, "amount"),  # more than owed
        ({"down_payment": "1000.01"}, "down_payment"),
        ({"down_payment": "1.234"}, "down_payment"),
        ({"installments": "1"}, "installments"),
        ({"installments": "13"}, "installments"),
        ({"installments": "٣"}, "installments"),
        ({"installments": "12", "amount": "100.00", "down_payment": ""}, "installments"),  # under $10 each
        ({"first_due": "2026-02-30"}, "first_due"),
        ({"first_due": (D - timedelta(days=1)).isoformat()}, "first_due"),
        ({"first_due": (D + timedelta(days=31)).isoformat()}, "first_due"),
        ({"note": "x" * 1001}, "note"),
    ]
    for over, field in cases:
        with pytest.raises(FieldErrors) as refused:
            service.create(session, csr, account.number, "plan", plan_form(**over), D, NOW)
        assert field in refused.value.errors, (over, refused.value.errors)
    for over, field in [
        ({"promise_on": (D + timedelta(days=DEFAULT.extension_max_days + 1)).isoformat()}, "promise_on"),
        ({"promise_on": D.isoformat()}, "promise_on"),
        ({"promise_on": "soon"}, "promise_on"),
        ({"amount": ""}, "amount"),
    ]:
        with pytest.raises(FieldErrors) as refused:
            service.create(
                session,
                csr,
                account.number,
                "extension",
                {"amount": "50.00", "promise_on": "2026-03-20"} | over,
                D,
                NOW,
            )
        assert field in refused.value.errors
    with pytest.raises(FieldErrors) as refused:
        service.create(session, csr, account.number, "loan", {}, D, NOW)
    assert "kind" in refused.value.errors
    assert session.scalar(select(func.count()).where(PaymentPlan.account_id == account.id)) == 0
    assert session.scalar(select(func.count()).select_from(PaymentPlanInstallment)) == before


def _permissions_are_checked(session: Session) -> None:
    (account,) = owing(session)
    for role in ("cashier", "field", "customer"):
        with pytest.raises(NotAllowed):
            service.create(session, staff(session, role), account.number, "plan", plan_form(), D, NOW)
    plan = service.create(session, staff(session, "specialist"), account.number, "plan", plan_form(), D, NOW)
    with pytest.raises(NotAllowed):
        service.cancel(session, staff(session, "cashier", "c2@example.net"), account.number, plan.id, "no", D)
    assert plan.status == "active"


def _installments_are_tracked_against_real_payments_in_order_and_a_return_unpays(session: Session) -> None:
    (account,) = owing(session)
    plan = service.create(session, staff(session), account.number, "plan", plan_form(), D, NOW)
    pay(session, account, 5_000, D)
    rows = plan.installments
    assert (rows[0].paid_cents, rows[0].status) == (5_000, "due")
    second = pay(session, account, 15_001, D + timedelta(days=3))  # 100.00 down + 100.01 toward #1
    assert (rows[0].status, rows[0].paid_on, rows[0].paid_cents) == ("paid", D + timedelta(days=3), 10_000)
    assert (rows[1].paid_cents, rows[1].status) == (10_001, "due")
    pay(session, account, 12_500, D + timedelta(days=10))
    assert (rows[1].status, rows[1].paid_on, rows[2].paid_cents) == ("paid", D + timedelta(days=10), 0)
    # The bank returns the second payment: what it paid is owed again (the daily review counts again).
    payments.return_payment(session, second, D + timedelta(days=12), "NSF", code="NSF", now=NOW)
    plans.review(session, D + timedelta(days=12), NOW)
    assert (rows[0].status, rows[0].paid_cents, rows[0].paid_on) == ("paid", 10_000, D + timedelta(days=3))
    assert (rows[1].status, rows[1].paid_cents, rows[1].paid_on) == ("due", 7_500, None)


def _a_payment_before_the_plan_does_not_count(session: Session) -> None:
    (account,) = owing(session)
    pay(session, account, 3_000, D - timedelta(days=1))
    plan = service.create(
        session, staff(session), account.number, "plan", plan_form(amount="970.01", down_payment=""), D, NOW
    )
    assert all(r.paid_cents == 0 for r in plan.installments)


def _a_lockbox_file_of_payments_costs_one_query_when_no_account_has_a_plan(session: Session) -> None:
    rows = owing(session, 2_000, accounts=3)
    statements: list[str] = []

    def seen(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
        statements.append(statement)

    event.listen(session.get_bind(), "before_cursor_execute", seen)
    try:
        plans.after_payment(session, [a.id for a in rows] * 5000, D, NOW)
    finally:
        event.remove(session.get_bind(), "before_cursor_execute", seen)
    assert len([s for s in statements if "payment_plan" in s]) == 1
    # With a plan on one account, post_received (every channel) counts each payment toward it.
    plan = service.create(
        session, staff(session), rows[1].number, "extension", {"amount": "20.00", "promise_on": "2026-03-20"}, D, NOW
    )
    payments.post_received(
        session,
        [payments.Received(a.id, 2_000, "lockbox", "Lockbox") for a in rows],
        D + timedelta(days=1),
        NOW,
    )
    assert (plan.installments[0].status, plan.status) == ("paid", "completed")
    assert plan.end_reason == "Paid in full."


def _a_missed_installment_breaks_the_plan_after_the_grace_days(session: Session) -> None:
    kept_account, broken_account = owing(session, accounts=2)
    csr = staff(session)
    kept_plan = service.create(session, csr, kept_account.number, "plan", plan_form(down_payment=""), D, NOW)
    broken_plan = service.create(session, csr, broken_account.number, "plan", plan_form(down_payment=""), D, NOW)
    first_due = broken_plan.installments[0].due_on
    pay(session, kept_account, 25_001, first_due + timedelta(days=DEFAULT.plan_grace_days))  # on the last day
    ids = [kept_account.id, broken_account.id]
    last_day = first_due + timedelta(days=DEFAULT.plan_grace_days)
    assert plans.review(session, last_day, NOW) == []
    assert plans.kept(session, ids, last_day) == set(ids)
    assert plans.kept(session, ids, last_day + timedelta(days=1)) == {kept_account.id}
    assert plans.review(session, last_day + timedelta(days=1), NOW) == [broken_account.id]
    assert (broken_plan.status, broken_plan.ended_on) == ("broken", last_day + timedelta(days=1))
    assert "Installment 1" in (broken_plan.end_reason or "") and "$250.01 unpaid" in (broken_plan.end_reason or "")
    assert broken_plan.installments[0].status == "missed"
    assert kept_plan.status == "active"
    audit = session.scalar(
        select(AuditEvent).where(AuditEvent.action == "plan.broken", AuditEvent.entity_id == str(broken_plan.id))
    )
    assert audit is not None and audit.actor_label == plans.SYSTEM
    # Once broken, the run sees no kept plan: the gate's facts agree.
    from portal.billing_core import collection_facts

    facts = collection_facts.facts_for_many(session, ids, last_day + timedelta(days=1))
    assert (facts[kept_account.id].kept_plan, facts[broken_account.id].kept_plan) == (True, False)
    # A second review changes nothing.
    assert plans.review(session, last_day + timedelta(days=2), NOW) == []


def _a_plan_paid_in_full_completes_and_a_new_one_may_follow(session: Session) -> None:
    (account,) = owing(session)
    csr = staff(session)
    plan = service.create(
        session, csr, account.number, "plan", plan_form(amount="200.00", down_payment="", installments="2"), D, NOW
    )
    pay(session, account, 20_000, D + timedelta(days=1))
    assert (plan.status, plan.ended_on) == ("completed", D + timedelta(days=1))
    assert plans.kept(session, [account.id], D + timedelta(days=2)) == set()
    again = service.create(
        session,
        csr,
        account.number,
        "extension",
        {"amount": "100.00", "promise_on": "2026-03-10"},
        D + timedelta(days=2),
        NOW,
    )
    assert again.status == "active"


def _an_extension_breaks_when_its_date_passes_unpaid(session: Session) -> None:
    (account,) = owing(session)
    ext = service.create(
        session, staff(session), account.number, "extension", {"amount": "300.00", "promise_on": "2026-03-16"}, D, NOW
    )
    assert (ext.kind, ext.grace_days, len(ext.installments)) == ("extension", 0, 1)
    assert ext.installments[0].due_on == date(2026, 3, 16)
    pay(session, account, 29_999, date(2026, 3, 16))
    assert account.id not in plans.review(session, date(2026, 3, 16), NOW)
    assert plans.next_installment(session, account.id, date(2026, 3, 16)) == plans.NextInstallment(
        "extension", date(2026, 3, 16), 1, date(2026, 3, 16)
    )
    assert account.id in plans.review(session, date(2026, 3, 17), NOW)
    assert ext.status == "broken" and "The promised payment" in (ext.end_reason or "")
    assert plans.next_installment(session, account.id, date(2026, 3, 17)) is None


def _change_and_cancel(session: Session) -> None:
    (account,) = owing(session)
    csr = staff(session)
    plan = service.create(session, csr, account.number, "plan", plan_form(), D, NOW)
    pay(session, account, 10_000, D)
    with pytest.raises(FieldErrors) as refused:  # a change must say why
        service.change(session, csr, account.number, plan.id, plan_form(note="", installments="6"), D, NOW)
    assert "note" in refused.value.errors and len(plan.installments) == 5
    service.change(
        session,
        csr,
        account.number,
        plan.id,
        plan_form(installments="6", note="Asked for longer"),
        D + timedelta(days=1),
        NOW,
    )
    session.refresh(plan)
    assert [r.amount_cents for r in plan.installments] == [10_000, 15_001, 15_000, 15_000, 15_000, 15_000, 15_000]
    assert plan.installments[0].status == "paid"  # what was paid since the start still counts
    changed = session.scalar(select(AuditEvent).where(AuditEvent.action == "plan.changed"))
    assert changed is not None and len(changed.before["installments"]) == 5 and len(changed.after["installments"]) == 7
    with pytest.raises(FieldErrors) as refused:
        service.create(
            session, csr, account.number, "extension", {"amount": "5.00", "promise_on": "2026-03-10"}, D, NOW
        )
    assert "kind" in refused.value.errors  # one active plan per account
    with pytest.raises(FieldErrors) as refused:
        service.cancel(session, csr, account.number, plan.id, " ", D)
    assert "reason" in refused.value.errors and plan.status == "active"
    service.cancel(session, csr, account.number, plan.id, "Customer moved out", D + timedelta(days=2))
    assert (plan.status, plan.ended_on, plan.end_reason) == ("cancelled", D + timedelta(days=2), "Customer moved out")
    with pytest.raises(FieldErrors):
        service.cancel(session, csr, account.number, plan.id, "again", D)
    with pytest.raises(FieldErrors):
        service.change(session, csr, account.number, plan.id, plan_form(note="x"), D, NOW)
    actions = set(
        session.scalars(
            select(AuditEvent.action).where(
                AuditEvent.entity_type == "payment_plan", AuditEvent.entity_id == str(plan.id)
            )
        )
    )
    assert actions == {"plan.created", "plan.changed", "plan.cancelled"}


def _an_approved_arrangement_request_makes_the_payment_plan(session: Session) -> None:
    (account,) = owing(session)
    resident = User(email=f"res-{account.id}@example.net", role="customer")
    supervisor = staff(session, "supervisor")
    session.add(resident)
    session.flush()
    proposal = arrangements.check(OWED, "3", "", (D + timedelta(days=7)).isoformat(), "", D)
    request = arrangements.submit(session, account, resident, proposal, NOW, None)
    made: list[int] = []
    import portal.billing_core.field_orders as field_orders

    original = field_orders.after_promise
    field_orders.after_promise = lambda s, account_id, as_of, now: made.append(account_id)  # type: ignore[assignment]
    try:
        arrangement_service.decide(session, supervisor, request.id, "approve", "", NOW, D)
    finally:
        field_orders.after_promise = original  # type: ignore[assignment]
    plan = plans.active_for(session, account.id)
    assert plan is not None and plan.arrangement_request_id == request.id and plan.created_by_id == supervisor.id
    assert [r.amount_cents for r in plan.installments] == [33_334, 33_334, 33_333]
    assert [r.due_on for r in plan.installments] == [d for d, _c in proposal.plan]
    assert made == [account.id]  # collection_hooks.after_promise ran
    assert session.get(ArrangementRequest, request.id).status == "approved"  # type: ignore[union-attr]
    assert plans.kept(session, [account.id], D) == {account.id}
    assert arrangements.open_for(session, account.id) is not None  # the customer sees their plan
    # Once the plan ends, the approved request is history: the customer may ask again.
    service.cancel(session, supervisor, account.number, plan.id, "Moved out", D + timedelta(days=1))
    assert arrangements.open_for(session, account.id) is None
    again = arrangements.submit(session, account, resident, proposal, NOW, None)
    assert arrangements.open_for(session, account.id) == again


def _approving_a_request_when_a_plan_is_active_changes_nothing(session: Session) -> None:
    (account,) = owing(session)
    resident = User(email=f"res-{account.id}@example.net", role="customer")
    session.add(resident)
    supervisor = staff(session, "supervisor")
    proposal = arrangements.check(OWED, "3", "", (D + timedelta(days=7)).isoformat(), "", D)
    request = arrangements.submit(session, account, resident, proposal, NOW, None)
    service.create(
        session, staff(session), account.number, "extension", {"amount": "50.00", "promise_on": "2026-03-09"}, D, NOW
    )
    from portal.billing_core.errors import InvalidInput

    with pytest.raises(InvalidInput, match="already has an active"):
        arrangement_service.decide(session, supervisor, request.id, "approve", "", NOW, D)
    assert request.status == "submitted"


# --- One database per group: each part uses accounts of its own ------------------------


def test_making_a_plan_exact_checked_and_permitted(session: Session) -> None:
    _a_plan_is_exact_to_the_cent_with_the_odd_cents_first(session)
    _bad_input_is_named_by_field_and_nothing_is_written(session)
    _permissions_are_checked(session)
    _change_and_cancel(session)


def test_installments_are_tracked_against_payments(session: Session) -> None:
    _installments_are_tracked_against_real_payments_in_order_and_a_return_unpays(session)
    _a_payment_before_the_plan_does_not_count(session)
    _a_lockbox_file_of_payments_costs_one_query_when_no_account_has_a_plan(session)


def test_the_daily_review_breaks_and_completes(session: Session) -> None:
    _a_missed_installment_breaks_the_plan_after_the_grace_days(session)
    _a_plan_paid_in_full_completes_and_a_new_one_may_follow(session)
    _an_extension_breaks_when_its_date_passes_unpaid(session)


def test_arrangement_requests_approved_make_the_plan(session: Session) -> None:
    _an_approved_arrangement_request_makes_the_payment_plan(session)
    _approving_a_request_when_a_plan_is_active_changes_nothing(session)
