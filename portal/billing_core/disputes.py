"""The register of disputed amounts, appeals and investigations.

A dispute is opened by staff or by the resident (from the bill page: only their own linked
account's bill, at most the bill's total, with a reason). Since issue 16 a case of type
dispute or appeal (``cases.py``) is its dispute: opening the case opens the dispute, linked
by ``Dispute.case_id``, and resolving the case decides it; the resident's dispute of a bill
is opened as such a case (its form is checked by ``cases.check_resident``). While it is
open its amount is kept out of late fees (``disputed_cents``, read by the daily run) and
the account cannot be shut off (the shutoff gate counts open disputes through
``collection_facts``). A billing supervisor decides it: upheld (the customer was right;
staff then correct the bill with an adjustment, never automatically), denied, or
withdrawn. Every step is audited.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from . import audit, bulk
from .errors import FieldErrors, InvalidInput
from .models import Account, Bill, Dispute, User
from .users import parse_amount

KINDS = {"dispute": "Bill dispute", "appeal": "Appeal", "investigation": "Investigation"}
DECISIONS = {"upheld": "Upheld (the customer was right)", "denied": "Denied", "withdrawn": "Withdrawn"}
STATUSES = ("open", *DECISIONS)


@dataclass(frozen=True)
class Opening:
    kind: str
    amount_cents: int
    reason: str
    bill: Bill | None


def check_staff(values: dict[str, str], bills: dict[str, Bill]) -> Opening:
    """A dispute, appeal or investigation staff open (``kind``, ``bill`` number or empty,
    ``amount`` (may be zero for an appeal or an investigation), ``reason``)."""
    errors: dict[str, InvalidInput] = {}
    kind = values.get("kind", "")
    if kind not in KINDS:
        errors["kind"] = InvalidInput("Choose a bill dispute, an appeal or an investigation.", "kind")
    number = values.get("bill", "").strip()
    bill = bills.get(number) if number else None
    if number and bill is None:
        errors["bill"] = InvalidInput("This account has no posted bill %(number)s.", "bill", number=number)
    if kind == "dispute" and not number:
        errors.setdefault("bill", InvalidInput("Choose the bill that is disputed.", "bill"))
    text = values.get("amount", "").strip()
    cents = parse_amount(text) if text else 0
    if cents is None or cents < 0:
        errors["amount"] = InvalidInput("Enter the amount in dollars and cents, like 25.00.", "amount")
    elif kind == "dispute" and cents == 0:
        errors["amount"] = InvalidInput("Enter the amount disputed.", "amount")
    elif bill is not None and cents > max(bill.total_due_cents, 0):
        errors["amount"] = InvalidInput(
            "At most the bill's total, %(total)s.", "amount", total=f"${bill.total_due_cents / 100:,.2f}"
        )
    reason = values.get("reason", "").strip()
    if not reason:
        errors["reason"] = InvalidInput("Say what is disputed or appealed, and why.", "reason")
    elif len(reason) > 2000:
        errors["reason"] = InvalidInput("Please keep this under 2,000 characters.", "reason")
    if errors:
        raise FieldErrors(errors)
    assert cents is not None
    return Opening(kind, cents, reason, bill)


def open_dispute(
    session: Session,
    account: Account,
    opening: Opening,
    via: str,
    actor: User,
    now: datetime,
    remote_addr: str | None = None,
    case_id: int | None = None,
) -> Dispute:
    """Open the dispute (audited). ``case_id``: the case (of type dispute or appeal) it is
    (issue 16, ``billing_core/cases.py``): a resident's dispute of a bill is opened as a case."""
    dispute = Dispute(
        account_id=account.id,
        bill_id=opening.bill.id if opening.bill else None,
        kind=opening.kind,
        amount_cents=opening.amount_cents,
        status="open",
        reason=opening.reason,
        opened_via=via,
        opened_by_id=actor.id,
        opened_at=now,
        case_id=case_id,
    )
    session.add(dispute)
    session.flush()
    audit.record(
        session,
        "dispute.opened",
        actor=actor,
        entity_type="dispute",
        entity_id=dispute.id,
        after={
            "account": account.number,
            "kind": dispute.kind,
            "bill": opening.bill.number if opening.bill else None,
            "amount_cents": dispute.amount_cents,
            "opened_via": via,
            "case_id": case_id,
        },
        detail=opening.reason[:500],
        remote_addr=remote_addr,
    )
    return dispute


def decide(
    session: Session, dispute: Dispute, actor: User, decision: str, note: str, now: datetime, from_case: bool = False
) -> None:
    """A supervisor's decision on an open dispute: upheld, denied or withdrawn, with words.
    A dispute that is a case's is decided by resolving the case (``cases.resolve``)."""
    errors: dict[str, InvalidInput] = {}
    if dispute.case_id is not None and not from_case:
        errors["decision"] = InvalidInput("This dispute is decided on its case: resolve the case.", "decision")
    elif dispute.status != "open":
        errors["decision"] = InvalidInput("This is already %(status)s.", "decision", status=dispute.status)
    elif decision not in DECISIONS:
        errors["decision"] = InvalidInput("Choose upheld, denied or withdrawn.", "decision")
    note = note.strip()
    if not note:
        errors["note"] = InvalidInput("Write the decision and what follows from it.", "note")
    elif len(note) > 2000:
        errors["note"] = InvalidInput("Please keep this under 2,000 characters.", "note")
    if errors:
        raise FieldErrors(errors)
    dispute.status, dispute.decision = decision, note
    dispute.decided_by_id, dispute.decided_at = actor.id, now
    audit.record(
        session,
        f"dispute.{decision}",
        actor=actor,
        entity_type="dispute",
        entity_id=dispute.id,
        before={"status": "open"},
        after={"status": decision, "decision": note[:500]},
    )


def disputed_cents(session: Session, account_ids: Sequence[int]) -> dict[int, int]:
    """The amounts in open disputes, appeals and investigations, per account (accounts
    with none are left out). Set-based: one query (a chunk at a time on SQLite)."""
    out: dict[int, int] = {}
    ids = sorted(set(account_ids))
    for part in bulk.chunks(session, ids):
        for account_id, total in session.execute(
            select(Dispute.account_id, func.sum(Dispute.amount_cents))
            .where(bulk.among(session, Dispute.account_id, part), Dispute.status == "open")
            .group_by(Dispute.account_id)
        ):
            out[account_id] = int(total or 0)
    return out


def open_on_bill(session: Session, bill_id: int) -> bool:
    return bool(session.scalar(select(func.count()).where(Dispute.bill_id == bill_id, Dispute.status == "open")))
