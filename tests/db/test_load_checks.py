"""The load test's double-charge checker (``bench/load/checks.py``) on both databases: it
finds nothing when the three witnesses agree, and names a payment posted twice, a payment
charged twice at the processor, a charge never posted, and residents told of a payment
the portal never posted. (The load test itself is a bench: ``bench/load/run.py``.)"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlalchemy.orm import Session

from bench.load import checks
from portal.billing_core import ledger, payments, posting
from portal.billing_core.models import Account

from .factories import district

D = date(2026, 3, 1)
NOW = datetime(2026, 3, 20, 17, 0, tzinfo=UTC)


def paid_online(session: Session, account: Account, cents: int, n: int) -> dict:
    payment, _ = payments.start(session, account, None, cents, "card", f"pay-{n}", D)
    payment.processor_id = f"pi_{n}"
    assert payments.apply(session, payment, "succeeded", D, NOW).change == "posted"
    return {"account": account.number, "payment": payment.id, "cents": cents}


def intent(told: dict, n: int, status: str = "succeeded") -> dict:
    return {
        "id": f"pi_{n}",
        "amount": told["cents"],
        "status": status,
        "metadata": {"account": told["account"], "payment": str(told["payment"])},
    }


def charge(told: dict, n: int) -> dict:
    return {"payment_intent": f"pi_{n}", "amount": told["cents"], "status": "succeeded"}


def test_the_checker_agrees_with_a_clean_run_and_names_each_double(session: Session) -> None:
    first, second = district(session, 2)
    for account in (first, second):
        posting.post(
            session, ledger.bill_transaction(account.id, D, D + timedelta(days=21), {"water": 9000}), account.id
        )
    since = checks.marks(session)
    told = [
        paid_online(session, first, 250, 1),
        paid_online(session, first, 125, 2),
        paid_online(session, second, 300, 3),
    ]
    intents = [intent(t, n) for n, t in enumerate(told, 1)]
    charges = [charge(t, n) for n, t in enumerate(told, 1)]
    numbers = [first.number, second.number]

    clean = checks.check_payments(session, since, numbers, told, intents, charges)
    assert clean.ok, clean.problems
    assert clean.figures["payments posted"] == 3 and clean.figures["cents posted"] == 675
    assert clean.figures["ledger payment transactions"] == 3 and clean.figures["cents charged by the processor"] == 675

    # A charge whose answer never reached the resident (the run ended): found by its form.
    cut_off = checks.check_payments(
        session, since, numbers, [{**told[0], "payment": None, "attempt": "1"}, *told[1:]], intents, charges
    )
    assert cut_off.ok and cut_off.figures["charges sent whose answer never came"] == 1

    # The processor charged payment 1 twice: a second PaymentIntent and charge for it.
    twice = checks.check_payments(
        session, since, numbers, told, [*intents, {**intents[0], "id": "pi_9"}], [*charges, charge(told[0], 9)]
    )
    assert any(f"payment {told[0]['payment']} was charged by 2 PaymentIntents" in p for p in twice.problems)
    assert any("pi_9" in p and "never posted" in p for p in twice.problems)

    # Residents were told of a payment the portal never posted (and locust saw it twice).
    told_more = checks.check_payments(session, since, numbers, [*told, told[2]], intents, charges)
    assert any(
        f"account {second.number}: residents paid 600 cents, the portal posted 300" in p for p in told_more.problems
    )

    # A payment posted twice: one more payment transaction on the account than payments.
    posting.post(
        session,
        ledger.payment_transaction(first.id, D, 250, "online", posting.open_by_service(session, first.id)),
        first.id,
    )
    double = checks.check_payments(session, since, numbers, told, intents, charges)
    assert double.problems == [
        f"account {first.number}: the ledger has (3, 625) (payment transactions, cents), the posted payments (2, 375)"
    ]
