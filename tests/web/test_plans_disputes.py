"""The staff's payment plans and disputes pages and the resident's side (the next
installment on the dashboard, disputing a bill from its page), on the shared demo district:
each test removes the plans and disputes it made, so other tests read the demo unchanged."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta

import pytest
from sqlalchemy import Engine, delete, func, select
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from portal.billing_core.models import Account, Bill, Dispute, PaymentPlan, PaymentPlanInstallment, ServiceCase

from .conftest import csrf_from, linked_numbers, other_account, sign_in

TODAY = date(2026, 11, 22)


@pytest.fixture
def tidy(demo_engine: Engine) -> Iterator[None]:
    yield
    number = _owing(demo_engine)
    with Session(demo_engine) as s, s.begin():
        account_id = s.scalar(select(Account.id).where(Account.number == number))
        plan_ids = select(PaymentPlan.id).where(PaymentPlan.account_id == account_id)
        s.execute(delete(PaymentPlanInstallment).where(PaymentPlanInstallment.plan_id.in_(plan_ids)))
        s.execute(delete(PaymentPlan).where(PaymentPlan.account_id == account_id))
        s.execute(delete(Dispute).where(Dispute.account_id == account_id))
        # A resident's dispute of a bill is a case (issue 16): its case goes too.
        s.execute(delete(ServiceCase).where(ServiceCase.account_id == account_id))


@contextmanager
def spanish(client: TestClient, url: str) -> Iterator[None]:
    """The signed-in resident reads in Spanish, then back to English for the other tests."""
    client.post("/language", data={"csrf_token": csrf_from(client.get(url).text), "lang": "es", "next": url})
    try:
        yield
    finally:
        client.post("/language", data={"csrf_token": csrf_from(client.get(url).text), "lang": "en", "next": url})


def _owing(engine: Engine) -> str:
    """The past-due resident's account (it owes money)."""
    return linked_numbers(engine, "pastdue@demo.example")[0]


def _count(engine: Engine, model: type, number: str) -> int:
    with Session(engine) as s:
        return int(
            s.scalar(
                select(func.count())
                .select_from(model)
                .join(Account, Account.id == model.account_id)
                .where(Account.number == number)  # type: ignore[attr-defined]
            )
            or 0
        )


def test_staff_make_change_and_cancel_a_plan_and_bad_input_is_named(
    client: TestClient, demo_engine: Engine, tidy: None
) -> None:
    number = _owing(demo_engine)
    sign_in(client, "csr@demo.example")
    fragment = client.get(f"/staff/accounts/{number}/plans", headers={"HX-Request": "true"})
    assert (
        fragment.status_code == 200 and fragment.text.lstrip().startswith("<section") and "<html" not in fragment.text
    )
    page = client.get(f"/staff/accounts/{number}/plans")
    assert page.status_code == 200 and "Make a payment plan" in page.text and "Give an extension" in page.text
    token = csrf_from(page.text)
    first = (TODAY + timedelta(days=10)).isoformat()
    bad = client.post(
        f"/staff/accounts/{number}/plans",
        data={"kind": "plan", "amount": "99999.00", "installments": "40", "first_due": "tomorrow", "csrf_token": token},
    )
    assert bad.status_code == 400
    for field in ("plan-amount-error", "plan-installments-error", "plan-first_due-error"):
        assert f'id="{field}"' in bad.text
    assert _count(demo_engine, PaymentPlan, number) == 0
    made = client.post(
        f"/staff/accounts/{number}/plans",
        data={
            "kind": "plan",
            "amount": "20.01",
            "installments": "2",
            "first_due": first,
            "note": "",
            "csrf_token": token,
        },
        follow_redirects=True,
    )
    assert made.status_code == 200 and "made: $20.01" in made.text
    assert "$10.01" in made.text and "$10.00" in made.text  # the odd cent on the first installment
    with Session(demo_engine) as s:
        plan = s.scalar(select(PaymentPlan).join(Account).where(Account.number == number))
        assert plan is not None and plan.status == "active"
        plan_id = plan.id
    # Change: the reason is required, then the new terms replace the installments.
    refused = client.post(
        f"/staff/accounts/{number}/plans/{plan_id}/change",
        data={"amount": "20.01", "installments": "2", "first_due": first, "note": "", "csrf_token": token},
    )
    assert refused.status_code == 400 and 'id="change-note-error"' in refused.text
    changed = client.post(
        f"/staff/accounts/{number}/plans/{plan_id}/change",
        data={"amount": "20.00", "installments": "2", "first_due": first, "note": "Asked", "csrf_token": token},
        follow_redirects=True,
    )
    assert changed.status_code == 200 and f"Plan {plan_id} changed." in changed.text
    # Listed among the active plans.
    listing = client.get("/staff/plans?status=active")
    assert listing.status_code == 200 and number in listing.text
    assert number not in client.get("/staff/plans?status=broken").text
    no_reason = client.post(
        f"/staff/accounts/{number}/plans/{plan_id}/cancel", data={"reason": "", "csrf_token": token}
    )
    assert no_reason.status_code == 400 and 'id="cancel-reason-error"' in no_reason.text
    cancelled = client.post(
        f"/staff/accounts/{number}/plans/{plan_id}/cancel",
        data={"reason": "Entered in error", "csrf_token": token},
        follow_redirects=True,
    )
    assert "cancelled" in cancelled.text and "Entered in error" in cancelled.text
    assert number in client.get("/staff/plans?status=cancelled").text


