"""Refunds, one use case per function: asking for one, approving or rejecting it (someone
else), paying it back to the card through the gateway, and the accounts-payable check
register export that pays the check refunds (each once).

The amount is checked against the account's credit at each step with the account locked
(``payments.lock_account``). Each action is audited with before and after.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session, sessionmaker

from ..adapters.database import transaction
from ..adapters.gateway import GatewayError, PaymentGateway
from ..billing_core import audit, outbox, payments, permissions, posting, refunds
from ..billing_core.errors import FieldErrors, NotFound
from ..billing_core.models import Account, AuditEvent, Payment, Refund, User
from ..billing_core.permissions import Action
from ..billing_core.status import REFUND_TRANSITIONS, RefundStatus, move
from ..billing_core.users import parse_amount

#: The customer's email when a refund is paid (``notifications.send_money_notice``).
NOTICE = "email.money_notice"


def _account(session: Session, number: str) -> Account:
    account = session.scalar(select(Account).where(Account.number == number.strip()))
    if account is None:
        raise NotFound(f"no account {number}")
    return account


def _locked_refund(session: Session, refund_id: int) -> Refund:
    refund = session.get(Refund, refund_id)
    if refund is None:
        raise NotFound(f"no refund {refund_id}")
    payments.lock_account(session, refund.account_id)
    session.refresh(refund)
    return refund


def refundable_cents(session: Session, account_id: int) -> int:
    return refunds.refundable_cents(session, account_id)


def request(
    factory: sessionmaker[Session],
    user: User,
    number: str,
    *,
    amount: str,
    method: str,
    reason: str,
    now: datetime,
) -> int:
    permissions.require(user, Action.REFUNDS_REQUEST)
    cents = parse_amount(amount)
    if cents is None:
        raise FieldErrors.one("amount", "Enter the amount in dollars and cents, like 25.00.")
    with transaction(factory) as session:
        account = _account(session, number)
        return refunds.request_in(session, user, account, cents, method, reason, now).id


def approve(factory: sessionmaker[Session], user: User, refund_id: int, on: date, now: datetime) -> None:
    """Approve (someone other than who asked, within their limit): the credit moves to
    refunds payable. The amount is checked against the credit again."""
    with transaction(factory) as session:
        refund = _locked_refund(session, refund_id)
        permissions.require_approver(user, Action.REFUNDS_APPROVE, refund.requested_by_id, refund.amount_cents)
        if refund.status != RefundStatus.REQUESTED:
            raise FieldErrors.one("decision", f"This refund is already {refund.status}.")
        credit = refunds.credit_cents(session, refund.account_id)
        if refund.amount_cents > credit:
            raise FieldErrors.one(
                "decision",
                f"The account's credit is now {credit // 100:,}.{credit % 100:02d}, less than this refund: reject it.",
            )
        row = posting.post(
            session,
            refunds.approval_transaction(refund.account_id, on, refund.amount_cents, refund.id),
            refund.account_id,
            user.id,
            posted_at=now,
        )
        move(REFUND_TRANSITIONS, refund, RefundStatus.APPROVED)
        refund.decided_by_id = user.id
        refund.decided_at = now
        refund.approved_transaction_id = row.id
        audit.record(
            session,
            "refund.approved",
            actor=user,
            entity_type="refund",
            entity_id=refund.id,
            before={"status": RefundStatus.REQUESTED.value},
            after={"status": RefundStatus.APPROVED.value, "ledger_transaction": row.id},
        )


def reject(factory: sessionmaker[Session], user: User, refund_id: int, reason: str, now: datetime) -> None:
    if not reason.strip():
        raise FieldErrors.one("note", "Say why the refund is rejected.")
    with transaction(factory) as session:
        refund = _locked_refund(session, refund_id)
        permissions.require_approver(user, Action.REFUNDS_APPROVE, refund.requested_by_id)
        if refund.status != RefundStatus.REQUESTED:
            raise FieldErrors.one("note", f"This refund is already {refund.status}.")
        move(REFUND_TRANSITIONS, refund, RefundStatus.REJECTED)
        refund.decided_by_id = user.id
        refund.decided_at = now
        refund.decision_note = reason.strip()
        audit.record(
            session,
            "refund.rejected",
            actor=user,
            entity_type="refund",
            entity_id=refund.id,
            before={"status": RefundStatus.REQUESTED.value},
            after={"status": RefundStatus.REJECTED.value, "reason": reason.strip()},
        )


@dataclass(frozen=True)
class Paid:
    ok: bool
    message: str = ""


def pay_card(
    factory: sessionmaker[Session], gateway: PaymentGateway, user: User, refund_id: int, on: date, now: datetime
) -> Paid:
    """Pay an approved card refund through the gateway (key ``refund-<id>``: a retry refunds
    once). A refusal leaves it failed and puts the credit back (reversal of the approval)."""
    permissions.require(user, Action.REFUNDS_APPROVE)
    with transaction(factory) as session:
        refund = _locked_refund(session, refund_id)
        if refund.method != "card":
            raise FieldErrors.one("pay", "A check refund is paid by the check register export.")
        if refund.status != RefundStatus.APPROVED:
            raise FieldErrors.one("pay", f"This refund is {refund.status}, not approved.")
        payment = refund.payment_id and session.get(Payment, refund.payment_id)
        refund.idempotency_key = f"refund-{refund.id}"
        try:
            if not payment or not payment.processor_id:
                raise GatewayError("The original card payment is not known to the processor.")
            result = gateway.refund(payment.processor_id, refund.amount_cents, refund.idempotency_key)
            message = "" if result.ok else (result.failure_message or f"The refund was {result.status}.")
        except GatewayError as exc:
            result, message = None, exc.message
        if result is not None and result.ok:
            row = posting.post(
                session,
                refunds.paid_transaction(on, refund.amount_cents, "card", refund.id),
                refund.account_id,
                user.id,
                posted_at=now,
            )
            move(REFUND_TRANSITIONS, refund, RefundStatus.PAID)
            refund.processor_refund_id = result.id
            refund.paid_at = now
            refund.paid_transaction_id = row.id
            after = {"status": RefundStatus.PAID.value, "processor_refund": result.id, "ledger_transaction": row.id}
            outbox.queue(session, NOTICE, {"what": "refund_paid", "id": refund.id}, now)
        else:
            assert refund.approved_transaction_id is not None
            rev = posting.reverse(
                session,
                refund.approved_transaction_id,
                on,
                f"Refund {refund.id} failed: {message}"[:300],
                user.id,
                posted_at=now,
            )
            move(REFUND_TRANSITIONS, refund, RefundStatus.FAILED)
            refund.failure_message = message[:300]
            after = {"status": RefundStatus.FAILED.value, "message": message, "ledger_transaction": rev.id}
        audit.record(
            session,
            "refund.paid" if refund.status == RefundStatus.PAID else "refund.failed",
            actor=user,
            entity_type="refund",
            entity_id=refund.id,
            before={"status": RefundStatus.APPROVED.value},
            after=after,
        )
        return Paid(refund.status == RefundStatus.PAID, message)


def export_checks(factory: sessionmaker[Session], user: User, on: date, now: datetime) -> tuple[str, list[int]]:
    """The accounts-payable check register of every approved check refund not yet exported;
    each is marked exported and paid in the same transaction (a conditional update: two
    exports never both take one). Returns the CSV text and the refunds' ids."""
    permissions.require(user, Action.REFUNDS_EXPORT)
    with transaction(factory) as session:
        ids = list(
            session.scalars(
                select(Refund.id)
                .where(
                    Refund.method == "check",
                    Refund.status == RefundStatus.APPROVED.value,
                    Refund.exported_at.is_(None),
                )
                .order_by(Refund.id)
            )
        )
        taken: list[tuple[Refund, str]] = []
        for refund_id in ids:
            claimed = cast(
                CursorResult[Any],
                session.execute(
                    update(Refund)
                    .where(
                        Refund.id == refund_id,
                        Refund.status == RefundStatus.APPROVED.value,
                        Refund.exported_at.is_(None),
                    )
                    .values(status=RefundStatus.PAID.value, exported_at=now, paid_at=now)
                    .execution_options(synchronize_session=False)
                ),
            ).rowcount
            if claimed != 1:
                continue
            refund = session.get(Refund, refund_id)
            assert refund is not None
            session.refresh(refund)
            row = posting.post(
                session,
                refunds.paid_transaction(on, refund.amount_cents, "check", refund.id),
                refund.account_id,
                user.id,
                posted_at=now,
            )
            refund.paid_transaction_id = row.id
            number = session.scalar(select(Account.number).where(Account.id == refund.account_id)) or ""
            taken.append((refund, number))
            outbox.queue(session, NOTICE, {"what": "refund_paid", "id": refund.id}, now)
            audit.record(
                session,
                "refund.exported",
                actor=user,
                entity_type="refund",
                entity_id=refund.id,
                before={"status": RefundStatus.APPROVED.value},
                after={"status": RefundStatus.PAID.value, "ledger_transaction": row.id},
            )
        return refunds.register_csv(taken), [r.id for r, _ in taken]


