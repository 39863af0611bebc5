"""Returned payments and cash only: a check the bank sent back (NSF), an ACH debit returned
with an R-code, or a card payment disputed through the processor.

A return is recorded once, for a posted check, bank (ACH) or card payment, dated within its
window after the payment was received:

- NSF (a check, insufficient funds): 10 banking days;
- R01 insufficient funds, R02 account closed, R03 no account, R04 invalid number, R08 stop
  payment: 2 banking days (NACHA's deadline for these);
- R07 authorization revoked, R10 not authorized (a consumer's "unauthorized" return): 60
  calendar days;
- DISPUTE (a card charge disputed): 120 calendar days.

A check may be returned with NSF or with an R-code (a check converted to an ACH debit at the
lockbox); a bank payment with an R-code; a card payment only as a DISPUTE. Cash and money
orders are never returned.

Recording it (``record_return``) reverses the payment (``payments.return_payment``: its own
transaction, and the recovery of written-off debt it made, if any), charges the policy's
returned-payment fee (a Fee transaction, Dr ``AR:FEES`` of the account / Cr ``REVENUE:FEES``)
and, when the account now has the policy's number of returns within its window
(``returns_before_cash_only`` in ``returns_window_months``), makes it cash only. What the
processor reports (a dispute, an ACH return after posting) goes through the same rule, but
is not refused for its date: the money has already been taken back.

Banking days skip weekends and the office's holidays (``holidays``), a slightly longer
window than the Federal Reserve's calendar, never a shorter one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import cast

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from . import audit, ledger, payments, permissions, posting
from .delinquency import add_business_days
from .errors import N_, FieldErrors, InvalidInput
from .holidays import around
from .models import Account, LedgerEntry, LedgerTransaction, Payment, User
from .money_policy import MoneyPolicy
from .permissions import Action
from .status import PaymentStatus

NSF = "NSF"
DISPUTE = "DISPUTE"
ACH_CODES = ("R01", "R02", "R03", "R04", "R07", "R08", "R10")
#: A consumer's "unauthorized" returns: they may come up to 60 days after settlement.
UNAUTHORIZED = frozenset({"R07", "R10"})
CODES = (NSF, *ACH_CODES, DISPUTE)

#: Each reason in plain words (the customer's notice translates them).
LABELS = {
    NSF: N_("Check returned for insufficient funds"),
    "R01": N_("Insufficient funds"),
    "R02": N_("The bank account is closed"),
    "R03": N_("No such bank account"),
    "R04": N_("Invalid bank account number"),
    "R07": N_("The authorization was revoked"),
    "R08": N_("Payment stopped"),
    "R10": N_("The account holder says it was not authorized"),
    DISPUTE: N_("The card payment was disputed"),
}


@dataclass(frozen=True)
class Window:
    """How long after the payment was received a return may be dated."""

    days: int
    banking: bool

    def last_day(self, received_on: date) -> date:
        if self.banking:
            return add_business_days(received_on, self.days, around(received_on))
        return received_on + timedelta(days=self.days)

    def words(self) -> str:
        return f"{self.days} {'banking' if self.banking else 'calendar'} days"


WINDOWS = {
    NSF: Window(10, banking=True),
    **{code: Window(2, banking=True) for code in ACH_CODES if code not in UNAUTHORIZED},
    **{code: Window(60, banking=False) for code in UNAUTHORIZED},
    DISPUTE: Window(120, banking=False),
}

#: The reasons each kind of payment may come back with.
METHOD_CODES: dict[str, tuple[str, ...]] = {
    "check": (NSF, *ACH_CODES),
    "bank": ACH_CODES,
    "card": (DISPUTE,),
}

#: The processor's words for a return (Stripe's ACH failure and dispute reasons) as R-codes.
PROCESSOR_REASONS = {
    "insufficient_funds": "R01",
    "account_closed": "R02",
    "no_account": "R03",
    "invalid_account_number": "R04",
    "authorization_revoked": "R07",
    "stop_payment": "R08",
    "not_authorized": "R10",
    "debit_not_authorized": "R10",
    "unauthorized": "R10",
}


def parse_code(text: str) -> str | None:
    code = text.strip().upper()
    return code if code in CODES else None


def code_from_processor(payment: Payment, reason: str | None) -> str:
    """The code for a return the processor reported: a card's is a dispute; a bank
    debit's is its R-code (an unknown reason is taken as "not authorized", what a bank
    dispute is)."""
    if payment.method == "card":
        return DISPUTE
    word = (reason or "").strip()
    if parse_code(word) in ACH_CODES:
        return word.upper()
    return PROCESSOR_REASONS.get(word.lower(), "R10")


def returnable(payment: Payment) -> bool:
    """May this payment be recorded as returned (by staff, now)?"""
    return (
        payment.status == PaymentStatus.POSTED
        and payment.ledger_transaction_id is not None
        and payment.method in METHOD_CODES
    )


def problems(
    payment: Payment, code_text: str, on: date | None, *, check_window: bool = True
) -> dict[str, InvalidInput]:
    """Everything wrong with returning ``payment`` for ``code_text`` on ``on``, by field
    (``payment``, ``reason``, ``on``); empty when it may be recorded."""
    errors: dict[str, InvalidInput] = {}
    if payment.status == PaymentStatus.RETURNED:
        when = payment.returned_on.isoformat() if payment.returned_on else "before"
        errors["payment"] = InvalidInput(
            "Payment %(id)s was already returned (%(code)s on %(when)s). A payment is returned once.",
            "payment",
            id=payment.id,
            code=payment.return_code or "returned",
            when=when,
        )
        return errors
    if payment.status != PaymentStatus.POSTED or payment.ledger_transaction_id is None:
        errors["payment"] = InvalidInput(
            "Payment %(id)s is %(status)s, not posted: only a posted payment can be returned.",
            "payment",
            id=payment.id,
            status=payment.status,
        )
        return errors
    allowed = METHOD_CODES.get(payment.method)
    if allowed is None:
        errors["payment"] = InvalidInput(
            "Payment %(id)s was paid by %(method)s, which no bank can return. Only checks, bank (ACH) "
            "payments and card payments are returned.",
            "payment",
            id=payment.id,
            method=payment.method.replace("_", " "),
        )
        return errors
    code = parse_code(code_text)
    if code is None:
        errors["reason"] = InvalidInput("Choose the return reason: %(codes)s.", "reason", codes=", ".join(allowed))
    elif code not in allowed:
        errors["reason"] = InvalidInput(
            "A %(method)s payment cannot be returned with %(code)s: use %(codes)s.",
            "reason",
            method=payment.method,
            code=code,
            codes=", ".join(allowed),
        )
    if on is None:
        errors["on"] = InvalidInput("Give the date of the return as YYYY-MM-DD.", "on")
    elif on < payment.received_on:
        errors["on"] = InvalidInput(
            "The return is dated %(on)s, before the payment was received (%(received)s).",
            "on",
            on=on.isoformat(),
            received=payment.received_on.isoformat(),
        )
    elif code is not None and code in allowed and check_window:
        window = WINDOWS[code]
        last = window.last_day(payment.received_on)
        if on > last:
            errors["on"] = InvalidInput(
                "A %(code)s return comes within %(window)s of the payment (received %(received)s), so by "
                "%(last)s; this one is dated %(on)s. Too late to record as a return: call the bank.",
                "on",
                code=code,
                window=window.words(),
                received=payment.received_on.isoformat(),
                last=last.isoformat(),
                on=on.isoformat(),
            )
    return errors


def add_months(day: date, months: int) -> date:
    """The same day ``months`` months later (earlier when negative), or the month's last day."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    last = (date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)).day
    return date(year, month, min(day.day, last))