def test_a_cashier_may_read_plans_but_not_make_one(client: TestClient, demo_engine: Engine, tidy: None) -> None:
    number = _owing(demo_engine)
    sign_in(client, "cashier@demo.example")
    page = client.get(f"/staff/accounts/{number}/plans")
    assert page.status_code == 200 and "Make a payment plan" not in page.text
    refused = client.post(
        f"/staff/accounts/{number}/plans",
        data={"kind": "extension", "amount": "5.00", "promise_on": "2026-11-30", "csrf_token": csrf_from(page.text)},
    )
    assert refused.status_code == 403
    assert _count(demo_engine, PaymentPlan, number) == 0


def test_the_resident_sees_the_next_installment_in_english_and_spanish(
    client: TestClient, demo_engine: Engine, tidy: None
) -> None:
    number = _owing(demo_engine)
    sign_in(client, "csr@demo.example")
    token = csrf_from(client.get(f"/staff/accounts/{number}/plans").text)
    client.post(
        f"/staff/accounts/{number}/plans",
        data={"kind": "extension", "amount": "12.34", "promise_on": "2026-12-04", "csrf_token": token},
    )
    client.cookies.clear()
    sign_in(client, "pastdue@demo.example")
    page = client.get(f"/my/accounts/{number}")
    assert "Your extension: pay $12.34 by December 4, 2026." in page.text
    with spanish(client, f"/my/accounts/{number}"):
        page = client.get(f"/my/accounts/{number}")
        assert "Su prórroga: pague" in page.text and "4 de diciembre de 2026" in page.text


def _a_bill(engine: Engine, number: str) -> tuple[str, int]:
    with Session(engine) as s:
        bill = s.scalar(
            select(Bill).join(Account).where(Account.number == number, Bill.status == "posted").order_by(Bill.id.desc())
        )
        assert bill is not None and bill.number
        return bill.number, bill.total_due_cents


