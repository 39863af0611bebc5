"""Emails when the mail server is away: each one is recorded in the outbox, retried with
backoff, shown as retrying or failed, and sent exactly once when the server is back."""

from __future__ import annotations

import socket
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from portal import jobs
from portal.adapters.clock import system_clock
from portal.billing_core import delivery, outbox, users
from portal.billing_core.models import BillDelivery, BillRun, Customer, EmailOutbox, PrintFile
from portal.settings import Settings

from ..smtp import smtp_server
from .test_delivery import posted_run


def closed_port() -> int:
    """A port nothing listens on: connecting to it is refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def settings_for(sessions: sessionmaker[Session], tmp_path: Path, port: int) -> Settings:
    """Jobs in this process on both databases (the workers' road is test_email_workers.py)."""
    url = sessions.kw["bind"].url.render_as_string(hide_password=False)
    return replace(
        Settings(),
        database_url=url,
        files_dir=str(tmp_path),
        smtp_host="127.0.0.1",
        smtp_port=port,
        jobs_in_process=True,
    )


def paperless_run(sessions: sessionmaker[Session], deliver: bool = True) -> int:
    """A posted run whose bills all go by email (so no print file needs rendering): the
    print file's id once delivery started, else the run's."""
    with sessions() as session, session.begin():
        accts, run, supervisor = posted_run(session)
        for n, account in enumerate(accts):
            account.paperless = True
            session.get(Customer, account.customer_id).email = f"c{n + 1}@example.net"
        session.flush()
        return delivery.start(session, run, supervisor, now=system_clock()).id if deliver else run.id


def rows(sessions: sessionmaker[Session]) -> list[EmailOutbox]:
    with sessions() as session:
        return list(session.scalars(select(EmailOutbox).order_by(EmailOutbox.id)))


def test_smtp_down_then_up_sends_every_bill_email_exactly_once(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    pf_id = paperless_run(sessions)
    down = settings_for(sessions, tmp_path, closed_port())
    # Delivering does not fail: every email is recorded as waiting for its next attempt.
    jobs.dispatch_delivery(down, pf_id, in_process=True)
    waiting = rows(sessions)
    assert len(waiting) == 5 and {r.status for r in waiting} == {"retrying"}
    assert all(r.attempts == 1 and "refused the connection" in r.last_error for r in waiting)
    assert all(timedelta(seconds=50) < r.next_attempt_at - system_clock() <= timedelta(seconds=60) for r in waiting)
    with sessions() as session:
        run = session.scalar(select(BillRun))
        progress = delivery.progress(session, run)
        assert progress.done and progress.emails["retrying"] == 5 and progress.emails_sent == 0
        assert all(d.sent_at is None for d in session.scalars(select(BillDelivery)))
    # Not due yet: a pass now sends nothing, and tries nothing.
    assert jobs.retry_due(down, sessions).retrying == 0
    with smtp_server() as (port, inbox):
        up = settings_for(sessions, tmp_path, port)
        later = system_clock() + timedelta(minutes=2)
        assert jobs.retry_due(up, sessions, now=later).sent == 5
        assert jobs.retry_due(up, sessions, now=later + timedelta(hours=5), due_only=False).sent == 0
        assert jobs.dispatch_delivery(up, pf_id, in_process=True) == 0  # nothing left to send
        assert sorted(m["To"] for m in inbox) == [f"c{n}@example.net" for n in range(1, 6)]
    assert {(r.status, r.attempts, r.recipient is not None) for r in rows(sessions)} == {("sent", 2, True)}
    with sessions() as session:
        assert all(d.sent_at is not None for d in session.scalars(select(BillDelivery)))
        assert delivery.progress(session, session.scalar(select(BillRun))).emails_sent == 5


def test_backoff_grows_then_the_email_fails_for_good(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    pf_id = paperless_run(sessions)
    down = settings_for(sessions, tmp_path, closed_port())
    at = system_clock()
    for attempt, delay in enumerate(outbox.RETRY_DELAYS, start=1):
        jobs.retry_due(down, sessions, now=at)
        (first, *_rest) = rows(sessions)
        assert (first.status, first.attempts) == ("retrying", attempt)
        assert first.next_attempt_at - at >= timedelta(seconds=delay - 5) or attempt == 1
        at = first.next_attempt_at + timedelta(seconds=1)
    jobs.retry_due(down, sessions, now=at)
    assert {(r.status, r.attempts, r.next_attempt_at) for r in rows(sessions)} == {
        ("failed", outbox.MAX_ATTEMPTS, None)
    }
    with sessions() as session:
        summary = outbox.for_print_file(session, pf_id)
        assert summary["failed"] == 5 and "refused the connection" in summary.last_error
    # Staff send them again; with the server back they go, once.
    with smtp_server() as (port, inbox):
        up = settings_for(sessions, tmp_path, port)
        assert jobs.resend_failed(up, sessions, pf_id) == 5
        assert len(inbox) == 5
        assert jobs.resend_failed(up, sessions, pf_id) == 0
    assert {r.status for r in rows(sessions)} == {"sent"}


def test_a_refused_address_fails_at_once_and_the_others_go(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    pf_id = paperless_run(sessions)
    with sessions() as session, session.begin():
        session.execute(
            EmailOutbox.__table__.update().where(EmailOutbox.recipient == "c3@example.net").values(recipient="x")
        )
        for d in session.scalars(select(BillDelivery).where(BillDelivery.email_to == "c3@example.net")):
            d.email_to = "refuse-me@example.net"
    with smtp_server(refuse={"refuse-me@example.net"}) as (port, inbox):
        jobs.dispatch_delivery(settings_for(sessions, tmp_path, port), pf_id, in_process=True)
        assert len(inbox) == 4
    statuses = sorted((r.status, r.attempts) for r in rows(sessions))
    assert statuses == [("failed", 1)] + [("sent", 1)] * 4
    (bad,) = [r for r in rows(sessions) if r.status == "failed"]
    assert "550" in bad.last_error


def test_two_senders_never_take_the_same_email(sessions: sessionmaker[Session]) -> None:
    with sessions() as session, session.begin():
        args = [{"user_id": n, "kind": "confirm_email"} for n in (1, 2)]
        ids = [outbox.queue(session, "email.account", a, system_clock()).id for a in args]
    with sessions() as session, session.begin():
        _token, first = outbox.claim(session, ids, system_clock())
    with sessions() as session, session.begin():
        _token, second = outbox.claim(session, ids, system_clock())
    assert [c.id for c in first] == ids and second == []
    # A sender that died: its claim goes stale and the email is taken again.
    with sessions() as session, session.begin():
        _token, again = outbox.claim(session, ids, system_clock() + outbox.STALE_CLAIM + timedelta(seconds=1))
    assert [c.id for c in again] == ids


def test_a_sign_up_email_with_smtp_down_is_queued_and_sent_later(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    with sessions() as session, session.begin():
        user = users.sign_up(session, "newcomer@example.net", "a long password 2026", "es", "Robin").user
        user_id = user.id
    down = settings_for(sessions, tmp_path, closed_port())
    assert jobs.defer(down, "email.account", sessions, user_id=user_id, kind="confirm_email") is True
    (row,) = rows(sessions)
    assert (row.kind, row.ref_type, row.ref_id, row.status, row.attempts) == (
        "email.account",
        "user",
        user_id,
        "retrying",
        1,
    )
    with smtp_server() as (port, inbox):
        up = settings_for(sessions, tmp_path, port)
        assert jobs.retry_due(up, sessions, due_only=False).sent == 1
        assert jobs.retry_due(up, sessions, due_only=False).sent == 0
        assert [m["To"] for m in inbox] == ["newcomer@example.net"]
    (row,) = rows(sessions)
    assert (row.status, row.recipient) == ("sent", "newcomer@example.net")


def test_an_email_with_nothing_to_send_is_skipped_not_sent(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    with smtp_server() as (port, inbox):
        settings = settings_for(sessions, tmp_path, port)
        assert jobs.defer(settings, "email.account", sessions, user_id=999999, kind="confirm_email") is True
        assert inbox == []
    assert [(r.status, r.recipient) for r in rows(sessions)] == [("skipped", None)]


def test_queueing_that_fails_is_reported(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    settings = settings_for(sessions, tmp_path, closed_port())
    assert jobs.defer(settings, "email.nonsense", sessions, user_id=1) is False


def test_a_print_file_from_before_the_outbox_still_sends(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    """Old jobs (``delivery.email_bills``) name bills; they send those bills' outbox emails."""
    pf_id = paperless_run(sessions)
    with sessions() as session:
        bill_ids = [d.bill_id for d in session.scalars(select(BillDelivery))]
        assert session.get(PrintFile, pf_id).emails_total == 5
    with smtp_server() as (port, inbox):
        settings = settings_for(sessions, tmp_path, port)
        from portal.adapters.clock import system_clock
        from portal.emails import Mailer
        from portal.services import delivery as portal_delivery

        mailer = Mailer(settings)
        assert portal_delivery.send_emails(mailer, sessions, system_clock, pf_id, bill_ids[:2]) == 2
        assert portal_delivery.send_emails(mailer, sessions, system_clock, pf_id, bill_ids) == 3
        assert len(inbox) == 5


def test_the_workers_retry_strategy_follows_the_outbox() -> None:
    at = system_clock() + timedelta(minutes=5)

    class Job:
        attempts = 0

    decision = jobs.EmailRetry().get_retry_decision(exception=jobs.EmailsPending(at), job=Job())
    assert decision is not None and decision.retry_at == at
    Job.attempts = 5
    assert jobs.EmailRetry().get_retry_decision(exception=RuntimeError("x"), job=Job()) is None
    assert jobs.EmailRetry().get_retry_decision(exception=jobs.EmailsPending(at), job=Job()).retry_at == at


def test_portal_emails_retry_sends_what_waits(
    sessions: sessionmaker[Session],
    tmp_path: Path,
    monkeypatch,
    capsys,  # type: ignore[no-untyped-def]
) -> None:
    from portal.cli import main

    pf_id = paperless_run(sessions)
    down = settings_for(sessions, tmp_path, closed_port())
    jobs.dispatch_delivery(down, pf_id, in_process=True)
    monkeypatch.setenv("DATABASE_URL", down.database_url)
    monkeypatch.setenv("SMTP_HOST", "127.0.0.1")
    assert main(["emails", "status"]) == 0
    assert "5 retrying" in capsys.readouterr().out
    with smtp_server() as (port, inbox):
        monkeypatch.setenv("SMTP_PORT", str(port))
        assert main(["emails", "retry"]) == 0  # not due yet
        assert inbox == [] and "Sent 0" in capsys.readouterr().out
        assert main(["emails", "retry", "--all"]) == 0
        assert len(inbox) == 5 and "Sent 5" in capsys.readouterr().out
        assert main(["emails", "retry", "--all"]) == 0
        assert len(inbox) == 5 and "5 sent" in capsys.readouterr().out


def test_portal_bill_run_deliver_with_smtp_down_says_what_happened(
    sessions: sessionmaker[Session],
    tmp_path: Path,
    monkeypatch,
    capsys,  # type: ignore[no-untyped-def]
) -> None:
    from portal.cli import main

    run_id = paperless_run(sessions, deliver=False)
    down = settings_for(sessions, tmp_path, closed_port())
    for name, value in (
        ("DATABASE_URL", down.database_url),
        ("SMTP_HOST", "127.0.0.1"),
        ("SMTP_PORT", str(down.smtp_port)),
    ):
        monkeypatch.setenv(name, value)
    assert main(["bill-run", "deliver", str(run_id), "--as", "sup@x.org", "--in-process"]) == 0
    out = capsys.readouterr().out
    assert "Emails: 0 of 5 sent, 0 queued, 5 retrying, 0 failed (last error: the mail server refused" in out


def test_migration_0014_queues_the_unsent_emails_of_earlier_deliveries(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    from alembic import command

    from portal.migrate import alembic_config

    pf_id = paperless_run(sessions)
    engine = sessions.kw["bind"]
    with sessions() as session, session.begin():
        first = session.scalar(select(BillDelivery).order_by(BillDelivery.bill_id))
        first.sent_at = system_clock()  # sent before the upgrade: not queued again
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    for target in ("0013", "0014"):
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            (command.downgrade if target == "0013" else command.upgrade)(cfg, target)
    queued = rows(sessions)
    assert len(queued) == 4 and {(r.kind, r.status, r.print_file_id) for r in queued} == {
        ("email.bill_ready", "queued", pf_id)
    }
    with smtp_server() as (port, inbox):
        assert jobs.retry_due(settings_for(sessions, tmp_path, port), sessions).sent == 4
        assert len(inbox) == 4
