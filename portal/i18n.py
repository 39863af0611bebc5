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
import re
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import date
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
#: The Babel locale each language formats dates, amounts and quantities in. Spanish is US
#: Spanish (es_US): our readers are in the United States, where dollar amounts read
#: "$1,234.56" in Spanish as in English (Spain's "1.234,56 US$" would be misread), and
#: dates read "5 oct 2026", the month in words so the day and month cannot be swapped.
BABEL_LOCALES = {"en": "en_US", "es": "es_US"}

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


def babel_locale(code: str | None = None) -> str:
    """The Babel locale for ``code`` (default: the language of the moment)."""
    return BABEL_LOCALES.get(code or language(), BABEL_LOCALES[DEFAULT])


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


# --------------------------------------------------------------------------- bill lines

#: The names of charges the rate engine writes on bill lines (``billing_core.rating``: the
#: demo's and the usual OWRS parts). A rate schedule's own names that are not here stay as
#: the agency wrote them.
CHARGE_NAMES = (
    N_("Water usage"),
    N_("Service charge"),
    N_("Water service charge"),
    N_("Sewer service charge"),
    N_("Sewer volume charge"),
    N_("Trash, recycling and green waste"),
    N_("Commercial bin, 3 cubic yards, weekly pickup"),
    N_("Utility users tax"),
    N_("Fixed drought surcharge"),
    N_("Variable drought surcharge"),
    N_("Fixed wastewater charge"),
    N_("Variable wastewater charge"),
    N_("Drought surcharge"),
    N_("Minimum charge"),
    N_("Low-income discount"),
    N_("Senior discount"),
    N_("Fire line charge"),
)
SEASON_NAMES = {"summer": N_("summer"), "winter": N_("winter")}

_NUM = r"[-\d.,]+"
_HEADS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^Tier (?P<n>\d+)$"), N_("Tier %(n)s")),
    (re.compile(r"^(?P<label>.+), tier (?P<n>\d+)$"), N_("%(label)s, tier %(n)s")),
    (re.compile(r"^(?P<label>.+), prorated (?P<pct>" + _NUM + "%)$"), N_("%(label)s, prorated %(pct)s")),
    (re.compile(r"^(?P<label>.+) \((?P<size>[^()]+) meter\)$"), N_("%(label)s (%(size)s meter)")),
    (re.compile(r"^(?P<label>.+) \((?P<size>\d+)-gallon carts\)$"), N_("%(label)s (%(size)s-gallon carts)")),
    (
        re.compile(r"^(?P<label>.+) \(budget (?P<qty>" + _NUM + r") (?P<unit>\w+)\)$"),
        N_("%(label)s (budget %(qty)s %(unit)s)"),
    ),
    (re.compile(r"^(?P<label>.+) \(minimum (?P<amount>\$" + _NUM + r")\)$"), N_("%(label)s (minimum %(amount)s)")),
    (re.compile(r"^(?P<label>.+) \((?P<season>summer|winter)\)$"), N_("%(label)s (%(season)s)")),
)
_DETAILS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^(?P<units>\d+) units × (?P<price>\$" + _NUM + ")$"), N_("%(units)s units × %(price)s")),
    (
        re.compile(
            r"^(?P<share>" + _NUM + r"%) of (?P<qty>" + _NUM + r") (?P<unit>\w+) water × (?P<price>\$" + _NUM + ")$"
        ),
        N_("%(share)s of %(qty)s %(unit)s water × %(price)s"),
    ),
    (
        re.compile(r"^winter average (?P<qty>" + _NUM + r") (?P<unit>\w+) \(capped\) × (?P<price>\$" + _NUM + ")$"),
        N_("winter average %(qty)s %(unit)s (capped) × %(price)s"),
    ),
    (
        re.compile(r"^winter average (?P<qty>" + _NUM + r") (?P<unit>\w+) × (?P<price>\$" + _NUM + ")$"),
        N_("winter average %(qty)s %(unit)s × %(price)s"),
    ),
    (re.compile(r"^(?P<pct>" + _NUM + r"%) of (?P<amount>\$" + _NUM + ")$"), N_("%(pct)s of %(amount)s")),
)
_SPLIT_NOTE = re.compile(r" \((?P<m1>\d\d)/(?P<d1>\d\d) to (?P<m2>\d\d)/(?P<d2>\d\d), (?P<days>\d+) days\)$")


def describe_line(description: str) -> str:
    """A bill line's description in the language of the moment.

    Lines are stored as the rate engine wrote them, in English ("Water usage: 16 CCF ×
    $2.78", "Service charge (3/4 meter), prorated 50%"); this reads them back in their
    parts and says each part from the catalog. Amounts and quantities stay as written
    (US Spanish writes them as English does); the dates of a split period are given with
    the month in words. Anything it does not recognise is left as it is."""
    text, note = description, ""
    split = _SPLIT_NOTE.search(text)
    if split:
        text = text[: split.start()]
        dates = gettext(
            "%(start)s to %(end)s, %(days)s days",
            start=_month_day(int(split["m1"]), int(split["d1"])),
            end=_month_day(int(split["m2"]), int(split["d2"])),
            days=split["days"],
        )
        note = f" ({dates})"
    head, sep, detail = text.partition(": ")
    said = _head(head)
    if sep:
        said = gettext("%(label)s: %(detail)s", label=said, detail=_detail(detail))
    return said + note


def _head(text: str) -> str:
    for pattern, message in _HEADS:
        match = pattern.match(text)
        if match:
            parts = match.groupdict()
            if "label" in parts:
                parts["label"] = _head(parts["label"])
            if "season" in parts:
                parts["season"] = gettext(SEASON_NAMES[parts["season"]])
            return gettext(message, **parts)
    return gettext(text) if text in CHARGE_NAMES else text


def _detail(text: str) -> str:
    for pattern, message in _DETAILS:
        match = pattern.match(text)
        if match:
            return gettext(message, **match.groupdict())
    return text


def _month_day(month: int, day: int) -> str:
    from babel.dates import format_skeleton

    try:
        when = date(2000, month, day)  # a leap year: any month and day
    except ValueError:
        return f"{month:02d}/{day:02d}"
    return format_skeleton("MMMd", when, locale=babel_locale())
