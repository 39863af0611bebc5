"""Emails to one person, and the email outbox that sends every email.

Each sender writes one email with the mailer (``emails.Mailer``: one template under
``templates/email/`` and the one catalog, in the reader's language) and sends it. It
answers the address it sent to, or None when there was nothing to send (the customer
turned such emails off, the receipt went out before). Senders run from the outbox
(``send_outbox``), never directly from a page: ``enqueue`` writes the row first, so a mail
server that is away makes the email wait and retry instead of failing the page.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from ..adapters import smtp
from ..adapters.clock import Clock
from ..adapters.database import transaction
from ..adapters.queue import JobQueue
from ..billing_core import arrangements, autopay, outbox, permissions, users
from ..billing_core.models import (
    Account,
    ArrangementRequest,
    AutopayEnrollment,
    Customer,
    Payment,
    ServiceRequest,
    User,
)
from ..billing_core.status import ArrangementStatus, PaymentStatus
from ..emails import Mailer
from . import account_opening, cases, counter, delivery, notices, returns

log = logging.getLogger(__name__)
Sessions = sessionmaker[Session]

# --- Emails to one person (sign-up, password reset, receipts) ---------------------------

ACCOUNT_EMAILS = ("confirm_email", "reset_password", "already_registered", "invite")


def send_account_email(mailer: Mailer, factory: Sessions, clock: Clock, user_id: int, kind: str) -> str | None:
    """Write and send one sign-in email. A link's token is made here, in the job, so it
    exists only in the email; the database keeps its hash. Sent again, it makes a new
    link and the old one stops working."""
    if kind not in ACCOUNT_EMAILS:
        raise ValueError(f"unknown account email {kind!r}")
    with transaction(factory) as session:
        user = session.get(User, user_id)
        if user is None or not user.active:
            return None
        to, language = user.email, user.language
        if kind == "confirm_email":
            token = users.issue_token(session, user, users.VERIFY_EMAIL, clock())
            context = {"url": mailer.link(f"/confirm-email?token={token}")}
        elif kind == "reset_password":
            token = users.issue_token(session, user, users.RESET_PASSWORD, clock())
            context = {"url": mailer.link(f"/reset-password?token={token}")}
        elif kind == "invite":  # issue 16, staff administration: the link sets the first password
            if user.password_hash is not None:
                return None  # accepted since: nothing to send
            token = users.issue_token(session, user, users.INVITE, clock())
            context = {
                "url": mailer.link(f"/set-password?token={token}"),
                "role": permissions.ROLE_NAMES[user.role_enum],
                "hours": str(users.INVITE_HOURS),
            }
        else:
            context = {"sign_in_url": mailer.link("/sign-in"), "reset_url": mailer.link("/forgot-password")}
    mailer.send(mailer.build(to, language, kind, **context))
    return to


def send_receipt(mailer: Mailer, factory: Sessions, clock: Clock, payment_id: int) -> str | None:
    """Email the receipt of a posted payment, once, to whoever paid (else the customer)."""
    with transaction(factory) as session:
        payment = session.get(Payment, payment_id)
        if payment is None or payment.status != PaymentStatus.POSTED or payment.receipt_sent_at is not None:
            return None
        account = session.get(Account, payment.account_id)
        assert account is not None  # the payment's account (a foreign key)
        customer = session.get(Customer, account.customer_id)
        assert customer is not None  # the account's customer (a foreign key)
        payer = session.get(User, payment.user_id) if payment.user_id else None
        if payer is not None and not payer.notify_receipts:
            return None  # they chose no receipts (the payment page still shows it)
        to = payer.email if payer else customer.email
        if not to:
            return None
        language = payer.language if payer else customer.preferred_language
        message = mailer.build(
            to,
            language,
            "receipt",
            payment=payment,
            account=account,
            url=mailer.link(f"/my/accounts/{account.number}/payments/{payment.id}"),
        )
    mailer.send(message)
    with transaction(factory) as session:
        session.execute(
            update(Payment)
            .where(Payment.id == payment_id, Payment.receipt_sent_at.is_(None))
            .values(receipt_sent_at=clock())
        )
    return to


# --- Autopay -------------------------------------------------------------------------------


def send_autopay_failed(mailer: Mailer, factory: Sessions, clock: Clock, payment_id: int) -> str | None:
    """Tell the customer, once, that autopay could not take a bill and it is still open."""
    with transaction(factory) as session:
        payment = session.get(Payment, payment_id)
        if (
            payment is None
            or payment.channel != "autopay"
            or payment.status not in (PaymentStatus.FAILED, PaymentStatus.RETURNED)
            or payment.failure_notice_sent_at is not None
        ):
            return None
        account = session.get(Account, payment.account_id)
        assert account is not None  # the payment's account (a foreign key)
        user = session.get(User, payment.user_id) if payment.user_id else None
        to = user.email if user else account.customer.email
        if not to:
            return None
        language = user.language if user else account.customer.preferred_language
        bill = autopay.latest_bill(session, account.id)
        message = mailer.build(
            to,
            language,
            "autopay_failed",
            payment=payment,
            account=account,
            due_date=bill.due_date if bill else None,
            url=mailer.link(f"/my/accounts/{account.number}/pay"),
        )
    mailer.send(message)
    with transaction(factory) as session:
        session.execute(
            update(Payment)
            .where(Payment.id == payment_id, Payment.failure_notice_sent_at.is_(None))
            .values(failure_notice_sent_at=clock())
        )
    return to


def send_autopay_enrolled(mailer: Mailer, factory: Sessions, clock: Clock, enrollment_id: int) -> str | None:
    """Email the customer a copy of the authorization they agreed to, in the language they
    agreed to it in."""
    with factory() as session:
        enrollment = session.get(AutopayEnrollment, enrollment_id)
        if enrollment is None or enrollment.user_id is None:
            return None
        user = session.get(User, enrollment.user_id)
        account = session.get(Account, enrollment.account_id)
        assert user is not None and account is not None  # the enrollment's (foreign keys)
        to = user.email
        message = mailer.build(
            to,
            enrollment.authorization_language,
            "autopay_enrolled",
            enrollment=enrollment,
            account=account,
            url=mailer.link(f"/my/accounts/{account.number}/autopay"),
        )
    mailer.send(message)
    return to


# --- Answers to what customers asked for online -------------------------------------------


def send_request_update(mailer: Mailer, factory: Sessions, clock: Clock, request_id: int) -> str | None:
    """Tell the customer what staff did with their start, stop or transfer request."""
    with factory() as session:
        item = session.get(ServiceRequest, request_id)
        user = session.get(User, item.user_id) if item else None
        if item is None or user is None or not user.notify_updates:
            return None
        to = item.contact_email
        message = mailer.build(
            to, user.language, "request_update", item=item, url=mailer.link(f"/my/requests/{item.id}")
        )
    mailer.send(message)
    return to


def send_arrangement_decision(mailer: Mailer, factory: Sessions, clock: Clock, request_id: int) -> str | None:
    """Tell the customer whether their payment plan was approved, with its payments."""
    with factory() as session:
        item = session.get(ArrangementRequest, request_id)
        if item is None or item.status not in (ArrangementStatus.APPROVED, ArrangementStatus.DECLINED):
            return None
        user = session.get(User, item.user_id)
        assert user is not None  # who asked (a foreign key)
        if not user.notify_updates:
            return None
        account = session.get(Account, item.account_id)
        assert account is not None  # the plan's account (a foreign key)
        to = user.email
        message = mailer.build(
            to,
            user.language,
            "arrangement_decision",
            item=item,
            account=account,
            plan=arrangements.schedule(item.total_cents, item.down_payment_cents, item.installments, item.first_due_on),
            url=mailer.link(f"/my/accounts/{account.number}/arrangement"),
        )
    mailer.send(message)
    return to


def send_money_notice(mailer: Mailer, factory: Sessions, clock: Clock, what: str, id: int) -> str | None:  # noqa: A002
    """Deposits and refunds: a deposit billed or credited back, a refund paid. To the
    customer's own address, in their language; None (skipped) when they have none."""
    from ..billing_core.models import Customer, Deposit, Refund

    with factory() as session:
        thing: Refund | Deposit | None = session.get(Refund, id) if what == "refund_paid" else session.get(Deposit, id)
        if thing is None:
            return None
        account = session.get(Account, thing.account_id)
        assert account is not None
        customer = session.get(Customer, account.customer_id)
        if customer is None or not customer.email:
            return None
        to = customer.email
        message = mailer.build(to, customer.preferred_language, "money_notice", what=what, thing=thing, account=account)
    mailer.send(message)
    return to


