"""The job definitions: the top layer of the batch work, as the views are of the pages.
Batch work runs as procrastinate jobs kept in PostgreSQL and executed by ``portal
worker`` processes (the Procfile's ``worker``); start more of them, on more machines,
to go faster. On SQLite there is no queue: the queue adapter (``adapters/queue.py``)
runs the same work in-process, with the functions registered here (``job_queue``).

Each task reads the settings, builds its collaborators (sessions, mailer, printer,
gateway) and calls one service function: bill-run chunks (``services/bill_run_chunks``),
print slices and bill-ready emails (``services/delivery``), the other emails and the
outbox (``services/notifications``), autopay drafts (``services/autopay``). Nothing below
imports this module. A bill run step is split into chunks of accounts, one job each.
Every job is safe to run again.

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
from datetime import date, datetime, timedelta
from typing import Any

from procrastinate import App, PsycopgConnector
from procrastinate.retry import BaseRetryStrategy, RetryDecision

from .adapters.aio import run_to_end
from .adapters.clock import system_clock
from .adapters.database import sessions_for
from .adapters.gateway import from_settings as gateway_from_settings
from .adapters.printer import AsyncPrinter
from .adapters.queue import InProcessQueue, JobQueue, Progress, WorkerQueue, conninfo
from .emails import Mailer
from .services import autopay, bill_run_chunks, collections, delivery, notifications
from .settings import Settings

log = logging.getLogger(__name__)

# Tasks are declared on an app without a connection; the worker and the
# deferring code give it one from DATABASE_URL.
app = App(connector=PsycopgConnector(), import_paths=["portal.jobs"])


def _in_process(settings: Settings) -> bool:
    return settings.jobs_in_process or not settings.is_postgres


def job_queue(settings: Settings, factory=None, gateway=None, in_process: bool | None = None) -> JobQueue:  # type: ignore[no-untyped-def]
    """Where deferred jobs go: procrastinate's queue for the workers, or (SQLite,
    ``PORTAL_JOBS_IN_PROCESS``) here and now, each job name run by the same service
    function its task calls, with ``factory``'s sessions."""
    if in_process is None:
        in_process = _in_process(settings)
    if not in_process:
        return WorkerQueue(app, settings.database_url)
    factory = factory or sessions_for(settings.database_url)
    mailer = Mailer(settings)

    def print_parts(jobs: list[dict[str, Any]], progress: Progress | None) -> None:
        run_to_end(lambda: _render_here(settings, factory, [(j["print_file_id"], j["part"]) for j in jobs], progress))

    return (
        InProcessQueue()
        .register("bill_run.calculate_chunk", lambda **a: bill_run_chunks.calculate_chunk(factory, system_clock, **a))
        .register("bill_run.post_chunk", lambda **a: bill_run_chunks.post_chunk(factory, system_clock, **a))
        .register("delivery.print_part", lambda **a: print_parts([a], None), print_parts)
        .register("email.send", lambda outbox_ids: notifications.send_outbox(mailer, factory, outbox_ids, system_clock))
        .register(
            "collections.run_chunk",
            lambda **a: collections.run_chunk_job(factory, system_clock, **a),
        )
        .register(
            "autopay.draft_bills",
            lambda bill_ids, as_of: autopay.draft_bills(
                settings, factory, gateway, bill_ids, date.fromisoformat(as_of)
            ),
        )
    )


async def _render_here(settings: Settings, factory, slices: list[tuple[int, int]], progress=None) -> None:  # type: ignore[no-untyped-def]
    printer = AsyncPrinter(settings.chromium)
    try:
        await delivery.render_parts(settings, factory, printer, slices, progress)
    finally:
        await printer.close()


# Jobs carry ids only; a worker reaches the database named by its own DATABASE_URL.


@app.task(name="bill_run.calculate_chunk", queue="billing", retry=3)
def calculate_chunk(run_id: int, account_ids: list[int]) -> int:
    return bill_run_chunks.calculate_chunk(
        sessions_for(Settings.from_env().database_url), system_clock, run_id, account_ids
    )