def returns_within(session: Session, account_id: int, on: date, months: int) -> list[Payment]:
    """The account's returned payments dated within ``months`` months up to ``on``."""
    since = add_months(on, -months)
    return list(
        session.scalars(
            select(Payment)
            .where(
                Payment.account_id == account_id,
                Payment.status == PaymentStatus.RETURNED.value,
                Payment.returned_on.is_not(None),
                Payment.returned_on > since,
                Payment.returned_on <= on,
            )
            .order_by(Payment.returned_on, Payment.id)
        )
    )


def fee_transaction(account_id: int, on: date, cents: int, payment_id: int) -> ledger.Transaction:
    return ledger.Transaction(
        ledger.Kind.FEE,
        on,
        (
            ledger.Entry(ledger.receivable(ledger.FEES), cents, account_id, ledger.FEES),
            ledger.Entry(ledger.FEE_REVENUE, -cents, None, ledger.FEES),
        ),
        due_date=on,
        memo=f"Returned payment fee (payment {payment_id})",
    )


def cash_only_until(session: Session, account: Account, policy: MoneyPolicy) -> date | None:
    """When a cash-only account may ask to pay otherwise again: ``cash_only_months`` after
    its last return (None when it is not cash only, or has no return on record)."""
    if not account.cash_only:
        return None
    last = session.scalar(
        select(func.max(Payment.returned_on)).where(
            Payment.account_id == account.id, Payment.status == PaymentStatus.RETURNED.value
        )
    )
    start = last or account.cash_only_since
    return add_months(start, policy.cash_only_months) if start else None