#: The sender of each kind of email the outbox keeps (bill-ready emails are sent in
#: batches by ``delivery.send_bill_ready``).
SENDERS: dict[str, Callable[..., str | None]] = {
    "email.request_update": send_request_update,
    "email.arrangement_decision": send_arrangement_decision,
    "email.account": send_account_email,
    "email.receipt": send_receipt,
    "email.autopay_failed": send_autopay_failed,
    "email.autopay_enrolled": send_autopay_enrolled,
    "email.money_notice": send_money_notice,
    "email.payment_returned": returns.send_return_notice,  # returned payments (services/returns.py)
    "email.counter_receipt": counter.send_counter_receipt,
    "email.notice": notices.send_notice,  # issue 15: collection notices (services/notices.py)
    "email.welcome": account_opening.send_welcome,  # issue 16: a new account's welcome letter
    "email.case_letter": cases.send_case_letter,  # issue 16: a case's letter (services/cases.py)
}
KINDS = frozenset(SENDERS) | {delivery.BILL_READY}


# --- The email outbox: queue, send, retry ----------------------------------------------------


def enqueue(factory: Sessions, queue: JobQueue, clock: Clock, kind: str, args: dict[str, object]) -> int:
    """Write one email to the outbox (committed when this returns) and, with workers, queue
    the job that sends it. Returns the outbox id. Raises when it could not be written.
    In-process, nothing is sent here: the caller does it after its answer (``send_outbox``)."""
    if kind not in KINDS:
        raise ValueError(f"unknown email job {kind!r}")
    with transaction(factory) as session:
        outbox_id = outbox.queue(session, kind, args, clock()).id
    if not queue.in_process:
        try:
            queue.defer("email.send", outbox_ids=[outbox_id])
        except Exception:
            # The email is in the outbox all the same: the workers' sweep sends it.
            log.exception("could not queue the job for email %s; the sweep will send it", outbox_id)
    return outbox_id