def test_the_resident_disputes_their_own_bill_only(client: TestClient, demo_engine: Engine, tidy: None) -> None:
    number = _owing(demo_engine)
    bill, total = _a_bill(demo_engine, number)
    sign_in(client, "pastdue@demo.example")
    page = client.get(f"/my/accounts/{number}/bills/{bill}")
    assert page.status_code == 200 and "Dispute this bill" in page.text
    token = csrf_from(page.text)
    url = f"/my/accounts/{number}/bills/{bill}/dispute"
    too_much = client.post(url, data={"amount": f"{total / 100 + 1:.2f}", "reason": "", "csrf_token": token})
    assert too_much.status_code == 400
    assert 'id="dispute-amount-error"' in too_much.text and 'id="dispute-reason-error"' in too_much.text
    assert _count(demo_engine, Dispute, number) == 0
    done = client.post(
        url, data={"amount": "", "reason": "The read is wrong", "csrf_token": token}, follow_redirects=True
    )
    assert done.status_code == 200 and "We received your dispute" in done.text and "we are looking into it" in done.text
    with Session(demo_engine) as s:
        dispute = s.scalar(select(Dispute).join(Account).where(Account.number == number))
        assert dispute is not None and (dispute.amount_cents, dispute.opened_via, dispute.status) == (
            total,
            "resident",
            "open",
        )
    again = client.post(url, data={"amount": "1.00", "reason": "Again", "csrf_token": token})
    assert again.status_code == 400 and "already disputed" in again.text
    # Someone else's account, or a bill that is not on this account: no such page.
    stranger = other_account(demo_engine, "pastdue@demo.example")
    other_bill, _t = _a_bill(demo_engine, stranger)
    assert (
        client.post(
            f"/my/accounts/{stranger}/bills/{other_bill}/dispute", data={"reason": "x", "csrf_token": token}
        ).status_code
        == 404
    )
    assert (
        client.post(
            f"/my/accounts/{number}/bills/{other_bill}/dispute", data={"reason": "x", "csrf_token": token}
        ).status_code
        == 404
    )
    assert _count(demo_engine, Dispute, stranger) == 0
    # In Spanish.
    with spanish(client, url):
        assert "lo estamos revisando" in client.get(url).text


def test_staff_open_and_a_supervisor_decides_a_dispute(client: TestClient, demo_engine: Engine, tidy: None) -> None:
    number = _owing(demo_engine)
    bill, _total = _a_bill(demo_engine, number)
    sign_in(client, "csr@demo.example")
    page = client.get(f"/staff/accounts/{number}/disputes")
    assert page.status_code == 200 and "Open a dispute" in page.text
    token = csrf_from(page.text)
    bad = client.post(
        f"/staff/accounts/{number}/disputes",
        data={"kind": "dispute", "bill": "", "amount": "x", "reason": "", "csrf_token": token},
    )
    assert bad.status_code == 400
    for field in ("open-bill-error", "open-amount-error", "open-reason-error"):
        assert f'id="{field}"' in bad.text
    made = client.post(
        f"/staff/accounts/{number}/disputes",
        data={"kind": "dispute", "bill": bill, "amount": "5.00", "reason": "Meter misread", "csrf_token": token},
        follow_redirects=True,
    )
    assert made.status_code == 200 and "opened" in made.text
    with Session(demo_engine) as s:
        dispute = s.scalar(select(Dispute).join(Account).where(Account.number == number))
        assert dispute is not None
        dispute_id = dispute.id
    # A CSR may not decide.
    assert "Decide bill dispute" not in made.text
    refused = client.post(
        f"/staff/disputes/{dispute_id}", data={"decision": "upheld", "note": "ok", "csrf_token": token}
    )
    assert refused.status_code == 403
    client.cookies.clear()
    sign_in(client, "supervisor@demo.example")
    register = client.get("/staff/disputes?status=open&via=staff")
    assert register.status_code == 200 and "Meter misread" in register.text
    token = csrf_from(register.text)
    no_words = client.post(
        f"/staff/disputes/{dispute_id}",
        data={"decision": "upheld", "note": "", "back": "/staff/disputes", "csrf_token": token},
    )
    assert no_words.status_code == 400 and f'id="decide-{dispute_id}-note-error"' in no_words.text
    decided = client.post(
        f"/staff/disputes/{dispute_id}",
        data={
            "decision": "upheld",
            "note": "Misread confirmed",
            "back": f"/staff/accounts/{number}/disputes",
            "csrf_token": token,
        },
        follow_redirects=True,
    )
    assert decided.status_code == 200 and "upheld" in decided.text
    assert f"/staff/accounts/{number}/adjustments" in decided.text  # the correction is an adjustment, by hand
    with Session(demo_engine) as s:
        assert s.get(Dispute, dispute_id).status == "upheld"  # type: ignore[union-attr]
    assert "Meter misread" not in client.get("/staff/disputes?status=open").text
