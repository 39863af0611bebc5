"""The approvals queue: everything waiting for someone else's decision, collected from each
kind in one query (with the account's number and the preparer's email joined in), so the
list stays fast however many accounts there are.

The kinds: adjustments above the preparer's limit, refunds, write-offs, final bills held for
review, collection referrals, payment plan requests, service requests still only submitted,
and rate versions proposed. Each item says who prepared it and when (its age in days), and
who may decide it (``Kind.action``). The rule that the approver is never the preparer holds
for every kind (``check_decider``): for a customer's own request the preparer is the customer.

The decisions themselves are each kind's own (``services/approvals.py`` calls them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from . import adjustments, audit, permissions, referrals
from .bill_runs import FINAL_REASONS
from .errors import InvalidInput, NotAllowed
from .models import (
    Account,
    Adjustment,
    ArrangementRequest,
    CollectionReferral,
    FinalBillReview,
    RateSchedule,
    RateScheduleVersion,
    Refund,
    ServiceRequest,
    User,
    WriteOff,
)
from .permissions import Action


@dataclass(frozen=True)
class Kind:
    key: str
    #: The list's name for it ("Adjustments") and one of it ("adjustment").
    label: str
    noun: str
    #: Who may decide it (``permissions``); the amount is checked against its limit.
    action: Action
    #: The decision's two words, as the buttons say them.
    approve_word: str = "Approve"
    reject_word: str = "Reject"


KINDS: dict[str, Kind] = {
    k.key: k
    for k in (
        Kind("adjustment", "Adjustments", "adjustment", Action.ADJUSTMENTS_APPROVE),
        Kind("refund", "Refunds", "refund", Action.REFUNDS_APPROVE),
        Kind("write_off", "Write-offs", "write-off", Action.WRITE_OFFS_APPROVE),
        Kind("final_bill", "Final bills held", "final bill", Action.BILLS_FINAL_APPROVE, "Approve and post", "Reject"),
        Kind("referral", "Referrals", "referral", Action.REFERRALS_APPROVE),
        Kind(
            "arrangement",
            "Payment plan requests",
            "payment plan request",
            Action.ARRANGEMENTS_DECIDE,
            "Approve",
            "Decline",
        ),
        Kind("service_request", "Service requests", "service request", Action.REQUESTS_HANDLE, "Schedule", "Decline"),
        Kind("rate_version", "Rate versions", "rate version", Action.RATES_APPROVE),
    )
}


@dataclass(frozen=True)
class Item:
    """One thing waiting for a decision."""

    kind: str
    id: int
    account_number: str | None
    amount_cents: int | None
    what: str
    prepared_by_id: int | None
    prepared_by: str
    prepared_at: datetime
    #: The item's own page.
    link: str
    detail: dict[str, Any] = field(default_factory=dict)

    def age_days(self, today: date) -> int:
        return max((today - self.prepared_at.date()).days, 0)


Preparer = aliased(User)


def _rows(session: Session, stmt: Any) -> Iterable[Any]:
    return session.execute(stmt).all()


def _adjustments(session: Session) -> list[Item]:
    stmt = (
        select(Adjustment, Account.number, Preparer.email)
        .join(Account, Account.id == Adjustment.account_id)
        .outerjoin(Preparer, Preparer.id == Adjustment.prepared_by_id)
        .where(Adjustment.status == "pending")
    )
    return [
        Item(
            "adjustment",
            a.id,
            number,
            a.amount_cents,
            f"{adjustments.REASONS.get(a.reason_code, a.reason_code)}: {adjustments.describe(a.amount_cents)} "
            f"on {a.service_type}" + (f" ({a.note})" if a.note else ""),
            a.prepared_by_id,
            email or str(a.prepared_by_id),
            a.prepared_at,
            f"/staff/accounts/{number}/adjustments",
            {"working": a.working, "proof": a.repair_proof},
        )
        for a, number, email in _rows(session, stmt)
    ]


def _refunds(session: Session) -> list[Item]:
    stmt = (
        select(Refund, Account.number, Preparer.email)
        .join(Account, Account.id == Refund.account_id)
        .outerjoin(Preparer, Preparer.id == Refund.requested_by_id)
        .where(Refund.status == "requested")
    )
    return [
        Item(
            "refund",
            r.id,
            number,
            r.amount_cents,
            f"Refund by {r.method}: {r.reason}",
            r.requested_by_id,
            email or str(r.requested_by_id),
            r.requested_at,
            f"/staff/refunds/{r.id}",
        )
        for r, number, email in _rows(session, stmt)
    ]


def _write_offs(session: Session) -> list[Item]:
    stmt = (
        select(WriteOff, Account.number, Preparer.email)
        .join(Account, Account.id == WriteOff.account_id)
        .outerjoin(Preparer, Preparer.id == WriteOff.prepared_by_id)
        .where(WriteOff.status == "pending")
    )
    return [
        Item(
            "write_off",
            w.id,
            number,
            w.amount_cents,
            f"Write-off: {w.reason}",
            w.prepared_by_id,
            email or str(w.prepared_by_id),
            w.prepared_at,
            f"/staff/accounts/{number}/write-off",
        )
        for w, number, email in _rows(session, stmt)
    ]


def _final_bills(session: Session) -> list[Item]:
    stmt = (
        select(FinalBillReview, Account.number, Preparer.email)
        .join(Account, Account.id == FinalBillReview.account_id)
        .outerjoin(Preparer, Preparer.id == FinalBillReview.entered_by_id)
        .where(FinalBillReview.status == "held")
    )
    items = []
    for r, number, email in _rows(session, stmt):
        why = "; ".join(FINAL_REASONS.get(code, code) for code in r.reasons.split(",") if code)
        items.append(
            Item(
                "final_bill",
                r.id,
                number,
                None,
                f"Final bill, last day of service {r.stop_on.isoformat()}" + (f": {why}" if why else ""),
                r.entered_by_id,
                email or str(r.entered_by_id),
                r.entered_at,
                f"/staff/accounts/{number}#held-heading",
                {"stop_on": r.stop_on},
            )
        )
    return items


def _referrals(session: Session) -> list[Item]:
    stmt = (
        select(CollectionReferral, Account.number, Preparer.email)
        .join(Account, Account.id == CollectionReferral.account_id)
        .outerjoin(Preparer, Preparer.id == CollectionReferral.prepared_by_id)
        .where(CollectionReferral.status == "proposed")
    )
    return [
        Item(
            "referral",
            r.id,
            number,
            r.amount_cents,
            referrals.KINDS.get(r.kind, r.kind)
            + (f": {r.service_type}, parcel {r.parcel_number}" if r.service_type else ""),
            r.prepared_by_id,
            email or "Delinquency run",
            r.prepared_at,
            "/staff/referrals?status=proposed",
        )
        for r, number, email in _rows(session, stmt)
    ]


def _arrangements(session: Session) -> list[Item]:
    stmt = (
        select(ArrangementRequest, Account.number, Preparer.email)
        .join(Account, Account.id == ArrangementRequest.account_id)
        .outerjoin(Preparer, Preparer.id == ArrangementRequest.user_id)
        .where(ArrangementRequest.status == "submitted")
    )
    return [
        Item(
            "arrangement",
            r.id,
            number,
            r.total_cents,
            f"Payment plan: {r.installments} installments from {r.first_due_on.isoformat()}"
            + (f" ({r.reason})" if r.reason else ""),
            r.user_id,
            email or str(r.user_id),
            r.created_at,
            f"/staff/arrangements/{r.id}",
        )
        for r, number, email in _rows(session, stmt)
    ]


def _service_requests(session: Session) -> list[Item]:
    stmt = (
        select(ServiceRequest, Account.number, Preparer.email)
        .outerjoin(Account, Account.id == ServiceRequest.account_id)
        .outerjoin(Preparer, Preparer.id == ServiceRequest.user_id)
        .where(ServiceRequest.status == "submitted")
    )
    items = []
    for r, number, email in _rows(session, stmt):
        day = r.start_on if r.kind == "start" else r.stop_on
        where = f" at {r.service_line1}, {r.service_city}" if r.service_line1 and r.kind != "stop" else ""
        items.append(
            Item(
                "service_request",
                r.id,
                number,
                None,
                f"{r.kind.capitalize()} service{where}" + (f" on {day.isoformat()}" if day else ""),
                r.user_id,
                email or str(r.user_id),
                r.created_at,
                f"/staff/requests/{r.id}",
            )
        )
    return items


def _rate_versions(session: Session) -> list[Item]:
    stmt = (
        select(RateScheduleVersion.id, RateScheduleVersion.effective_on, RateScheduleVersion.proposed_by_id)
        .add_columns(RateScheduleVersion.created_at, RateSchedule.name, Preparer.email)
        .join(RateSchedule, RateSchedule.id == RateScheduleVersion.schedule_id)
        .outerjoin(Preparer, Preparer.id == RateScheduleVersion.proposed_by_id)
        .where(RateScheduleVersion.status == "proposed")
    )
    return [
        Item(
            "rate_version",
            vid,
            None,
            None,
            f"Rate version: {name}, effective {effective_on.isoformat()}",
            proposer,
            email or "",
            created_at,
            f"/staff/rates/versions/{vid}",
        )
        for vid, effective_on, proposer, created_at, name, email in _rows(session, stmt)
    ]


COLLECTORS: dict[str, Callable[[Session], list[Item]]] = {
    "adjustment": _adjustments,
    "refund": _refunds,
    "write_off": _write_offs,
    "final_bill": _final_bills,
    "referral": _referrals,
    "arrangement": _arrangements,
    "service_request": _service_requests,
    "rate_version": _rate_versions,
}


def waiting(session: Session, kinds: Iterable[str] | None = None) -> list[Item]:
    """Everything waiting (of ``kinds``, else every kind), oldest first: one query a kind."""
    items: list[Item] = []
    for key in kinds if kinds is not None else KINDS:
        items += COLLECTORS[key](session)
    items.sort(key=lambda i: (i.prepared_at, i.kind, i.id))
    return items


#: What waits, kind by kind, for counting: (its table's id, when it was prepared, the waiting state).
_WAITING: dict[str, tuple[Any, Any, Any]] = {
    "adjustment": (Adjustment.id, Adjustment.prepared_at, Adjustment.status == "pending"),
    "refund": (Refund.id, Refund.requested_at, Refund.status == "requested"),
    "write_off": (WriteOff.id, WriteOff.prepared_at, WriteOff.status == "pending"),
    "final_bill": (FinalBillReview.id, FinalBillReview.entered_at, FinalBillReview.status == "held"),
    "referral": (CollectionReferral.id, CollectionReferral.prepared_at, CollectionReferral.status == "proposed"),
    "arrangement": (ArrangementRequest.id, ArrangementRequest.created_at, ArrangementRequest.status == "submitted"),
    "service_request": (ServiceRequest.id, ServiceRequest.created_at, ServiceRequest.status == "submitted"),
    "rate_version": (RateScheduleVersion.id, RateScheduleVersion.created_at, RateScheduleVersion.status == "proposed"),
}


def summary(session: Session, today: date) -> dict[str, tuple[int, int | None]]:
    """How many of each kind wait and the oldest's age in days: one count a kind, no rows."""
    out: dict[str, tuple[int, int | None]] = {}
    for key, (id_, at, waiting_) in _WAITING.items():
        count, oldest = session.execute(select(func.count(id_), func.min(at)).where(waiting_)).one()
        out[key] = (int(count or 0), max((today - oldest.date()).days, 0) if oldest is not None else None)
    return out


