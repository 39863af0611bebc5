"""Final-account collections: a final account's balance referred to a collection agency, or
its sewer and sanitation balances transferred to the property tax roll by parcel
(``CollectionReferral``); approved by someone other than the preparer; exported once as a CSV
whose sha256 is kept on each referral it carried; recalled; and what comes back recorded as
recoveries (``CollectionRecovery``), ``recovered_cents`` always their sum.

Statuses::

    proposed --approve--> approved --export--> exported --(recoveries reach the amount)--> closed
        \\--reject (reason)--> rejected      \\--recall--> recalled <--recall-- exported

The daily run proposes referrals too (``propose``, no preparer); a person approves them.

Money and the ledger: a referral moves no money. A recovery that is money received (the
agency's remittance, the county's tax-roll apportionment) is taken as a payment to the account
through ``payments.post_now`` (so a written-off account's recovery is recorded there, once, by
``write_offs.record_recovery``); a recovery that is a payment already taken (the customer paid
the office directly) links that payment and posts nothing again. One payment is never linked
to two recoveries, so nothing is counted twice.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from . import audit, csv_safe, ledger, payments, permissions, posting
from .errors import FieldErrors, InvalidInput
from .models import (
    Account,
    AccountStatus,
    CollectionRecovery,
    CollectionReferral,
    Customer,
    LedgerEntry,
    LedgerTransaction,
    Payment,
    Premise,
    User,
)
from .money import format_money, parse_money
from .permissions import Action

KINDS = {"agency": "Collection agency", "tax_roll": "Property tax roll"}
#: The services whose final balances may go on the tax roll as a lien on the parcel.
TAX_ROLL_SERVICES = ("sewer", "sanitation")
REFERABLE_STATUSES = (AccountStatus.FINAL.value, AccountStatus.CLOSED.value)
#: Statuses whose amount (less what was recovered) is still out with an agency or the county.
ACTIVE = ("proposed", "approved", "exported")
STATUSES = ("proposed", "approved", "exported", "recalled", "rejected", "closed")
TRANSITIONS = {
    "proposed": ("approved", "rejected"),
    "approved": ("exported", "recalled"),
    "exported": ("recalled", "closed"),
    "recalled": ("closed",),
}
#: Recoveries are recorded on referrals that went out (and on recalled ones: money may still come).
RECOVERABLE = ("exported", "recalled")


def _move(item: CollectionReferral, to: str) -> None:
    if to not in TRANSITIONS.get(item.status, ()):
        raise InvalidInput(
            "This referral is %(status)s; it cannot become %(to)s.", "decision", status=item.status, to=to
        )
    item.status = to


def snapshot(item: CollectionReferral) -> dict[str, Any]:
    return {
        "account_id": item.account_id,
        "kind": item.kind,
        "amount_cents": item.amount_cents,
        "service_type": item.service_type,
        "parcel_number": item.parcel_number,
        "status": item.status,
        "prepared_by_id": item.prepared_by_id,
        "decided_by_id": item.decided_by_id,
        "decision_note": item.decision_note,
        "export_ref": item.export_ref,
        "recovered_cents": item.recovered_cents,
    }


# --- What may be referred -----------------------------------------------------------------------


def outstanding(item: CollectionReferral) -> int:
    return max(item.amount_cents - item.recovered_cents, 0)


def _referred(session: Session, account_id: int) -> tuple[int, dict[str, int]]:
    """What is already out (active referrals, less recovered): in all, and on the tax roll by service."""
    total = 0
    by_service: dict[str, int] = {}
    for item in session.scalars(
        select(CollectionReferral).where(
            CollectionReferral.account_id == account_id, CollectionReferral.status.in_(ACTIVE)
        )
    ):
        total += outstanding(item)
        if item.kind == "tax_roll" and item.service_type:
            by_service[item.service_type] = by_service.get(item.service_type, 0) + outstanding(item)
    return total, by_service


@dataclass(frozen=True)
class Referable:
    """What may be referred now: the balance less what is already out; for the tax roll,
    each of its services' open receivable (also less what is out), within that."""

    balance_cents: int
    agency_cents: int
    tax_roll: dict[str, int]
    parcel_number: str | None
    eligible: bool


