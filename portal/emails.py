"""Emails to residents: written from templates in the reader's language, sent over SMTP.

Each email is built here and sent by a job (``portal/jobs.py``): a worker on PostgreSQL,
the portal process itself on SQLite. Every email is first a row of the email outbox
(``billing_core/outbox.py``), which records whether it was sent and retries it when the
mail server is away. Links carry single-use tokens that exist only in the email; the
database keeps their hashes.
"""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from email.message import EmailMessage
from typing import Any

from . import i18n
from .settings import Settings
from .templating import make_templates

_env = None
#: How long to wait for the mail server to answer each step.
SMTP_TIMEOUT = 20
_recipients: ContextVar[list[str] | None] = ContextVar("email_recipients", default=None)


def _templates():  # type: ignore[no-untyped-def]
    global _env
    if _env is None:
        # Plain text: nothing to escape (the HTML pages' environment escapes, this one must not).
        _env = make_templates().env.overlay(autoescape=False)
    return _env


def link(settings: Settings, path: str) -> str:
    return settings.public_url.rstrip("/") + path


def build(settings: Settings, to: str, language: str, template: str, **context: Any) -> EmailMessage:
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
    msg["Content-Language"] = i18n.supported(language) or i18n.DEFAULT
    msg.set_content(body.strip() + "\n")
    return msg


def connect(settings: Settings) -> smtplib.SMTP:
    smtp = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=SMTP_TIMEOUT)
    try:
        if settings.smtp_starttls:
            smtp.starttls()
        if settings.smtp_username:
            smtp.login(settings.smtp_username, settings.smtp_password)
    except BaseException:
        smtp.close()
        raise
    return smtp


def send(settings: Settings, *messages: EmailMessage) -> None:
    with connect(settings) as smtp:
        for msg in messages:
            smtp.send_message(msg)
    recorded = _recipients.get()
    if recorded is not None:
        recorded.extend(str(m["To"]) for m in messages)


@contextmanager
def recording() -> Iterator[list[str]]:
    """Collect the addresses of what ``send`` sends inside the block (for the outbox)."""
    token = _recipients.set([])
    try:
        yield _recipients.get()  # type: ignore[misc]
    finally:
        _recipients.reset(token)


def permanent(exc: BaseException) -> bool:
    """The mail server refused this message for good (a 5xx answer): trying again is useless.
    Anything else (unreachable, timed out, 4xx "try later") is worth another attempt."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return all(code >= 500 for code, _msg in exc.recipients.values())
    if isinstance(exc, smtplib.SMTPResponseException):
        return exc.smtp_code >= 500 and not isinstance(exc, smtplib.SMTPAuthenticationError)
    return False


def unreachable(exc: BaseException) -> bool:
    """The mail server itself could not be reached or dropped the connection (rather than
    refusing one message): the other emails of the same pass would fare no better."""
    if isinstance(exc, (smtplib.SMTPConnectError, smtplib.SMTPServerDisconnected)):
        return True
    if isinstance(exc, (smtplib.SMTPRecipientsRefused, smtplib.SMTPResponseException)):
        return False
    return isinstance(exc, OSError)  # refused, timed out, no route, name not found


def describe(exc: BaseException) -> str:
    """A short account of a failure for staff (never the message or its links)."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return "the mail server refused the address: " + "; ".join(
            f"{code} {msg.decode(errors='replace') if isinstance(msg, bytes) else msg}"
            for code, msg in exc.recipients.values()
        )
    if isinstance(exc, smtplib.SMTPResponseException):
        text = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
        return f"the mail server answered {exc.smtp_code} {text}"
    if isinstance(exc, ConnectionRefusedError):
        return "the mail server refused the connection (is it running?)"
    if isinstance(exc, TimeoutError):
        return "the mail server did not answer in time"
    if isinstance(exc, OSError):
        return f"could not reach the mail server: {exc.strerror or exc}"
    return f"{type(exc).__name__}: {exc}"
