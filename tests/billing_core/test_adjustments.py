"""Adjustment and write-off rules that need no database."""

from datetime import date

from portal.billing_core import adjustments, ledger, permissions, write_offs
from portal.billing_core.models import Role
from portal.billing_core.permissions import Action


def test_a_credit_beyond_what_is_owed_becomes_credit() -> None:
    draft = adjustments.Draft("water", -5000, "courtesy", None, None, owed_cents=3000)
    assert draft.becomes_credit_cents == 2000
    assert adjustments.Draft("water", -1000, "courtesy", None, None, 3000).becomes_credit_cents == 0
    assert adjustments.Draft("water", 1000, "courtesy", None, None, -500).becomes_credit_cents == 0


def test_each_roles_limit_decides_posting_or_waiting() -> None:
    within = permissions.within_limit
    assert within(Role.CSR, Action.ADJUSTMENTS_PREPARE, -2500) and not within(
        Role.CSR, Action.ADJUSTMENTS_PREPARE, -2501
    )
    assert within(Role.SPECIALIST, Action.ADJUSTMENTS_PREPARE, 10_000)
    assert not within(Role.SPECIALIST, Action.ADJUSTMENTS_PREPARE, -25_000)
    assert within(Role.ADMIN, Action.ADJUSTMENTS_PREPARE, -(10**9))
    assert not within(Role.SPECIALIST, Action.ADJUSTMENTS_APPROVE, 1)


def test_describe() -> None:
    assert adjustments.describe(-1250) == "credit $12.50"
    assert adjustments.describe(99) == "debit $0.99"


def test_a_write_off_credits_each_receivable_in_service_order_and_balances() -> None:
    parts = write_offs.allocate({"sewer": 3000, "water": 5000, "fees": 2500}, 7000)
    assert parts == {"water": 5000, "sewer": 2000}
    txn = write_offs.write_off_transaction(7, date(2026, 11, 1), parts, "w")
    ledger.check_balanced(txn)
    assert txn.kind is ledger.Kind.WRITE_OFF
    assert txn.entries[0] == ledger.Entry(ledger.BAD_DEBT, 7000)
    assert {(e.gl_account, e.amount_cents, e.account_id) for e in txn.entries[1:]} == {
        ("AR:WATER", -5000, 7),
        ("AR:SEWER", -2000, 7),
    }
