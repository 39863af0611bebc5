"""Returned payments: staff record one (the account's payments panel, ``portal payments
return``), the processor reports one (a disputed card charge, a returned bank debit, through
the webhook), and the customer is told by email and letter; a supervisor lifts cash only.

Each function is one use case in the caller's transaction (the session it is handed), the
way the staff account page's services are (``services/accounts.py``): recording a return
writes the reversal, the fee, cash only and the customer's email (a row of the email outbox,
``billing_core/outbox.py``) together, or nothing. The caller sends the email once the
transaction has committed (``jobs.send_outbox_soon``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from functools import cache

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ..adapters.clock import Clock
from ..adapters.database import transaction
from ..billing_core import outbox, permissions, posting, returns
from ..billing_core.errors import NotFound
from ..billing_core.models import Account, Customer, LedgerEntry, Payment, User
from ..billing_core.money_policy import MoneyPolicy
from ..billing_core.permissions import Action
from ..billing_core.status import PaymentStatus
from ..emails import Mailer

#: The email job that tells the customer (``notifications.SENDERS``).
RETURN_EMAIL = "email.payment_returned"
FIELDS = ("reason", "on")


@dataclass(frozen=True)
class Recorded:
    """A return recorded: what it did, and the customer's email queued (None: no address)."""

    returned: returns.Returned
    outbox_id: int | None


def _queue_notice(session: Session, payment: Payment, now: datetime) -> int | None:
    account = session.get(Account, payment.account_id)
    assert account is not None  # the payment's account (a foreign key)
    if not _recipient(session, account, payment)[0]:
        return None
    return outbox.queue(session, RETURN_EMAIL, {"payment_id": payment.id}, now).id


def parse_on(text: str) -> date | None:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        return None


def record_return(
    session: Session,
    actor: User,
    payment_id: int,
    values: dict[str, str],
    *,
    policy: MoneyPolicy,
    now: datetime,
    remote_addr: str | None = None,
) -> Recorded:
    """Staff record a returned payment (``values``: ``reason`` the code, ``on`` the date of
    the return, YYYY-MM-DD). ``NotAllowed`` without ``PAYMENTS_RETURN``, ``NotFound`` for no
    such payment, ``FieldErrors`` (nothing written) when it may not be returned."""
    permissions.require(actor, Action.PAYMENTS_RETURN)
    payment = session.get(Payment, payment_id)
    if payment is None:
        raise NotFound(f"payment {payment_id}")
    on = parse_on(values.get("on", ""))
    returned = returns.record_return(
        session, payment, values.get("reason", ""), on, now, policy, actor=actor, remote_addr=remote_addr
    )
    return Recorded(returned, _queue_notice(session, payment, now))


def account_number_of(session: Session, payment_id: int) -> str:
    """The number of the payment's account (``NotFound`` for no such payment)."""
    number = session.scalar(
        select(Account.number).join(Payment, Payment.account_id == Account.id).where(Payment.id == payment_id)
    )
    if number is None:
        raise NotFound(f"payment {payment_id}")
    return number


def processor_return(
    session: Session, payment: Payment, reason: str | None, as_of: date, now: datetime, policy: MoneyPolicy
) -> Recorded | None:
    """A return the processor reported (the webhook, with the payment locked): the same
    rule as staff's, once. None when there is nothing to return (not posted, or already
    returned: a repeated report changes nothing)."""
    if payment.status != PaymentStatus.POSTED:
        return None
    code = returns.code_from_processor(payment, reason)
    on = max(as_of, payment.received_on)
    returned = returns.record_return(session, payment, code, on, now, policy, from_processor=True)
    return Recorded(returned, _queue_notice(session, payment, now))


def lift_cash_only(
    session: Session,
    actor: User,
    number: str,
    reason: str,
    *,
    now: datetime,
    remote_addr: str | None = None,
) -> Account:
    account = session.scalar(select(Account).where(Account.number == number))
    if account is None:
        raise NotFound(f"account {number}")
    returns.lift_cash_only(session, account, actor, reason, now, remote_addr)
    return account


# --- The account's payments panel --------------------------------------------------------


@dataclass(frozen=True)
class PaymentRow:
    payment: Payment
    #: Who took it or paid it (a staff member's or the customer's sign-in), if anyone.
    taken_by: str | None
    returnable: bool
    #: The reasons it may come back with (for the form), empty when not returnable.
    codes: tuple[str, ...]
    fee_cents: int | None


@dataclass(frozen=True)
class PaymentsPanel:
    account: Account
    rows: list[PaymentRow]
    can_return: bool
    can_lift: bool
    cash_only_until: date | None
    returns_in_window: int
    policy: MoneyPolicy


