"""The Procfile's web: process (``portal web``, ``portal/adapters/web_server.py``): one process
per core, Nagle off on every connection, request metrics shared between the processes."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import pytest

from portal.adapters import web_server
from portal.cli import main


def _accepted_socket_option(protocol_factory: Any) -> int:
    """TCP_NODELAY on a connection accepted from a listening socket made as uvicorn makes it
    for several processes (``socket.socket(AF_INET)``: protocol number 0)."""

    async def go() -> int:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        made: asyncio.Future[asyncio.BaseTransport] = asyncio.get_running_loop().create_future()

        class Watched(asyncio.Protocol):
            """The protocol under test, and the transport it was given."""

            def __init__(self) -> None:
                self.inner = protocol_factory()

            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self.inner.connection_made(transport)
                if not made.done():
                    made.set_result(transport)

        def factory() -> asyncio.Protocol:
            return Watched()

        server = await asyncio.get_running_loop().create_server(factory, sock=listener)
        _reader, writer = await asyncio.open_connection(*listener.getsockname())
        transport = await asyncio.wait_for(made, 5)
        value = transport.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        writer.close()
        transport.close()
        server.close()
        await server.wait_closed()
        return int(value)

    return asyncio.run(go())


def test_nagle_is_off_on_connections_to_a_socket_uvicorn_shares_between_processes() -> None:
    # The defect: asyncio leaves Nagle on for these, and each response's body waited ~40 ms
    # for the client's delayed ACK of its headers.
    assert _accepted_socket_option(asyncio.Protocol) == 0

    class Recording(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            web_server._no_delay(transport)

    assert _accepted_socket_option(Recording) != 0


def test_the_servers_protocol_turns_nagle_off_before_serving() -> None:
    import uvicorn
    from uvicorn.server import ServerState

    config = uvicorn.Config(app=lambda *_: None, http=web_server.PROTOCOL)
    config.load()
    assert issubclass(config.http_protocol_class, web_server.PROTOCOL)

    def protocol() -> asyncio.Protocol:
        return web_server.PROTOCOL(config=config, server_state=ServerState(), app_state={})  # type: ignore[call-arg]

    assert _accepted_socket_option(protocol) != 0


def test_processes_follow_the_flag_then_web_concurrency_then_the_cores() -> None:
    assert web_server.processes(3, {}) == 3
    assert web_server.processes(None, {"WEB_CONCURRENCY": "2"}) == 2
    assert web_server.processes(None, {"WEB_CONCURRENCY": "lots"}) >= 1
    assert web_server.processes(None, {"WEB_CONCURRENCY": "²"}) >= 1  # isdigit() but not int()
    assert web_server.processes(None, {}) >= 1


def test_the_metrics_folder_is_cleared_of_counters_only(tmp_path: Path) -> None:
    folder = tmp_path / "metrics"
    folder.mkdir()
    (folder / "counter_123.db").write_bytes(b"old")
    (folder / "notes.txt").write_text("someone else's")
    for workers in (1, 2):  # one process counts into a named folder too
        (folder / "histogram_9.db").write_bytes(b"old")
        env = {web_server.METRICS_DIR_ENV: str(folder)}
        assert web_server.prepare_metrics_dir(workers, env) == (str(folder), False)
        assert [p.name for p in folder.iterdir()] == ["notes.txt"]
    fresh: dict[str, str] = {}
    made, ours = web_server.prepare_metrics_dir(2, fresh)
    assert ours and made is not None and Path(made).is_dir() and fresh[web_server.METRICS_DIR_ENV] == made
    assert web_server.prepare_metrics_dir(1, {}) == (None, False)


def test_a_port_that_is_not_a_number_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    monkeypatch.setattr(uvicorn, "run", lambda *_a, **_k: pytest.fail("started"))
    monkeypatch.setenv("PORT", "eighty")
    assert main(["web"]) == 2  # and the parser of every other command was built without it


def test_portal_web_runs_uvicorn_as_the_procfile_asks(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import uvicorn

    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: seen.update(kwargs, app=app))
    monkeypatch.setenv("WEB_CONCURRENCY", "2")
    monkeypatch.setenv(web_server.METRICS_DIR_ENV, str(tmp_path / "m"))
    assert main(["web", "--host", "127.0.0.1", "--port", "8123", "--no-proxy-headers"]) == 0
    assert (seen["app"], seen["factory"], seen["workers"], seen["port"]) == ("portal.app:create_app", True, 2, 8123)
    assert seen["proxy_headers"] is False and seen["http"] is web_server.PROTOCOL
    assert (tmp_path / "m").is_dir()


def test_a_page_number_in_other_digits_is_page_one() -> None:
    from starlette.requests import Request

    from portal.web import page_number

    def asked(query: str) -> int:
        return page_number(Request({"type": "http", "query_string": query.encode()}), "bills")

    assert [asked("bills=2"), asked("bills=²"), asked("bills=٣"), asked("bills=0"), asked("")] == [2, 1, 1, 1, 1]
