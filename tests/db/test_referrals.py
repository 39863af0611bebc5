"""Final-account collections on SQLite and PostgreSQL: referrals to an agency and to the tax
roll, maker-checker, export once with the file's sha256, recall, and recoveries (a payment
received posts once; a payment already taken is linked, never counted twice)."""

from __future__ import annotations

import csv
import hashlib
import io
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from portal.billing_core import ledger, ledger_check, payments, posting, referrals
from portal.billing_core.errors import FieldErrors, InvalidInput, NotAllowed
from portal.billing_core.models import (
    Account,
    AuditEvent,
    CollectionRecovery,
    CollectionReferral,
    Customer,
    Payment,
    Premise,
)
from portal.services import referrals as service
from portal.services import write_offs as write_off_service

from .adjust_helpers import staff
from .factories import district

NOW = datetime(2026, 11, 20, 17, tzinfo=UTC)
TODAY = NOW.date()


def final_account(session: Session, water: int = 8_000, sewer: int = 3_000, sanitation: int = 2_500) -> Account:
    (account,) = district(session, 1)
    posting.post(
        session,
        ledger.bill_transaction(
            account.id, date(2026, 8, 1), date(2026, 8, 22), {"water": water, "sewer": sewer, "sanitation": sanitation}
        ),
        account.id,
        posted_at=NOW,
    )
    account.status, account.closed_on = "final", date(2026, 7, 31)
    premise = session.get(Premise, account.premise_id)
    assert premise is not None
    premise.parcel_number = "1011-221-05"
    customer = session.get(Customer, account.customer_id)
    assert customer is not None
    customer.mailing_line1, customer.mailing_city, customer.mailing_state, customer.mailing_zip = (
        "9 Elm Rd",
        "Ontario",
        "CA",
        "91761",
    )
    session.flush()
    return account


def pay(session: Session, account: Account, cents: int, key: str) -> Payment:
    p = Payment(
        account_id=account.id,
        amount_cents=cents,
        channel="counter",
        method="cash",
        received_on=TODAY,
        status="pending",
        idempotency_key=key,
    )
    session.add(p)
    session.flush()
    payments.post_now(session, p, TODAY, NOW, memo="counter")
    return p


def test_agency_referral_maker_checker_export_once_with_its_sha(session: Session, tmp_path: Path) -> None:
    account = final_account(session)
    people = staff(session)
    (item,) = service.prepare(session, people["specialist"], account.number, {"kind": "agency"}, NOW)
    assert (item.kind, item.amount_cents, item.status, item.prepared_by_id) == (
        "agency",
        13_500,
        "proposed",
        people["specialist"].id,
    )
    # Nothing more to refer while it is out.
    with pytest.raises(FieldErrors) as err:
        service.prepare(session, people["specialist"], account.number, {"kind": "agency"}, NOW)
    assert "amount" in err.value.errors
    with pytest.raises(NotAllowed):
        service.decide(session, people["specialist"], item.id, "approve", "", NOW)
    with pytest.raises(NotAllowed):
        service.decide(session, people["csr"], item.id, "approve", "", NOW)
    # Approve nothing yet: an export now has nothing in it.
    assert service.export(session, people["supervisor"], "agency", str(tmp_path), NOW).referral_ids == []
    service.decide(session, people["supervisor"], item.id, "approve", "", NOW)
    assert (item.status, item.decided_by_id) == ("approved", people["supervisor"].id)
    with pytest.raises(NotAllowed):
        service.export(session, people["specialist"], "agency", str(tmp_path), NOW)
    done = service.export(session, people["admin"], "agency", str(tmp_path), NOW)
    assert done.referral_ids == [item.id]
    assert item.status == "exported" and item.export_ref == hashlib.sha256(done.content).hexdigest() == done.sha256
    rows = list(csv.reader(io.StringIO(done.content.decode())))
    assert rows[0] == referrals.AGENCY_HEADER
    assert rows[1] == [
        str(item.id),
        account.number,
        "Customer 1",
        "9 Elm Rd",
        "Ontario",
        "CA",
        "91761",
        "",
        "135.00",
        "2026-08-01",
        "2026-08-22",
        "2026-07-31",
        "",
    ]
    # Exported once: the next export is empty; the file is kept by its hash.
    assert service.export(session, people["admin"], "agency", str(tmp_path), NOW).referral_ids == []
    kind, again = service.export_file(session, people["supervisor"], done.sha256, str(tmp_path))
    assert (kind, again) == ("agency", done.content)
    assert session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action.like("referral.%"))) == 4
    assert posting.account_balance(session, account.id) == 13_500  # a referral moves no money
    assert ledger_check.run(session) == []