def referable(session: Session, account: Account) -> Referable:
    balance = posting.account_balance(session, account.id)
    out_total, out_by_service = _referred(session, account.id)
    left = max(balance - out_total, 0)
    opened = posting.open_by_service(session, account.id)
    tax: dict[str, int] = {}
    room = left
    for service in TAX_ROLL_SERVICES:
        cents = min(max(opened.get(service, 0) - out_by_service.get(service, 0), 0), room)
        if cents > 0:
            tax[service] = cents
            room -= cents
    parcel = session.scalar(select(Premise.parcel_number).where(Premise.id == account.premise_id))
    return Referable(balance, left, tax, (parcel or "").strip() or None, account.status in REFERABLE_STATUSES)


def _check(session: Session, account: Account, kind: str, amount: str | None) -> tuple[Referable, int]:
    errors: dict[str, InvalidInput] = {}
    if kind not in KINDS:
        raise FieldErrors({"kind": InvalidInput("Choose a collection agency or the property tax roll.", "kind")})
    can = referable(session, account)
    if not can.eligible:
        errors["account"] = InvalidInput(
            "Only a final or closed account's balance is referred; this account is %(status)s.",
            "account",
            status=account.status,
        )
    cents = 0
    if kind == "agency":
        try:
            cents = parse_money(amount or "", "amount") if (amount or "").strip() else can.agency_cents
            if cents <= 0:
                raise InvalidInput("Nothing is left to refer: the balance is paid or already referred.", "amount")
            if cents > can.agency_cents:
                raise InvalidInput(
                    "At most %(left)s may be referred (the balance less what is already referred).",
                    "amount",
                    left=format_money(can.agency_cents),
                )
        except InvalidInput as exc:
            errors["amount"] = exc
    else:
        if not can.parcel_number:
            errors["kind"] = InvalidInput(
                "The service address has no parcel number: add it before a tax-roll transfer.", "kind"
            )
        elif not can.tax_roll:
            errors["kind"] = InvalidInput("No sewer or sanitation balance is left to transfer to the tax roll.", "kind")
    if errors:
        raise FieldErrors(errors)
    return can, cents


def _make(
    session: Session,
    account: Account,
    kind: str,
    cents: int,
    service_type: str | None,
    parcel: str | None,
    actor: User | None,
    now: datetime,
    action_id: int | None,
) -> CollectionReferral:
    item = CollectionReferral(
        account_id=account.id,
        kind=kind,
        amount_cents=cents,
        service_type=service_type,
        parcel_number=parcel,
        status="proposed",
        prepared_by_id=actor.id if actor else None,
        prepared_at=now,
        action_id=action_id,
        recovered_cents=0,
    )
    session.add(item)
    session.flush()
    audit.record(
        session,
        "referral.prepared" if actor else "referral.proposed",
        actor=actor,
        actor_label=None if actor else "delinquency run",
        entity_type="collection_referral",
        entity_id=item.id,
        after=snapshot(item),
    )
    return item


def prepare(
    session: Session, account: Account, actor: User, kind: str, amount: str | None, now: datetime
) -> list[CollectionReferral]:
    """A specialist prepares a referral (the form checked whole, ``FieldErrors``). A tax-roll
    transfer is one referral per service with its balance. Each waits for someone else."""
    permissions.require(actor, Action.REFERRALS_PREPARE)
    session.get(Account, account.id, with_for_update=True)
    can, cents = _check(session, account, kind, amount)
    if kind == "agency":
        return [_make(session, account, kind, cents, None, None, actor, now, None)]
    return [_make(session, account, kind, c, s, can.parcel_number, actor, now, None) for s, c in can.tax_roll.items()]


def propose(
    session: Session, account: Account, kind: str, now: datetime, action_id: int | None = None
) -> list[CollectionReferral]:
    """The daily run's proposal (no preparer): the whole referable amount, or each tax-roll
    service's. Nothing when nothing is left to refer (returns [])."""
    try:
        can, cents = _check(session, account, kind, None)
    except FieldErrors:
        return []
    if kind == "agency":
        return [_make(session, account, kind, cents, None, None, None, now, action_id)]
    return [
        _make(session, account, kind, c, s, can.parcel_number, None, now, action_id) for s, c in can.tax_roll.items()
    ]


# --- Deciding ------------------------------------------------------------------------------------