# --- Pages ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RefundList:
    requested: list[Refund]
    approved: list[Refund]
    done: list[Refund]
    numbers: dict[int, str]
    names: dict[int, str]
    can_export: bool


def _names(session: Session, refunds_: list[Refund]) -> tuple[dict[int, str], dict[int, str]]:
    accounts = {r.account_id for r in refunds_}
    users = {u for r in refunds_ for u in (r.requested_by_id, r.decided_by_id) if u}
    numbers = (
        dict(session.execute(select(Account.id, Account.number).where(Account.id.in_(accounts))).all())
        if accounts
        else {}
    )
    names = dict(session.execute(select(User.id, User.email).where(User.id.in_(users))).all()) if users else {}
    return numbers, names


def listing(session: Session, user: User, account_number: str | None = None) -> RefundList:
    permissions.require(user, Action.STAFF_VIEW)
    query = select(Refund).order_by(Refund.requested_at.desc(), Refund.id.desc()).limit(500)
    if account_number is not None:
        query = query.where(Refund.account_id == _account(session, account_number).id)
    rows = list(session.scalars(query))
    numbers, names = _names(session, rows)
    return RefundList(
        requested=[r for r in rows if r.status == RefundStatus.REQUESTED],
        approved=[r for r in rows if r.status == RefundStatus.APPROVED],
        done=[r for r in rows if r.status not in (RefundStatus.REQUESTED, RefundStatus.APPROVED)],
        numbers=numbers,
        names=names,
        can_export=permissions.can(user.role, Action.REFUNDS_EXPORT),
    )


@dataclass(frozen=True)
class RefundPage:
    refund: Refund
    number: str
    names: dict[int, str]
    events: list[AuditEvent]
    credit_cents: int
    can_decide: bool


def page(session: Session, user: User, refund_id: int) -> RefundPage:
    permissions.require(user, Action.STAFF_VIEW)
    refund = session.get(Refund, refund_id)
    if refund is None:
        raise NotFound(f"no refund {refund_id}")
    numbers, names = _names(session, [refund])
    events = list(
        session.scalars(
            select(AuditEvent)
            .where(AuditEvent.entity_type == "refund", AuditEvent.entity_id == str(refund.id))
            .order_by(AuditEvent.occurred_at, AuditEvent.id)
        )
    )
    return RefundPage(
        refund,
        numbers.get(refund.account_id, ""),
        names,
        events,
        refunds.credit_cents(session, refund.account_id),
        permissions.can(user.role, Action.REFUNDS_APPROVE) and user.id != refund.requested_by_id,
    )