def test_tax_roll_is_one_referral_per_service_by_parcel(session: Session, tmp_path: Path) -> None:
    account = final_account(session)
    people = staff(session)
    items = service.prepare(session, people["specialist"], account.number, {"kind": "tax_roll"}, NOW)
    assert [(i.service_type, i.amount_cents, i.parcel_number) for i in items] == [
        ("sewer", 3_000, "1011-221-05"),
        ("sanitation", 2_500, "1011-221-05"),
    ]
    # The water balance may still go to an agency; the tax-roll part is not referred twice.
    with pytest.raises(FieldErrors) as err:
        service.prepare(session, people["specialist"], account.number, {"kind": "tax_roll"}, NOW)
    assert "kind" in err.value.errors
    (agency,) = service.prepare(session, people["specialist"], account.number, {"kind": "agency"}, NOW)
    assert agency.amount_cents == 8_000
    for i in items:
        service.decide(session, people["supervisor"], i.id, "approve", "", NOW)
    done = service.export(session, people["supervisor"], "tax_roll", str(tmp_path), NOW)
    rows = list(csv.reader(io.StringIO(done.content.decode())))
    assert rows[0] == referrals.TAX_ROLL_HEADER
    assert [r[1:5] for r in rows[1:]] == [
        ["1011-221-05", "sewer", "30.00", "Customer 1"],
        ["1011-221-05", "sanitation", "25.00", "Customer 1"],
    ]
    assert rows[1][5:8] == ["101 Oak St", "Chino", "91710"]
    assert agency.status == "proposed"  # an agency export is its own file


def test_a_tax_roll_needs_a_parcel_and_an_active_account_is_not_referred(session: Session) -> None:
    account = final_account(session)
    people = staff(session)
    session.get(Premise, account.premise_id).parcel_number = None  # type: ignore[union-attr]
    with pytest.raises(FieldErrors) as err:
        service.prepare(session, people["specialist"], account.number, {"kind": "tax_roll"}, NOW)
    assert "parcel" in err.value.errors["kind"].message
    account.status = "active"
    with pytest.raises(FieldErrors) as err:
        service.prepare(session, people["specialist"], account.number, {"kind": "agency"}, NOW)
    assert "account" in err.value.errors
    with pytest.raises(NotAllowed):
        service.prepare(session, people["cashier"], account.number, {"kind": "agency"}, NOW)
    assert session.scalar(select(func.count()).select_from(CollectionReferral)) == 0


def test_reject_needs_a_reason_and_the_run_proposes_without_a_preparer(session: Session) -> None:
    account = final_account(session)
    people = staff(session)
    (item,) = referrals.propose(session, account, "agency", NOW)
    assert (item.prepared_by_id, item.status, item.amount_cents) == (None, "proposed", 13_500)
    assert referrals.propose(session, account, "agency", NOW) == []  # all of it is out already
    with pytest.raises(FieldErrors):
        service.decide(session, people["supervisor"], item.id, "reject", " ", NOW)
    service.decide(session, people["supervisor"], item.id, "reject", "still on a plan", NOW)
    assert (item.status, item.decision_note) == ("rejected", "still on a plan")
    with pytest.raises(InvalidInput):
        service.decide(session, people["admin"], item.id, "approve", "", NOW)
    # Rejected is no longer out: it may be referred again.
    # The approver is never the preparer, whoever prepared it.
    (again,) = service.prepare(session, people["supervisor"], account.number, {"kind": "agency"}, NOW)
    with pytest.raises(NotAllowed, match="prepared this"):
        service.decide(session, people["supervisor"], again.id, "approve", "", NOW)
    # Paid at the counter after preparing: the approval refuses more than is owed.
    pay(session, account, 2_000, "before-approval")
    with pytest.raises(InvalidInput, match="now owes"):
        service.decide(session, people["admin"], again.id, "approve", "", NOW)
    assert again.status == "proposed"


def _exported(session: Session, tmp_path: Path, people: dict) -> tuple[Account, CollectionReferral]:  # type: ignore[type-arg]
    account = final_account(session)
    (item,) = service.prepare(session, people["specialist"], account.number, {"kind": "agency"}, NOW)
    service.decide(session, people["supervisor"], item.id, "approve", "", NOW)
    service.export(session, people["supervisor"], "agency", str(tmp_path), NOW)
    return account, item


