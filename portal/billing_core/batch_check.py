"""``portal ledger check`` for mail batches and bank files (issue 14)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .models import Payment, PaymentBatch, PaymentBatchItem, PaymentImportRow
from .status import BatchStatus, ImportOutcome


def problems(session: Session) -> list[str]:
    """``portal ledger check``: every posted batch's payments are exactly its items (mail), and
    every matched or assigned row of a bank file has its payment for its amount."""
    out: list[str] = []
    items = (
        select(PaymentBatchItem.batch_id, func.sum(PaymentBatchItem.amount_cents).label("keyed"))
        .group_by(PaymentBatchItem.batch_id)
        .subquery()
    )
    paid = (
        select(Payment.batch_id, func.sum(Payment.amount_cents).label("paid"))
        .where(Payment.channel == "mail")
        .group_by(Payment.batch_id)
        .subquery()
    )
    for bid, keyed, got in session.execute(
        select(PaymentBatch.id, items.c.keyed, paid.c.paid)
        .join(items, items.c.batch_id == PaymentBatch.id, isouter=True)
        .join(paid, paid.c.batch_id == PaymentBatch.id, isouter=True)
        .where(PaymentBatch.kind == "mail", PaymentBatch.status == BatchStatus.POSTED.value)
        .where(func.coalesce(items.c.keyed, 0) != func.coalesce(paid.c.paid, 0))
        .limit(20)
    ):
        out.append(f"mail batch {bid} keyed {int(keyed or 0)} cents but its payments are {int(got or 0)} cents")
    for rid, import_id in session.execute(
        select(PaymentImportRow.id, PaymentImportRow.import_id)
        .join(Payment, Payment.id == PaymentImportRow.payment_id, isouter=True)
        .where(
            (PaymentImportRow.outcome == ImportOutcome.MATCHED.value) | (PaymentImportRow.resolution == "assigned"),
            (Payment.id.is_(None)) | (Payment.amount_cents != PaymentImportRow.amount_cents),
        )
        .limit(20)
    ):
        out.append(f"row {rid} of bank file {import_id} is matched but has no payment for its amount")
    return out
