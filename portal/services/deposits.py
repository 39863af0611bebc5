"""Deposits, one use case per function: what the policy asks of an account (the panel),
billing one, cancelling one billed in error, the daily credit-back run, and applying the
deposits held at a final bill (the rest of the credit becomes a refund request).

Each takes its collaborators (session or session factory, policy, clock values) from its
caller and returns plain values; each staff action is audited with before and after.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ..adapters.database import transaction
from ..billing_core import audit, deposits, outbox, payments, permissions, posting
from ..billing_core.errors import FieldErrors, InvalidInput, NotFound
from ..billing_core.models import Account, AuditEvent, Deposit, User
from ..billing_core.money_policy import MoneyPolicy
from ..billing_core.permissions import Action
from ..billing_core.status import DEPOSIT_TRANSITIONS, DepositStatus, move
from ..billing_core.users import parse_amount

#: The customer's email for a deposit billed or credited back (``notifications.send_money_notice``).
NOTICE = "email.money_notice"


def _account(session: Session, number: str) -> Account:
    account = session.scalar(select(Account).where(Account.number == number.strip()))
    if account is None:
        raise NotFound(f"no account {number}")
    return account


@dataclass(frozen=True)
class DepositPanel:
    account: Account
    suggestion: deposits.Suggestion
    deposits: list[Deposit]
    held_cents: int
    #: The balance less the deposit billed and not yet paid: what is owed for service.
    owed_for_service_cents: int
    open_deposit_cents: int
    events: list[AuditEvent]
    names: dict[int, str]
    can_manage: bool


def panel(session: Session, policy: MoneyPolicy, user: User, number: str, as_of: date) -> DepositPanel:
    permissions.require(user, Action.STAFF_VIEW)
    account = _account(session, number)
    rows = list(session.scalars(select(Deposit).where(Deposit.account_id == account.id).order_by(Deposit.id.desc())))
    balance = posting.account_balance(session, account.id)
    open_deposit = max(deposits.open_deposit_cents(session, account.id), 0)
    events = list(
        session.scalars(
            select(AuditEvent)
            .where(AuditEvent.entity_type == "deposit", AuditEvent.entity_id.in_([str(d.id) for d in rows] or ["-"]))
            .order_by(AuditEvent.occurred_at.desc(), AuditEvent.id.desc())
            .limit(50)
        )
    )
    ids = {d.created_by_id for d in rows if d.created_by_id}
    names = dict(session.execute(select(User.id, User.email).where(User.id.in_(ids))).all()) if ids else {}
    return DepositPanel(
        account=account,
        suggestion=deposits.suggest(session, policy, account, as_of),
        deposits=rows,
        held_cents=sum(d.amount_cents for d in rows if d.status == DepositStatus.BILLED),
        owed_for_service_cents=balance - open_deposit,
        open_deposit_cents=open_deposit,
        events=events,
        names=names,
        can_manage=permissions.can(user.role, Action.DEPOSITS_MANAGE),
    )


def bill(
    factory: sessionmaker[Session],
    policy: MoneyPolicy,
    user: User,
    number: str,
    *,
    amount: str,
    reason: str,
    note: str,
    on: date,
    now: datetime,
) -> int:
    """Bill a deposit (the policy's amount when ``amount`` is empty). The form is checked
    whole (``FieldErrors``: nothing written). Returns the deposit's id."""
    permissions.require(user, Action.DEPOSITS_MANAGE)
    with transaction(factory) as session:
        account = _account(session, number)
        payments.lock_account(session, account.id)
        errors: dict[str, InvalidInput] = {}
        if reason not in deposits.REASONS:
            errors["reason"] = InvalidInput("Choose why the deposit is billed.", "reason")
        elif reason == "other" and not note.strip():
            errors["note"] = InvalidInput("Say why in the note.", "note")
        if amount.strip():
            cents = parse_amount(amount)
            if cents is None:
                errors["amount"] = InvalidInput("Enter the amount in dollars and cents, like 150.00.", "amount")
            elif cents <= 0:
                errors["amount"] = InvalidInput("The amount must be more than zero.", "amount")
        else:
            cents = deposits.suggest(session, policy, account, on).amount_cents
        if account.status in ("final", "closed"):
            errors.setdefault("amount", InvalidInput("This account's service has stopped.", "amount"))
        if errors:
            raise FieldErrors(errors)
        assert cents is not None
        deposit = deposits.bill(session, account, cents, reason, note.strip() or None, on, user, now)
        outbox.queue(session, NOTICE, {"what": "deposit_billed", "id": deposit.id}, now)
        return deposit.id


def cancel(factory: sessionmaker[Session], user: User, deposit_id: int, reason: str, on: date, now: datetime) -> None:
    """A deposit billed in error: the reversal of its billing. Only a deposit still held."""
    permissions.require(user, Action.DEPOSITS_MANAGE)
    if not reason.strip():
        raise FieldErrors.one("reason", "Say why the deposit is cancelled.")
    with transaction(factory) as session:
        deposit = session.get(Deposit, deposit_id, with_for_update=True)
        if deposit is None:
            raise NotFound(f"no deposit {deposit_id}")
        payments.lock_account(session, deposit.account_id)
        session.refresh(deposit)
        if deposit.status != DepositStatus.BILLED or deposit.billed_transaction_id is None:
            raise FieldErrors.one("reason", "Only a deposit still held can be cancelled.")
        rev = posting.reverse(
            session,
            deposit.billed_transaction_id,
            on,
            f"Deposit {deposit.id} cancelled: {reason.strip()}"[:300],
            user.id,
            posted_at=now,
        )
        move(DEPOSIT_TRANSITIONS, deposit, DepositStatus.CANCELLED)
        deposit.released_on = on
        deposit.release_transaction_id = rev.id
        audit.record(
            session,
            "deposit.cancelled",
            actor=user,
            entity_type="deposit",
            entity_id=deposit.id,
            before={"status": DepositStatus.BILLED.value},
            after={"status": DepositStatus.CANCELLED.value, "reason": reason.strip(), "ledger_transaction": rev.id},
        )


def run(factory: sessionmaker[Session], policy: MoneyPolicy, on: date, now: datetime) -> list[int]:
    """The daily job: credit back every held deposit whose account has been paid on time
    for ``deposit_on_time_months`` months. Each in its own transaction; idempotent.
    Returns the ids credited."""
    with factory() as session:
        candidates = list(
            session.scalars(
                select(Deposit.id)
                .join(Account, Account.id == Deposit.account_id)
                .where(
                    Deposit.status == DepositStatus.BILLED.value,
                    Deposit.billed_on <= deposits.months_before(on, policy.deposit_on_time_months),
                    Account.status == "active",
                )
                .order_by(Deposit.id)
            )
        )
    credited: list[int] = []
    for deposit_id in candidates:
        with transaction(factory) as session:
            deposit = session.get(Deposit, deposit_id)
            if deposit is None or deposit.status != DepositStatus.BILLED:
                continue
            payments.lock_account(session, deposit.account_id)
            if not deposits.standing_of(session, policy, deposit, on):
                continue
            memo = f"Deposit {deposit.id} credited back: {policy.deposit_on_time_months} months paid on time"
            if deposits.release(session, deposit, DepositStatus.CREDITED, on, now, memo, None):
                credited.append(deposit.id)
                outbox.queue(session, NOTICE, {"what": "deposit_credited", "id": deposit.id}, now)
    return credited


def apply_at_final(session: Session, account: Account, actor: User | None, on: date, now: datetime) -> int | None:
    return deposits.apply_at_final(session, account, actor, on, now)
