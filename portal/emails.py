"""Emails to residents: written from templates in the reader's language, sent over SMTP.

Each email is built here and sent by a job (``portal/jobs.py``): a worker on PostgreSQL,
the portal process itself on SQLite. Links carry single-use tokens that exist only in
the email; the database keeps their hashes.
"""

from __future__ import annotations

import smtplib
from email.message import EmailMessage
from typing import Any

from . import i18n
from .settings import Settings
from .templating import make_templates

_env = None


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


def send(settings: Settings, *messages: EmailMessage) -> None:
    with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=30) as smtp:
        if settings.smtp_starttls:
            smtp.starttls()
        if settings.smtp_username:
            smtp.login(settings.smtp_username, settings.smtp_password)
        for msg in messages:
            smtp.send_message(msg)