def approve(session: Session, item: CollectionReferral, actor: User, now: datetime) -> CollectionReferral:
    permissions.require_approver(actor, Action.REFERRALS_APPROVE, item.prepared_by_id)
    if item.status != "proposed":
        raise InvalidInput("This referral is %(status)s already.", "decision", status=item.status)
    account = session.get(Account, item.account_id, with_for_update=True)
    assert account is not None
    balance = posting.account_balance(session, account.id)
    others, _by = _referred(session, account.id)
    others -= outstanding(item)
    if item.amount_cents > balance - others:
        raise InvalidInput(
            "The account now owes %(owed)s beyond what is referred elsewhere, less than this referral: "
            "reject it and prepare a new one.",
            "decision",
            owed=format_money(max(balance - others, 0)),
        )
    before = snapshot(item)
    _move(item, "approved")
    item.decided_by_id, item.decided_at = actor.id, now
    audit.record(
        session,
        "referral.approved",
        actor=actor,
        entity_type="collection_referral",
        entity_id=item.id,
        before=before,
        after=snapshot(item),
    )
    return item


def reject(session: Session, item: CollectionReferral, actor: User, note: str, now: datetime) -> CollectionReferral:
    permissions.require_approver(actor, Action.REFERRALS_APPROVE, item.prepared_by_id)
    note = (note or "").strip()[:2000]
    if not note:
        raise FieldErrors.one("decision_note", "Say why the referral is rejected.")
    if item.status != "proposed":
        raise InvalidInput("This referral is %(status)s already.", "decision", status=item.status)
    before = snapshot(item)
    _move(item, "rejected")
    item.decided_by_id, item.decided_at, item.decision_note = actor.id, now, note
    audit.record(
        session,
        "referral.rejected",
        actor=actor,
        entity_type="collection_referral",
        entity_id=item.id,
        before=before,
        after=snapshot(item),
    )
    return item


def recall(session: Session, item: CollectionReferral, actor: User, note: str, now: datetime) -> CollectionReferral:
    """Take a referral back from the agency or the county (paid, in error, a bankruptcy)."""
    permissions.require(actor, Action.REFERRALS_APPROVE)
    note = (note or "").strip()[:2000]
    if not note:
        raise FieldErrors.one("recall_note", "Say why the referral is recalled.")
    before = snapshot(item)
    _move(item, "recalled")
    item.decision_note = note
    audit.record(
        session,
        "referral.recalled",
        actor=actor,
        entity_type="collection_referral",
        entity_id=item.id,
        before=before,
        after={**snapshot(item), "recalled_at": now.isoformat()},
    )
    return item


# --- The export ----------------------------------------------------------------------------------

AGENCY_HEADER = [
    "referral",
    "account",
    "name",
    "address",
    "city",
    "state",
    "zip",
    "phone",
    "amount",
    "last_bill_date",
    "last_due_date",
    "final_date",
    "last_payment_date",
]
TAX_ROLL_HEADER = [
    "referral",
    "parcel",
    "service",
    "amount",
    "owner_name",
    "situs_address",
    "situs_city",
    "situs_zip",
    "account",
]


