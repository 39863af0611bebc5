"""Emails on real procrastinate workers (PostgreSQL): with the mail server down the job
records each email as retrying and procrastinate schedules the job again for the emails'
next attempt; when it runs with the server back, each email is sent exactly once."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import sessionmaker

from portal.adapters.database import make_engine
from portal.billing_core.models import EmailOutbox
from portal.jobs import dispatch_delivery
from portal.settings import Settings
from tests.conftest import fresh_database

from ..smtp import smtp_server
from .test_bill_run_workers import wait_for
from .test_email_outbox import closed_port, paperless_run


@pytest.fixture
def pg(templates: dict[str, str], tmp_path: Path) -> Iterator[tuple[str, Engine]]:
    url, drop = fresh_database("postgresql", templates, tmp_path)
    engine = make_engine(url)
    yield url, engine
    engine.dispose()
    drop()  # type: ignore[operator]


def start_worker(url: str, smtp_port: int) -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": url, "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(smtp_port)}
    return subprocess.Popen(
        [sys.executable, "-m", "portal.cli", "worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def stop(worker: subprocess.Popen) -> None:
    worker.terminate()
    worker.wait(timeout=30)


def rows(engine: Engine, sql: str) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql))]


def test_the_queue_retries_emails_at_their_next_attempt_and_sends_each_once(pg: tuple[str, Engine]) -> None:
    url, engine = pg
    pf_id = paperless_run(sessionmaker(engine, expire_on_commit=False))
    settings = Settings(database_url=url, smtp_host="127.0.0.1", smtp_port=closed_port())
    assert dispatch_delivery(settings, pf_id) == 1  # no print file to make; one batch of five emails
    worker = start_worker(url, closed_port())
    try:
        wait_for(lambda: rows(engine, "SELECT count(*) FROM email_outbox WHERE status = 'retrying'") == [(5,)])
        # The job is scheduled again for the emails' next attempt, not failed.
        wait_for(
            lambda: rows(engine, "SELECT status FROM procrastinate_jobs WHERE task_name = 'email.send'") == [("todo",)]
        )
        (gap,) = rows(
            engine,
            "SELECT abs(extract(epoch FROM j.scheduled_at - (SELECT min(next_attempt_at) FROM email_outbox)))"
            " FROM procrastinate_jobs j WHERE j.task_name = 'email.send'",
        )
        assert gap[0] < 1
    finally:
        stop(worker)
    with smtp_server() as (port, inbox):
        # A minute later (the clock moved on for both the emails and the job).
        with engine.begin() as conn:
            conn.execute(text("UPDATE email_outbox SET next_attempt_at = now() - interval '1 second'"))
            conn.execute(text("UPDATE procrastinate_jobs SET scheduled_at = now() WHERE status = 'todo'"))
        worker = start_worker(url, port)
        try:
            wait_for(lambda: rows(engine, "SELECT count(*) FROM email_outbox WHERE status = 'sent'") == [(5,)])
            wait_for(
                lambda: (
                    rows(engine, "SELECT status FROM procrastinate_jobs WHERE task_name = 'email.send'")
                    == [("succeeded",)]
                )
            )
        finally:
            stop(worker)
        assert sorted(m["To"] for m in inbox) == [f"c{n}@example.net" for n in range(1, 6)]
    assert rows(engine, f"SELECT DISTINCT attempts FROM {EmailOutbox.__tablename__}") == [(2,)]
