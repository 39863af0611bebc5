"""Operator signals (issue 17: ops): JSON logs with a request id, Prometheus metrics, readiness.

Logs: one structlog configuration (``setup_logging``) for the web app, the ``portal``
command and ``portal worker``. Every line is one JSON object on standard error; the
standard library's ``logging`` (uvicorn, SQLAlchemy, procrastinate, httpx) goes through the
same formatter. While a request is served, every line carries its ``request_id`` (the
incoming ``X-Request-ID`` when it is a safe token, else a new one; sent back in the
response's ``X-Request-ID``), and the request ends with one ``request`` line: method, route
template, status, duration, the signed-in user's id (never an email or a name). Before a
line is written, ``redact`` blanks the values of keys that name passwords, cards, bank
numbers, tokens, secrets, cookies and authorization headers, and replaces any 13-19 digit
card-like number in any text.

Metrics (``/metrics``): requests and their latency by route template (never the raw path,
so the labels stay few), method and status class, kept in this process (or, with
``PROMETHEUS_MULTIPROC_DIR``, in files every web process of the machine shares); and, read
from the database at each scrape so they are right whichever process answers, the job
queue's depth and oldest age, bill runs and the running ones' progress, and payments by
channel and outcome (``services/operations.py``). Served only with the bearer token of
``PORTAL_METRICS_TOKEN``, or without one to a direct connection from this machine; anyone
else gets the ordinary "page not found".

Readiness (``/readyz``): the database answers a ``SELECT 1`` and the queue's tables are
there (PostgreSQL with workers), within a few seconds; 200 or 503 with a small JSON body.
"""

from __future__ import annotations

import functools
import hmac
import ipaddress
import logging
import os
import re
import sys
import time
import uuid
from collections.abc import Iterable, Iterator, MutableMapping
from typing import Any

import anyio
import structlog
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Match, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .billing_core.errors import BillingError
from .services import operations
from .settings import Settings
from .web import PageNotFound

# --- Redaction ------------------------------------------------------------------------------

REDACTED = "[redacted]"
#: A key containing one of these is secret whatever else it says (``password_hash``,
#: ``stripe_secret_key``, ``csrf_token``, ``bank_account_number``, ``set-cookie``).
_SECRET_WORDS = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "authorization",
    "cookie",
    "routing",
    "account_number",
    "accountnumber",
    "bank_account",
    "cvc",
    "cvv",
    "card",
    "iban",
    "api_key",
    "apikey",
)
#: Short words secret only as a whole part of a key (``pan``, not ``company``).
_SECRET_PARTS = frozenset({"pan", "pwd", "pin", "ssn", "cvv2"})
_KEY_PARTS = re.compile(r"[^a-z0-9]+")
#: 13 to 19 digits, maybe in groups split by one space or dash: a card number's shape. Not
#: inside a word: hex ids (a request id, a uuid) have runs of digits that are no card.
CARD_LIKE = re.compile(r"(?<![0-9A-Za-z])(?:[0-9][ -]?){12,18}[0-9](?![0-9A-Za-z])")
#: ``password=...`` in a query string or a message, and ``Bearer ...`` credentials.
_SECRET_ASSIGNMENT = re.compile(
    r"(?i)\b(password|passwd|pwd|secret|token|cvc|cvv|card_?number|routing(?:_?number)?|account_?number)"
    r"(\s*[=:]\s*)(\"[^\"]*\"|'[^']*'|[^\s&,;]+)"
)
_CREDENTIAL = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+")


@functools.lru_cache(maxsize=4096)
def secret_key(key: str) -> bool:
    k = key.lower()
    return any(word in k for word in _SECRET_WORDS) or bool(_SECRET_PARTS.intersection(_KEY_PARTS.split(k)))


