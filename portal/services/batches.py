"""Mail batches: a specialist or cashier creates a batch (deposit date, control total and
optionally count), keys its checks (scan line or account number, amount, check number) and
posts it, all or nothing, once the keyed items match the control.

Each function is one use case in the caller's transaction; a refusal raises ``FieldErrors``
(by form field) or ``InvalidInput`` and writes nothing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..billing_core import audit, cash_only, payments, permissions, remittance
from ..billing_core.errors import FieldErrors, InvalidInput, NotFound
from ..billing_core.models import Account, AuditEvent, Payment, PaymentBatch, PaymentBatchItem, User
from ..billing_core.permissions import Action
from ..billing_core.status import BATCH_TRANSITIONS, BatchStatus, PaymentStatus, move

BATCH_FIELDS = ("label", "deposit_date", "control_count", "control_total")
ITEM_FIELDS = ("scan_line", "account_number", "amount", "check_number")


def create_batch(session: Session, actor: User, values: dict[str, str], now: datetime) -> PaymentBatch:
    permissions.require(actor, Action.PAYMENTS_BATCH)
    errors: dict[str, InvalidInput] = {}
    deposit: date | None = None
    try:
        deposit = date.fromisoformat(values.get("deposit_date", "").strip())
    except ValueError:
        errors["deposit_date"] = InvalidInput("Enter the deposit date as YYYY-MM-DD.", "deposit_date")
    count: int | None = None
    count_text = values.get("control_count", "").strip()
    if count_text:
        if not count_text.isdigit() or not 0 < int(count_text) <= 10_000:
            errors["control_count"] = InvalidInput(
                "Enter the number of checks, a whole number from 1.", "control_count"
            )
        else:
            count = int(count_text)
    total = 0
    try:
        total = remittance.amount_cents(values.get("control_total", ""), "control_total")
    except InvalidInput as exc:
        errors["control_total"] = exc
    label = " ".join(values.get("label", "").split())[:100]
    if errors or deposit is None:
        raise FieldErrors(errors)
    batch = PaymentBatch(
        kind="mail",
        label=label,
        deposit_date=deposit,
        control_count=count,
        control_total_cents=total,
        status=BatchStatus.OPEN.value,
        created_by_id=actor.id,
        created_at=now,
    )
    session.add(batch)
    session.flush()
    audit.record(
        session,
        "batch.created",
        actor=actor,
        entity_type="payment_batch",
        entity_id=batch.id,
        after={"deposit_date": deposit.isoformat(), "control_total_cents": total, "control_count": count},
    )
    return batch


def _batch(session: Session, batch_id: int | str, *, lock: bool = False) -> PaymentBatch:
    try:
        key = int(batch_id)
    except (TypeError, ValueError) as exc:
        raise NotFound(f"batch {batch_id}") from exc
    query = select(PaymentBatch).where(PaymentBatch.id == key, PaymentBatch.kind == "mail")
    if lock and session.get_bind().dialect.name != "sqlite":
        query = query.with_for_update()
    batch = session.scalar(query)
    if batch is None:
        raise NotFound(f"batch {batch_id}")
    return batch


def _items(session: Session, batch_id: int) -> list[PaymentBatchItem]:
    return list(
        session.scalars(
            select(PaymentBatchItem).where(PaymentBatchItem.batch_id == batch_id).order_by(PaymentBatchItem.line_no)
        )
    )


def add_item(session: Session, actor: User, batch_id: int | str, values: dict[str, str]) -> PaymentBatchItem:
    """Key one check. Each bad field gets its own message; nothing is written then."""
    permissions.require(actor, Action.PAYMENTS_BATCH)
    batch = _batch(session, batch_id, lock=True)
    if batch.status != BatchStatus.OPEN:
        raise FieldErrors.one("scan_line", "This batch is already posted; start a new batch.")
    errors: dict[str, InvalidInput] = {}
    account: Account | None = None
    scan = " ".join(values.get("scan_line", "").split())[:60]
    try:
        number = remittance.account_from(scan, values.get("account_number", ""))
        account = session.scalar(select(Account).where(Account.number == number))
        if account is None:
            field = "account_number" if values.get("account_number", "").strip() else "scan_line"
            errors[field] = InvalidInput(f"No account {number}.", field)
    except InvalidInput as exc:
        errors[exc.field or "scan_line"] = exc
    amount = 0
    try:
        amount = remittance.amount_cents(values.get("amount", ""))
    except InvalidInput as exc:
        errors["amount"] = exc
    check = " ".join(values.get("check_number", "").split())
    if len(check) > 30 or (check and not check.replace("-", "").isalnum()):
        errors["check_number"] = InvalidInput("A check number is up to 30 letters and digits.", "check_number")
    if account is not None and "account_number" not in errors:
        refused = cash_only.refusal(account, "check", "account_number")
        if refused is not None:
            errors["account_number"] = refused
    if errors or account is None:
        raise FieldErrors(errors)
    items = _items(session, batch.id)
    item = PaymentBatchItem(
        batch_id=batch.id,
        line_no=(items[-1].line_no + 1) if items else 1,
        scan_line=scan or None,
        account_id=account.id,
        amount_cents=amount,
        check_number=check or None,
    )
    session.add(item)
    session.flush()
    audit.record(
        session,
        "batch.item_keyed",
        actor=actor,
        entity_type="payment_batch",
        entity_id=batch.id,
        after={"line": item.line_no, "account": account.number, "amount_cents": amount, "check_number": check or None},
    )
    return item


def remove_item(session: Session, actor: User, batch_id: int | str, item_id: int | str) -> None:
    """Take a mis-keyed item out of an open batch."""
    permissions.require(actor, Action.PAYMENTS_BATCH)
    batch = _batch(session, batch_id, lock=True)
    item = session.get(PaymentBatchItem, int(item_id)) if str(item_id).isdigit() else None
    if item is None or item.batch_id != batch.id:
        raise NotFound(f"item {item_id}")
    if batch.status != BatchStatus.OPEN:
        raise InvalidInput("This batch is already posted.", "item")
    audit.record(
        session,
        "batch.item_removed",
        actor=actor,
        entity_type="payment_batch",
        entity_id=batch.id,
        before={"line": item.line_no, "account_id": item.account_id, "amount_cents": item.amount_cents},
    )
    session.delete(item)
    session.flush()


@dataclass(frozen=True)
class Posted:
    batch: PaymentBatch
    payments: list[Payment]


def post_batch(session: Session, actor: User, batch_id: int | str, now: datetime) -> Posted:
    """Post every item as a mail payment, or nothing: only when the keyed total (and count,
    when the batch has one) matches the control. Raises ``InvalidInput`` saying by how much."""
    permissions.require(actor, Action.PAYMENTS_BATCH)
    batch = _batch(session, batch_id, lock=True)
    if batch.status != BatchStatus.OPEN:
        raise InvalidInput("This batch is already posted.", "post")
    items = _items(session, batch.id)
    problem = remittance.batch_difference(
        batch.control_total_cents, batch.control_count, [i.amount_cents for i in items]
    )
    if problem:
        raise InvalidInput(problem, "post")
    accounts = {a.id: a for a in session.scalars(select(Account).where(Account.id.in_({i.account_id for i in items})))}
    for item in items:  # the rule could have changed since the item was keyed
        acct = accounts[item.account_id or 0]
        refused = cash_only.refusal(acct, "check")
        if refused is not None:
            raise InvalidInput(f"Line {item.line_no}, account {acct.number}: {refused.message}", "post")
    made = []
    for item in items:
        p = Payment(
            account_id=item.account_id,
            amount_cents=item.amount_cents,
            channel="mail",
            method="check",
            received_on=batch.deposit_date,
            status=PaymentStatus.PENDING.value,
            user_id=actor.id,
            batch_id=batch.id,
            check_number=item.check_number,
            created_at=now,
        )
        session.add(p)
        made.append(p)
    session.flush()
    posted = payments.post_received(
        session,
        [
            payments.Received(
                p.account_id, p.amount_cents, "mail", f"Mail payment {p.id}, batch {batch.id} line {i.line_no}"
            )
            for p, i in zip(made, items, strict=True)
        ],
        batch.deposit_date,
        now,
        actor.id,
    )
    for p, item, (tid, owed) in zip(made, items, posted, strict=True):
        payments.settle(session, p, tid, owed, batch.deposit_date, now)
        payments.note_overpaid(session, p, owed, batch.deposit_date, now)
        item.payment_id = p.id
    move(BATCH_TRANSITIONS, batch, BatchStatus.POSTED)
    batch.posted_by_id = actor.id
    batch.posted_at = now
    audit.record(
        session,
        "batch.posted",
        actor=actor,
        entity_type="payment_batch",
        entity_id=batch.id,
        before={"status": BatchStatus.OPEN.value},
        after={"status": BatchStatus.POSTED.value, "payments": len(made), "total_cents": batch.control_total_cents},
    )
    return Posted(batch, made)


@dataclass(frozen=True)
class BatchPage:
    batch: PaymentBatch
    items: list[PaymentBatchItem]
    numbers: dict[int, str]
    keyed_cents: int
    #: Why it may not post yet, or None.
    difference: str | None
    people: dict[int, str]
    history: list[AuditEvent]


def _people(session: Session, ids: set[int | None]) -> dict[int, str]:
    wanted = {i for i in ids if i}
    if not wanted:
        return {}
    return {u.id: u.display_name or u.email for u in session.scalars(select(User).where(User.id.in_(wanted)))}


def batch_page(session: Session, batch_id: int | str) -> BatchPage:
    batch = _batch(session, batch_id)
    items = _items(session, batch.id)
    ids = {i.account_id for i in items if i.account_id}
    numbers = dict(session.execute(select(Account.id, Account.number).where(Account.id.in_(ids))).all())
    history = list(
        session.scalars(
            select(AuditEvent)
            .where(AuditEvent.entity_type == "payment_batch", AuditEvent.entity_id == str(batch.id))
            .order_by(AuditEvent.occurred_at, AuditEvent.id)
        )
    )
    keyed = [i.amount_cents for i in items]
    return BatchPage(
        batch,
        items,
        numbers,
        sum(keyed),
        remittance.batch_difference(batch.control_total_cents, batch.control_count, keyed),
        _people(session, {batch.created_by_id, batch.posted_by_id} | {e.actor_id for e in history}),
        history,
    )


@dataclass(frozen=True)
class BatchList:
    batches: list[PaymentBatch]
    keyed: dict[int, tuple[int, int]]
    people: dict[int, str]


def batch_list(session: Session, limit: int = 100) -> BatchList:
    from sqlalchemy import func

    batches = list(
        session.scalars(
            select(PaymentBatch).where(PaymentBatch.kind == "mail").order_by(PaymentBatch.id.desc()).limit(limit)
        )
    )
    ids = [b.id for b in batches]
    keyed = {
        bid: (int(n), int(total or 0))
        for bid, n, total in session.execute(
            select(PaymentBatchItem.batch_id, func.count(), func.sum(PaymentBatchItem.amount_cents))
            .where(PaymentBatchItem.batch_id.in_(ids))
            .group_by(PaymentBatchItem.batch_id)
        )
    }
    people = _people(session, {b.created_by_id for b in batches} | {b.posted_by_id for b in batches})
    return BatchList(batches, keyed, people)
