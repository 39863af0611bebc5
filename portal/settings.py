"""Every setting the portal reads, from environment variables, in one place.

Tests build their own ``Settings`` and pass it to ``create_app``; nothing else
reads ``os.environ``.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SQLITE_PATH = PROJECT_ROOT / "var" / "portal.sqlite3"
DEFAULT_FILES_DIR = PROJECT_ROOT / "var" / "files"


def _bool(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Settings:
    database_url: str = f"sqlite:///{DEFAULT_SQLITE_PATH}"
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    #: True only when running on a developer's own machine over plain HTTP.
    development: bool = False
    agency_name: str = "Demo Water District"
    agency_timezone: str = "America/Los_Angeles"
    agency_phone: str = "(555) 010-2000"
    stripe_secret_key: str = ""
    stripe_publishable_key: str = ""
    stripe_webhook_secret: str = ""
    stripe_api_base: str = ""
    stripe_js_url: str = "https://js.stripe.com/v3/"
    smtp_host: str = "localhost"
    smtp_port: int = 25
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_from: str = "billing@example.org"
    smtp_starttls: bool = False
    public_url: str = "http://localhost:8000"
    #: Run batch jobs inside the portal process even on PostgreSQL (small offices, tests).
    jobs_in_process: bool = False
    #: Where print files are written. Workers on other machines need it shared (a network volume).
    files_dir: str = str(DEFAULT_FILES_DIR)
    #: The Chromium that prints bills to PDF.
    chromium: str = "/usr/bin/chromium"
    #: Optional sign-in with an outside OpenID Connect provider (off while the issuer is empty).
    oidc_issuer: str = ""
    oidc_client_id: str = ""
    oidc_client_secret: str = ""
    #: The provider's name on the button: "Sign in with <name>".
    oidc_name: str = ""
    #: Proxies (addresses or networks, comma-separated; "*" for any) whose X-Forwarded-For and
    #: X-Forwarded-Proto are believed. Empty: nobody's, the connection's address counts.
    forwarded_allow_ips: str = ""
    #: Demo stand-ins (``portal/devstack.py``): a local Stripe and a mail catcher with an
    #: outbox at /dev/outbox. Refused unless ``development`` and on this machine only.
    demo_standins: bool = False
    #: A YAML file of money policy (``billing_core/money_policy.py``): fees, deposits,
    #: cash-only, leak credits. Empty: the defaults there.
    money_policy_file: str = ""
    #: A JSON file of bank CSV layouts for lockbox files (``billing_core/remittance.py``), on
    #: top of the shipped ``portal/data/lockbox_layouts.json``. Empty: the shipped ones.
    lockbox_layouts_file: str = ""
    # issue 17: ops (portal/observability.py)
    #: The bearer token /metrics asks for. Empty: /metrics answers this machine only.
    metrics_token: str = ""
    #: The log level (DEBUG, INFO, WARNING...). Empty: INFO for the web and worker processes,
    #: WARNING for the other ``portal`` commands.
    log_level: str = ""
    #: ``json`` (one JSON object a line, the default) or ``console`` (for people at a terminal).
    log_format: str = "json"
    #: Threads a web process runs its pages in at once (the rest wait their turn in the event
    #: loop): Python runs one at a time anyway, and more of them only take turns at a cost
    #: (bench/pages.py: 12.7 ms of CPU a page with 40, docs/performance.md).
    web_threads: int = 4

    @property
    def oidc_enabled(self) -> bool:
        return bool(self.oidc_issuer and self.oidc_client_id)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.agency_timezone)

    @property
    def is_postgres(self) -> bool:
        return self.database_url.startswith("postgresql")

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        defaults = cls()
        secret = env.get("SECRET_KEY", "")
        development = _bool(env.get("PORTAL_DEVELOPMENT"), False)
        if not secret:
            # A random key per process: sessions do not survive a restart,
            # which is safe, and production is expected to set SECRET_KEY.
            secret = defaults.secret_key
        return cls(
            database_url=normalise_database_url(env.get("DATABASE_URL") or defaults.database_url),
            secret_key=secret,
            development=development,
            agency_name=env.get("AGENCY_NAME", defaults.agency_name),
            agency_timezone=env.get("AGENCY_TIMEZONE", defaults.agency_timezone),
            agency_phone=env.get("AGENCY_PHONE", defaults.agency_phone),
            stripe_secret_key=env.get("STRIPE_SECRET_KEY", ""),
            stripe_publishable_key=env.get("STRIPE_PUBLISHABLE_KEY", ""),
            stripe_webhook_secret=env.get("STRIPE_WEBHOOK_SECRET", ""),
            stripe_api_base=env.get("STRIPE_API_BASE", ""),
            stripe_js_url=env.get("STRIPE_JS_URL", defaults.stripe_js_url),
            smtp_host=env.get("SMTP_HOST", defaults.smtp_host),
            smtp_port=int(env.get("SMTP_PORT", defaults.smtp_port)),
            smtp_username=env.get("SMTP_USERNAME", ""),
            smtp_password=env.get("SMTP_PASSWORD", ""),
            smtp_from=env.get("SMTP_FROM", defaults.smtp_from),
            smtp_starttls=_bool(env.get("SMTP_STARTTLS"), False),
            public_url=env.get("PUBLIC_URL", defaults.public_url),
            jobs_in_process=_bool(env.get("PORTAL_JOBS_IN_PROCESS"), False),
            files_dir=env.get("FILES_DIR", defaults.files_dir),
            chromium=env.get("CHROMIUM", defaults.chromium),
            oidc_issuer=env.get("OIDC_ISSUER", "").rstrip("/"),
            oidc_client_id=env.get("OIDC_CLIENT_ID", ""),
            oidc_client_secret=env.get("OIDC_CLIENT_SECRET", ""),
            oidc_name=env.get("OIDC_NAME", ""),
            forwarded_allow_ips=env.get("FORWARDED_ALLOW_IPS", "").strip(),
            demo_standins=_bool(env.get("PORTAL_DEMO_STANDINS"), False),
            money_policy_file=env.get("PORTAL_MONEY_POLICY", ""),
            lockbox_layouts_file=env.get("PORTAL_LOCKBOX_LAYOUTS", ""),
            # issue 17: ops
            metrics_token=env.get("PORTAL_METRICS_TOKEN", "").strip(),
            log_level=env.get("PORTAL_LOG_LEVEL", "").strip().upper(),
            log_format="console" if env.get("PORTAL_LOG_FORMAT", "").strip().lower() == "console" else "json",
            web_threads=_positive(env.get("PORTAL_WEB_THREADS"), defaults.web_threads),
        )


def _positive(text: str | None, default: int) -> int:
    text = (text or "").strip()
    return int(text) if text.isascii() and text.isdigit() and int(text) > 0 else default


def normalise_database_url(url: str) -> str:
    """Accept the ``postgres://`` URLs hosting platforms hand out and pick psycopg 3."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url