def scrub(text: str) -> str:
    """``text`` with card-like numbers, ``password=...`` values and credentials blanked."""
    if len(text) >= 13:
        text = CARD_LIKE.sub(REDACTED, text)
    if "=" in text or ":" in text:
        text = _SECRET_ASSIGNMENT.sub(lambda m: m.group(1) + m.group(2) + REDACTED, text)
    if " " in text:
        text = _CREDENTIAL.sub(lambda m: m.group(1) + " " + REDACTED, text)
    return text


def _card_like_int(value: Any) -> bool:
    return type(value) is int and 10**12 <= abs(value) < 10**19


def _clean(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if _card_like_int(value):
        return REDACTED
    if depth > 6:  # not worth walking: not worth logging either
        return value if isinstance(value, (int, float, bool)) or value is None else REDACTED
    if isinstance(value, dict):
        return {
            k: (REDACTED if isinstance(k, str) and secret_key(k) else _clean(v, depth + 1)) for k, v in value.items()
        }
    if isinstance(value, (list, tuple, set)):
        return [_clean(v, depth + 1) for v in value]
    if isinstance(value, bytes):
        return scrub(value.decode("utf-8", "replace"))
    return value


#: Fields the configuration itself adds, safe by construction.
_OURS = frozenset({"timestamp", "level", "logger"})


def redact(logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """The last processor before rendering: no password, card, bank number or credential leaves."""
    for key in list(event_dict):
        if key in _OURS:
            continue
        value = event_dict[key]
        if key != "event" and secret_key(key):
            event_dict[key] = REDACTED
        elif isinstance(value, (str, dict, list, tuple, set, bytes)) or _card_like_int(value):
            event_dict[key] = _clean(value)
        elif value is not None and not isinstance(value, (int, float, bool)):
            event_dict[key] = scrub(str(value))
    return event_dict


# --- Logging setup --------------------------------------------------------------------------

_HANDLER_NAME = "portal-json"
#: Fields of the standard library's log records that are not content: uvicorn's colours, and
#: the message and time another handler's formatter left on the record (the event says it).
_DROP = ("color_message", "message", "asctime")


def _drop_noise(logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in _DROP:
        event_dict.pop(key, None)
    return event_dict


_SHARED: list[Any] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def formatter(fmt: str = "json") -> logging.Formatter:
    """The one formatter of every log line: structlog's own and the standard library's."""
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=False) if fmt == "console" else structlog.processors.JSONRenderer()
    )
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*_SHARED, structlog.stdlib.ExtraAdder()],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            _drop_noise,
            structlog.processors.format_exc_info,
            redact,
            renderer,
        ],
    )


