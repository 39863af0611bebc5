"""Collection notices as letters, emails and the mail house's batches.

A notice's letter is ``templates/notice_document.html`` in the notice's language (the
occupant's copy in English, then Spanish); its email ``templates/email/notice.txt``, sent
from the outbox (``send_notice``, the sender of ``email.notice``). The staff's notices
page lists a day's notices by kind, prints a kind's batch as one PDF in ZIP order (kept
under ``files_dir/notices``) and reprints one notice.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from jinja2 import Environment
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from .. import documents, i18n
from ..adapters.clock import Clock
from ..adapters.database import transaction
from ..billing_core import audit, notices, permissions
from ..billing_core.errors import NotFound
from ..billing_core.models import Account, Notice, NoticeBatch, User
from ..billing_core.permissions import Action
from ..emails import Mailer
from ..settings import Settings
from .delivery import join_pdfs


@dataclass(frozen=True)
class NoticeDocument:
    """What a notice's letter and email say, besides the notice's own fixed figures."""

    notice: Notice
    account_number: str
    service_address: str
    #: The premise has more than one dwelling unit: tenants' rights are stated.
    multi_unit: bool
    office_phone: str
    max_plan_months: int

    @property
    def languages(self) -> tuple[str, ...]:
        """The languages it is printed in: the occupant's copy in both."""
        if self.notice.addressee == "occupant":
            return tuple(notices.LANGUAGES)
        return (i18n.supported(self.notice.language) or i18n.DEFAULT,)


def documents_for(session: Session, rows: Sequence[Notice]) -> list[NoticeDocument]:
    accounts = {
        a.id: a for a in session.scalars(select(Account).where(Account.id.in_({n.account_id for n in rows} or {-1})))
    }
    out = []
    policies: dict[date, tuple[str, int]] = {}
    for n in rows:
        if n.issued_on not in policies:
            policy = notices.policy_on(session, n.issued_on)
            policies[n.issued_on] = (policy.office_phone, policy.max_plan_months)
        phone, months = policies[n.issued_on]
        account = accounts[n.account_id]
        out.append(
            NoticeDocument(
                n, account.number, account.premise.one_line, (account.premise.dwelling_units or 1) > 1, phone, months
            )
        )
    return out


def document(session: Session, notice_id: int) -> NoticeDocument:
    notice = session.get(Notice, notice_id)
    if notice is None:
        raise NotFound(f"notice {notice_id}")
    return documents_for(session, [notice])[0]


def _parts(env: Environment, settings: Settings, doc: NoticeDocument) -> list[str]:
    out = []
    for language in doc.languages:
        with i18n.use(language):
            out.append(
                env.get_template("notice_document.html").render(
                    doc=doc, fragment=True, agency_name=settings.agency_name
                )
            )
    return out


def letter_html(env: Environment, settings: Settings, docs: Sequence[NoticeDocument]) -> str:
    """One or many notices as one self-contained document, each sheet in its language."""
    parts = [part for doc in docs for part in _parts(env, settings, doc)]
    return env.get_template("print_batch.html").render(parts=parts, print_css=documents.bill_css())


# --- Email ------------------------------------------------------------------------------------


def send_notice(mailer: Mailer, factory: sessionmaker[Session], clock: Clock, notice_id: int) -> str | None:
    """Email the customer's notice in their language (the outbox's sender for
    ``email.notice``). None when there is no one to send it to."""
    with transaction(factory) as session:
        try:
            doc = document(session, notice_id)
        except NotFound:
            return None
        account = session.get(Account, doc.notice.account_id)
        assert account is not None
        to = notices.email_of(session, account)
        if not to or doc.notice.addressee != "customer":
            return None
        message = mailer.build(
            to, doc.notice.language, "notice", doc=doc, url=mailer.link(f"/my/accounts/{doc.account_number}")
        )
    mailer.send(message)
    return to


# --- The staff's notices page -------------------------------------------------------------------


@dataclass(frozen=True)
class KindOfDay:
    kind: str
    label: str
    count: int
    batch: NoticeBatch | None