@dataclass(frozen=True)
class Returned:
    """What recording a return did."""

    payment: Payment
    code: str
    #: The returned-payment fee charged (0 when the policy charges none).
    fee_cents: int
    #: The account's balance afterwards.
    balance_cents: int
    #: The account became cash only with this return.
    made_cash_only: bool
    #: The returns counted for cash only (within the policy's window), this one included.
    returns_in_window: int


def record_return(
    session: Session,
    payment: Payment,
    code_text: str,
    on: date | None,
    now: datetime,
    policy: MoneyPolicy,
    *,
    actor: User | None = None,
    from_processor: bool = False,
    remote_addr: str | None = None,
) -> Returned:
    """Record ``payment`` as returned on ``on`` for ``code_text``: reversed, the fee
    charged, and cash only when the policy says so. ``FieldErrors`` (nothing written) when it
    may not be; staff need ``PAYMENTS_RETURN`` (``actor`` None: the processor reported it,
    ``from_processor``, and its date is not refused)."""
    if not from_processor:
        permissions.require(actor, Action.PAYMENTS_RETURN)
    payments.lock_account(session, payment.account_id)
    session.refresh(payment)
    errors = problems(payment, code_text, on, check_window=not from_processor)
    if errors:
        raise FieldErrors(errors)
    assert on is not None
    code = parse_code(code_text) or code_text
    payments.return_payment(session, payment, on, f"{code}: {LABELS[code]}", code=code, actor=actor, now=now)
    account = session.get(Account, payment.account_id)
    assert account is not None  # the payment's account (a foreign key)
    fee = policy.returned_payment_fee_cents
    if fee > 0:
        row = posting.post(
            session,
            fee_transaction(account.id, on, fee, payment.id),
            account.id,
            actor.id if actor else None,
            posted_at=now,
        )
        payment.return_fee_transaction_id = row.id
        audit.record(
            session,
            "payment.return_fee",
            actor=actor,
            entity_type="payment",
            entity_id=payment.id,
            after={"fee_cents": fee, "ledger_transaction": row.id},
            remote_addr=remote_addr,
        )
    counted = returns_within(session, account.id, on, policy.returns_window_months)
    made_cash_only = False
    if (
        policy.returns_before_cash_only > 0
        and len(counted) >= policy.returns_before_cash_only
        and not account.cash_only
    ):
        made_cash_only = True
        before = {"cash_only": False, "cash_only_since": None, "cash_only_reason": account.cash_only_reason}
        account.cash_only = True
        account.cash_only_since = on
        ids = ", ".join(str(p.id) for p in counted)
        account.cash_only_reason = (
            f"{len(counted)} payments returned within {policy.returns_window_months} months (payments {ids})"
        )[:200]
        audit.record(
            session,
            "account.cash_only",
            actor=actor,
            entity_type="account",
            entity_id=account.id,
            before=before,
            after={
                "cash_only": True,
                "cash_only_since": on.isoformat(),
                "cash_only_reason": account.cash_only_reason,
            },
            remote_addr=remote_addr,
        )
    session.flush()
    return Returned(
        payment, code, max(fee, 0), posting.account_balance(session, account.id), made_cash_only, len(counted)
    )


