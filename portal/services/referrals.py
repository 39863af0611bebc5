"""Final-account collections for staff (``billing_core/referrals.py``): the referrals page
(lists by status, approve / reject, export, recall), the account panel (prepare, recoveries),
and the export files, kept under ``files_dir/referrals/<sha256>.csv`` so a file can be
downloaded again and is known by its hash."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..billing_core import permissions, posting, referrals
from ..billing_core.errors import InvalidInput, NotFound
from ..billing_core.models import Account, CollectionRecovery, CollectionReferral, Payment, User
from ..billing_core.permissions import Action


def _account(session: Session, number: str) -> Account:
    account = session.scalar(select(Account).where(Account.number == (number or "").strip()))
    if account is None:
        raise NotFound(str(number))
    return account


def _referral(session: Session, referral_id: int | str, lock: bool = True) -> CollectionReferral:
    try:
        number = int(referral_id)
    except (TypeError, ValueError):
        raise NotFound(str(referral_id)) from None
    item = session.get(CollectionReferral, number, with_for_update=lock)
    if item is None:
        raise NotFound(str(referral_id))
    return item


def _people(session: Session, ids: set[int | None]) -> dict[int, User]:
    wanted = {i for i in ids if i}
    return {u.id: u for u in session.scalars(select(User).where(User.id.in_(wanted)))} if wanted else {}


@dataclass(frozen=True)
class Panel:
    account: Account
    items: list[CollectionReferral]
    recoveries: dict[int, list[CollectionRecovery]]
    people: dict[int, User]
    can: referrals.Referable
    payments: list[Payment]
    can_prepare: bool
    can_decide: bool


def panel(session: Session, staff: User, number: str) -> Panel:
    permissions.require(staff, Action.STAFF_VIEW)
    account = _account(session, number)
    items = referrals.for_account(session, account.id)
    recs = referrals.recoveries(session, [i.id for i in items])
    ids = {i.prepared_by_id for i in items} | {i.decided_by_id for i in items}
    ids |= {r.recorded_by_id for rs in recs.values() for r in rs}
    recent = list(
        session.scalars(
            select(Payment)
            .where(Payment.account_id == account.id, Payment.status == "posted")
            .order_by(Payment.received_on.desc(), Payment.id.desc())
            .limit(20)
        )
    )
    return Panel(
        account,
        items,
        recs,
        _people(session, ids),
        referrals.referable(session, account),
        recent,
        permissions.can(staff.role, Action.REFERRALS_PREPARE),
        permissions.can(staff.role, Action.REFERRALS_APPROVE),
    )


def prepare(
    session: Session, staff: User, number: str, values: dict[str, str], now: datetime
) -> list[CollectionReferral]:
    permissions.require(staff, Action.REFERRALS_PREPARE)
    account = _account(session, number)
    return referrals.prepare(session, account, staff, values.get("kind", ""), values.get("amount"), now)


def decide(
    session: Session, staff: User, referral_id: int | str, decision: str, note: str, now: datetime
) -> CollectionReferral:
    item = _referral(session, referral_id)
    if decision == "approve":
        return referrals.approve(session, item, staff, now)
    if decision == "reject":
        return referrals.reject(session, item, staff, note, now)
    if decision == "recall":
        return referrals.recall(session, item, staff, note, now)
    raise InvalidInput("Choose approve, reject or recall.", "decision")


def recover(
    session: Session, staff: User, referral_id: int | str, values: dict[str, str], today: date, now: datetime
) -> CollectionRecovery:
    item = _referral(session, referral_id)
    return referrals.recover(session, item, staff, values, today, now)


# --- The referrals page ----------------------------------------------------------------------


@dataclass(frozen=True)
class ListPage:
    status: str
    items: list[CollectionReferral]
    numbers: dict[int, str]
    balances: dict[int, int]
    people: dict[int, User]
    counts: dict[str, int]
    approved: dict[str, int]
    exports: list[tuple[str, str, int]]
    staff_id: int
    can_decide: bool


def list_page(session: Session, staff: User, status: str) -> ListPage:
    permissions.require(staff, Action.STAFF_VIEW)
    status = status if status in referrals.STATUSES else "proposed"
    items = referrals.by_status(session, status)
    ids = {i.account_id for i in items}
    numbers = dict(session.execute(select(Account.id, Account.number).where(Account.id.in_(ids))).all()) if ids else {}
    balances = {a: posting.account_balance(session, a) for a in ids}
    approved = {k: len([1 for i in referrals.by_status(session, "approved") if i.kind == k]) for k in referrals.KINDS}
    exports = [(ref, kind, n) for ref, kind, n in _exports(session)]
    return ListPage(
        status,
        items,
        numbers,
        balances,
        _people(session, {i.prepared_by_id for i in items} | {i.decided_by_id for i in items}),
        referrals.counts(session),
        approved,
        exports,
        staff.id,
        permissions.can(staff.role, Action.REFERRALS_APPROVE),
    )


def _exports(session: Session, limit: int = 20) -> list[tuple[str, str, int]]:
    """The latest export files: (sha256, kind, referrals in it)."""
    from sqlalchemy import func

    rows = session.execute(
        select(
            CollectionReferral.export_ref,
            CollectionReferral.kind,
            func.count(),
            func.max(CollectionReferral.exported_at),
        )
        .where(CollectionReferral.export_ref.is_not(None))
        .group_by(CollectionReferral.export_ref, CollectionReferral.kind)
        .order_by(func.max(CollectionReferral.exported_at).desc())
        .limit(limit)
    ).all()
    return [(str(ref), kind, int(n)) for ref, kind, n, _at in rows if ref]


# --- Export files ----------------------------------------------------------------------------


def _dir(files_dir: str) -> Path:
    return Path(files_dir) / "referrals"


def export(session: Session, staff: User, kind: str, files_dir: str, now: datetime) -> referrals.Export:
    """Export the approved referrals of ``kind`` once; the file is kept by its sha256."""
    done = referrals.export(session, staff, kind, now)
    if done.content:
        folder = _dir(files_dir)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{done.sha256}.csv"
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(done.content)
        tmp.replace(path)
    return done


def export_file(session: Session, staff: User, sha: str, files_dir: str) -> tuple[str, bytes]:
    """An export file again, by its sha256 (checked against the content): (kind, bytes)."""
    permissions.require(staff, Action.REFERRALS_APPROVE)
    sha = (sha or "").lower()
    if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise NotFound(sha)
    kind = session.scalar(select(CollectionReferral.kind).where(CollectionReferral.export_ref == sha).limit(1))
    path = _dir(files_dir) / f"{sha}.csv"
    if kind is None or not path.is_file():
        raise NotFound(sha)
    content = path.read_bytes()
    if hashlib.sha256(content).hexdigest() != sha:
        raise InvalidInput("The stored export file does not match its sha256: it was changed.", "file")
    return kind, content