def _dollars(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def _last_dates(session: Session, account_id: int) -> tuple[date | None, date | None, date | None]:
    """The account's last bill (its date and due date) and last payment, from the ledger."""
    bill = session.execute(
        select(LedgerTransaction.effective_on, LedgerTransaction.due_on)
        .where(LedgerTransaction.account_id == account_id, LedgerTransaction.kind == ledger.Kind.BILL.value)
        .order_by(LedgerTransaction.effective_on.desc(), LedgerTransaction.id.desc())
        .limit(1)
    ).first()
    paid = session.scalar(
        select(func.max(LedgerTransaction.effective_on))
        .join(LedgerEntry, LedgerEntry.transaction_id == LedgerTransaction.id)
        .where(LedgerEntry.account_id == account_id, LedgerTransaction.kind == ledger.Kind.PAYMENT.value)
    )
    return (bill[0], bill[1], paid) if bill else (None, None, paid)


def file_rows(session: Session, kind: str, items: list[CollectionReferral]) -> list[list[Any]]:
    rows: list[list[Any]] = []
    for item in items:
        account = session.get(Account, item.account_id)
        assert account is not None
        customer = session.get(Customer, account.customer_id)
        premise = session.get(Premise, account.premise_id)
        assert customer is not None and premise is not None
        if kind == "agency":
            bill_on, due_on, paid_on = _last_dates(session, account.id)
            mailing = bool(customer.mailing_line1)
            rows.append(
                [
                    item.id,
                    account.number,
                    customer.name,
                    customer.mailing_line1
                    if mailing
                    else premise.address_line1 + (f" {premise.address_line2}" if premise.address_line2 else ""),
                    customer.mailing_city if mailing else premise.city,
                    customer.mailing_state if mailing else premise.state,
                    customer.mailing_zip if mailing else premise.zip,
                    customer.phone or "",
                    _dollars(item.amount_cents),
                    bill_on.isoformat() if bill_on else "",
                    due_on.isoformat() if due_on else "",
                    account.closed_on.isoformat() if account.closed_on else "",
                    paid_on.isoformat() if paid_on else "",
                ]
            )
        else:
            rows.append(
                [
                    item.id,
                    item.parcel_number or "",
                    item.service_type or "",
                    _dollars(item.amount_cents),
                    customer.name,
                    premise.address_line1 + (f" {premise.address_line2}" if premise.address_line2 else ""),
                    premise.city,
                    premise.zip,
                    account.number,
                ]
            )
    return rows


def render_csv(kind: str, rows: list[list[Any]]) -> bytes:
    out = io.StringIO()
    w = csv_safe.writer(out)
    w.writerow(AGENCY_HEADER if kind == "agency" else TAX_ROLL_HEADER)
    w.writerows(rows)
    return out.getvalue().encode("utf-8")


@dataclass(frozen=True)
class Export:
    kind: str
    content: bytes
    sha256: str
    referral_ids: list[int]


def export(session: Session, actor: User, kind: str, now: datetime) -> Export:
    """Every approved referral of ``kind`` not yet exported, in one CSV; each is claimed with a
    conditional update (two exports at once never both take one), marked exported and given
    the file's sha256. A referral goes out once. Nothing approved: an empty export (no file)."""
    permissions.require(actor, Action.REFERRALS_APPROVE)
    if kind not in KINDS:
        raise InvalidInput("Choose a collection agency or the property tax roll.", "kind")
    ids = list(
        session.scalars(
            select(CollectionReferral.id)
            .where(CollectionReferral.kind == kind, CollectionReferral.status == "approved")
            .order_by(CollectionReferral.id)
        )
    )
    taken: list[CollectionReferral] = []
    for rid in ids:
        claimed = session.execute(
            update(CollectionReferral)
            .where(
                CollectionReferral.id == rid,
                CollectionReferral.status == "approved",
                CollectionReferral.exported_at.is_(None),
            )
            .values(status="exported", exported_at=now)
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
        if claimed == 1:
            item = session.get(CollectionReferral, rid)
            assert item is not None
            session.refresh(item)
            taken.append(item)
    if not taken:
        return Export(kind, b"", "", [])
    content = render_csv(kind, file_rows(session, kind, taken))
    sha = hashlib.sha256(content).hexdigest()
    for item in taken:
        item.export_ref = sha
        audit.record(
            session,
            "referral.exported",
            actor=actor,
            entity_type="collection_referral",
            entity_id=item.id,
            before={"status": "approved"},
            after={"status": "exported", "export_ref": sha},
        )
    audit.record(
        session,
        "referral.export_file",
        actor=actor,
        entity_type="collection_referral_export",
        entity_id=sha[:16],
        after={"sha256": sha, "kind": kind, "referrals": [i.id for i in taken], "bytes": len(content)},
    )
    return Export(kind, content, sha, [i.id for i in taken])


# --- Recoveries ----------------------------------------------------------------------------------

RECOVERY_SOURCES = {
    "received": "Money received from the agency or the county (posted now as a payment)",
    "payment": "A payment already taken on the account (the customer paid the office)",
}


def recover(
    session: Session,
    item: CollectionReferral,
    actor: User,
    values: dict[str, str],
    today: date,
    now: datetime,
) -> CollectionRecovery:
    """Record money that came back on a referral (the form checked whole, ``FieldErrors``)."""
    permissions.require(actor, Action.REFERRALS_PREPARE)
    session.get(Account, item.account_id, with_for_update=True)
    key = (values.get("key") or "").strip()[:60]
    idempotency = f"referral-recovery:{item.id}:{key}" if key else None
    if idempotency:  # the same form sent twice records one recovery
        done = session.scalar(
            select(CollectionRecovery)
            .join(Payment, Payment.id == CollectionRecovery.payment_id)
            .where(Payment.idempotency_key == idempotency)
        )
        if done is not None:
            return done
    errors: dict[str, InvalidInput] = {}
    if item.status not in RECOVERABLE:
        errors["referral"] = InvalidInput(
            "Recoveries are recorded on an exported or recalled referral; this one is %(status)s.",
            "referral",
            status=item.status,
        )
    source = values.get("source", "")
    if source not in RECOVERY_SOURCES:
        errors["source"] = InvalidInput("Choose where the money came from.", "source")
    cents = 0
    try:
        cents = parse_money(values.get("amount", ""), "amount")
        if cents <= 0:
            raise InvalidInput("Enter an amount above zero.", "amount")
        if cents > outstanding(item):
            raise InvalidInput(
                "At most %(left)s is left to recover on this referral.", "amount", left=format_money(outstanding(item))
            )
    except InvalidInput as exc:
        errors["amount"] = exc
    received_on = today
    text = (values.get("received_on") or "").strip()
    if text:
        try:
            received_on = date.fromisoformat(text)
            if received_on > today:
                raise ValueError
        except ValueError:
            errors["received_on"] = InvalidInput("Enter a date no later than today, as YYYY-MM-DD.", "received_on")
    payment: Payment | None = None
    if source == "payment":
        raw = (values.get("payment") or "").strip()
        payment = session.get(Payment, int(raw)) if raw.isdigit() else None
        if payment is None or payment.account_id != item.account_id or payment.status != "posted":
            errors["payment"] = InvalidInput("Choose a posted payment of this account.", "payment")
            payment = None
        else:
            linked = session.scalar(
                select(func.coalesce(func.sum(CollectionRecovery.amount_cents), 0)).where(
                    CollectionRecovery.payment_id == payment.id
                )
            )
            if cents and int(linked or 0) + cents > payment.amount_cents:
                errors["payment"] = InvalidInput(
                    "That payment is already counted as a recovery (%(linked)s of %(amount)s).",
                    "payment",
                    linked=format_money(int(linked or 0)),
                    amount=format_money(payment.amount_cents),
                )
    if errors:
        raise FieldErrors(errors)
    note = (values.get("note") or "").strip()[:2000]
    if source == "received":
        label = KINDS[item.kind].lower()
        payment = Payment(
            account_id=item.account_id,
            amount_cents=cents,
            channel="mail",
            method="check",
            received_on=received_on,
            status="pending",
            reference=f"referral {item.id}"[:100],
            idempotency_key=idempotency,
            user_id=actor.id,
        )
        session.add(payment)
        session.flush()
        payments.post_now(session, payment, received_on, now, memo=f"Recovery on referral {item.id} ({label})")
    assert payment is not None
    row = CollectionRecovery(
        referral_id=item.id,
        amount_cents=cents,
        received_on=received_on,
        payment_id=payment.id,
        note=note,
        recorded_by_id=actor.id,
        recorded_at=now,
    )
    session.add(row)
    session.flush()
    before = snapshot(item)
    item.recovered_cents = int(
        session.scalar(
            select(func.coalesce(func.sum(CollectionRecovery.amount_cents), 0)).where(
                CollectionRecovery.referral_id == item.id
            )
        )
        or 0
    )
    if item.recovered_cents >= item.amount_cents and item.status in RECOVERABLE:
        _move(item, "closed")
    audit.record(
        session,
        "referral.recovery",
        actor=actor,
        entity_type="collection_referral",
        entity_id=item.id,
        before=before,
        after={**snapshot(item), "recovery_id": row.id, "payment_id": payment.id, "source": source},
    )
    return row


# --- Reading ---------------------------------------------------------------------------------------


def for_account(session: Session, account_id: int) -> list[CollectionReferral]:
    return list(
        session.scalars(
            select(CollectionReferral)
            .where(CollectionReferral.account_id == account_id)
            .order_by(CollectionReferral.id.desc())
        )
    )


def recoveries(session: Session, referral_ids: list[int]) -> dict[int, list[CollectionRecovery]]:
    out: dict[int, list[CollectionRecovery]] = {i: [] for i in referral_ids}
    if referral_ids:
        for r in session.scalars(
            select(CollectionRecovery)
            .where(CollectionRecovery.referral_id.in_(referral_ids))
            .order_by(CollectionRecovery.received_on, CollectionRecovery.id)
        ):
            out[r.referral_id].append(r)
    return out


def by_status(session: Session, status: str, limit: int = 500) -> list[CollectionReferral]:
    return list(
        session.scalars(
            select(CollectionReferral)
            .where(CollectionReferral.status == status)
            .order_by(CollectionReferral.prepared_at, CollectionReferral.id)
            .limit(limit)
        )
    )


def counts(session: Session) -> dict[str, int]:
    found = dict(
        session.execute(select(CollectionReferral.status, func.count()).group_by(CollectionReferral.status)).all()
    )
    return {s: int(found.get(s, 0)) for s in STATUSES}
