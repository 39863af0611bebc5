"""The job queue. Batch work runs as procrastinate jobs kept in PostgreSQL and
executed by ``portal worker`` processes (the Procfile's ``worker``); start more
of them, on more machines, to go faster. On SQLite there is no queue: the same
job functions are called in-process by ``dispatch``.

A bill run step is split into chunks of accounts, one job each. Every job is
safe to run again: calculating replaces the chunk's drafts, posting skips
bills already posted. A job that dies half way is simply run again.

Every email is first a row of the email outbox (``billing_core/outbox.py``), written
before anyone is told it was sent. One task, ``email.send``, sends a list of them and
records each result; when some must wait (the mail server is down), it asks
procrastinate to run it again at their next attempt (``EmailRetry``). On SQLite (and
with ``PORTAL_JOBS_IN_PROCESS``) the first attempt is made here and now, and the portal
process retries what is due every ``EMAIL_PASS_SECONDS`` (``email_pass``); ``portal emails
retry`` does it by hand on either database. A periodic ``email.sweep`` on the workers
picks up any email whose job was lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from procrastinate import App, PsycopgConnector, SyncPsycopgConnector
from procrastinate.retry import BaseRetryStrategy, RetryDecision

from . import autopay, delivery, emails
from .billing_core import bill_runs, outbox, users
from .billing_core.models import BillRun, PrintFile, User, utcnow
from .db import make_engine, make_sessionmaker, transaction
from .documents import AsyncPrinter
from .gateway import from_settings as gateway_from_settings
from .settings import Settings

log = logging.getLogger(__name__)
CHUNK_ACCOUNTS = 500

# Tasks are declared on an app without a connection; the worker and the
# deferring code give it one from DATABASE_URL.
app = App(connector=PsycopgConnector(), import_paths=["portal.jobs"])


def conninfo(database_url: str) -> str:
    """procrastinate speaks libpq: drop SQLAlchemy's driver suffix."""
    return database_url.replace("postgresql+psycopg://", "postgresql://", 1)


_engines: dict[str, Any] = {}


def _sessions(database_url: str):  # type: ignore[no-untyped-def]
    engine = _engines.get(database_url)
    if engine is None:
        engine = _engines[database_url] = make_engine(database_url)
    return make_sessionmaker(engine)


# Jobs carry ids only; a worker reaches the database named by its own DATABASE_URL.


@app.task(name="bill_run.calculate_chunk", queue="billing", retry=3)
def calculate_chunk(run_id: int, account_ids: list[int]) -> int:
    return _calculate(Settings.from_env().database_url, run_id, account_ids)


@app.task(name="bill_run.post_chunk", queue="billing", retry=3)
def post_chunk(run_id: int, account_ids: list[int], actor_id: int) -> int:
    return _post(Settings.from_env().database_url, run_id, account_ids, actor_id)


def _calculate(database_url: str, run_id: int, account_ids: list[int]) -> int:
    with transaction(_sessions(database_url)) as session:
        run = session.get(BillRun, run_id)
        if run is None:
            return 0
        return bill_runs.calculate(session, run, account_ids, now=utcnow()).accounts


def _post(database_url: str, run_id: int, account_ids: list[int], actor_id: int) -> int:
    with transaction(_sessions(database_url)) as session:
        run = session.get(BillRun, run_id)
        actor = session.get(User, actor_id)
        if run is None or actor is None:
            return 0
        return bill_runs.post(session, run, actor, account_ids, now=utcnow()).accounts


_printer: AsyncPrinter | None = None


@app.task(name="delivery.print_part", queue="delivery", retry=3)
async def print_part(print_file_id: int, part: int) -> bool:
    # An async task: the worker's one Chromium serves every slice it renders.
    global _printer
    settings = Settings.from_env()
    if _printer is None:
        _printer = AsyncPrinter(settings.chromium)
    return await delivery.render_part(settings, _sessions(settings.database_url), _printer, print_file_id, part)


@app.task(name="delivery.email_bills", queue="delivery", retry=3)
def email_bills(print_file_id: int, bill_ids: list[int]) -> int:
    """Jobs queued before the email outbox: their emails now go through it."""
    settings = Settings.from_env()
    return delivery.send_emails(settings, _sessions(settings.database_url), print_file_id, bill_ids)


