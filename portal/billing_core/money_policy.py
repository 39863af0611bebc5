"""The office's money policy as data: what a returned payment costs and when an account
becomes cash only, when a deposit is required and how much, when it comes back, and how a
leak credit is worked out.

The defaults below are common practice for a California water district; an agency sets its
own in a YAML file named by ``PORTAL_MONEY_POLICY`` (any subset of the fields, money in
cents), checked whole when loaded: an unknown field or a wrong value is refused with its
name, and nothing of the file is used.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from .errors import FieldErrors, InvalidInput


@dataclass(frozen=True)
class MoneyPolicy:
    # --- Returned payments ---
    #: Charged for each returned check or ACH debit (California Civil Code 1719 caps it).
    returned_payment_fee_cents: int = 2_500
    #: This many returns within ``returns_window_months`` make the account cash only.
    returns_before_cash_only: int = 2
    returns_window_months: int = 12
    #: How long cash only lasts, from the last return.
    cash_only_months: int = 12
    # --- Deposits ---
    #: A deposit is this many times the account's (or the premise's, or the class's)
    #: average monthly bill, never less than ``deposit_minimum_cents``.
    deposit_multiplier: Decimal = Decimal("2")
    deposit_minimum_cents: int = 5_000
    #: When one is required.
    deposit_for_new_customer: bool = True
    deposit_after_shutoff: bool = True
    deposit_after_returns: int = 2
    #: A new customer with this many months of good history elsewhere in the district needs none.
    deposit_history_months: int = 12
    #: Credited back after this many consecutive months paid on time.
    deposit_on_time_months: int = 12
    # --- Leak adjustments ---
    #: Usage above the average of this many months is billed at the lowest tier's price.
    leak_average_months: int = 12
    #: One leak adjustment per account in this many months.
    leak_once_per_months: int = 12
    #: Proof of repair (an invoice, a receipt) is required.
    leak_requires_proof: bool = True
    # --- Refunds ---
    #: Credits smaller than this are not refunded by check (they stay as credit).
    refund_check_minimum_cents: int = 100


DEFAULT = MoneyPolicy()


def load(path: str | Path | None) -> MoneyPolicy:
    """The policy in ``path`` (YAML) over the defaults; the defaults when there is none."""
    if not path:
        return DEFAULT
    import yaml

    text = Path(path).read_text(encoding="utf-8")
    data = yaml.safe_load(text) or {}
    if not isinstance(data, dict):
        raise FieldErrors.one("file", "The money policy file must be a list of name: value lines.")
    return from_mapping(data)


def from_mapping(data: dict[str, Any]) -> MoneyPolicy:
    known = {f.name: f for f in fields(MoneyPolicy)}
    errors: dict[str, InvalidInput] = {}
    values: dict[str, Any] = {}
    for name, raw in data.items():
        if name not in known:
            errors[str(name)] = InvalidInput(f"Unknown money policy setting {name!r}.", str(name))
            continue
        default = getattr(DEFAULT, name)
        try:
            values[name] = _coerce(default, raw)
        except (TypeError, ValueError, InvalidOperation):
            errors[name] = InvalidInput(f"{name} must be {_kind(default)}, not {raw!r}.", name)
    if errors:
        raise FieldErrors(errors)
    return replace(DEFAULT, **values)


def _coerce(default: Any, raw: Any) -> Any:
    if isinstance(default, bool):
        if not isinstance(raw, bool):
            raise TypeError(raw)
        return raw
    if isinstance(default, int):
        if isinstance(raw, bool) or not isinstance(raw, int) or raw < 0:
            raise TypeError(raw)
        return raw
    if isinstance(default, Decimal):
        if isinstance(raw, bool) or isinstance(raw, float):
            # YAML reads 2.5 as a float; write it in quotes ("2.5") so it stays exact.
            raise TypeError(raw)
        value = Decimal(str(raw))
        if value < 0:
            raise ValueError(raw)
        return value
    raise TypeError(raw)


def _kind(default: Any) -> str:
    if isinstance(default, bool):
        return "true or false"
    if isinstance(default, int):
        return "a whole number, 0 or more"
    return 'a number in quotes, like "2"'
