"""The job queue: deferring jobs by task name.

With workers (PostgreSQL), a job is a row of procrastinate's queue, run by a
``portal worker``: ``WorkerQueue``. Without (SQLite, or ``PORTAL_JOBS_IN_PROCESS``),
the same job is run here and now by the function registered under its name:
``InProcessQueue``. Callers see one small interface, ``JobQueue``; the job
definitions (``portal/jobs.py``) say which function runs each name in-process.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from procrastinate import App, SyncPsycopgConnector
from sqlalchemy import Engine

#: Told the number of jobs run so far (in-process only: workers report nothing back).
Progress = Callable[[int], None]


class JobQueue(Protocol):
    #: True when deferring a job runs it at once, in this process.
    in_process: bool

    def defer(self, name: str, **kwargs: Any) -> None: ...

    def defer_many(
        self, name: str, kwargs_list: Iterable[dict[str, Any]], progress: Progress | None = None
    ) -> None: ...


def conninfo(database_url: str) -> str:
    """procrastinate speaks libpq: drop SQLAlchemy's driver suffix."""
    return database_url.replace("postgresql+psycopg://", "postgresql://", 1)


#: ``replace_connector`` swaps the connector of the one procrastinate app every caller
#: shares; two threads doing it at once (the web process defers from its thread pool) would
#: each defer through the other's connector, closed under it. One deferral at a time.
_DEFERRING = threading.Lock()


class WorkerQueue:
    """Jobs for the workers, in procrastinate's tables of the database ``database_url``."""

    in_process = False

    def __init__(self, app: App, database_url: str) -> None:
        self.app = app
        self.database_url = database_url

    def defer(self, name: str, **kwargs: Any) -> None:
        self.defer_many(name, [kwargs])

    def defer_many(self, name: str, kwargs_list: Iterable[dict[str, Any]], progress: Progress | None = None) -> None:
        connector = SyncPsycopgConnector(conninfo=conninfo(self.database_url))
        with _DEFERRING, self.app.replace_connector(connector) as deferring, deferring.open():
            for kwargs in kwargs_list:
                deferring.configure_task(name).defer(**kwargs)


class InProcessQueue:
    """Runs each job when it is deferred, with the function registered for its name.
    A name may also have a function taking all of a ``defer_many`` at once (the print
    file's slices share one browser that way)."""

    in_process = True

    def __init__(self) -> None:
        self._one: dict[str, Callable[..., Any]] = {}
        self._many: dict[str, Callable[[list[dict[str, Any]], Progress | None], Any]] = {}

    def register(
        self,
        name: str,
        run: Callable[..., Any],
        run_many: Callable[[list[dict[str, Any]], Progress | None], Any] | None = None,
    ) -> InProcessQueue:
        self._one[name] = run
        if run_many is not None:
            self._many[name] = run_many
        return self

    def defer(self, name: str, **kwargs: Any) -> None:
        self.defer_many(name, [kwargs])

    def defer_many(self, name: str, kwargs_list: Iterable[dict[str, Any]], progress: Progress | None = None) -> None:
        if name not in self._one:
            raise ValueError(f"no job {name!r} runs in this process")
        jobs = list(kwargs_list)
        if name in self._many:
            self._many[name](jobs, progress)
            return
        for n, kwargs in enumerate(jobs, start=1):
            self._one[name](**kwargs)
            if progress:
                progress(n)


def apply_schema(engine: Engine) -> None:
    """procrastinate keeps its queue in PostgreSQL tables; create them once."""
    from sqlalchemy import inspect

    if inspect(engine).has_table("procrastinate_jobs"):
        return
    url = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    app = App(connector=SyncPsycopgConnector(conninfo=url))
    with app.open():
        app.schema_manager.apply_schema()