@dataclass(frozen=True)
class NoticesDay:
    on: date
    kinds: list[KindOfDay]
    notices: list[Notice]
    numbers: dict[int, str]
    can_print: bool


def day(session: Session, user: User, on: date) -> NoticesDay:
    """The notices issued on ``on``, by kind, with their batches."""
    permissions.require(user, Action.STAFF_VIEW)
    counts = notices.day_counts(session, on)
    batches = {b.kind: b for b in session.scalars(select(NoticeBatch).where(NoticeBatch.issued_on == on))}
    rows = list(
        session.scalars(
            select(Notice).where(Notice.issued_on == on).order_by(Notice.kind, *notices.mail_order()).limit(2000)
        )
    )
    ids = {n.account_id for n in rows}
    numbers = dict(session.execute(select(Account.id, Account.number).where(Account.id.in_(ids or {-1}))).all())
    kinds = [KindOfDay(k, label, counts.get(k, 0), batches.get(k)) for k, label in notices.KINDS.items()]
    return NoticesDay(on, kinds, rows, numbers, permissions.can(user.role, Action.NOTICES_PRINT))


def batch_dir(settings: Settings) -> Path:
    path = Path(settings.files_dir) / "notices"
    path.mkdir(parents=True, exist_ok=True)
    return path


#: Notices printed per Chromium page load; the slices' PDFs are joined in order (pikepdf).
PRINT_SLICE = 200


def prepare_batch(
    session: Session, user: User, env: Environment, settings: Settings, on: date, kind: str, now: datetime
) -> tuple[NoticeBatch, list[str]]:
    """Gather the day's notices of ``kind`` into their batch; returns it and its letters'
    HTML in mail order, a document per ``PRINT_SLICE`` notices (the caller prints each and
    ``store_batch``es the PDFs, which are joined in that order)."""
    permissions.require(user, Action.NOTICES_PRINT)
    batch = notices.prepare_batch(session, on, kind, user, now)
    docs = documents_for(session, notices.batch_notices(session, batch.id))
    slices = [letter_html(env, settings, docs[i : i + PRINT_SLICE]) for i in range(0, len(docs), PRINT_SLICE)]
    return batch, slices


def store_batch(session: Session, user: User, settings: Settings, batch_id: int, pdfs: Sequence[bytes]) -> NoticeBatch:
    """Join the printed slices into the batch's PDF (kept under ``files_dir/notices``)."""
    permissions.require(user, Action.NOTICES_PRINT)
    batch = session.get(NoticeBatch, batch_id)
    if batch is None:
        raise NotFound(f"notice batch {batch_id}")
    target = batch_dir(settings) / f"notices-{batch.issued_on.isoformat()}-{batch.kind}.pdf"
    parts: list[str] = []
    for i, pdf in enumerate(pdfs):
        path = target.with_suffix(f".part{i:04d}")
        path.write_bytes(pdf)
        parts.append(str(path))
    try:
        join_pdfs(parts, target)
    finally:
        for name in parts:
            os.unlink(name)
    batch.pdf_path = str(target)
    audit.record(
        session,
        "notice_batch.printed",
        actor=user,
        entity_type="notice_batch",
        entity_id=batch.id,
        after={"pdf": target.name, "notices_total": batch.notices_total},
    )
    return batch


def batch_file(session: Session, user: User, batch_id: int) -> tuple[NoticeBatch, Path]:
    """The batch's printed PDF (``NotFound`` until it is printed)."""
    permissions.require(user, Action.NOTICES_PRINT)
    batch = session.get(NoticeBatch, batch_id)
    if batch is None or not batch.pdf_path or not Path(batch.pdf_path).exists():
        raise NotFound(f"printed notice batch {batch_id}")
    return batch, Path(batch.pdf_path)


def reprint_html(session: Session, user: User, env: Environment, settings: Settings, notice_id: int) -> str:
    """One notice's letter again, exactly as issued (audited: who reprinted it)."""
    permissions.require(user, Action.NOTICES_PRINT)
    doc = document(session, notice_id)
    audit.record(session, "notice.reprinted", actor=user, entity_type="notice", entity_id=notice_id)
    return letter_html(env, settings, [doc])
