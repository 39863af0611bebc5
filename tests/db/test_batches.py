"""Mail batches: keyed items checked field by field, posted all or nothing when the totals match."""

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from portal.billing_core import ledger, ledger_check, posting, users
from portal.billing_core.errors import FieldErrors, InvalidInput, NotAllowed
from portal.billing_core.models import Payment, PaymentBatchItem
from portal.billing_core.numbers import scan_line
from portal.services import batches

from .factories import district

NOW = datetime(2026, 11, 20, 17, tzinfo=UTC)
D = date(2026, 10, 1)


def _setup(session: Session):  # type: ignore[no-untyped-def]
    accts = district(session, 2)
    for a in accts:
        posting.post(session, ledger.bill_transaction(a.id, D, D + timedelta(days=21), {"water": 4000}), a.id)
    staff = users.create_user(session, "spec@example.org", "long enough password", "specialist", now=NOW)
    session.flush()
    return accts, staff


def test_a_batch_posts_only_when_it_matches_and_then_all_of_it(session: Session) -> None:
    (a, b), staff = _setup(session)
    batch = batches.create_batch(
        session, staff, {"deposit_date": "2026-11-20", "control_total": "100.00", "control_count": "2"}, NOW
    )
    batches.add_item(
        session, staff, batch.id, {"scan_line": scan_line(a.number, 4000), "amount": "40.00", "check_number": "11"}
    )
    with pytest.raises(InvalidInput) as short:
        batches.post_batch(session, staff, batch.id, NOW)
    assert "$60.00 less" in short.value.message and "control count is 2" in short.value.message
    assert session.scalar(select(func.count()).select_from(Payment)) == 0
    batches.add_item(session, staff, batch.id, {"account_number": b.number, "amount": "60", "check_number": "12"})
    posted = batches.post_batch(session, staff, batch.id, NOW)
    assert posted.batch.status == "posted" and len(posted.payments) == 2
    assert posting.account_balance(session, a.id) == 0
    assert posting.account_balance(session, b.id) == -2000
    second = posted.payments[1]
    assert (second.channel, second.method, second.check_number, second.overpaid_cents) == ("mail", "check", "12", 2000)
    assert all(p.batch_id == batch.id for p in posted.payments)
    assert ledger_check.run(session) == []
    with pytest.raises(InvalidInput):
        batches.post_batch(session, staff, batch.id, NOW)  # once only


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"scan_line": "00090019 0000004000 1", "amount": "40.00"}, "scan_line"),  # wrong check digit
        ({"account_number": "00000000", "amount": "40.00"}, "account_number"),  # no such account
        ({"account_number": "ACCOUNT", "amount": "40.00"}, "scan_line"),  # nothing keyed
        ({"account_number": "{a}", "amount": "12.345"}, "amount"),
        ({"account_number": "{a}", "amount": "0"}, "amount"),
        ({"account_number": "{a}", "amount": "-5"}, "amount"),
        ({"account_number": "{a}", "amount": "ten"}, "amount"),
    ],
)
def test_bad_items_say_which_field_and_write_nothing(session: Session, values: dict, field: str) -> None:
    (a, _b), staff = _setup(session)
    batch = batches.create_batch(session, staff, {"deposit_date": "2026-11-20", "control_total": "40.00"}, NOW)
    filled = {k: v.format(a=a.number) for k, v in values.items()}
    with pytest.raises(FieldErrors) as exc:
        batches.add_item(session, staff, batch.id, filled)
    assert field in exc.value.errors
    assert session.scalar(select(func.count()).select_from(PaymentBatchItem)) == 0


def test_batch_form_and_role(session: Session) -> None:
    _accts, staff = _setup(session)
    with pytest.raises(FieldErrors) as exc:
        batches.create_batch(
            session, staff, {"deposit_date": "soon", "control_total": "1.001", "control_count": "x"}, NOW
        )
    assert set(exc.value.errors) == {"deposit_date", "control_total", "control_count"}
    csr = users.create_user(session, "csr@example.org", "long enough password", "csr", now=NOW)
    with pytest.raises(NotAllowed):
        batches.create_batch(session, csr, {"deposit_date": "2026-11-20", "control_total": "1"}, NOW)


def test_a_keyed_item_can_be_removed_before_posting(session: Session) -> None:
    (a, _b), staff = _setup(session)
    batch = batches.create_batch(session, staff, {"deposit_date": "2026-11-20", "control_total": "40.00"}, NOW)
    wrong = batches.add_item(session, staff, batch.id, {"account_number": a.number, "amount": "400.00"})
    batches.remove_item(session, staff, batch.id, wrong.id)
    batches.add_item(session, staff, batch.id, {"account_number": a.number, "amount": "40.00"})
    page = batches.batch_page(session, batch.id)
    assert page.keyed_cents == 4000 and page.difference is None
    assert [e.action for e in page.history][:3] == ["batch.created", "batch.item_keyed", "batch.item_removed"]
