"""Deferring jobs from several threads at once (PostgreSQL, the workers' queue): the web
process defers from its thread pool (a webhook's receipt email while another request
queues a sign-up link), and each job must reach the queue. Found by bench/load/run.py:
``WorkerQueue`` swapped the connector of the one shared procrastinate app, so one thread
deferred through another's connector after that one had closed it (``PoolClosed``)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from portal.adapters.database import make_engine
from portal.adapters.queue import WorkerQueue
from portal.jobs import app
from tests.conftest import fresh_database

THREADS, EACH = 6, 4


@pytest.fixture
def pg(templates: dict[str, str], tmp_path: Path) -> Iterator[tuple[str, Engine]]:
    url, drop = fresh_database("postgresql", templates, tmp_path)
    engine = make_engine(url)
    yield url, engine
    engine.dispose()
    drop()  # type: ignore[operator]


def test_threads_deferring_at_once_each_queue_their_jobs(pg: tuple[str, Engine]) -> None:
    url, engine = pg
    queue = WorkerQueue(app, url)
    start = threading.Barrier(THREADS)
    failed: list[BaseException] = []

    def defer(n: int) -> None:
        start.wait()
        for i in range(EACH):
            try:
                queue.defer("email.send", outbox_ids=[n * 100 + i])
            except BaseException as exc:  # noqa: BLE001 - collected for the assertion
                failed.append(exc)

    threads = [threading.Thread(target=defer, args=(n,)) for n in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not failed, f"{len(failed)} defers failed, the first: {failed[0]!r}"
    with engine.connect() as conn:
        queued = conn.scalar(text("SELECT count(*) FROM procrastinate_jobs WHERE task_name = 'email.send'"))
    assert queued == THREADS * EACH
