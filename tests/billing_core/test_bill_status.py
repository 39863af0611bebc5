"""Paid, partly paid or open: each bill's share of the account's credits, oldest first."""

from datetime import date
from types import SimpleNamespace

from portal.billing_core import bill_status
from portal.billing_core.bill_status import Charge, open_by_transaction


def _bill(id_: int, txn: int, due: date, status: str = "posted"):  # type: ignore[no-untyped-def]
    return SimpleNamespace(id=id_, ledger_transaction_id=txn, due_date=due, status=status)


def test_credits_pay_the_oldest_bills_first() -> None:
    charges = [
        Charge(1, date(2026, 1, 2), 10000, date(2026, 1, 23)),
        Charge(2, date(2026, 2, 2), 8000, date(2026, 2, 23)),
        Charge(3, date(2026, 1, 20), -12000),  # a payment
        Charge(4, date(2026, 3, 2), 9000, date(2026, 3, 23)),
    ]
    assert open_by_transaction(charges) == {1: 0, 2: 6000, 4: 9000}
    bills = [_bill(11, 1, date(2026, 1, 23)), _bill(12, 2, date(2026, 2, 23)), _bill(13, 4, date(2026, 3, 23))]
    got = bill_status.statuses(charges, bills, date(2026, 3, 1))
    assert [got[b].state for b in (11, 12, 13)] == ["paid", "partly_paid", "open"]
    assert got[12].open_cents == 6000 and got[12].paid_cents == 2000 and got[12].past_due
    assert not got[13].past_due  # not due yet


def test_a_voided_bill_is_neither_paid_nor_open_and_its_reversal_pays_nothing_else() -> None:
    charges = [
        Charge(1, date(2026, 1, 2), 10000, date(2026, 1, 23)),  # unpaid
        Charge(2, date(2026, 2, 2), 8000, date(2026, 2, 23)),  # voided ...
        Charge(3, date(2026, 2, 5), -8000, None, reverses_id=2),  # ... by this reversal
        Charge(4, date(2026, 2, 5), 7000, date(2026, 2, 23)),  # and rebilled
    ]
    assert open_by_transaction(charges) == {1: 10000, 2: 0, 3: 0, 4: 7000}
    bills = [
        _bill(11, 1, date(2026, 1, 23)),
        _bill(12, 2, date(2026, 2, 23), "voided"),
        _bill(13, 4, date(2026, 2, 23)),
    ]
    got = bill_status.statuses(charges, bills, date(2026, 3, 1))
    assert [got[b].state for b in (11, 12, 13)] == ["open", "voided", "open"]


def test_a_bill_of_nothing_or_a_credit_has_nothing_to_pay() -> None:
    charges = [Charge(1, date(2026, 1, 2), -500, date(2026, 1, 23))]
    got = bill_status.statuses(charges, [_bill(11, 1, date(2026, 1, 23))], date(2026, 3, 1))
    assert got[11].state == "nothing_due" and got[11].open_cents == 0