#: The age filter's choices: waiting at least this many days.
AGES = (0, 1, 3, 7, 14, 30)


def narrow(items: list[Item], today: date, *, kind: str = "", min_age: int = 0, preparer: str = "") -> list[Item]:
    """The items of one kind (any when empty), waiting ``min_age`` days or more, prepared
    by ``preparer`` (their email; any when empty)."""
    return [
        i
        for i in items
        if (not kind or i.kind == kind)
        and i.age_days(today) >= min_age
        and (not preparer or i.prepared_by.lower() == preparer.lower())
    ]


def may_decide(staff: User, item: Item) -> bool:
    """Would ``check_decider`` let ``staff`` decide ``item``? (The page's buttons.)"""
    try:
        check_decider(staff, item.kind, item.prepared_by_id, item.amount_cents)
    except NotAllowed:
        return False
    return True


def check_decider(staff: object, kind: str, prepared_by_id: int | None, amount_cents: int | None = None) -> None:
    """The approver is never the preparer, for every kind, and may decide it within their
    limit; ``NotAllowed`` otherwise."""
    action = KINDS[kind].action
    if prepared_by_id is not None and prepared_by_id == getattr(staff, "id", None):
        raise NotAllowed("The person who prepared this cannot also decide it.", action=action)
    limited = amount_cents if action in permissions.LIMITS else None
    permissions.require_approver(staff, action, prepared_by_id, limited)


def reject_final_bill(session: Session, review: FinalBillReview, actor: User, note: str, now: datetime) -> None:
    """Reject a final bill held for review: the stop is withdrawn (nothing about the account
    had changed while it was held: it stays active, its stop requests stay open), with why,
    audited with what was held. The stop can be entered again with the right reads."""
    check_decider(actor, "final_bill", review.entered_by_id)
    if review.status != "held":
        raise InvalidInput("This final bill is not waiting for review.", "decision")
    note = (note or "").strip()[:2000]
    if not note:
        raise InvalidInput("Say why the final bill is rejected.", "decision_note")
    audit.record(
        session,
        "account.final_bill_rejected",
        actor=actor,
        entity_type="account",
        entity_id=review.account_id,
        before={
            "review": review.id,
            "stop_on": review.stop_on.isoformat(),
            "reads": review.reads,
            "reasons": review.reasons,
            "entered_by": review.entered_by_id,
        },
        after={"status": "withdrawn", "note": note, "at": now.isoformat()},
    )
    session.delete(review)
    session.flush()
