"""Refunds of an account's credit: how much may be refunded, and the ledger transactions of
approving and paying one.

A refund is asked for by staff, for at most the account's credit less what other refunds
already ask for; approved by someone else (the amount is checked again, with the account
locked), which moves the credit to ``REFUNDS_PAYABLE``; then paid back to the original card
(through the payment gateway) or by check (the accounts-payable check register export):
``REFUNDS_PAYABLE`` to cash (``CASH:ONLINE`` for a card, ``CASH:AP`` for a check). A card
refund the gateway refuses leaves the refund ``failed`` and puts the credit back (the
reversal of the approval).

No wall clock here: every date is passed in.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import date, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from . import audit, csv_safe, ledger, payments, permissions, posting
from .errors import FieldErrors, InvalidInput
from .models import Account, LedgerEntry, LedgerTransaction, Payment, Refund, User
from .permissions import Action
from .status import PaymentStatus, RefundStatus

METHODS = ("card", "check")
#: Where the money goes out, per method.
CHANNEL = {"card": "online", "check": "ap"}
REGISTER_COLUMNS = ("refund", "payee", "mailing_address", "amount", "account", "reason")


def credit_cents(session: Session, account_id: int) -> int:
    """The account's credit (the negative of its balance; 0 when it owes)."""
    return max(-posting.account_balance(session, account_id), 0)


def asked_cents(session: Session, account_id: int, excluding: int | None = None) -> int:
    """What refunds still only requested ask of the account's credit."""
    query = select(func.coalesce(func.sum(Refund.amount_cents), 0)).where(
        Refund.account_id == account_id, Refund.status == RefundStatus.REQUESTED.value
    )
    if excluding is not None:
        query = query.where(Refund.id != excluding)
    return int(session.scalar(query) or 0)


def refundable_cents(session: Session, account_id: int, excluding: int | None = None) -> int:
    return max(credit_cents(session, account_id) - asked_cents(session, account_id, excluding), 0)


def card_payment(session: Session, account_id: int, amount_cents: int) -> Payment | None:
    """The newest posted card payment made through the processor that covers the amount."""
    return session.scalar(
        select(Payment)
        .where(
            Payment.account_id == account_id,
            Payment.status == PaymentStatus.POSTED.value,
            Payment.method == "card",
            Payment.processor_id.is_not(None),
            Payment.amount_cents >= amount_cents,
        )
        .order_by(Payment.received_on.desc(), Payment.id.desc())
        .limit(1)
    )


def approval_transaction(account_id: int, on: date, cents: int, refund_id: int) -> ledger.Transaction:
    return ledger.Transaction(
        ledger.Kind.REFUND,
        on,
        (
            ledger.Entry(ledger.UNAPPLIED_CREDIT, cents, account_id),
            ledger.Entry(ledger.REFUNDS_PAYABLE, -cents),
        ),
        memo=f"Refund {refund_id} approved",
    )


def paid_transaction(on: date, cents: int, method: str, refund_id: int) -> ledger.Transaction:
    how = "to the card" if method == "card" else "by check"
    return ledger.Transaction(
        ledger.Kind.REFUND,
        on,
        (
            ledger.Entry(ledger.REFUNDS_PAYABLE, cents),
            ledger.Entry(ledger.cash(CHANNEL[method]), -cents),
        ),
        memo=f"Refund {refund_id} paid {how}",
    )


def mailing_address(refund: Refund) -> str:
    parts = [
        refund.mailing_line1 or "",
        refund.mailing_city or "",
        refund.mailing_state or "",
        refund.mailing_zip or "",
    ]
    line, city, state, zip_ = parts
    return ", ".join(p for p in (line, city, f"{state} {zip_}".strip()) if p)


def fill_payee(refund: Refund, account: Account) -> None:
    """The payee and mailing address at the time of the request (a check goes there)."""
    customer = account.customer
    refund.payee_name = customer.name
    if customer.mailing_line1:
        refund.mailing_line1 = customer.mailing_line1
        refund.mailing_city = customer.mailing_city
        refund.mailing_state = customer.mailing_state
        refund.mailing_zip = customer.mailing_zip
    else:
        premise = account.premise
        refund.mailing_line1 = premise.address_line1 + (f" {premise.address_line2}" if premise.address_line2 else "")
        refund.mailing_city = premise.city
        refund.mailing_state = premise.state
        refund.mailing_zip = premise.zip


def register_csv(rows: Sequence[tuple[Refund, str]]) -> str:
    """The accounts-payable check register: one line per refund (with its account number)."""
    out = io.StringIO()
    writer = csv_safe.writer(out)
    writer.writerow(REGISTER_COLUMNS)
    for refund, number in rows:
        writer.writerow(
            (
                refund.id,
                refund.payee_name or "",
                mailing_address(refund),
                f"{refund.amount_cents // 100}.{refund.amount_cents % 100:02d}",
                number,
                refund.reason,
            )
        )
    return out.getvalue()


