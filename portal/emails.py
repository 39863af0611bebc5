"""Emails to residents: every one is written here, by ``build``, from its template under
``templates/email/`` and the portal's one gettext catalog, in the reader's language, and
sent through the mail server adapter (``adapters/smtp.py``).

The services send them (``services/notifications.py``, ``services/delivery.py``) from
jobs (``portal/jobs.py``): a worker on PostgreSQL, the portal process itself on SQLite.
Every email is first a row of the email outbox (``billing_core/outbox.py``), which
records whether it was sent and retries it when the mail server is away. Links carry
single-use tokens that exist only in the email; the database keeps their hashes.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from email.message import EmailMessage
from typing import Any

from jinja2 import Environment

from . import i18n
from .adapters.smtp import Connection, SMTPTransport, Transport
from .settings import Settings
from .templating import make_templates

_env: Environment | None = None


def _templates() -> Environment:
    global _env
    if _env is None:
        # Plain text: nothing to escape (the HTML pages' environment escapes, this one must not).
        _env = make_templates().env.overlay(autoescape=False)
    return _env


def link(settings: Settings, path: str) -> str:
    return settings.public_url.rstrip("/") + path


def build(settings: Settings, to: str, language: str | None, template: str, **context: Any) -> EmailMessage:
    """One email from ``templates/email/<template>.txt``: its first line is the subject."""
    with i18n.use(language):
        text = (
            _templates()
            .get_template(f"email/{template}.txt")
            .render(agency_name=settings.agency_name, agency_phone=settings.agency_phone, **context)
        )
    subject, _blank, body = text.strip().partition("\n")
    msg = EmailMessage()
    msg["From"] = settings.smtp_from
    msg["To"] = to
    msg["Subject"] = subject.strip()
    msg.set_content(body.strip() + "\n")
    # After set_content, which replaces every Content-* header.
    msg["Content-Language"] = i18n.supported(language) or i18n.DEFAULT
    return msg


def send(settings: Settings, *messages: EmailMessage) -> None:
    """Send finished messages to the mail server of ``settings``, over one connection."""
    SMTPTransport(settings).send(*messages)


class Mailer:
    """What the services send email with: ``build`` writes a message from its template in
    the reader's language, the transport (the SMTP server unless told otherwise) sends it."""

    def __init__(self, settings: Settings, transport: Transport | None = None) -> None:
        self.settings = settings
        self.transport: Transport = transport if transport is not None else SMTPTransport(settings)

    def link(self, path: str) -> str:
        return link(self.settings, path)

    def build(self, to: str, language: str | None, template: str, **context: Any) -> EmailMessage:
        return build(self.settings, to, language, template, **context)

    def send(self, *messages: EmailMessage) -> None:
        self.transport.send(*messages)

    def batch(self) -> AbstractContextManager[Connection]:
        """One connection for many messages (a run's bill-ready emails)."""
        return self.transport.batch()