def dispatch_delivery(
    settings: Settings,
    print_file_id: int,
    in_process: bool | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Split a print file into one job per slice, and its emails into batches. Returns the job count."""
    factory = _sessions(settings.database_url)
    with factory() as session:
        pf = session.get(PrintFile, print_file_id)
        if pf is None:
            raise bill_runs.InvalidInput(f"no print file {print_file_id}", "print_file")
        parts = list(range(pf.parts_total))
        batches = delivery.email_batches(session, pf)
    if in_process is None:
        in_process = settings.jobs_in_process or not settings.is_postgres
    total = len(parts) + len(batches)
    if in_process:
        asyncio.run(
            delivery.render_parts(settings, factory, print_file_id, parts, progress and (lambda n: progress(n, total)))
        )
        for n, batch in enumerate(batches, start=len(parts) + 1):
            # A mail server that is down makes these wait and retry; it does not fail the delivery.
            send_outbox(settings, factory, batch)
            if progress:
                progress(n, total)
        return total
    connector = SyncPsycopgConnector(conninfo=conninfo(settings.database_url))
    with app.replace_connector(connector) as deferring, deferring.open():
        for part in parts:
            deferring.configure_task("delivery.print_part").defer(print_file_id=print_file_id, part=part)
        for batch in batches:
            deferring.configure_task("email.send").defer(outbox_ids=batch)
    return total


def dispatch(
    settings: Settings,
    run_id: int,
    step: str,
    actor_id: int | None = None,
    chunk: int = CHUNK_ACCOUNTS,
    in_process: bool | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Split a run's step into chunks: defer them as jobs (PostgreSQL) or run them here.
    Returns the number of chunks."""
    factory = _sessions(settings.database_url)
    with factory() as session:
        run = session.get(BillRun, run_id)
        if run is None:
            raise bill_runs.InvalidInput(f"no bill run {run_id}", "run")
        ids = bill_runs.cycle_accounts(session, run.cycle_id)
    parts = bill_runs.chunks(ids, chunk)
    if in_process is None:
        in_process = settings.jobs_in_process or not settings.is_postgres
    if in_process:
        done = 0
        for part in parts:
            if step == "calculate":
                _calculate(settings.database_url, run_id, part)
            else:
                assert actor_id is not None
                _post(settings.database_url, run_id, part, actor_id)
            done += len(part)
            if progress:
                progress(done, len(ids))
        return len(parts)
    connector = SyncPsycopgConnector(conninfo=conninfo(settings.database_url))
    with app.replace_connector(connector) as deferring, deferring.open():
        for part in parts:
            if step == "calculate":
                deferring.configure_task("bill_run.calculate_chunk").defer(run_id=run_id, account_ids=part)
            else:
                deferring.configure_task("bill_run.post_chunk").defer(
                    run_id=run_id, account_ids=part, actor_id=actor_id
                )
    return len(parts)


# --- Emails to one person (sign-up, password reset, receipts) ---------------------------


@app.task(name="email.account", queue="email", retry=3)
def account_email(user_id: int, kind: str) -> bool:
    settings = Settings.from_env()
    return send_account_email(settings, _sessions(settings.database_url), user_id, kind)


ACCOUNT_EMAILS = ("confirm_email", "reset_password", "already_registered")


def send_account_email(settings: Settings, factory, user_id: int, kind: str) -> bool:  # type: ignore[no-untyped-def]
    """Write and send one sign-in email. A link's token is made here, in the job, so it
    exists only in the email; the database keeps its hash. Sent again, it makes a new
    link and the old one stops working."""
    if kind not in ACCOUNT_EMAILS:
        raise ValueError(f"unknown account email {kind!r}")
    with transaction(factory) as session:
        user = session.get(User, user_id)
        if user is None or not user.active:
            return False
        to, language = user.email, user.language
        if kind == "confirm_email":
            token = users.issue_token(session, user, users.VERIFY_EMAIL, utcnow())
            context = {"url": emails.link(settings, f"/confirm-email?token={token}")}
        elif kind == "reset_password":
            token = users.issue_token(session, user, users.RESET_PASSWORD, utcnow())
            context = {"url": emails.link(settings, f"/reset-password?token={token}")}
        else:
            context = {
                "sign_in_url": emails.link(settings, "/sign-in"),
                "reset_url": emails.link(settings, "/forgot-password"),
            }
    emails.send(settings, emails.build(settings, to, language, kind, **context))
    return True


@app.task(name="email.receipt", queue="email", retry=3)
def receipt_email(payment_id: int) -> bool:
    settings = Settings.from_env()
    return send_receipt(settings, _sessions(settings.database_url), payment_id)


def send_receipt(settings: Settings, factory, payment_id: int) -> bool:  # type: ignore[no-untyped-def]
    """Email the receipt of a posted payment, once, to whoever paid (else the customer)."""
    from sqlalchemy import update

    from .billing_core.models import Account, Customer, Payment

    with transaction(factory) as session:
        payment = session.get(Payment, payment_id)
        if payment is None or payment.status != "posted" or payment.receipt_sent_at is not None:
            return False
        account = session.get(Account, payment.account_id)
        customer = session.get(Customer, account.customer_id)
        payer = session.get(User, payment.user_id) if payment.user_id else None
        if payer is not None and not payer.notify_receipts:
            return False  # they chose no receipts (the payment page still shows it)
        to = payer.email if payer else customer.email
        if not to:
            return False
        language = payer.language if payer else customer.preferred_language
        message = emails.build(
            settings,
            to,
            language,
            "receipt",
            payment=payment,
            account=account,
            url=emails.link(settings, f"/my/accounts/{account.number}/payments/{payment.id}"),
        )
    emails.send(settings, message)
    with transaction(factory) as session:
        session.execute(
            update(Payment)
            .where(Payment.id == payment_id, Payment.receipt_sent_at.is_(None))
            .values(receipt_sent_at=utcnow())
        )
    return True


# --- Autopay -----------------------------------------------------------------------------


@app.periodic(cron="0 * * * *")
@app.task(name="autopay.daily", queue="autopay", queueing_lock="autopay.daily")
def autopay_daily(timestamp: int) -> int:
    """Every hour (drafting is idempotent, so a missed hour or a second worker is harmless):
    today's drafts, in the agency's calendar, split into chunks for the workers."""
    from datetime import datetime

    settings = Settings.from_env()
    as_of = datetime.fromtimestamp(timestamp, settings.tz).date()
    return dispatch_autopay(settings, as_of, gateway_from_settings(settings))


@app.task(name="autopay.draft_bills", queue="autopay", retry=3)
def autopay_draft_bills(bill_ids: list[int], as_of: str) -> dict[str, int]:
    from datetime import date

    settings = Settings.from_env()
    return autopay.draft_bills(
        settings, _sessions(settings.database_url), gateway_from_settings(settings), bill_ids, date.fromisoformat(as_of)
    )


def dispatch_autopay(settings: Settings, as_of, gateway, sessions=None, in_process: bool | None = None) -> int:  # type: ignore[no-untyped-def]
    """Find the bills autopay takes on ``as_of`` and draft them: in chunks as jobs
    (PostgreSQL) or here and now (SQLite). Returns the number of bills."""
    if gateway is None:
        log.warning("autopay: no payment processor is configured, so no drafts are made")
        return 0
    factory = sessions or _sessions(settings.database_url)
    bill_ids = autopay.due(settings, factory, as_of)
    if in_process is None:
        in_process = settings.jobs_in_process or not settings.is_postgres
    chunks = [bill_ids[i : i + autopay.CHUNK] for i in range(0, len(bill_ids), autopay.CHUNK)]
    if in_process:
        for chunk in chunks:
            autopay.draft_bills(settings, factory, gateway, chunk, as_of)
        return len(bill_ids)
    connector = SyncPsycopgConnector(conninfo=conninfo(settings.database_url))
    with app.replace_connector(connector) as deferring, deferring.open():
        for chunk in chunks:
            deferring.configure_task("autopay.draft_bills").defer(bill_ids=chunk, as_of=as_of.isoformat())
    return len(bill_ids)


@app.task(name="email.autopay_failed", queue="email", retry=3)
def autopay_failed_email(payment_id: int) -> bool:
    settings = Settings.from_env()
    return autopay.notify_failure(settings, _sessions(settings.database_url), payment_id)


@app.task(name="email.autopay_enrolled", queue="email", retry=3)
def autopay_enrolled_email(enrollment_id: int) -> bool:
    settings = Settings.from_env()
    return autopay.send_enrolled(settings, _sessions(settings.database_url), enrollment_id)


# --- Answers to what customers asked for online -------------------------------------------


@app.task(name="email.request_update", queue="email", retry=3)
def request_update_email(request_id: int) -> bool:
    settings = Settings.from_env()
    return send_request_update(settings, _sessions(settings.database_url), request_id)


def send_request_update(settings: Settings, factory, request_id: int) -> bool:  # type: ignore[no-untyped-def]
    """Tell the customer what staff did with their start, stop or transfer request."""
    from .billing_core.models import ServiceRequest

    with factory() as session:
        item = session.get(ServiceRequest, request_id)
        user = session.get(User, item.user_id) if item else None
        if item is None or user is None or not user.notify_updates:
            return False
        message = emails.build(
            settings,
            item.contact_email,
            user.language,
            "request_update",
            item=item,
            url=emails.link(settings, f"/my/requests/{item.id}"),
        )
    emails.send(settings, message)
    return True


@app.task(name="email.arrangement_decision", queue="email", retry=3)
def arrangement_decision_email(request_id: int) -> bool:
    settings = Settings.from_env()
    return send_arrangement_decision(settings, _sessions(settings.database_url), request_id)


def send_arrangement_decision(settings: Settings, factory, request_id: int) -> bool:  # type: ignore[no-untyped-def]
    """Tell the customer whether their payment plan was approved, with its payments."""
    from .billing_core import arrangements
    from .billing_core.models import Account, ArrangementRequest

    with factory() as session:
        item = session.get(ArrangementRequest, request_id)
        if item is None or item.status not in ("approved", "declined"):
            return False
        user = session.get(User, item.user_id)
        if not user.notify_updates:
            return False
        account = session.get(Account, item.account_id)
        message = emails.build(
            settings,
            user.email,
            user.language,
            "arrangement_decision",
            item=item,
            account=account,
            plan=arrangements.schedule(item.total_cents, item.down_payment_cents, item.installments, item.first_due_on),
            url=emails.link(settings, f"/my/accounts/{account.number}/arrangement"),
        )
    emails.send(settings, message)
    return True


JOBS: dict[str, Callable[..., Any]] = {
    "email.request_update": send_request_update,
    "email.arrangement_decision": send_arrangement_decision,
    "email.account": send_account_email,
    "email.receipt": send_receipt,
    "email.autopay_failed": autopay.notify_failure,
    "email.autopay_enrolled": autopay.send_enrolled,
    # Bill-ready emails are sent in batches by delivery.send_bill_ready; listed so they queue.
    delivery.BILL_READY: lambda settings, factory, bill_id: False,
}


# --- The email outbox: queue, send, retry ----------------------------------------------------

#: How often the portal process retries due emails when there are no workers (SQLite).
EMAIL_PASS_SECONDS = 30
#: The workers' sweep takes emails left due this long (their job was lost).
SWEEP_GRACE = timedelta(minutes=5)


class EmailsPending(Exception):
    """Some emails of a job wait for a later attempt: run the job again then."""

    def __init__(self, retry_at: datetime) -> None:
        super().__init__(f"emails wait for a later attempt at {retry_at.isoformat()}")
        self.retry_at = retry_at


class EmailRetry(BaseRetryStrategy):
    """Run ``email.send`` again when its emails are next due (the outbox keeps the backoff,
    ``outbox.RETRY_DELAYS``); anything else that went wrong, a few times a minute apart."""

    def get_retry_decision(self, *, exception: BaseException, job) -> RetryDecision | None:  # type: ignore[no-untyped-def]
        if isinstance(exception, EmailsPending):
            return RetryDecision(retry_at=exception.retry_at)
        if job.attempts < 5:
            return RetryDecision(retry_in={"seconds": 60 * (job.attempts + 1)})
        return None


def _in_process(settings: Settings) -> bool:
    return settings.jobs_in_process or not settings.is_postgres


def enqueue(settings: Settings, name: str, sessions=None, **kwargs: Any) -> int:  # type: ignore[no-untyped-def]
    """Write one email to the outbox (committed when this returns) and, with workers, queue
    the job that sends it. Returns the outbox id. Raises when it could not be written."""
    if name not in JOBS:
        raise ValueError(f"unknown email job {name!r}")
    factory = sessions or _sessions(settings.database_url)
    with transaction(factory) as session:
        outbox_id = outbox.queue(session, name, kwargs, utcnow()).id
    if not _in_process(settings):
        try:
            connector = SyncPsycopgConnector(conninfo=conninfo(settings.database_url))
            with app.replace_connector(connector) as deferring, deferring.open():
                deferring.configure_task("email.send").defer(outbox_ids=[outbox_id])
        except Exception:
            # The email is in the outbox all the same: the workers' sweep sends it.
            log.exception("could not queue the job for email %s; the sweep will send it", outbox_id)
    return outbox_id


def queue_email(settings: Settings, name: str, sessions=None, **kwargs: Any) -> int | None:  # type: ignore[no-untyped-def]
    """``enqueue``, answering None instead of raising when the email could not be queued
    (a page then says so instead of "we sent you a message")."""
    try:
        return enqueue(settings, name, sessions, **kwargs)
    except Exception:
        log.exception("could not queue email %s", name)
        return None


def send_queued(settings: Settings, sessions, outbox_id: int | None) -> None:  # type: ignore[no-untyped-def]
    """Without workers, the first attempt at a queued email, here and now (a page may run it
    after its answer has gone out, as a background task). With workers, nothing: the job
    is queued. A failed attempt is recorded on the email and retried later."""
    if outbox_id is None or not _in_process(settings):
        return
    try:
        send_outbox(settings, sessions or _sessions(settings.database_url), [outbox_id])
    except Exception:
        log.exception("email %s: sending in-process failed; it is retried later", outbox_id)


def defer(settings: Settings, name: str, sessions=None, **kwargs: Any) -> bool:  # type: ignore[no-untyped-def]
    """Queue one email and, without workers, try to send it here and now with the caller's
    ``sessions`` (after the caller's transaction has committed): ``queue_email`` then
    ``send_queued``. True when it is queued: a page may then say it is on its way. A failed
    attempt never reaches the person who asked."""
    factory = sessions or _sessions(settings.database_url)
    outbox_id = queue_email(settings, name, factory, **kwargs)
    send_queued(settings, factory, outbox_id)
    return outbox_id is not None


def send_outbox(settings: Settings, factory, ids: list[int], now: datetime | None = None, due_only: bool = True):  # type: ignore[no-untyped-def]
    """Send the emails ``ids`` that may go now and record how each went. Returns an
    ``outbox.Outcome`` whose ``retry_at`` says when the ones that still wait are due."""
    clock = (lambda: now) if now is not None else utcnow
    with transaction(factory) as session:
        token, claimed = outbox.claim(session, ids, clock(), due_only)
    outcome = outbox.Outcome()
    bills = [c for c in claimed if c.kind == delivery.BILL_READY]
    delivery.send_bill_ready(settings, factory, token, bills, outcome, clock)
    unreachable: str | None = None
    for item in (c for c in claimed if c.kind != delivery.BILL_READY):
        error, permanent, done, to = unreachable, False, False, []
        if error is None:
            try:
                with emails.recording() as to:
                    done = JOBS[item.kind](settings, factory, **item.args)
            except Exception as exc:  # noqa: BLE001 - every failure is recorded on the email
                error, permanent = emails.describe(exc), emails.permanent(exc)
                if emails.unreachable(exc):
                    unreachable = error  # the rest of this pass waits too, without each timing out
                log.warning("email %s (%s): %s", item.id, item.kind, error)
        with transaction(factory) as session:
            if error is not None:
                outcome.add(outbox.mark_failed(session, item, token, clock(), error, permanent))
            elif done:
                outbox.mark_sent(session, item, token, clock(), ", ".join(to) or None)
                outcome.add("sent")
            else:
                outbox.mark_skipped(session, item, token, clock())
                outcome.add("skipped")
    with factory() as session:
        outcome.retry_at = outbox.next_attempt(session, ids)
    return outcome


def retry_due(settings: Settings, factory=None, now: datetime | None = None, due_only: bool = True, grace=None):  # type: ignore[no-untyped-def]
    """Send every email that is due (with ``due_only=False``: every one waiting, now),
    a batch at a time. Returns the summed ``outbox.Outcome``."""
    factory = factory or _sessions(settings.database_url)
    total, after = outbox.Outcome(), 0
    while True:
        at = now or utcnow()
        with factory() as session:
            ids = outbox.due_ids(session, at - (grace or timedelta(0)), delivery.EMAIL_BATCH, due_only, after)
        if not ids:
            return total
        after = ids[-1]
        total += send_outbox(settings, factory, ids, at, due_only)


@app.task(name="email.send", queue="email", retry=EmailRetry())
def send_email_job(outbox_ids: list[int]) -> dict[str, int]:
    settings = Settings.from_env()
    outcome = send_outbox(settings, _sessions(settings.database_url), outbox_ids)
    if outcome.retry_at is not None:
        raise EmailsPending(outcome.retry_at)
    return {"sent": outcome.sent, "skipped": outcome.skipped, "failed": outcome.failed}


@app.periodic(cron="*/5 * * * *")
@app.task(name="email.sweep", queue="email", queueing_lock="email.sweep")
def email_sweep(timestamp: int) -> int:
    """Emails due for a while with no job to send them (a job lost, a deferral that failed)."""
    settings = Settings.from_env()
    return retry_due(settings, grace=SWEEP_GRACE).sent


async def email_pass(settings: Settings, factory, every: float = EMAIL_PASS_SECONDS) -> None:  # type: ignore[no-untyped-def]
    """The portal process's own retries when no workers run (SQLite): every ``every``
    seconds, send what is due. Runs until cancelled."""
    while True:
        await asyncio.sleep(every)
        try:
            await asyncio.to_thread(retry_due, settings, factory)
        except Exception:
            log.exception("the periodic email pass failed; it runs again in %s s", every)


def start_email_pass(settings: Settings, factory) -> asyncio.Task | None:  # type: ignore[no-untyped-def]
    """Start ``email_pass`` in the running event loop when there are no workers to retry."""
    if not _in_process(settings):
        return None
    return asyncio.get_running_loop().create_task(email_pass(settings, factory))


def resend_failed(settings: Settings, factory, print_file_id: int) -> int:  # type: ignore[no-untyped-def]
    """Staff asked to send a run's failed emails once more: queue them with fresh attempts."""
    with transaction(factory) as session:
        ids = outbox.failed_ids(session, print_file_id)
        outbox.send_again(session, ids, utcnow())
    if not ids:
        return 0
    batches = [ids[i : i + delivery.EMAIL_BATCH] for i in range(0, len(ids), delivery.EMAIL_BATCH)]
    if _in_process(settings):
        for batch in batches:
            send_outbox(settings, factory, batch)
        return len(ids)
    connector = SyncPsycopgConnector(conninfo=conninfo(settings.database_url))
    with app.replace_connector(connector) as deferring, deferring.open():
        for batch in batches:
            deferring.configure_task("email.send").defer(outbox_ids=batch)
    return len(ids)


def run_worker(settings: Settings, concurrency: int = 1, wait: bool = True) -> int:
    if not settings.is_postgres:
        print("DATABASE_URL is SQLite: jobs run inside the portal process, so no worker is needed.")
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    with app.replace_connector(PsycopgConnector(conninfo=conninfo(settings.database_url))) as worker_app:
        worker_app.run_worker(concurrency=concurrency, wait=wait, install_signal_handlers=wait)
    return 0
