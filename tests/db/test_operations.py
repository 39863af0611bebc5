"""What /metrics and /readyz read from the database at scrape time (issue 17: ops): the job
queue's depth and age (PostgreSQL's procrastinate tables), the running bill runs' progress and
the payments by outcome, whichever process answers."""

from __future__ import annotations

from datetime import date

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from starlette.testclient import TestClient

from portal import jobs
from portal.adapters.database import transaction
from portal.adapters.queue import WorkerQueue
from portal.app import create_app
from portal.billing_core.models import BillRun, Payment
from portal.settings import Settings, normalise_database_url

from .factories import district

D = date(2026, 11, 2)


def test_the_scrape_reads_the_queue_the_runs_and_the_payments(engine: Engine, sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as s:
        a, b = district(s, 2)
        run = BillRun(
            cycle_id=a.cycle_id,
            period_start=date(2026, 10, 1),
            period_end=D,
            bill_date=D,
            due_date=date(2026, 11, 23),
            status="calculating",
            accounts_total=2,
            accounts_done=1,
        )
        s.add_all(
            [
                run,
                BillRun(
                    cycle_id=a.cycle_id,
                    period_start=date(2026, 9, 1),
                    period_end=date(2026, 10, 1),
                    bill_date=date(2026, 10, 2),
                    due_date=date(2026, 10, 23),
                    status="posted",
                ),
            ]
        )
        for account, channel, status in ((a, "online", "posted"), (b, "online", "failed"), (a, "counter", "posted")):
            s.add(
                Payment(
                    account_id=account.id,
                    amount_cents=4_200,
                    channel=channel,
                    method="card" if channel == "online" else "cash",
                    received_on=D,
                    status=status,
                )
            )
    url = normalise_database_url(engine.url.render_as_string(hide_password=False))
    on_postgres = engine.dialect.name == "postgresql"
    if on_postgres:
        WorkerQueue(jobs.app, url).defer_many("email.send", [{"outbox_ids": [1]}, {"outbox_ids": [2]}])
    app = create_app(Settings(database_url=url, secret_key="t"), engine=engine)
    client = TestClient(app, client=("127.0.0.1", 40000))
    text = client.get("/metrics").text

    assert f'portal_bill_run_accounts_done{{run="{run.id}",status="calculating"}} 1.0' in text
    assert f'portal_bill_run_accounts_total{{run="{run.id}",status="calculating"}} 2.0' in text
    assert 'portal_bill_runs{status="calculating"} 1.0' in text and 'portal_bill_runs{status="posted"} 1.0' in text
    assert 'portal_payments{channel="online",status="posted"} 1.0' in text
    assert 'portal_payments{channel="online",status="failed"} 1.0' in text
    assert 'portal_payments{channel="counter",status="posted"} 1.0' in text
    ready = client.get("/readyz").json()
    if on_postgres:
        assert 'portal_job_queue_jobs{queue="email",status="todo"} 2.0' in text
        age = [
            line for line in text.splitlines() if line.startswith('portal_job_queue_oldest_age_seconds{queue="email"')
        ]
        assert len(age) == 1 and 0 <= float(age[0].rsplit(" ", 1)[1]) < 60
        assert ready == {"status": "ready", "checks": {"database": "ok", "queue": "ok"}}
    else:
        assert 'portal_job_queue_jobs{queue="email",status="todo"} 0.0' in text  # in-process: nothing waits
        assert ready["checks"]["queue"] == "in-process"
