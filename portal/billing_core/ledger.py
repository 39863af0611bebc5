"""Double-entry ledger rules, as pure functions over immutable values.

Amounts are signed integer cents: a debit is positive, a credit negative, so a
transaction balances when its entries sum to zero. Entries that belong to a
customer account (receivables and the account's unapplied credit) carry that
account's id; an account's balance is the sum of those entries. The ledger is
append-only: a mistake is corrected by a reversal linked to its original.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import date

from .errors import UnbalancedTransaction


class Kind(str, enum.Enum):
    BILL = "bill"
    PAYMENT = "payment"
    ADJUSTMENT = "adjustment"
    FEE = "fee"
    REVERSAL = "reversal"
    DEPOSIT = "deposit"
    REFUND = "refund"
    WRITE_OFF = "write_off"
    #: A payment on a written-off account, taken back out of the account's credit into recoveries.
    RECOVERY = "recovery"


#: Each kind in plain words, for the staff account ledger.
KIND_LABELS = {
    Kind.BILL: "Bill",
    Kind.PAYMENT: "Payment",
    Kind.ADJUSTMENT: "Adjustment",
    Kind.FEE: "Fee",
    Kind.REVERSAL: "Reversal",
    Kind.DEPOSIT: "Deposit",
    Kind.REFUND: "Refund",
    Kind.WRITE_OFF: "Write-off",
    Kind.RECOVERY: "Recovery of a written-off balance",
}


# General-ledger accounts. Receivables are per service; revenue per service.
AR = "AR"
REVENUE = "REVENUE"
CASH = "CASH"
UNAPPLIED_CREDIT = "AR:CREDIT"
ADJUSTMENTS = "ADJUSTMENTS"
#: Fees (returned payment, late, reconnection) are receivable under the ``fees`` service and
#: earned here.
FEE_REVENUE = "REVENUE:FEES"
FEES = "fees"
#: Deposits: billed to the account under the ``deposit`` service (receivable), held here as a
#: liability until credited back, applied to a final bill, or refunded. The liability's
#: entries carry no account id (they are never part of a balance); their transaction's does.
DEPOSIT = "deposit"
DEPOSITS_HELD = "LIABILITY:DEPOSITS"
#: A refund approved but not yet paid out (card refund or AP check).
REFUNDS_PAYABLE = "LIABILITY:REFUNDS"
#: Written-off balances, and what was paid on them later.
BAD_DEBT = "EXPENSE:BAD_DEBT"
RECOVERIES = "REVENUE:RECOVERIES"
#: A drawer's cash over (credit) or short (debit) at sign-off.
CASH_OVER_SHORT = "EXPENSE:CASH_OVER_SHORT"

SERVICE_ORDER = ("water", "sewer", "sanitation", "fire", "irrigation", "recycled", "fees", "deposit")


def receivable(service: str) -> str:
    return f"{AR}:{service.upper()}"


def revenue(service: str) -> str:
    return f"{REVENUE}:{service.upper()}"


def cash(channel: str) -> str:
    return f"{CASH}:{channel.upper()}"


@dataclass(frozen=True)
class Entry:
    gl_account: str
    amount_cents: int
    account_id: int | None = None
    service: str | None = None


@dataclass(frozen=True)
class Transaction:
    kind: Kind
    effective_date: date
    entries: tuple[Entry, ...]
    due_date: date | None = None
    memo: str = ""
    reverses: int | None = None


def imbalance(txn: Transaction) -> int:
    return sum(e.amount_cents for e in txn.entries)


def check_balanced(txn: Transaction) -> None:
    """Raise unless the transaction has entries and they sum to zero."""
    if not txn.entries:
        raise UnbalancedTransaction("a transaction needs at least one entry")
    for e in txn.entries:
        if not isinstance(e.amount_cents, int) or isinstance(e.amount_cents, bool):
            raise UnbalancedTransaction(f"entry amount must be integer cents, got {e.amount_cents!r}")
    off = imbalance(txn)
    if off != 0:
        raise UnbalancedTransaction(f"debits and credits differ by {off} cents")


def reversal_of(original: Transaction, original_id: int, effective_date: date, memo: str = "") -> Transaction:
    """The transaction that undoes ``original``: every entry negated, linked to it."""
    return Transaction(
        kind=Kind.REVERSAL,
        effective_date=effective_date,
        entries=tuple(replace(e, amount_cents=-e.amount_cents) for e in original.entries),
        due_date=None,
        memo=memo or f"Reversal of transaction {original_id}",
        reverses=original_id,
    )


def bill_transaction(
    account_id: int,
    bill_date: date,
    due_date: date,
    charges_by_service: dict[str, int],
    memo: str = "",
) -> Transaction:
    """Debit each service's receivable, credit its revenue."""
    entries: list[Entry] = []
    for service in sorted(charges_by_service, key=_service_rank):
        cents = charges_by_service[service]
        if cents == 0:
            continue
        entries.append(Entry(receivable(service), cents, account_id, service))
        entries.append(Entry(revenue(service), -cents, None, service))
    return Transaction(Kind.BILL, bill_date, tuple(entries), due_date=due_date, memo=memo)


def payment_transaction(
    account_id: int,
    received: date,
    amount_cents: int,
    channel: str,
    open_by_service: dict[str, int],
    memo: str = "",
) -> Transaction:
    """Debit cash; credit receivables in the configured service order; rest is credit."""
    if amount_cents <= 0:
        raise UnbalancedTransaction("a payment must be a positive amount")
    entries = [Entry(cash(channel), amount_cents)]
    remaining = amount_cents
    for service in sorted(open_by_service, key=_service_rank):
        open_cents = open_by_service[service]
        if remaining == 0 or open_cents <= 0:
            continue
        applied = min(open_cents, remaining)
        entries.append(Entry(receivable(service), -applied, account_id, service))
        remaining -= applied
    if remaining:
        entries.append(Entry(UNAPPLIED_CREDIT, -remaining, account_id))
    return Transaction(Kind.PAYMENT, received, tuple(entries), memo=memo)


def adjustment_transaction(account_id: int, effective: date, service: str, amount_cents: int, memo: str) -> Transaction:
    """Positive ``amount_cents`` charges the account (debit); negative credits it."""
    return Transaction(
        Kind.ADJUSTMENT,
        effective,
        (
            Entry(receivable(service), amount_cents, account_id, service),
            Entry(ADJUSTMENTS, -amount_cents, None, service),
        ),
        due_date=effective if amount_cents > 0 else None,
        memo=memo,
    )


def account_balance(entries: Iterable[Entry], account_id: int) -> int:
    return sum(e.amount_cents for e in entries if e.account_id == account_id)


def balances_by_service(entries: Iterable[Entry], account_id: int) -> dict[str, int]:
    """Receivable per service for one account (credit is keyed ``credit``)."""
    out: dict[str, int] = {}
    for e in entries:
        if e.account_id != account_id:
            continue
        key = e.service or "credit"
        out[key] = out.get(key, 0) + e.amount_cents
    return out


def _service_rank(service: str) -> tuple[int, str]:
    try:
        return (SERVICE_ORDER.index(service), service)
    except ValueError:
        return (len(SERVICE_ORDER), service)
