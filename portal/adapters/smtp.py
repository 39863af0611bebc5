"""The mail server: SMTP connections and sending, and what a failure means.

``SMTPTransport`` sends finished messages (``email.message.EmailMessage``); it knows
nothing of what they say (``portal/emails.py`` writes them). ``Transport`` is what a
sender needs of it, so a test or another mail service can stand in.
"""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from email.message import EmailMessage
from typing import Protocol

from ..settings import Settings

#: How long to wait for the mail server to answer each step.
SMTP_TIMEOUT = 20


class Connection(Protocol):
    """One open connection for a batch of messages."""

    def send(self, message: EmailMessage) -> None: ...

    def drop(self) -> None:
        """The connection failed: forget it (the next message opens a new one)."""
        ...


class Transport(Protocol):
    def send(self, *messages: EmailMessage) -> None:
        """Send these messages over one connection, opened and closed here."""
        ...

    def batch(self) -> AbstractContextManager[Connection]:
        """One connection for many messages, opened at the first and closed at the end."""
        ...


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


class Batch:
    """Many messages over one connection, opened at the first one. After a failure that
    lost the connection (``drop``), the next message opens a new one."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._smtp: smtplib.SMTP | None = None

    def send(self, message: EmailMessage) -> None:
        if self._smtp is None:
            self._smtp = connect(self.settings)
        self._smtp.send_message(message)

    def drop(self) -> None:
        """Forget the connection (it failed): close it without saying goodbye."""
        if self._smtp is not None:
            self._smtp.close()
        self._smtp = None

    def close(self) -> None:
        if self._smtp is not None:
            try:
                self._smtp.quit()
            except (smtplib.SMTPException, OSError):
                self._smtp.close()
        self._smtp = None


class SMTPTransport:
    """The SMTP server named by the settings (``SMTP_HOST``, ``SMTP_PORT``, ...)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def send(self, *messages: EmailMessage) -> None:
        with connect(self.settings) as smtp:
            for msg in messages:
                smtp.send_message(msg)

    @contextmanager
    def batch(self) -> Iterator[Batch]:
        batch = Batch(self.settings)
        try:
            yield batch
        finally:
            batch.close()


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
