"""The production web server: uvicorn, one process per core, as the Procfile's ``web:`` line
runs it (``portal web``).

Two things uvicorn's command line does not do:

- **TCP_NODELAY on every connection.** With more than one process uvicorn binds the
  listening socket itself and hands it to each process; asyncio only turns Nagle's
  algorithm off on sockets it made (or whose protocol number says TCP), so on those
  connections a response's body waited for the client's delayed ACK of its headers: about
  40 ms on every request (``bench/pages.py`` found it; one process was not affected).
- **Request metrics from every process.** prometheus-client keeps each process's counters
  in ``PROMETHEUS_MULTIPROC_DIR`` when it is set; it must be empty when the processes
  start (docs/operations.md).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # httptools is optional; h11 is uvicorn's own
    HttpToolsProtocol = None  # type: ignore[assignment,misc]

METRICS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"


def _no_delay(transport: asyncio.BaseTransport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:  # not a TCP socket after all (a test's pipe)
            pass


class NoDelayH11Protocol(H11Protocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        _no_delay(transport)
        super().connection_made(transport)


if HttpToolsProtocol is not None:

    class NoDelayHttpToolsProtocol(HttpToolsProtocol):  # type: ignore[misc,valid-type]
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            _no_delay(transport)
            super().connection_made(transport)

    PROTOCOL: type[asyncio.Protocol] = NoDelayHttpToolsProtocol
else:
    PROTOCOL = NoDelayH11Protocol


def processes(given: int | None, env: dict[str, str] | os._Environ[str] = os.environ) -> int:
    """How many web processes: ``given``, else ``WEB_CONCURRENCY``, else one per core."""
    if given:
        return max(1, given)
    text = env.get("WEB_CONCURRENCY", "").strip()
    if text.isascii() and text.isdigit() and int(text) > 0:
        return int(text)
    # The cores this process may run on (a container's cpuset), not every core of the host;
    # a CPU quota without a cpuset is not seen: set WEB_CONCURRENCY there.
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, cores or 1)


def prepare_metrics_dir(workers: int, env: dict[str, str] | os._Environ[str] = os.environ) -> tuple[str | None, bool]:
    """``PROMETHEUS_MULTIPROC_DIR`` cleared of an earlier start's counters (prometheus-client's
    ``*.db`` files only: nothing else in a folder named by mistake is touched), or with
    several processes and none named, a fresh temporary folder put in ``env`` for the
    processes to inherit. Returns the folder (None: one process, none named) and whether it
    was made here (to remove at the end)."""
    path = env.get(METRICS_DIR_ENV, "").strip()
    if path:
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("*.db"):
            old.unlink()
        return path, False
    if workers <= 1:
        return None, False
    path = tempfile.mkdtemp(prefix="portal-metrics-")
    env[METRICS_DIR_ENV] = path
    return path, True


def run(host: str, port: int, workers: int) -> None:
    import uvicorn

    folder, made = prepare_metrics_dir(workers)
    try:
        _serve(uvicorn, host, port, workers)
    finally:
        if made and folder:
            shutil.rmtree(folder, ignore_errors=True)


def _serve(uvicorn: Any, host: str, port: int, workers: int) -> None:
    # The portal itself believes X-Forwarded-For, and only from FORWARDED_ALLOW_IPS
    # (portal.app.outer_middleware); uvicorn's own handling would trust 127.0.0.1 by default.
    uvicorn.run(
        "portal.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        proxy_headers=False,
        access_log=False,  # the portal writes its own access line (portal/observability.py)
        http=PROTOCOL,
    )
