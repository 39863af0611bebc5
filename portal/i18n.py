"""Languages: English and Spanish pages and emails from gettext catalogs.

The catalogs are the ``.po`` files in ``portal/locale/<lang>/LC_MESSAGES/``, compiled in
memory when the portal starts (no build step, nothing binary in the repository). The
language of the moment lives in a context variable: the web middleware sets it for each
request (the sign-in's choice, else the visitor's ``lang`` cookie, else the browser's
Accept-Language), jobs set it per customer with ``use``. ``gettext`` and the templates'
``{% trans %}`` read it.

``scripts/i18n`` extracts the messages and updates the catalogs; a test fails when a
message has no Spanish translation.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from functools import cache
from io import BytesIO
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

LOCALE_DIR = Path(__file__).resolve().parent / "locale"
DEFAULT = "en"
#: Each language, named in itself (that is how a reader looks for their own).
LANGUAGES = {"en": "English", "es": "Español"}
COOKIE = "lang"

_current: ContextVar[str] = ContextVar("language", default=DEFAULT)


@cache
def translations(language: str) -> NullTranslations:
    po = LOCALE_DIR / language / "LC_MESSAGES" / "messages.po"
    if language == DEFAULT or not po.exists():
        return NullTranslations()
    with po.open("rb") as f:
        catalog = read_po(f, locale=language)
    buffer = BytesIO()
    write_mo(buffer, catalog, use_fuzzy=False)
    buffer.seek(0)
    return Translations(buffer)


def language() -> str:
    return _current.get()


def supported(code: str | None) -> str | None:
    code = (code or "").strip().lower()[:2]
    return code if code in LANGUAGES else None


@contextlib.contextmanager
def use(code: str | None) -> Iterator[None]:
    """Speak ``code`` (or the default) inside the block: for jobs and emails."""
    token = _current.set(supported(code) or DEFAULT)
    try:
        yield
    finally:
        _current.reset(token)


def gettext(message: str, **params: object) -> str:
    text = translations(language()).gettext(message)
    return text % params if params else text


def ngettext(singular: str, plural: str, n: int, **params: object) -> str:
    text = translations(language()).ngettext(singular, plural, n)
    params.setdefault("num", n)
    return text % params


_ = gettext


def N_(message: str) -> str:  # noqa: N802 - the usual name for "mark for translation, translate later"
    return message


SERVICE_NAMES = {
    "water": N_("Water"),
    "sewer": N_("Sewer"),
    "sanitation": N_("Trash and recycling"),
    "fire": N_("Fire line"),
    "irrigation": N_("Irrigation"),
    "recycled": N_("Recycled water"),
    "fees": N_("Fees"),
}


def service_name(service: str | None) -> str:
    return gettext(SERVICE_NAMES[service]) if service in SERVICE_NAMES else (service or "").capitalize()


def from_accept_language(header: str | None) -> str | None:
    """The first supported language in an Accept-Language header, by its q weight."""
    choices: list[tuple[float, int, str]] = []
    for n, part in enumerate((header or "").split(",")):
        tag, _sep, params = part.strip().partition(";")
        weight = 1.0
        if params.strip().startswith("q="):
            try:
                weight = float(params.strip()[2:])
            except ValueError:
                weight = 0.0
        code = supported(tag)
        if code and weight > 0:
            choices.append((-weight, n, code))
    return min(choices)[2] if choices else None


def choose(session_lang: str | None, cookie: str | None, accept: str | None) -> str:
    return supported(session_lang) or supported(cookie) or from_accept_language(accept) or DEFAULT


class LanguageMiddleware:
    """Sets the language for the request. Runs inside the session middleware."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        conn = HTTPConnection(scope)
        session = scope.get("session") or {}
        code = choose(session.get("lang"), conn.cookies.get(COOKIE), conn.headers.get("accept-language"))
        token = _current.set(code)
        try:
            await self.app(scope, receive, send)
        finally:
            _current.reset(token)
