"""The approvals queue (``/staff/approvals``): one list of everything waiting for someone
else's decision (``billing_core/approvals.py`` collects it, one query a kind), and the
approve / reject of each item through that kind's own decision function.

The list: supervisors (``APPROVALS_VIEW``) see everything; other staff see only what they
prepared themselves, waiting for someone else. Deciding: the approver is never the
preparer, for every kind, and each kind's own permission and limit apply.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ..adapters.database import transaction
from ..billing_core import approvals, permissions
from ..billing_core.errors import FieldErrors, InvalidInput, NotFound
from ..billing_core.models import (
    Account,
    Adjustment,
    ArrangementRequest,
    CollectionReferral,
    FinalBillReview,
    RateScheduleVersion,
    Refund,
    ServiceRequest,
    User,
    WriteOff,
)
from ..billing_core.permissions import Action

KINDS = {k: kind.label for k, kind in approvals.KINDS.items()}
AGES = approvals.AGES
#: The most rows one page shows, oldest first (the filters narrow the rest).
SHOWN = 200


@dataclass(frozen=True)
class Row:
    item: approvals.Item
    age_days: int
    mine: bool
    can_decide: bool


@dataclass(frozen=True)
class Queue:
    rows: list[Row]
    kind: str
    min_age: int
    preparer: str
    #: Everything waiting, by kind (before the filters), and the preparers to filter by.
    counts: dict[str, int]
    preparers: list[str]
    #: May see everything (a supervisor), or only their own items.
    sees_all: bool
    #: How many fit the filters (the page shows the oldest ``SHOWN`` of them).
    total: int = 0


def queue(session: Session, staff: User, today: date, kind: str = "", min_age: str = "", preparer: str = "") -> Queue:
    """The queue, oldest first, narrowed by kind, by days waiting and by preparer."""
    permissions.require(staff, Action.STAFF_VIEW)
    sees_all = permissions.can(staff.role, Action.APPROVALS_VIEW)
    items = approvals.waiting(session)
    if not sees_all:
        items = [i for i in items if i.prepared_by_id == staff.id]
    counts = {k: sum(1 for i in items if i.kind == k) for k in approvals.KINDS}
    preparers = sorted({i.prepared_by for i in items if i.prepared_by})
    kind = kind if kind in approvals.KINDS else ""
    try:
        age = max(int(min_age), 0) if min_age else 0
    except ValueError:
        age = 0
    preparer = preparer if preparer in preparers else ""
    shown = approvals.narrow(items, today, kind=kind, min_age=age, preparer=preparer)
    rows = [
        Row(i, i.age_days(today), i.prepared_by_id == staff.id, approvals.may_decide(staff, i)) for i in shown[:SHOWN]
    ]
    return Queue(rows, kind, age, preparer, counts, preparers, sees_all, len(shown))


@dataclass(frozen=True)
class Decided:
    kind: str
    id: int
    #: What happened, for the flash ("Refund 4 is approved.").
    message: str
    #: Emails to queue once this is saved: (job, service or arrangement request id).
    emails: list[tuple[str, int]] = field(default_factory=list)


#: Each kind's row and who prepared it, for the approver check made before any decision.
_PREPARED: dict[str, tuple[Any, Any, Any]] = {
    "adjustment": (Adjustment, Adjustment.prepared_by_id, Adjustment.amount_cents),
    "refund": (Refund, Refund.requested_by_id, Refund.amount_cents),
    "write_off": (WriteOff, WriteOff.prepared_by_id, WriteOff.amount_cents),
    "final_bill": (FinalBillReview, FinalBillReview.entered_by_id, None),
    "referral": (CollectionReferral, CollectionReferral.prepared_by_id, CollectionReferral.amount_cents),
    "arrangement": (ArrangementRequest, ArrangementRequest.user_id, ArrangementRequest.total_cents),
    "service_request": (ServiceRequest, ServiceRequest.user_id, None),
    "rate_version": (RateScheduleVersion, RateScheduleVersion.proposed_by_id, None),
}


def _check(session: Session, staff: User, kind: str, item_id: int) -> None:
    model, preparer, amount = _PREPARED[kind]
    columns = [preparer] + ([amount] if amount is not None else [])
    found = session.execute(select(*columns).where(model.id == item_id)).first()
    if found is None:
        raise NotFound(f"{kind} {item_id}")
    approvals.check_decider(staff, kind, found[0], found[1] if amount is not None else None)


def decide(
    factory: sessionmaker[Session],
    staff: User,
    kind: str,
    item_id: int | str,
    decision: str,
    note: str,
    today: date,
    now: datetime,
    remote_addr: str | None = None,
) -> Decided:
    """Approve or reject one waiting item with its kind's own decision function, in one
    transaction (a refund's functions open their own). ``decision`` is ``approve`` or
    ``reject``; a reject needs ``note`` (``FieldErrors`` on ``decision_note``). The approver
    is never the preparer (``NotAllowed``)."""
    if kind not in approvals.KINDS:
        raise NotFound(kind)
    try:
        number = int(item_id)
    except (TypeError, ValueError):
        raise NotFound(str(item_id)) from None
    if decision not in ("approve", "reject"):
        raise FieldErrors.one("decision", "Choose approve or reject.")
    note = (note or "").strip()[:2000]
    if decision == "reject" and not note:
        raise FieldErrors.one("decision_note", f"Say why the {approvals.KINDS[kind].noun} is rejected.")
    approve = decision == "approve"
    if kind == "refund":
        return _refund(factory, staff, number, approve, note, today, now)
    try:
        with transaction(factory) as session:
            _check(session, staff, kind, number)
            return _decide_in(session, staff, kind, number, approve, note, today, now, remote_addr)
    except FieldErrors as exc:
        raise _on_form(exc.errors) from exc
    except InvalidInput as exc:
        raise _on_form({exc.field or "": exc}) from exc


def _on_form(errors: dict[str, InvalidInput]) -> FieldErrors:
    """A kind's own errors as the queue's form has its fields: the reason, or the decision."""
    return FieldErrors(
        {
            "decision_note" if k in ("decision_note", "message", "note", "reason") else "decision": e
            for k, e in errors.items()
        }
    )


def _refund(
    factory: sessionmaker[Session], staff: User, number: int, approve: bool, note: str, today: date, now: datetime
) -> Decided:
    from . import refunds

    with transaction(factory) as session:
        _check(session, staff, "refund", number)
    try:
        if approve:
            refunds.approve(factory, staff, number, today, now)
        else:
            refunds.reject(factory, staff, number, note, now)
    except FieldErrors as exc:
        raise _on_form(exc.errors) from exc
    return Decided("refund", number, f"Refund {number} is {'approved' if approve else 'rejected'}.")


def _decide_in(
    session: Session,
    staff: User,
    kind: str,
    number: int,
    approve: bool,
    note: str,
    today: date,
    now: datetime,
    remote_addr: str | None,
) -> Decided:
    decision = "approve" if approve else "reject"
    if kind == "adjustment":
        from . import adjustments

        adjustment = adjustments.decide(session, staff, number, decision, note, today, now)
        return Decided(kind, number, f"Adjustment {number} is {adjustment.status}.")
    if kind == "write_off":
        from . import write_offs

        write_off = write_offs.decide(session, staff, number, decision, note, today, now)
        return Decided(kind, number, f"Write-off {number} is {write_off.status}.")
    if kind == "referral":
        from . import referrals

        referral = referrals.decide(session, staff, number, decision, note, now)
        return Decided(kind, number, f"Referral {number} is {referral.status}.")
    if kind == "arrangement":
        from . import arrangements

        plan = arrangements.decide(session, staff, number, "approve" if approve else "decline", note, now, today)
        return Decided(
            kind, number, f"Payment plan request {number} is {plan.status}.", [("email.arrangement_decision", number)]
        )
    if kind == "service_request":
        from . import requests

        handled = requests.handle(session, staff, number, "scheduled" if approve else "declined", note, "", now, today)
        return Decided(
            kind, number, f"Service request {number} is {handled.status}.", [("email.request_update", number)]
        )
    if kind == "rate_version":
        from . import rates

        version = rates.decide_version(session, staff, number, decision, note, now)
        return Decided(kind, number, f"Rate version {number} is {version.status}.")
    # final_bill
    review = session.get(FinalBillReview, number, with_for_update=True)
    if review is None:
        raise NotFound(f"final bill {number}")
    account_number = session.scalar(select(Account.number).where(Account.id == review.account_id)) or ""
    if not approve:
        approvals.reject_final_bill(session, review, staff, note, now)
        return Decided(kind, number, f"The final bill of account {account_number} is rejected: the stop is withdrawn.")
    from . import accounts

    done = accounts.review_final_bill(
        session, staff, account_number, "approve", {}, now=now, today=today, remote_addr=remote_addr
    )
    return Decided(
        kind,
        number,
        f"The final bill of account {account_number} is posted as bill {done.bill_number}.",
        [("email.request_update", i) for i in done.completed_requests],
    )


#: One of each kind ("adjustment") and the words of its two buttons, for the page.
NOUNS = {k: kind.noun for k, kind in approvals.KINDS.items()}
WORDS = {k: (kind.approve_word, kind.reject_word) for k, kind in approvals.KINDS.items()}
