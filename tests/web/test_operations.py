"""/metrics by route and who may read it, /readyz, and the request id on every log line of a
request (issue 17: ops). SQLite only: nothing here is a rule of the data."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route
from starlette.testclient import TestClient

from portal import observability
from portal.adapters.database import make_engine
from portal.app import create_app
from portal.settings import Settings
from tests.conftest import fresh_database

TOKEN = "metrics-token-for-the-tests-0123"


@pytest.fixture
def database(templates: dict[str, str], tmp_path: Path) -> str:
    return fresh_database("sqlite", templates, tmp_path)[0]


def _app(url: str, **settings: object) -> Starlette:
    return create_app(Settings(database_url=url, secret_key="t", **settings), engine=make_engine(url))  # type: ignore[arg-type]


def test_metrics_count_requests_by_route_template(database: str) -> None:
    app = _app(database, metrics_token=TOKEN)
    client = TestClient(app)
    client.get("/staff/accounts/10042-77", follow_redirects=False)
    client.get("/my/accounts/55501/bills/9", follow_redirects=False)
    client.get("/no/such/page")
    client.post("/staff/accounts/10042-77/stop", data={})  # refused for its CSRF token, before routing
    client.request("BREW", "/staff")  # a method nobody uses
    text = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).text
    assert 'portal_http_requests_total{method="GET",route="/staff/accounts/{number}",status="3xx"}' in text
    assert 'route="/my/accounts/{number}/bills/{bill}"' in text
    assert 'portal_http_requests_total{method="GET",route="unmatched",status="4xx"}' in text
    assert 'portal_http_requests_total{method="POST",route="/staff/accounts/{number}/stop",status="4xx"}' in text
    assert 'method="other",route="/staff"' in text and "BREW" not in text
    assert (
        'portal_http_request_duration_seconds_bucket{le="0.005",method="GET",route="/staff/accounts/{number}"}' in text
    )
    routes = set(re.findall(r'route="([^"]*)"', text))
    assert not [r for r in routes if "10042-77" in r or "55501" in r or "/no/such" in r], routes  # never the raw path
    assert "portal_database_up 1.0" in text and "portal_payments" in text and "portal_bill_runs" in text
    # SQLite: jobs run in the process as they are deferred, so no queue ever waits.
    assert 'portal_job_queue_jobs{queue="email",status="todo"} 0.0' in text


def test_metrics_are_hidden_from_the_public(database: str) -> None:
    with_token = _app(database, metrics_token=TOKEN)
    outside = TestClient(with_token, client=("203.0.113.9", 50000))
    local = TestClient(with_token, client=("127.0.0.1", 50000))
    assert outside.get("/metrics").status_code == 404
    assert outside.get("/metrics", headers={"Authorization": "Bearer wrong-token-wrong-token"}).status_code == 404
    assert local.get("/metrics").status_code == 404  # a token is set: this machine needs it too
    ok = outside.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200 and ok.headers["content-type"].startswith("text/plain")

    without = _app(database)
    assert TestClient(without, client=("203.0.113.9", 50000)).get("/metrics").status_code == 404
    assert TestClient(without, client=("127.0.0.1", 50000)).get("/metrics").status_code == 200
    assert TestClient(without, client=("::1", 50000)).get("/metrics").status_code == 200
    # Through a proxy on this machine, the request is someone else's.
    proxied = TestClient(without, client=("127.0.0.1", 50000)).get(
        "/metrics", headers={"X-Forwarded-For": "198.51.100.4"}
    )
    assert proxied.status_code == 404
    # A short token is refused outside development.
    with pytest.raises(observability.MetricsTokenRefused):
        _app(database, metrics_token="short")


def test_readyz_names_what_is_not_reachable(database: str) -> None:
    ready = TestClient(_app(database)).get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"database": "ok", "queue": "in-process"}}

    nowhere = "postgresql+psycopg://portal@127.0.0.1:1/portal"  # nothing listens on port 1
    down = TestClient(create_app(Settings(database_url=nowhere, secret_key="t"), engine=make_engine(nowhere)))
    answer = down.get("/readyz")
    assert answer.status_code == 503
    assert answer.json() == {
        "status": "not ready",
        "checks": {"database": "failed", "queue": "not checked"},
        "failed": ["database", "queue"],
    }
    assert "127.0.0.1" not in answer.text and "psycopg" not in answer.text.lower()  # no detail leaks
    assert down.get("/healthz").status_code == 200  # alive, only not ready


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(observability.formatter())
    logging.getLogger().addHandler(handler)
    yield out
    logging.getLogger().removeHandler(handler)


def test_every_line_of_a_request_carries_its_id(database: str, log_lines: io.StringIO) -> None:
    def noisy(request: Request) -> None:  # a sync endpoint: run in a worker thread
        logging.getLogger("tests.noisy").info("standard library line")
        structlog.get_logger("tests.noisy").info("structlog line", account="10042")
        raise RuntimeError("boom")

    app = _app(database)
    app.router.routes.append(Route("/test/noisy/{n}", noisy))
    client = TestClient(app, raise_server_exceptions=False)

    answer = client.get("/test/noisy/1", headers={"X-Request-ID": "probe-2f9c"})
    lines = [json.loads(line) for line in log_lines.getvalue().splitlines() if line.startswith("{")]
    mine = [line for line in lines if not line.get("logger", "").startswith("httpx")]  # the test client's
    assert answer.status_code == 500 and answer.headers["X-Request-ID"] == "probe-2f9c"
    assert [line["event"] for line in mine][:2] == ["standard library line", "structlog line"], lines
    assert any(line.get("exception", "").endswith("RuntimeError: boom") for line in mine)
    access = mine[-1]
    assert access["event"] == "request" and access["route"] == "/test/noisy/{n}" and access["status"] == 500
    assert {line["request_id"] for line in mine} == {"probe-2f9c"}, mine

    log_lines.truncate(0)
    log_lines.seek(0)
    generated = client.get("/sign-in", headers={"X-Request-ID": "not a token"})
    rid = generated.headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", rid)
    access = [json.loads(line) for line in log_lines.getvalue().splitlines() if '"portal.access"' in line]
    assert [(a["request_id"], a["route"], a["status"], a["user_id"]) for a in access] == [(rid, "/sign-in", 200, None)]
    assert isinstance(access[0]["duration_ms"], float)