class _StandardError(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the moment (test runners swap it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def setup_logging(settings: Settings | None = None, default_level: str = "INFO") -> None:
    """Every log line as JSON on standard error (``PORTAL_LOG_FORMAT=console`` for people),
    at ``PORTAL_LOG_LEVEL`` (else ``default_level``). Safe to call again."""
    settings = settings or Settings.from_env()
    structlog.configure(
        # filter_by_level first: a line below the level costs nothing more than the check.
        processors=[structlog.stdlib.filter_by_level, *_SHARED, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    # Our lines name no process or thread: LogRecord need not look them up (a few us a line).
    logging.logProcesses = logging.logThreads = logging.logMultiprocessing = False
    root = logging.getLogger()
    handler = next((h for h in root.handlers if h.get_name() == _HANDLER_NAME), None)
    if handler is None:
        handler = _StandardError()
        handler.set_name(_HANDLER_NAME)
        root.addHandler(handler)
    handler.setFormatter(formatter(settings.log_format))
    # The level on our handler: a one-off command's WARNING leaves the root at INFO for
    # other handlers of the process (a test's log file).
    handler.setLevel((settings.log_level or default_level).upper())
    root.setLevel(settings.log_level or logging.INFO)
    # uvicorn configures its own loggers before it builds the app: through ours instead,
    # and without its access line (ours says more, with the route and the request id).
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    # Alembic's "Context impl ..." lines on every start say nothing to an operator (and a web
    # process that migrates its embedded database would print them on a command's stderr).
    logging.getLogger("alembic").setLevel(logging.WARNING)
    access = logging.getLogger("uvicorn.access")
    access.handlers.clear()
    access.propagate = False
    access.setLevel(logging.WARNING)


def log_to_file(path: str) -> logging.Handler:
    """Also write every line to ``path`` (the browser tests keep their run's log)."""
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(formatter())
    logging.getLogger().addHandler(handler)
    return handler


# --- Requests: the id, the access line, the request metrics ---------------------------------

REQUEST_ID = "X-Request-ID"
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$")
access_log = structlog.get_logger("portal.access")

disable_created_metrics()  # no *_created series: they double the lines and nobody graphs them
#: Requests and latency, in this process; with PROMETHEUS_MULTIPROC_DIR set (several web
#: processes), prometheus-client keeps the values in files there and a scrape sums them.
HTTP_METRICS = CollectorRegistry(auto_describe=True)
REQUESTS = Counter(
    "portal_http_requests",
    "Requests answered, by route template, method and status class",
    ["route", "method", "status"],
    registry=HTTP_METRICS,
)
LATENCY = Histogram(
    "portal_http_request_duration_seconds",
    "Time to answer a request, by route template and method",
    ["route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=HTTP_METRICS,
)


def request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            given = value.decode("latin-1").strip()
            if _SAFE_ID.match(given):
                return given
            break
    return uuid.uuid4().hex


#: Methods counted by name; anything else a client invents is ``other`` (the labels stay few).
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def route_label(scope: Scope, status: int = 200) -> str:
    """The matched route's path template (``/staff/accounts/{number}``), never the path.
    A request answered before routing (a refused CSRF token, a body too large) is matched
    here; a path no route matches is ``unmatched``."""
    route = scope.get("route")
    if route is None and status != 404:
        router = getattr(scope.get("app"), "router", None)
        for candidate in getattr(router, "routes", ()):
            if candidate.matches(scope)[0] is not Match.NONE:
                route = candidate
                break
    if route is None:
        return "unmatched"
    if isinstance(route, Mount):
        return route.path + "/{path}"
    path = getattr(route, "path", None)
    if not isinstance(path, str):
        return "unmatched"
    # Inside a Mount of routes, the route's path follows the mount's (static) prefix.
    root = scope.get("root_path", "")
    prefix = root[len(scope.get("app_root_path", root)) :]
    return prefix + path


class RequestSignals:
    """The outermost middleware: the request id (bound for every line logged meanwhile and
    sent back), the access line and the request metrics, also for the 500 page."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = request_id(scope)
        tokens = structlog.contextvars.bind_contextvars(request_id=rid)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)[REQUEST_ID] = rid
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            route = route_label(scope, status)
            method = scope.get("method", "")
            method = method if method in METHODS else "other"
            REQUESTS.labels(route, method, f"{status // 100}xx").inc()
            LATENCY.labels(route, method).observe(seconds)
            session = scope.get("session")
            access_log.info(
                "request",
                method=method,
                route=route,
                status=status,
                duration_ms=round(seconds * 1000, 1),
                user_id=session.get("user_id") if isinstance(session, dict) else None,
            )
            structlog.contextvars.reset_contextvars(**tokens)


# --- /metrics -------------------------------------------------------------------------------


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def metrics_allowed(request: Request, token: str) -> bool:
    """With a token: only ``Authorization: Bearer <token>``. Without: only a direct
    connection from this machine (a request through a proxy, which says so in its
    forwarding headers, is someone else's)."""
    if token:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())
    if any(h in request.headers for h in ("x-forwarded-for", "forwarded", "x-real-ip")):
        return False
    return request.client is not None and _loopback(request.client.host)


class DatabaseFigures(Collector):
    """The figures read at scrape time (``services/operations.figures``) as metrics."""

    def __init__(self, figures: operations.Figures | None, in_process_queues: Iterable[str] = ()) -> None:
        self.figures = figures
        self.in_process_queues = sorted(in_process_queues)

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("portal_database_up", "1 when the scrape could read the database")
        up.add_metric([], 0 if self.figures is None else 1)
        yield up
        f = self.figures
        if f is None:
            return
        queue = f.queue
        if queue is None:  # jobs run here as they are deferred: nothing ever waits
            queue = [operations.QueueFigure(name, "todo", 0, 0.0) for name in self.in_process_queues]
        if queue:
            depth = GaugeMetricFamily(
                "portal_job_queue_jobs",
                "Jobs on procrastinate's queue, by queue and status",
                labels=["queue", "status"],
            )
            age = GaugeMetricFamily(
                "portal_job_queue_oldest_age_seconds",
                "Seconds since the oldest job of each queue and status was deferred",
                labels=["queue", "status"],
            )
            for q in queue:
                depth.add_metric([q.queue, q.status], q.jobs)
                age.add_metric([q.queue, q.status], q.oldest_seconds)
            yield depth
            yield age
        runs = GaugeMetricFamily("portal_bill_runs", "Bill runs by status", labels=["status"])
        for status, n in sorted(f.runs_by_status.items()):
            runs.add_metric([status], n)
        yield runs
        done = GaugeMetricFamily(
            "portal_bill_run_accounts_done", "Accounts done in each running bill run", labels=["run", "status"]
        )
        total = GaugeMetricFamily(
            "portal_bill_run_accounts_total", "Accounts in each running bill run", labels=["run", "status"]
        )
        for r in f.running:
            done.add_metric([str(r.run_id), r.status], r.accounts_done)
            total.add_metric([str(r.run_id), r.status], r.accounts_total)
        yield done
        yield total
        payments = GaugeMetricFamily(
            "portal_payments",
            "Payments by channel and outcome (pending, posted, failed, returned), counted in the database",
            labels=["channel", "status"],
        )
        for (channel, status), n in sorted(f.payments.items()):
            payments.add_metric([channel, status], n)
        yield payments


def _queue_names() -> set[str]:
    from . import jobs

    return {task.queue for task in jobs.app.tasks.values() if task.queue != "builtin"}


def _with_queue(settings: Settings) -> bool:
    return settings.is_postgres and not settings.jobs_in_process


def _http_registry() -> CollectorRegistry:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return HTTP_METRICS


def metrics(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    if not metrics_allowed(request, settings.metrics_token):
        raise PageNotFound()
    try:
        figures: operations.Figures | None = operations.figures(
            request.app.state.sessions, with_queue=_with_queue(settings)
        )
    except Exception:
        logging.getLogger(__name__).warning("metrics: the database could not be read", exc_info=True)
        figures = None
    database = CollectorRegistry()
    database.register(DatabaseFigures(figures, () if _with_queue(settings) else _queue_names()))
    body = generate_latest(_http_registry()) + generate_latest(database)
    return Response(body, media_type=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"})


# --- /readyz --------------------------------------------------------------------------------

READY_TIMEOUT_SECONDS = 3.0


async def readyz(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    checks = {"database": "failed", "queue": "not checked"}
    with anyio.move_on_after(READY_TIMEOUT_SECONDS):
        checks = await anyio.to_thread.run_sync(
            lambda: operations.readiness(request.app.state.sessions, with_queue=_with_queue(settings)),
            abandon_on_cancel=True,
        )
    failed = sorted(name for name, result in checks.items() if result not in ("ok", "in-process"))
    body: dict[str, object] = {"status": "ready" if not failed else "not ready", "checks": checks}
    if failed:
        body["failed"] = failed
    return JSONResponse(body, status_code=503 if failed else 200, headers={"Cache-Control": "no-store"})


class MetricsTokenRefused(BillingError):
    pass


def check(settings: Settings) -> None:
    """Refuse to start with a metrics token anyone could guess (outside development)."""
    if settings.metrics_token and len(settings.metrics_token) < 16 and not settings.development:
        raise MetricsTokenRefused(
            "PORTAL_METRICS_TOKEN is shorter than 16 characters: choose a long random one "
            "(python -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