def lift_cash_only(
    session: Session, account: Account, actor: User, reason: str, now: datetime, remote_addr: str | None = None
) -> None:
    """A supervisor lets a cash-only account pay by check, card and bank again, saying why."""
    permissions.require(actor, Action.CASH_ONLY_LIFT)
    reason = reason.strip()
    errors: dict[str, InvalidInput] = {}
    if not account.cash_only:
        errors["account"] = InvalidInput("Account %(number)s is not cash only.", "account", number=account.number)
    if not reason:
        errors["reason"] = InvalidInput("Say why cash only is lifted.", "reason")
    elif len(reason) > 300:
        errors["reason"] = InvalidInput("Keep the reason to 300 characters.", "reason")
    if errors:
        raise FieldErrors(errors)
    before = {
        "cash_only": True,
        "cash_only_since": account.cash_only_since.isoformat() if account.cash_only_since else None,
        "cash_only_reason": account.cash_only_reason,
    }
    account.cash_only = False
    account.cash_only_since = None
    account.cash_only_reason = None
    audit.record(
        session,
        "account.cash_only_lifted",
        actor=actor,
        entity_type="account",
        entity_id=account.id,
        before=before,
        after={"cash_only": False, "reason": reason, "at": now.isoformat()},
        remote_addr=remote_addr,
    )


# --- portal ledger check ------------------------------------------------------------------

SHOW = 20


def check(session: Session) -> list[str]:
    """Every returned payment has its reversal, and the fee it records exists and is a fee
    of the same account that charged something."""
    out: list[str] = []
    reversal = aliased(LedgerTransaction)
    unreversed = session.scalars(
        select(Payment.id)
        .outerjoin(reversal, reversal.reverses_id == Payment.ledger_transaction_id)
        .where(Payment.returned_on.is_not(None), reversal.id.is_(None))
        .order_by(Payment.id)
        .limit(SHOW)
    ).all()
    out += [f"returned payment {pid} has no reversal of its transaction" for pid in unreversed]
    not_returned = session.scalars(
        select(Payment.id)
        .where(Payment.returned_on.is_not(None), Payment.status != PaymentStatus.RETURNED.value)
        .order_by(Payment.id)
        .limit(SHOW)
    ).all()
    out += [f"payment {pid} has a return date but is not returned" for pid in not_returned]
    fee = aliased(LedgerTransaction)
    rows = session.execute(
        select(Payment.id, Payment.account_id, fee.id, fee.kind, fee.account_id)
        .outerjoin(fee, fee.id == Payment.return_fee_transaction_id)
        .where(Payment.return_fee_transaction_id.is_not(None))
        .where((fee.id.is_(None)) | (fee.kind != ledger.Kind.FEE.value) | (fee.account_id != Payment.account_id))
        .order_by(Payment.id)
        .limit(SHOW)
    ).all()
    for pid, account_id, found, kind, fee_account in rows:
        fid = cast(int | None, found)
        if fid is None:
            out.append(f"returned payment {pid} names a fee transaction that does not exist")
        elif kind != ledger.Kind.FEE.value:
            out.append(f"returned payment {pid} names transaction {fid} as its fee, but it is a {kind}")
        else:
            out.append(f"returned payment {pid} of account id {account_id} has its fee on account id {fee_account}")
    charged = (
        select(func.coalesce(func.sum(LedgerEntry.amount_cents), 0))
        .where(
            LedgerEntry.transaction_id == Payment.return_fee_transaction_id,
            LedgerEntry.account_id == Payment.account_id,
        )
        .scalar_subquery()
    )
    nothing = session.scalars(
        select(Payment.id)
        .where(Payment.return_fee_transaction_id.is_not(None), charged <= 0)
        .order_by(Payment.id)
        .limit(SHOW)
    ).all()
    out += [f"returned payment {pid}'s fee transaction charges the account nothing" for pid in nothing]
    return out