def test_recoveries_post_once_and_keep_recovered_equal_to_their_sum(session: Session, tmp_path: Path) -> None:
    people = staff(session)
    account, item = _exported(session, tmp_path, people)
    # The agency remits 40.00: a payment to the account, posted once (the form sent twice too).
    form = {"source": "received", "amount": "40.00", "note": "batch 7", "key": "k1"}
    first = service.recover(session, people["specialist"], item.id, form, TODAY, NOW)
    assert service.recover(session, people["specialist"], item.id, dict(form), TODAY, NOW) is first
    paid = session.get(Payment, first.payment_id)
    assert paid is not None and (paid.status, paid.amount_cents, paid.channel) == ("posted", 4_000, "mail")
    assert posting.account_balance(session, account.id) == 9_500
    # The customer paid the office 25.00 directly: linked, not posted again.
    direct = pay(session, account, 2_500, "direct")
    service.recover(
        session,
        people["specialist"],
        item.id,
        {"source": "payment", "amount": "25", "payment": str(direct.id)},
        TODAY,
        NOW,
    )
    assert posting.account_balance(session, account.id) == 7_000
    with pytest.raises(FieldErrors) as err:  # the same payment twice
        service.recover(
            session,
            people["specialist"],
            item.id,
            {"source": "payment", "amount": "25", "payment": str(direct.id)},
            TODAY,
            NOW,
        )
    assert "payment" in err.value.errors
    with pytest.raises(FieldErrors) as err:  # beyond what is left
        service.recover(session, people["specialist"], item.id, {"source": "received", "amount": "70.01"}, TODAY, NOW)
    assert "amount" in err.value.errors
    sums = session.scalar(
        select(func.sum(CollectionRecovery.amount_cents)).where(CollectionRecovery.referral_id == item.id)
    )
    assert item.recovered_cents == sums == 6_500 and item.status == "exported"
    service.recover(session, people["specialist"], item.id, {"source": "received", "amount": "70.00"}, TODAY, NOW)
    assert (item.recovered_cents, item.status) == (13_500, "closed")
    assert posting.account_balance(session, account.id) == 0
    assert ledger_check.run(session) == []


def test_a_recovery_on_a_written_off_account_counts_once_as_bad_debt_recovered(
    session: Session, tmp_path: Path
) -> None:
    people = staff(session)
    account, item = _exported(session, tmp_path, people)
    wo = write_off_service.prepare(
        session, people["specialist"], account.number, {"amount": "135.00", "reason": "agency"}, NOW
    )
    write_off_service.decide(session, people["supervisor"], wo.id, "approve", "", TODAY, NOW)
    assert posting.account_balance(session, account.id) == 0
    rec = service.recover(session, people["specialist"], item.id, {"source": "received", "amount": "50"}, TODAY, NOW)
    paid = session.get(Payment, rec.payment_id)
    assert paid is not None and paid.recovery_cents == 5_000
    # The money went to recoveries once: no credit is left on the account.
    assert posting.account_balance(session, account.id) == 0
    assert item.recovered_cents == 5_000
    assert ledger_check.run(session) == []


def test_recall_and_recoveries_need_an_exported_referral(session: Session, tmp_path: Path) -> None:
    people = staff(session)
    account, item = _exported(session, tmp_path, people)
    with pytest.raises(FieldErrors):
        service.decide(session, people["supervisor"], item.id, "recall", "", NOW)
    with pytest.raises(NotAllowed):
        service.decide(session, people["specialist"], item.id, "recall", "paid", NOW)
    service.decide(session, people["supervisor"], item.id, "recall", "bankruptcy filed", NOW)
    assert (item.status, item.decision_note) == ("recalled", "bankruptcy filed")
    # Money may still come back after a recall; a proposed referral takes none.
    service.recover(session, people["specialist"], item.id, {"source": "received", "amount": "10"}, TODAY, NOW)
    (fresh,) = service.prepare(session, people["specialist"], account.number, {"kind": "agency"}, NOW)
    with pytest.raises(FieldErrors) as err:
        service.recover(session, people["specialist"], fresh.id, {"source": "received", "amount": "10"}, TODAY, NOW)
    assert "referral" in err.value.errors