def request_in(
    session: Session,
    user: User,
    account: Account,
    amount_cents: int,
    method: str,
    reason: str,
    now: datetime,
) -> Refund:
    """Ask for a refund inside the caller's transaction (the final bill uses this for the
    credit a stop leaves). ``FieldErrors`` when the amount is above what may be refunded."""
    permissions.require(user, Action.REFUNDS_REQUEST)
    payments.lock_account(session, account.id)
    errors: dict[str, InvalidInput] = {}
    allowed = refundable_cents(session, account.id)
    if amount_cents <= 0:
        errors["amount"] = InvalidInput("The amount must be more than zero.", "amount")
    elif amount_cents > allowed:
        errors["amount"] = InvalidInput(
            f"At most {allowed // 100:,}.{allowed % 100:02d} can be refunded: the account's credit"
            " less the refunds already asked for.",
            "amount",
        )
    payment = None
    if method not in METHODS:
        errors["method"] = InvalidInput("Choose card or check.", "method")
    elif method == "card" and "amount" not in errors:
        payment = card_payment(session, account.id, amount_cents)
        if payment is None:
            errors["method"] = InvalidInput(
                "No card payment on this account covers this amount: refund by check.", "method"
            )
    if not reason.strip():
        errors["reason"] = InvalidInput("Say why (closed account, overpayment, ...).", "reason")
    if errors:
        raise FieldErrors(errors)
    refund = Refund(
        account_id=account.id,
        amount_cents=amount_cents,
        reason=reason.strip()[:200],
        method=method,
        payment_id=payment.id if payment else None,
        status=RefundStatus.REQUESTED.value,
        requested_by_id=user.id,
        requested_at=now,
    )
    fill_payee(refund, account)
    session.add(refund)
    session.flush()
    audit.record(
        session,
        "refund.requested",
        actor=user,
        entity_type="refund",
        entity_id=refund.id,
        after={"account": account.number, "amount_cents": amount_cents, "method": method, "reason": refund.reason},
    )
    return refund


# --- portal ledger check -------------------------------------------------------------------


def ledger_problems(session: Session) -> list[str]:
    """Refunds payable equals the approved, unpaid refunds (per account); no refund was
    approved for more than the account's credit at the time."""
    payable: dict[int | None, int] = dict(
        session.execute(
            select(LedgerTransaction.account_id, -func.sum(LedgerEntry.amount_cents))
            .join(LedgerEntry, LedgerEntry.transaction_id == LedgerTransaction.id)
            .where(LedgerEntry.gl_account == ledger.REFUNDS_PAYABLE)
            .group_by(LedgerTransaction.account_id)
        ).all()
    )
    approved: dict[int | None, int] = dict(
        session.execute(
            select(Refund.account_id, func.sum(Refund.amount_cents))
            .where(Refund.status == RefundStatus.APPROVED.value)
            .group_by(Refund.account_id)
        ).all()
    )
    out: list[str] = []
    for account_id in sorted(set(payable) | set(approved), key=lambda a: (a is None, a or 0)):
        got = int(payable.get(account_id) or 0)
        expected = int(approved.get(account_id) or 0)
        if got != expected:
            out.append(
                f"account id {account_id} has {got} cents in refunds payable"
                f" but {expected} cents of refunds approved and not paid"
            )
    # Approved or paid: the approval left the account with no debit balance.
    balance_after = (
        select(func.coalesce(func.sum(LedgerEntry.amount_cents), 0))
        .where(
            LedgerEntry.account_id == Refund.account_id, LedgerEntry.transaction_id <= Refund.approved_transaction_id
        )
        .scalar_subquery()
    )
    over = session.execute(
        select(Refund.id, balance_after)
        .where(
            Refund.status.in_((RefundStatus.APPROVED.value, RefundStatus.PAID.value)),
            Refund.approved_transaction_id.is_not(None),
            balance_after > 0,
        )
        .limit(20)
    ).all()
    out += [f"refund {rid} was more than the account's credit (left it owing {int(b)} cents)" for rid, b in over]
    missing = session.scalars(
        select(Refund.id)
        .where(
            Refund.status.in_((RefundStatus.APPROVED.value, RefundStatus.PAID.value)),
            Refund.approved_transaction_id.is_(None),
        )
        .limit(20)
    ).all()
    out += [f"refund {rid} is approved but has no approval transaction" for rid in missing]
    unpaid = session.scalars(
        select(Refund.id)
        .where(Refund.status == RefundStatus.PAID.value, Refund.paid_transaction_id.is_(None))
        .limit(20)
    ).all()
    out += [f"refund {rid} is paid but has no payment transaction" for rid in unpaid]
    return out[:50]
