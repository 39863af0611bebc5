"""Accounts that pay in cash only (after the policy's number of returned payments in a
year, ``money_policy``): every way of paying asks ``refusal`` first and shows its message.

Cash and money orders (a cashier's check counts as one) are taken at the counter or by mail;
checks, card and bank payments, online or by autopay, are refused until the office lifts it.
"""

from __future__ import annotations

from .errors import N_, InvalidInput
from .models import Account

#: What a cash-only account may still pay with.
CASH_METHODS = frozenset({"cash", "money_order"})


def refusal(account: Account, method: str, field: str = "method") -> InvalidInput | None:
    """Why ``account`` may not pay with ``method`` (card, bank, check, cash, money_order), or
    None when it may."""
    if not account.cash_only or method in CASH_METHODS:
        return None
    return InvalidInput(
        N_(
            "This account can be paid only in cash or by money order, since %(since)s, because "
            "of payments the bank returned. Please pay at our office or mail a money order; call us "
            "to ask when this ends."
        ),
        field,
        since=account.cash_only_since.isoformat() if account.cash_only_since else "",
    )


def check(account: Account, method: str, field: str = "method") -> None:
    """Raise the refusal, if any."""
    problem = refusal(account, method, field)
    if problem is not None:
        raise problem
