"""Written notices of the collection ladder: who gets one, in which language, with which
figures, and the day's print batches for the mail house.

``issue`` writes the customer's notice (and, when the bill goes elsewhere than the service
address, a copy to the "Occupant" there, as California's Water Shutoff Protection Act
requires of a landlord's account) with its figures fixed: the amount, the deadline and the
shutoff date it states never change, so a reprint is the letter that was mailed. The
customer's copy is emailed too when there is an address (a row of the email outbox; the
sender is ``services.notices.send_notice``).

The language of the customer's notice: the customer's ``preferred_language`` when it is
one we print other than the default (English); else the language of the customer's own
sign-in linked to the account (the most recent to sign in); else English. The occupant's
copy is printed in English and Spanish (nobody told us the occupant's language).

A day's notices of one kind go to the mail house as one PDF (``NoticeBatch``) sorted by
ZIP code, then street address, so the mail house can presort them.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from . import audit, ladder_policy, outbox
from .errors import InvalidInput
from .models import (
    Account,
    Customer,
    DelinquencyPolicyVersion,
    Notice,
    NoticeBatch,
    Premise,
    User,
    UserAccountLink,
)

#: The kinds of notice, and what each is called on the staff pages.
KINDS = {
    "past_due": "Past-due notice",
    "final": "Final notice (written shutoff notice)",
    "door_tag": "Door tag (48-hour notice)",
    "reconnected": "Service restored",
    "broken_plan": "Payment plan broken",
}
#: The email outbox job that sends a notice (``services.notices.send_notice``).
EMAIL_KIND = "email.notice"
#: The languages notices are printed in (``portal.i18n.LANGUAGES``); English is the default.
LANGUAGES = ("en", "es")
DEFAULT_LANGUAGE = "en"


def _supported(code: str | None) -> str | None:
    code = (code or "").strip().lower()[:2]
    return code if code in LANGUAGES else None


def gate_module(name: str) -> Any:
    """A module of the gate's part (``ladder_versions``) when it is there (None before it lands)."""
    try:
        return importlib.import_module(f"{__package__}.{name}")
    except ModuleNotFoundError:
        return None


def policy_on(session: Session, on: date) -> ladder_policy.LadderPolicy:
    """The collection policy in force on ``on``: ``ladder_versions.current`` when the gate's
    module is there, else the newest stored version effective by then, else ``DEFAULT``."""
    versions = gate_module("ladder_versions")
    if versions is not None:
        return versions.current(session, on)[1]
    body = session.scalar(
        select(DelinquencyPolicyVersion.body)
        .where(DelinquencyPolicyVersion.effective_on <= on)
        .order_by(DelinquencyPolicyVersion.effective_on.desc(), DelinquencyPolicyVersion.version.desc())
        .limit(1)
    )
    return ladder_policy.from_dict(body) if body else ladder_policy.DEFAULT


def _customer_sign_in(session: Session, account_id: int) -> User | None:
    return session.scalar(
        select(User)
        .join(UserAccountLink, UserAccountLink.user_id == User.id)
        .where(UserAccountLink.account_id == account_id, User.role == "customer", User.active.is_(True))
        .order_by(User.last_sign_in_at.desc().nulls_last(), User.id)
        .limit(1)
    )


def language_of(session: Session, account: Account) -> str:
    """The language the customer's notices are written in (the rule in the module's doc)."""
    chosen = _supported(account.customer.preferred_language)
    if chosen and chosen != DEFAULT_LANGUAGE:
        return chosen
    user = _customer_sign_in(session, account.id)
    if user is not None:
        return _supported(user.language) or DEFAULT_LANGUAGE
    return chosen or DEFAULT_LANGUAGE


def email_of(session: Session, account: Account) -> str | None:
    """Where the customer's notice is emailed: the customer's address, else their sign-in's."""
    if account.customer.email:
        return account.customer.email
    user = _customer_sign_in(session, account.id)
    return user.email if user is not None else None


def _norm(text: str | None) -> str:
    return re.sub(r"[^a-z0-9]+", " ", (text or "").lower()).strip()


def mailing_differs(customer: Customer, premise: Premise) -> bool:
    """Whether the bill goes elsewhere than the service address (a landlord's account):
    a mailing address on file whose street or ZIP code is not the premise's."""
    if not customer.mailing_line1:
        return False
    return (
        _norm(customer.mailing_line1) != _norm(premise.address_line1)
        or (customer.mailing_zip or "")[:5] != (premise.zip or "")[:5]
    )


