"""Payments taken at the counter: one receipt for what a customer hands over once (cash, a
check, a card on the terminal, a money order), split across one or more accounts.

Each account's share is its own ``Payment`` (channel ``counter``, method the tender, in the
cashier's open drawer, on the receipt) and posts at once through ``payments.post_new``:
oldest charges first, the rest a credit (an overpayment is real money, so it is taken and
noted for review). Cash may be more than the total: the change is given back. A cash-only
account (``cash_only``) pays in cash or by money order only. The card terminal's approval
code is kept; no card data ever is.

An account is found by its number or by the stub's scan line, typed or scanned
(``numbers.scan_line``); a scan line also gives the amount when none is typed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import String, bindparam, cast, func, insert, select
from sqlalchemy.orm import Session, joinedload

from . import audit, cash_only, payments
from .drawers import TENDERS, require_open
from .errors import FieldErrors, InvalidInput
from .models import Account, CashDrawer, CounterReceipt, Payment, User
from .numbers import luhn_valid, normalise_account_number, scan_line_valid
from .users import parse_amount

#: How many accounts one receipt may pay (the form's rows).
MAX_LINES = 5


@dataclass(frozen=True)
class Line:
    """One account's share of a receipt, as the cashier entered it."""

    account: str
    amount: str


@dataclass(frozen=True)
class Tender:
    kind: str
    tendered: str = ""
    check_number: str = ""
    check_bank: str = ""
    approval_code: str = ""


def find_account(session: Session, text: str, field: str) -> tuple[Account, int | None]:
    """The account a typed number or a scan line names, and the scan line's amount (None
    for a number). Raises ``InvalidInput`` for ``field``."""
    text = (text or "").strip()
    parts = text.split()
    if len(parts) == 3:
        if not scan_line_valid(text):
            raise InvalidInput("This scan line does not read right; type it again or enter the account number.", field)
        number, amount = parts[0], int(parts[1])
    elif len(parts) == 1 and len(normalise_account_number(text)) > 12 and text.isdigit():
        # Scanned without spaces: account digits, ten amount digits, a check digit.
        joined = text
        line = f"{joined[:-11]} {joined[-11:-1]} {joined[-1]}"
        if not scan_line_valid(line):
            raise InvalidInput("This scan line does not read right; type it again or enter the account number.", field)
        number, amount = joined[:-11], int(joined[-11:-1])
    else:
        number, amount = normalise_account_number(text), None
        if not number:
            raise InvalidInput("Enter the account number or scan the bill stub.", field)
        if not luhn_valid(number):
            raise InvalidInput("This account number is not valid; check the digits.", field)
    # The customer comes in the same query: the receipt takes the first account's name, email
    # and language.
    account = session.scalar(select(Account).options(joinedload(Account.customer)).where(Account.number == number))
    if account is None:
        raise InvalidInput("There is no account with this number.", field)
    return account, amount


def _cents(text: str, field: str, what: str) -> int:
    cents = parse_amount(text)
    if cents is None:
        raise InvalidInput(f"Enter the {what} in dollars and cents, like 25.00.", field)
    if cents <= 0:
        raise InvalidInput(f"The {what} must be more than zero.", field)
    return cents


@dataclass(frozen=True)
class Checked:
    accounts: list[tuple[Account, int]]
    total_cents: int
    tendered_cents: int | None
    change_cents: int


def check_form(session: Session, drawer: CashDrawer | None, lines: Sequence[Line], tender: Tender) -> Checked:
    """Every problem with a counter payment, by field (``FieldErrors``), or what to take."""
    errors: dict[str, InvalidInput] = {}
    try:
        require_open(drawer)
    except InvalidInput as exc:
        errors["drawer"] = exc
    if tender.kind not in TENDERS:
        errors["tender"] = InvalidInput("Choose cash, check, card or money order.", "tender")
    taken: list[tuple[Account, int]] = []
    seen: set[int] = set()
    for i, line in enumerate(lines[:MAX_LINES], 1):
        if not line.account.strip() and not line.amount.strip():
            continue
        account_field, amount_field = f"account-{i}", f"amount-{i}"
        account: Account | None = None
        scanned: int | None = None
        try:
            account, scanned = find_account(session, line.account, account_field)
        except InvalidInput as exc:
            errors[account_field] = exc
        if account is not None and account.id in seen:
            errors[account_field] = InvalidInput("This account is already on the receipt.", account_field)
            account = None
        cents: int | None = None
        if not line.amount.strip() and scanned:
            cents = scanned
        else:
            try:
                cents = _cents(line.amount, amount_field, "amount")
            except InvalidInput as exc:
                errors[amount_field] = exc
        if account is not None and tender.kind in TENDERS:
            problem = cash_only.refusal(account, tender.kind, "tender")
            if problem is not None:
                errors["tender"] = problem
        if account is not None and cents is not None:
            seen.add(account.id)
            taken.append((account, cents))
    if not taken and not any(k.startswith(("account-", "amount-")) for k in errors):
        errors["account-1"] = InvalidInput("Enter the account number or scan the bill stub.", "account-1")
    total = sum(c for _a, c in taken)
    tendered: int | None = None
    change = 0
    if tender.kind == "cash":
        if tender.tendered.strip():
            try:
                tendered = _cents(tender.tendered, "tendered", "cash handed over")
            except InvalidInput as exc:
                errors["tendered"] = exc
            if tendered is not None and taken and tendered < total:
                errors["tendered"] = InvalidInput("The cash handed over is less than the total.", "tendered")
        else:
            tendered = total
        if tendered is not None:
            change = max(tendered - total, 0)
    elif tender.kind in ("check", "money_order"):
        if not tender.check_number.strip():
            errors["check_number"] = InvalidInput("Enter the check or money order number.", "check_number")
        elif len(tender.check_number.strip()) > 30:
            errors["check_number"] = InvalidInput("Keep the number to 30 characters.", "check_number")
        if len(tender.check_bank.strip()) > 100:
            errors["check_bank"] = InvalidInput("Keep the bank's name to 100 characters.", "check_bank")
    elif tender.kind == "card":
        code = tender.approval_code.strip()
        if not code or len(code) > 20 or not code.isalnum():
            errors["approval_code"] = InvalidInput(
                "Enter the terminal's approval code (letters and digits; never the card number).", "approval_code"
            )
        elif code.isdigit() and len(code) >= 12:
            errors["approval_code"] = InvalidInput(
                "That looks like a card number. Enter only the terminal's approval code.", "approval_code"
            )
    if errors:
        raise FieldErrors(errors)
    return Checked(taken, total, tendered, change)


