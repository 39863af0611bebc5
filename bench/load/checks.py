"""After the load test: was anything charged or posted twice, or charged and never posted?

No locust here (``tests/bench/test_load_checks.py`` imports this on both databases).

Three witnesses are compared for the payments made during the run:
- what locust was told was charged (the payment ids the portal's charge answer gave),
- the portal's database: the online payments and the ledger's payment transactions on the
  residents' accounts since the run began,
- the processor (localstripe): its PaymentIntents and their charges.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from portal.billing_core.models import Account, LedgerEntry, LedgerTransaction, Payment, ProcessorEvent
from portal.billing_core.status import PaymentStatus


@dataclass(frozen=True)
class Marks:
    """Where the run began: the last payment and ledger transaction ids before it."""

    payment_id: int
    transaction_id: int


def marks(session: Session) -> Marks:
    return Marks(
        session.scalar(select(func.max(Payment.id))) or 0,
        session.scalar(select(func.max(LedgerTransaction.id))) or 0,
    )


@dataclass
class Findings:
    problems: list[str] = field(default_factory=list)
    figures: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems


def pending_among(session: Session, payment_ids: Iterable[int]) -> int:
    """How many of these payments still wait for the processor's webhook."""
    ids = list(payment_ids)
    if not ids:
        return 0
    return (
        session.scalar(
            select(func.count(Payment.id)).where(Payment.id.in_(ids), Payment.status == PaymentStatus.PENDING.value)
        )
        or 0
    )


def webhook_outcomes(session: Session) -> dict[str, int]:
    """What the portal did with the processor's events, by outcome ("payment 12: posted" counted
    as "payment: posted")."""
    found: Counter[str] = Counter()
    for (outcome,) in session.execute(select(ProcessorEvent.outcome)):
        found[re.sub(r"^payment \d+", "payment", outcome or "")] += 1
    return dict(found)


