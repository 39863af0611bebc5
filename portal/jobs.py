"""The job queue. Batch work runs as procrastinate jobs kept in PostgreSQL and
executed by ``portal worker`` processes (the Procfile's ``worker``); start more
of them, on more machines, to go faster. On SQLite there is no queue: the same
job functions are called in-process by the code that would have deferred them.
"""

from __future__ import annotations

import logging

from procrastinate import App, PsycopgConnector

from .settings import Settings

log = logging.getLogger(__name__)


def conninfo(database_url: str) -> str:
    """procrastinate speaks libpq: drop SQLAlchemy's driver suffix."""
    return database_url.replace("postgresql+psycopg://", "postgresql://", 1)


def make_app(settings: Settings) -> App:
    if not settings.is_postgres:
        raise RuntimeError("the job queue needs PostgreSQL; on SQLite jobs run in-process")
    return App(connector=PsycopgConnector(conninfo=conninfo(settings.database_url)), import_paths=["portal.jobs"])


def run_worker(settings: Settings, concurrency: int = 1) -> int:
    if not settings.is_postgres:
        print("DATABASE_URL is SQLite: jobs run inside the portal process, so no worker is needed.")
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    app = make_app(settings)
    with app.open():
        app.run_worker(concurrency=concurrency)
    return 0