def send_outbox(
    mailer: Mailer,
    factory: Sessions,
    ids: list[int],
    clock: Clock,
    now: datetime | None = None,
    due_only: bool = True,
) -> outbox.Outcome:
    """Send the emails ``ids`` that may go now and record how each went. Returns an
    ``outbox.Outcome`` whose ``retry_at`` says when the ones that still wait are due.
    ``now``: the moment the outbox takes it to be (by default, ``clock``'s)."""
    at: Clock = (lambda: now) if now is not None else clock
    with transaction(factory) as session:
        token, claimed = outbox.claim(session, ids, at(), due_only)
    outcome = outbox.Outcome()
    bills = [c for c in claimed if c.kind == delivery.BILL_READY]
    delivery.send_bill_ready(mailer, factory, token, bills, outcome, clock, at)
    unreachable: str | None = None
    for item in (c for c in claimed if c.kind != delivery.BILL_READY):
        error, permanent, to = unreachable, False, None
        if error is None:
            try:
                to = SENDERS[item.kind](mailer, factory, clock, **item.args)
            except Exception as exc:  # noqa: BLE001 - every failure is recorded on the email
                error, permanent = smtp.describe(exc), smtp.permanent(exc)
                if smtp.unreachable(exc):
                    unreachable = error  # the rest of this pass waits too, without each timing out
                log.warning("email %s (%s): %s", item.id, item.kind, error)
        with transaction(factory) as session:
            if error is not None:
                outcome.add(outbox.mark_failed(session, item, token, at(), error, permanent))
            elif to:
                outbox.mark_sent(session, item, token, at(), to)
                outcome.add("sent")
            else:
                outbox.mark_skipped(session, item, token, at())
                outcome.add("skipped")
    with factory() as session:
        outcome.retry_at = outbox.next_attempt(session, ids)
    return outcome


def retry_due(
    mailer: Mailer,
    factory: Sessions,
    clock: Clock,
    now: datetime | None = None,
    due_only: bool = True,
    grace: timedelta | None = None,
) -> outbox.Outcome:
    """Send every email that is due (with ``due_only=False``: every one waiting, now),
    a batch at a time. Returns the summed ``outbox.Outcome``."""
    total, after = outbox.Outcome(), 0
    while True:
        at = now or clock()
        with factory() as session:
            ids = outbox.due_ids(session, at - (grace or timedelta(0)), delivery.EMAIL_BATCH, due_only, after)
        if not ids:
            return total
        after = ids[-1]
        total += send_outbox(mailer, factory, ids, clock, at, due_only)


def resend_failed(factory: Sessions, queue: JobQueue, clock: Clock, print_file_id: int) -> int:
    """Staff asked to send a run's failed emails once more: queue them with fresh attempts."""
    with transaction(factory) as session:
        ids = outbox.failed_ids(session, print_file_id)
        outbox.send_again(session, ids, clock())
    if not ids:
        return 0
    queue.defer_many("email.send", [{"outbox_ids": batch} for batch in delivery.batches(ids)])
    return len(ids)