def check_payments(
    session: Session,
    since: Marks,
    accounts: Iterable[str],
    paid: Iterable[Mapping[str, Any]],
    intents: Iterable[Mapping[str, Any]],
    charges: Iterable[Mapping[str, Any]],
) -> Findings:
    """Compare the three witnesses for the residents' ``accounts`` (numbers) since ``since``.

    ``paid``: what locust was told was charged, each ``{"account", "payment", "cents",
    "attempt"}`` (``payment`` None when the answer never came: the form's key finds it);
    ``intents`` and ``charges``: the processor's PaymentIntents (``id``, ``amount``,
    ``status``, ``metadata``) and charges (``payment_intent``, ``amount``, ``status``)."""
    found = Findings()
    problems = found.problems
    numbers = sorted(set(accounts))
    ids = dict(session.execute(select(Account.number, Account.id).where(Account.number.in_(numbers))).all())
    by_id = {v: k for k, v in ids.items()}

    payments = session.scalars(
        select(Payment).where(
            Payment.id > since.payment_id, Payment.account_id.in_(list(ids.values())), Payment.channel == "online"
        )
    ).all()
    posted = [p for p in payments if p.status == PaymentStatus.POSTED.value]
    for pid, n in Counter(p.processor_id for p in payments if p.processor_id).items():
        if n > 1:
            problems.append(f"PaymentIntent {pid} has {n} payment rows")
    for p in payments:
        if p.status == PaymentStatus.PENDING.value:
            problems.append(f"payment {p.id} ({by_id[p.account_id]}) is still pending ({p.processor_status})")
        if p.status == PaymentStatus.POSTED.value and p.ledger_transaction_id is None:
            problems.append(f"payment {p.id} is posted without a ledger transaction")
    for tid, n in Counter(p.ledger_transaction_id for p in posted).items():
        if n > 1:
            problems.append(f"ledger transaction {tid} is the posting of {n} payments")

    # The ledger: every payment transaction on these accounts since the mark, against the
    # posted payments. A payment posted twice shows as one more transaction and more money.
    ledger_rows = session.execute(
        select(
            LedgerTransaction.account_id,
            func.count(func.distinct(LedgerTransaction.id)),
            func.sum(LedgerEntry.amount_cents),
        )
        .join(LedgerEntry, LedgerEntry.transaction_id == LedgerTransaction.id)
        .where(
            LedgerTransaction.id > since.transaction_id,
            LedgerTransaction.kind == "payment",
            LedgerTransaction.account_id.in_(list(ids.values())),
            LedgerEntry.account_id.is_not(None),
        )
        .group_by(LedgerTransaction.account_id)
    ).all()
    in_ledger = {aid: (int(n), -int(total)) for aid, n, total in ledger_rows}
    in_payments: dict[int, tuple[int, int]] = defaultdict(lambda: (0, 0))
    for p in posted:
        n, cents = in_payments[p.account_id]
        in_payments[p.account_id] = (n + 1, cents + p.amount_cents)
    for aid in sorted(set(in_ledger) | set(in_payments)):
        if in_ledger.get(aid, (0, 0)) != in_payments[aid]:
            problems.append(
                f"account {by_id[aid]}: the ledger has {in_ledger.get(aid, (0, 0))} (payment transactions, cents), "
                f"the posted payments {in_payments[aid]}"
            )

    # What locust was told was charged, per account, against what posted.
    told: dict[str, int] = defaultdict(int)
    told_ids: Counter[int] = Counter()
    by_form = {p.idempotency_key: p for p in payments}
    unanswered = 0
    for item in paid:
        if item.get("payment") is None:
            # Sent, but the run ended before the answer came: posted or not, by its form's key.
            unanswered += 1
            cut_off = by_form.get(f"pay-{item.get('attempt')}")
            if cut_off is not None and cut_off.status == PaymentStatus.POSTED.value:
                told[item["account"]] += int(item["cents"])
            continue
        told[item["account"]] += int(item["cents"])
        told_ids[int(item["payment"])] += 1
    for pid, n in told_ids.items():
        if n > 1:
            problems.append(f"payment {pid} was answered as charged to {n} separate payment forms")
    posted_by_number: dict[str, int] = defaultdict(int)
    for p in posted:
        posted_by_number[by_id[p.account_id]] += p.amount_cents
    for number in sorted(set(told) | set(posted_by_number)):
        if told[number] != posted_by_number[number]:
            problems.append(
                f"account {number}: residents paid {told[number]} cents, the portal posted {posted_by_number[number]}"
            )

    # The processor: one succeeded charge per payment, for its amount, and each one posted.
    intents = [dict(i) for i in intents if (i.get("metadata") or {}).get("account") in ids]
    intent_payment = {i["id"]: int((i.get("metadata") or {}).get("payment") or 0) for i in intents}
    succeeded = [i for i in intents if i.get("status") == "succeeded"]
    for payment_id, n in Counter(intent_payment[i["id"]] for i in succeeded).items():
        if n > 1:
            problems.append(f"payment {payment_id} was charged by {n} PaymentIntents")
    charged = [c for c in charges if c.get("payment_intent") in intent_payment and c.get("status") == "succeeded"]
    for pi, n in Counter(c["payment_intent"] for c in charged).items():
        if n > 1:
            problems.append(f"PaymentIntent {pi} has {n} succeeded charges")
    posted_by_pi = {p.processor_id: p for p in posted}
    for i in succeeded:
        p = posted_by_pi.get(i["id"])
        if p is None:
            problems.append(f"PaymentIntent {i['id']} (payment {intent_payment[i['id']]}) was charged, never posted")
        elif p.amount_cents != int(i["amount"]) or p.id != intent_payment[i["id"]]:
            problems.append(f"PaymentIntent {i['id']} charged {i['amount']} for payment {p.id} of {p.amount_cents}")
    succeeded_ids = {i["id"] for i in succeeded}
    for p in posted:
        if p.processor_id not in succeeded_ids:
            problems.append(f"payment {p.id} is posted, but the processor has no succeeded charge for it")

    found.figures = {
        "payments answered as charged": sum(told_ids.values()),
        "charges sent whose answer never came": unanswered,
        "payment rows": len(payments),
        "payments posted": len(posted),
        "cents posted": sum(p.amount_cents for p in posted),
        "cents paid by residents": sum(told.values()),
        "ledger payment transactions": sum(n for n, _ in in_ledger.values()),
        "processor PaymentIntents succeeded": len(succeeded),
        "processor charges succeeded": len(charged),
        "cents charged by the processor": sum(int(c["amount"]) for c in charged),
    }
    if found.figures["cents charged by the processor"] != found.figures["cents posted"]:
        problems.append(
            f"the processor charged {found.figures['cents charged by the processor']} cents, "
            f"the portal posted {found.figures['cents posted']}"
        )
    return found