def issue(
    session: Session,
    account: Account,
    kind: str,
    on: date,
    amount_cents: int,
    deadline_on: date | None,
    shutoff_on: date | None,
    action_id: int | None,
    now: datetime,
) -> list[Notice]:
    """Issue a notice of ``kind`` on ``on`` to the account's customer, and to the Occupant
    at the service address when the mailing address differs. Returns the notices, the
    customer's first. With ``action_id`` it happens once: the notices that action already
    issued are returned as they are."""
    if kind not in KINDS:
        raise InvalidInput(f"Unknown notice kind {kind!r}.", "kind")
    if amount_cents < 0:
        raise InvalidInput("A notice's amount cannot be negative.", "amount_cents")
    if action_id is not None:
        found = list(session.scalars(select(Notice).where(Notice.action_id == action_id).order_by(Notice.id)))
        if found:
            return found
    customer, premise = account.customer, account.premise
    mailing = customer.mailing_line1 is not None and customer.mailing_line1.strip() != ""
    mine = Notice(
        account_id=account.id,
        kind=kind,
        addressee="customer",
        language=language_of(session, account),
        name=customer.name[:200],
        address_line1=customer.mailing_line1 if mailing else premise.address_line1,
        address_line2=None if mailing else premise.address_line2,
        city=customer.mailing_city if mailing else premise.city,
        state=customer.mailing_state if mailing else premise.state,
        zip=customer.mailing_zip if mailing else premise.zip,
        issued_on=on,
        amount_cents=amount_cents,
        deadline_on=deadline_on,
        shutoff_on=shutoff_on,
        action_id=action_id,
        created_at=now,
    )
    out = [mine]
    if mailing_differs(customer, premise):
        out.append(
            Notice(
                account_id=account.id,
                kind=kind,
                addressee="occupant",
                language=DEFAULT_LANGUAGE,
                name="Occupant",
                address_line1=premise.address_line1,
                address_line2=premise.address_line2,
                city=premise.city,
                state=premise.state,
                zip=premise.zip,
                issued_on=on,
                amount_cents=amount_cents,
                deadline_on=deadline_on,
                shutoff_on=shutoff_on,
                action_id=action_id,
                created_at=now,
            )
        )
    session.add_all(out)
    session.flush()
    if email_of(session, account):
        mine.email_outbox_id = outbox.queue(session, EMAIL_KIND, {"notice_id": mine.id}, now).id
    for notice in out:
        audit.record(
            session,
            "notice.issued",
            actor_label="collections",
            entity_type="notice",
            entity_id=notice.id,
            after={
                "account": account.number,
                "kind": kind,
                "addressee": notice.addressee,
                "language": notice.language,
                "amount_cents": amount_cents,
                "deadline_on": deadline_on.isoformat() if deadline_on else None,
                "shutoff_on": shutoff_on.isoformat() if shutoff_on else None,
                "action_id": action_id,
            },
        )
    session.flush()
    return out


# --- The day's print batches ----------------------------------------------------------------


def mail_order() -> tuple:
    """Notices in the mail house's order: ZIP code, street address, then as issued."""
    return (Notice.zip, Notice.address_line1, Notice.id)


def day_counts(session: Session, on: date) -> dict[str, int]:
    """How many notices of each kind were issued on ``on``."""
    from sqlalchemy import func

    rows = session.execute(select(Notice.kind, func.count()).where(Notice.issued_on == on).group_by(Notice.kind)).all()
    return {kind: int(n) for kind, n in rows}


def prepare_batch(session: Session, on: date, kind: str, actor: User | None, now: datetime) -> NoticeBatch:
    """The batch of ``on``'s notices of ``kind`` (made the first time; notices issued since
    join it), every notice of that day and kind in it. ``InvalidInput`` when there are none."""
    if kind not in KINDS:
        raise InvalidInput(f"Unknown notice kind {kind!r}.", "kind")
    batch = session.scalar(select(NoticeBatch).where(NoticeBatch.issued_on == on, NoticeBatch.kind == kind))
    ids = list(session.scalars(select(Notice.id).where(Notice.issued_on == on, Notice.kind == kind)))
    if not ids:
        raise InvalidInput(f"No {KINDS[kind].lower()} was issued on {on.isoformat()}.", "kind")
    if batch is None:
        batch = NoticeBatch(issued_on=on, kind=kind, created_by_id=actor.id if actor else None, created_at=now)
        session.add(batch)
        session.flush()
    before = batch.notices_total
    session.execute(
        update(Notice)
        .where(Notice.issued_on == on, Notice.kind == kind, Notice.batch_id.is_(None))
        .values(batch_id=batch.id)
    )
    batch.notices_total = len(ids)
    if before != batch.notices_total:
        batch.pdf_path = None  # the printed file no longer has them all
    audit.record(
        session,
        "notice_batch.prepared",
        actor=actor,
        entity_type="notice_batch",
        entity_id=batch.id,
        before={"notices_total": before},
        after={"issued_on": on.isoformat(), "kind": kind, "notices_total": batch.notices_total},
    )
    session.flush()
    return batch


def batch_notices(session: Session, batch_id: int) -> Sequence[Notice]:
    """The batch's notices in mail order."""
    return list(session.scalars(select(Notice).where(Notice.batch_id == batch_id).order_by(*mail_order())))


__all__ = [
    "EMAIL_KIND",
    "KINDS",
    "batch_notices",
    "day_counts",
    "email_of",
    "issue",
    "language_of",
    "mailing_differs",
    "policy_on",
    "prepare_batch",
]