@app.task(name="bill_run.post_chunk", queue="billing", retry=3)
def post_chunk(run_id: int, account_ids: list[int], actor_id: int) -> int:
    return bill_run_chunks.post_chunk(
        sessions_for(Settings.from_env().database_url), system_clock, run_id, account_ids, actor_id
    )


_printer: AsyncPrinter | None = None


@app.task(name="delivery.print_part", queue="delivery", retry=3)
async def print_part(print_file_id: int, part: int) -> bool:
    # An async task: the worker's one Chromium serves every slice it renders.
    global _printer
    settings = Settings.from_env()
    if _printer is None:
        _printer = AsyncPrinter(settings.chromium)
    return await delivery.render_part(settings, sessions_for(settings.database_url), _printer, print_file_id, part)


@app.task(name="delivery.email_bills", queue="delivery", retry=3)
def email_bills(print_file_id: int, bill_ids: list[int]) -> int:
    """Jobs queued before the email outbox: their emails now go through it."""
    settings = Settings.from_env()
    factory = sessions_for(settings.database_url)
    return delivery.send_emails(Mailer(settings), factory, system_clock, print_file_id, bill_ids)


def dispatch_delivery(
    settings: Settings,
    print_file_id: int,
    in_process: bool | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Split a print file into one job per slice, and its emails into batches. Returns the job count."""
    factory = sessions_for(settings.database_url)
    return delivery.dispatch(factory, job_queue(settings, factory, in_process=in_process), print_file_id, progress)


def dispatch(
    settings: Settings,
    run_id: int,
    step: str,
    actor_id: int | None = None,
    chunk: int = bill_run_chunks.CHUNK_ACCOUNTS,
    in_process: bool | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Split a run's step into chunks: defer them as jobs (PostgreSQL) or run them here.
    Returns the number of chunks."""
    factory = sessions_for(settings.database_url)
    queue = job_queue(settings, factory, in_process=in_process)
    return bill_run_chunks.dispatch(factory, queue, run_id, step, actor_id, chunk, progress)


# --- Emails ------------------------------------------------------------------------------


def _mail_task(kind: str, **args: Any) -> bool:
    settings = Settings.from_env()
    sender = notifications.SENDERS[kind]
    return sender(Mailer(settings), sessions_for(settings.database_url), system_clock, **args) is not None


@app.task(name="email.account", queue="email", retry=3)
def account_email(user_id: int, kind: str) -> bool:
    return _mail_task("email.account", user_id=user_id, kind=kind)


@app.task(name="email.receipt", queue="email", retry=3)
def receipt_email(payment_id: int) -> bool:
    return _mail_task("email.receipt", payment_id=payment_id)


@app.task(name="email.autopay_failed", queue="email", retry=3)
def autopay_failed_email(payment_id: int) -> bool:
    return _mail_task("email.autopay_failed", payment_id=payment_id)


@app.task(name="email.autopay_enrolled", queue="email", retry=3)
def autopay_enrolled_email(enrollment_id: int) -> bool:
    return _mail_task("email.autopay_enrolled", enrollment_id=enrollment_id)


@app.task(name="email.request_update", queue="email", retry=3)
def request_update_email(request_id: int) -> bool:
    return _mail_task("email.request_update", request_id=request_id)


@app.task(name="email.arrangement_decision", queue="email", retry=3)
def arrangement_decision_email(request_id: int) -> bool:
    return _mail_task("email.arrangement_decision", request_id=request_id)


# --- Autopay -----------------------------------------------------------------------------


@app.periodic(cron="0 * * * *")
@app.task(name="autopay.daily", queue="autopay", queueing_lock="autopay.daily")
def autopay_daily(timestamp: int) -> int:
    """Every hour (drafting is idempotent, so a missed hour or a second worker is harmless):
    today's drafts, in the agency's calendar, split into chunks for the workers."""
    settings = Settings.from_env()
    as_of = datetime.fromtimestamp(timestamp, settings.tz).date()
    return dispatch_autopay(settings, as_of, gateway_from_settings(settings))


# --- Deposits (credited back after the policy's months paid on time) ----------------------


@app.periodic(cron="30 2 * * *")
@app.task(name="deposits.daily", queue="billing", queueing_lock="deposits.daily")
def deposits_daily(timestamp: int) -> int:
    """Every day: credit back the deposits that earned it. Idempotent (each deposit's state
    moves once, by a conditional update), so a second worker or a rerun credits nothing more."""
    from .billing_core import money_policy
    from .services import deposits as deposit_service

    settings = Settings.from_env()
    as_of = datetime.fromtimestamp(timestamp, settings.tz).date()
    policy = money_policy.load(settings.money_policy_file)
    return len(deposit_service.run(sessions_for(settings.database_url), policy, as_of, system_clock()))


@app.task(name="autopay.draft_bills", queue="autopay", retry=3)
def autopay_draft_bills(bill_ids: list[int], as_of: str) -> dict[str, int]:
    settings = Settings.from_env()
    return autopay.draft_bills(
        settings,
        sessions_for(settings.database_url),
        gateway_from_settings(settings),
        bill_ids,
        date.fromisoformat(as_of),
    )


def dispatch_autopay(settings: Settings, as_of, gateway, sessions=None, in_process: bool | None = None) -> int:  # type: ignore[no-untyped-def]
    """Find the bills autopay takes on ``as_of`` and draft them: in chunks as jobs
    (PostgreSQL) or here and now (SQLite). Returns the number of bills."""
    if gateway is None:
        log.warning("autopay: no payment processor is configured, so no drafts are made")
        return 0
    factory = sessions or sessions_for(settings.database_url)
    bill_ids = autopay.due(settings, factory, as_of)
    chunks = [bill_ids[i : i + autopay.CHUNK] for i in range(0, len(bill_ids), autopay.CHUNK)]
    queue = job_queue(settings, factory, gateway, in_process)
    queue.defer_many("autopay.draft_bills", [{"bill_ids": chunk, "as_of": as_of.isoformat()} for chunk in chunks])
    return len(bill_ids)


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


def enqueue(settings: Settings, name: str, sessions=None, **kwargs: Any) -> int:  # type: ignore[no-untyped-def]
    """Write one email to the outbox (committed when this returns) and, with workers, queue
    the job that sends it. Returns the outbox id. Raises when it could not be written."""
    factory = sessions or sessions_for(settings.database_url)
    return notifications.enqueue(factory, job_queue(settings, factory), system_clock, name, kwargs)


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
        factory = sessions or sessions_for(settings.database_url)
        notifications.send_outbox(Mailer(settings), factory, [outbox_id], system_clock)
    except Exception:
        log.exception("email %s: sending in-process failed; it is retried later", outbox_id)


def defer(settings: Settings, name: str, sessions=None, **kwargs: Any) -> bool:  # type: ignore[no-untyped-def]
    """Queue one email and, without workers, try to send it here and now with the caller's
    ``sessions`` (after the caller's transaction has committed): ``queue_email`` then
    ``send_queued``. True when it is queued: a page may then say it is on its way. A failed
    attempt never reaches the person who asked."""
    factory = sessions or sessions_for(settings.database_url)
    outbox_id = queue_email(settings, name, factory, **kwargs)
    send_queued(settings, factory, outbox_id)
    return outbox_id is not None


def retry_due(settings: Settings, factory=None, now: datetime | None = None, due_only: bool = True, grace=None):  # type: ignore[no-untyped-def]
    """Send every email that is due (with ``due_only=False``: every one waiting, now),
    a batch at a time. Returns the summed ``outbox.Outcome``."""
    factory = factory or sessions_for(settings.database_url)
    return notifications.retry_due(Mailer(settings), factory, system_clock, now, due_only, grace)


@app.task(name="email.send", queue="email", retry=EmailRetry())
def send_email_job(outbox_ids: list[int]) -> dict[str, int]:
    settings = Settings.from_env()
    outcome = notifications.send_outbox(Mailer(settings), sessions_for(settings.database_url), outbox_ids, system_clock)
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
    return notifications.resend_failed(factory, job_queue(settings, factory), system_clock, print_file_id)


def run_worker(settings: Settings, concurrency: int = 1, wait: bool = True) -> int:
    if not settings.is_postgres:
        print("DATABASE_URL is SQLite: jobs run inside the portal process, so no worker is needed.")
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    with app.replace_connector(PsycopgConnector(conninfo=conninfo(settings.database_url))) as worker_app:
        worker_app.run_worker(concurrency=concurrency, wait=wait, install_signal_handlers=wait)
    return 0


# --- The daily delinquency run (issue 15, run) ---------------------------------------------------

#: ``preview`` or ``post``: what the daily job does (default post: preview and post).
COLLECTIONS_MODE_ENV = "PORTAL_COLLECTIONS_DAILY"
#: The supervisor the daily job posts as (write-offs need a preparer); empty: the job itself.
COLLECTIONS_AS_ENV = "PORTAL_COLLECTIONS_POST_AS"


@app.task(name="collections.run_chunk", queue="billing", retry=3)
def collections_run_chunk(run_id: int, account_ids: list[int], post: bool, actor_id: int | None = None) -> int:
    return collections.run_chunk_job(
        sessions_for(Settings.from_env().database_url), system_clock, run_id, account_ids, post, actor_id
    )


def dispatch_collections(
    settings: Settings,
    on: date,
    post: bool,
    actor_id: int | None = None,
    in_process: bool | None = None,
    chunk: int = collections.CHUNK,
) -> int:
    """The day's delinquency run, one job per chunk of accounts (PostgreSQL workers) or here
    and now (SQLite). Every chunk is safe to run twice or on two workers. Returns the chunks."""
    factory = sessions_for(settings.database_url)
    queue = job_queue(settings, factory, in_process=in_process)
    return collections.dispatch(factory, queue, on, system_clock(), post=post, actor_id=actor_id, chunk=chunk)


@app.periodic(cron="15 6 * * *")
@app.task(name="collections.daily", queue="billing", queueing_lock="collections.daily")
def collections_daily(timestamp: int) -> int:
    """Every morning at 06:15: the day's delinquency run, previewed and posted (or only
    previewed with ``PORTAL_COLLECTIONS_DAILY=preview``, for a supervisor to post)."""
    import os

    from sqlalchemy import select

    from .billing_core.models import User

    settings = Settings.from_env()
    on = datetime.fromtimestamp(timestamp, settings.tz).date()
    post = os.environ.get(COLLECTIONS_MODE_ENV, "post").strip().lower() != "preview"
    actor_id = None
    email = os.environ.get(COLLECTIONS_AS_ENV, "").strip().lower()
    if email:
        with sessions_for(settings.database_url)() as session:
            actor_id = session.scalar(select(User.id).where(User.email == email, User.active.is_(True)))
    return dispatch_collections(settings, on, post, actor_id)


# --- Returned payments (issue 14): the customer's notice, written with the return ----------


def send_outbox_soon(settings: Settings, sessions, outbox_id: int | None) -> None:  # type: ignore[no-untyped-def]
    """An email a service already wrote to the outbox in its own transaction (a returned
    payment's notice): sent here and now without workers, else its job is queued (the
    sweep sends it should that fail)."""
    if outbox_id is None:
        return
    if _in_process(settings):
        send_queued(settings, sessions, outbox_id)
        return
    try:
        job_queue(settings, sessions).defer("email.send", outbox_ids=[outbox_id])
    except Exception:
        log.exception("could not queue the job for email %s; the sweep will send it", outbox_id)
