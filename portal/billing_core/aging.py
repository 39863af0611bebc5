"""Balance, amount due, past due and aging, derived from an account's postings.

A posting is one transaction's net effect on the account: positive is a
charge (with the date it falls due), negative a credit. Credits pay the oldest
charges first; what remains open is aged by days past its due date.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

BUCKETS = ("current", "1-30", "31-60", "61-90", "over 90")


@dataclass(frozen=True)
class Posting:
    effective_date: date
    amount_cents: int
    due_date: date | None = None

    @property
    def falls_due(self) -> date:
        return self.due_date or self.effective_date


@dataclass(frozen=True)
class OpenCharge:
    due_date: date
    amount_cents: int


@dataclass(frozen=True)
class Aging:
    balance_cents: int
    open_charges: tuple[OpenCharge, ...]
    buckets: dict[str, int]
    past_due_cents: int
    days_past_due: int
    oldest_past_due: date | None

    @property
    def credit_cents(self) -> int:
        return -self.balance_cents if self.balance_cents < 0 else 0


def open_charges(postings: Iterable[Posting]) -> tuple[list[OpenCharge], int]:
    """Apply every credit to the oldest charges; return open charges and left-over credit."""
    charges: list[list] = []
    credit = 0
    for p in postings:
        if p.amount_cents > 0:
            charges.append([p.falls_due, p.effective_date, p.amount_cents])
        elif p.amount_cents < 0:
            credit += -p.amount_cents
    charges.sort(key=lambda c: (c[0], c[1]))
    result: list[OpenCharge] = []
    for due, _eff, amount in charges:
        applied = min(amount, credit)
        credit -= applied
        if amount - applied:
            result.append(OpenCharge(due, amount - applied))
    return result, credit


def bucket_for(days_past_due: int) -> str:
    if days_past_due <= 0:
        return "current"
    if days_past_due <= 30:
        return "1-30"
    if days_past_due <= 60:
        return "31-60"
    if days_past_due <= 90:
        return "61-90"
    return "over 90"


def age(postings: Iterable[Posting], as_of: date) -> Aging:
    postings = list(postings)
    items, left_over = open_charges(postings)
    buckets = {name: 0 for name in BUCKETS}
    past_due = 0
    oldest: date | None = None
    for item in items:
        days = (as_of - item.due_date).days
        buckets[bucket_for(days)] += item.amount_cents
        if days > 0:
            past_due += item.amount_cents
            if oldest is None or item.due_date < oldest:
                oldest = item.due_date
    balance = sum(p.amount_cents for p in postings)
    assert balance == sum(i.amount_cents for i in items) - left_over
    return Aging(
        balance_cents=balance,
        open_charges=tuple(items),
        buckets=buckets,
        past_due_cents=past_due,
        days_past_due=(as_of - oldest).days if oldest else 0,
        oldest_past_due=oldest,
    )
