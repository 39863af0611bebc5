"""A payment on a written-off account is taken and recorded as a recovery of bad debt."""

from datetime import UTC, date, datetime, timedelta

from sqlalchemy.orm import Session

from portal.billing_core import ledger, ledger_check, payments, posting, users
from portal.billing_core.models import Payment, WriteOff

from .factories import district

D = date(2026, 3, 1)
NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)


def _written_off(session: Session) -> int:
    (acct,) = district(session, 1)
    staff = users.create_user(session, "boss@example.org", "long enough password", "supervisor", now=NOW)
    posting.post(session, ledger.bill_transaction(acct.id, D, D + timedelta(days=21), {"water": 5000}), acct.id)
    txn = ledger.Transaction(
        ledger.Kind.WRITE_OFF,
        D + timedelta(days=90),
        (ledger.Entry(ledger.BAD_DEBT, 5000), ledger.Entry(ledger.receivable("water"), -5000, acct.id, "water")),
    )
    row = posting.post(session, txn, acct.id, staff.id)
    session.add(
        WriteOff(
            account_id=acct.id,
            amount_cents=5000,
            reason="uncollectible",
            status="posted",
            prepared_by_id=staff.id,
            ledger_transaction_id=row.id,
        )
    )
    session.flush()
    return acct.id


def _pay(session: Session, account_id: int, cents: int, key: str) -> Payment:
    p = Payment(
        account_id=account_id,
        amount_cents=cents,
        channel="online",
        method="card",
        received_on=NOW.date(),
        status="pending",
        idempotency_key=key,
    )
    session.add(p)
    session.flush()
    payments.apply(session, p, "succeeded", NOW.date(), NOW)
    return p


def test_a_later_payment_recovers_up_to_what_was_written_off(session: Session) -> None:
    acct = _written_off(session)
    first = _pay(session, acct, 3000, "k1")
    assert (first.recovery_cents, first.overpaid_cents) == (3000, None)
    assert posting.account_balance(session, acct) == 0
    second = _pay(session, acct, 2500, "k2")
    # 2,000 recovers the rest; the other 500 is a credit on the account, to review for refund.
    assert (second.recovery_cents, second.overpaid_cents) == (2000, 500)
    assert posting.account_balance(session, acct) == -500
    assert ledger_check.run(session) == []


def test_an_account_never_written_off_records_no_recovery(session: Session) -> None:
    (acct,) = district(session, 1)
    p = _pay(session, acct.id, 1000, "k3")
    assert p.recovery_cents is None and p.overpaid_cents == 1000