def next_receipt_number(session: Session, drawer: CashDrawer) -> str:
    n = session.scalar(select(func.count()).where(CounterReceipt.drawer_id == drawer.id)) or 0
    return f"R{drawer.business_date:%Y%m%d}-{drawer.id}-{n + 1}"


#: The receipt's row in one INSERT ... RETURNING, its number (``next_receipt_number``)
#: counted in the same statement: ``prefix`` is the number's fixed part.
_INSERT_RECEIPT = (
    insert(CounterReceipt)
    .values(
        number=bindparam("prefix", type_=String)
        + cast(
            select(func.count() + 1).where(CounterReceipt.drawer_id == bindparam("of_drawer")).scalar_subquery(),
            String,
        )
    )
    .returning(CounterReceipt)
)


def take(
    session: Session,
    cashier: User,
    drawer: CashDrawer | None,
    lines: Sequence[Line],
    tender: Tender,
    now: datetime,
    payer_name: str = "",
) -> CounterReceipt:
    """Check the whole form (``FieldErrors``: nothing written), then write the receipt and
    one payment per account, each posted at once, in the caller's transaction."""
    checked = check_form(session, drawer, lines, tender)
    assert drawer is not None  # check_form refused a missing drawer
    on = drawer.business_date
    first = checked.accounts[0][0]
    # One INSERT ... RETURNING writes the receipt, its number counted in the same statement.
    receipt = session.scalars(
        _INSERT_RECEIPT,
        {
            "prefix": f"R{drawer.business_date:%Y%m%d}-{drawer.id}-",
            "of_drawer": drawer.id,
            "drawer_id": drawer.id,
            "taken_by_id": cashier.id,
            "taken_at": now,
            "tender": tender.kind,
            "total_cents": checked.total_cents,
            "tendered_cents": checked.tendered_cents,
            "change_cents": checked.change_cents,
            "check_number": tender.check_number.strip() or None if tender.kind in ("check", "money_order") else None,
            "check_bank": tender.check_bank.strip() or None if tender.kind == "check" else None,
            "approval_code": tender.approval_code.strip() or None if tender.kind == "card" else None,
            "payer_name": (payer_name or "").strip()[:200] or first.customer.name,
            "email": first.customer.email or None,
            "language": first.customer.preferred_language or "en",
        },
    ).one()
    made: list[dict[str, int]] = []
    events: list[dict[str, Any]] = []
    # Lock the accounts in one order, so two cashiers paying the same two accounts never deadlock.
    for account, cents in sorted(checked.accounts, key=lambda pair: pair[0].id):
        # Posted at once (``payments.post_new``: what ``post_now`` does for a pending payment,
        # with the payment's row written once, already posted).
        payment_id = payments.post_new(
            session,
            on,
            now,
            f"Counter payment, receipt {receipt.number}",
            events,
            account_id=account.id,
            amount_cents=cents,
            channel="counter",
            method=tender.kind,
            received_on=on,
            reference=receipt.number,
            user_id=cashier.id,
            drawer_id=drawer.id,
            receipt_id=receipt.id,
            check_number=receipt.check_number,
            approval_code=receipt.approval_code,
            created_at=now,
        )
        made.append({"id": payment_id, "account_id": account.id, "amount_cents": cents})
    events.append(
        audit.row(
            "counter.payment_taken",
            actor=cashier,
            entity_type="counter_receipt",
            entity_id=receipt.id,
            after={
                "receipt": receipt.number,
                "drawer": drawer.id,
                "tender": tender.kind,
                "total_cents": receipt.total_cents,
                "change_cents": receipt.change_cents,
                "payments": made,
            },
        )
    )
    audit.write(session, events)  # the payments' events and the receipt's, in one statement
    return receipt


def receipt_payments(session: Session, receipt_id: int) -> list[Payment]:
    return list(session.scalars(select(Payment).where(Payment.receipt_id == receipt_id).order_by(Payment.id)))