def payments_panel(session: Session, user: User, number: str, *, policy: MoneyPolicy, as_of: date) -> PaymentsPanel:
    """Every payment of the account, every channel, newest first, with who took it, and
    the account's cash-only state."""
    permissions.require(user, Action.STAFF_VIEW)
    account = session.scalar(select(Account).where(Account.number == number))
    if account is None:
        raise NotFound(f"account {number}")
    found = list(
        session.scalars(
            select(Payment)
            .where(Payment.account_id == account.id)
            .order_by(Payment.received_on.desc(), Payment.id.desc())
            .limit(200)
        )
    )
    ids = {p.user_id for p in found if p.user_id}
    emails = dict(session.execute(select(User.id, User.email).where(User.id.in_(ids))).all()) if ids else {}
    fees: dict[int, int] = {}
    fee_ids = [p.return_fee_transaction_id for p in found if p.return_fee_transaction_id]
    if fee_ids:
        fees = dict(
            session.execute(
                select(LedgerEntry.transaction_id, LedgerEntry.amount_cents).where(
                    LedgerEntry.transaction_id.in_(fee_ids), LedgerEntry.account_id == account.id
                )
            ).all()
        )
    rows = [
        PaymentRow(
            p,
            emails.get(p.user_id) if p.user_id else None,
            returns.returnable(p),
            returns.METHOD_CODES.get(p.method, ()) if returns.returnable(p) else (),
            fees.get(p.return_fee_transaction_id) if p.return_fee_transaction_id else None,
        )
        for p in found
    ]
    return PaymentsPanel(
        account,
        rows,
        permissions.can(user.role, Action.PAYMENTS_RETURN),
        permissions.can(user.role, Action.CASH_ONLY_LIFT),
        returns.cash_only_until(session, account, policy),
        len(returns.returns_within(session, account.id, as_of, policy.returns_window_months)),
        policy,
    )


# --- The customer's notice: email and letter ----------------------------------------------


@dataclass(frozen=True)
class ReturnNotice:
    """What the email and the letter say: which payment, why, the fee, the new balance,
    and cash only when it applies."""

    payment: Payment
    account: Account
    customer: Customer
    reason: str
    fee_cents: int
    balance_cents: int
    cash_only: bool
    cash_only_until: date | None
    language: str


def _recipient(session: Session, account: Account, payment: Payment) -> tuple[str | None, str]:
    customer = account.customer
    if customer.email:
        return customer.email, customer.preferred_language
    payer = session.get(User, payment.user_id) if payment.user_id else None
    if payer is not None and payer.role == "customer":
        return payer.email, customer.preferred_language
    return None, customer.preferred_language


def return_notice(session: Session, payment_id: int, policy: MoneyPolicy) -> ReturnNotice:
    """The notice of a returned payment (``NotFound`` when it is not returned)."""
    payment = session.get(Payment, payment_id)
    if payment is None or payment.status != PaymentStatus.RETURNED or payment.return_code is None:
        raise NotFound(f"returned payment {payment_id}")
    account = session.get(Account, payment.account_id)
    assert account is not None  # the payment's account (a foreign key)
    fee = 0
    if payment.return_fee_transaction_id:
        fee = sum(
            session.scalars(
                select(LedgerEntry.amount_cents).where(
                    LedgerEntry.transaction_id == payment.return_fee_transaction_id,
                    LedgerEntry.account_id == account.id,
                )
            )
        )
    return ReturnNotice(
        payment,
        account,
        account.customer,
        returns.LABELS.get(payment.return_code, payment.return_code),
        fee,
        posting.account_balance(session, account.id),
        account.cash_only,
        returns.cash_only_until(session, account, policy),
        account.customer.preferred_language,
    )


def staff_notice(session: Session, user: User, payment_id: int, policy: MoneyPolicy) -> ReturnNotice:
    """The letter for staff to print (the payments panel links it)."""
    permissions.require(user, Action.STAFF_VIEW)
    return return_notice(session, payment_id, policy)


def send_return_notice(
    mailer: Mailer, factory: sessionmaker[Session], clock: Clock, payment_id: int, policy: MoneyPolicy | None = None
) -> str | None:
    """Email the customer that their payment was returned, in their language (the outbox's
    sender for ``email.payment_returned``). None when there is no one to send it to."""
    from ..billing_core import money_policy

    policy = policy or money_policy.load(mailer.settings.money_policy_file)
    with transaction(factory) as session:
        try:
            notice = return_notice(session, payment_id, policy)
        except NotFound:
            return None
        to, language = _recipient(session, notice.account, notice.payment)
        if not to:
            return None
        message = mailer.build(
            to,
            language,
            "payment_returned",
            notice=notice,
            url=mailer.link(f"/my/accounts/{notice.account.number}"),
        )
    mailer.send(message)
    return to


@cache
def policy_for(path: str) -> MoneyPolicy:
    """The office's money policy (``PORTAL_MONEY_POLICY``), read once per file."""
    from ..billing_core import money_policy

    return money_policy.load(path or None)
