"""Every request is read, checked and cleaned here before any view sees it.

``portal.csrf.CSRFMiddleware`` calls this for every request, so no view can forget:

- a path with a control character names nothing: 404;
- the query string's values lose their control characters (``clean_text``);
- an unsafe request's body (POST, PUT, PATCH, DELETE) is read whole, at most
  ``MAX_BODY_BYTES`` (413 past that, before reading when Content-Length says so);
- a form (urlencoded or multipart) is parsed once with limits on fields, files and the
  size of a text field; one that cannot be read for its content type (no multipart
  boundary, a part without a name, a truncated body, too many fields or files) is
  answered 400 with a plain page, and nothing runs;
- every text field's name and value is cleaned, and the body re-encoded when that changed
  anything, so what the view parses again is the clean form. Uploaded files are left
  byte for byte as they came (read files check their own contents).

``clean_text`` keeps tab and newline (text areas have lines), turns CR LF and a lone CR into
LF, and drops every other C0/C1 control character, DEL, and the Unicode bidirectional
overrides and isolates (U+202A-U+202E, U+2066-U+2069), which make a name display as
something other than what is stored. Letters, accents, emoji and joiners are kept.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import parse_options_header
from starlette.datastructures import FormData, Headers, UploadFile
from starlette.formparsers import FormParser, MultiPartException, MultiPartParser
from starlette.responses import HTMLResponse
from starlette.types import Message, Receive, Scope

from .i18n import gettext

MAX_BODY_BYTES = 20 * 1024 * 1024
#: More than any form of the portal has (a landlord's profile has two per account).
MAX_FIELDS = 1000
#: Every upload form takes one file.
MAX_FILES = 10
#: A text field (not a file) of more than this is not something a person typed.
MAX_FIELD_BYTES = 1024 * 1024

_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
FORM_TYPES = (b"application/x-www-form-urlencoded", b"multipart/form-data")


def clean_text(value: str) -> str:
    """``value`` without control characters; line ends become ``\\n``; tabs stay."""
    if value.isascii() and value.isprintable():
        return value
    return _CONTROL.sub("", value.replace("\r\n", "\n").replace("\r", "\n"))


def clean_line(value: str) -> str:
    """One line: a cleaned value with line ends and tabs as spaces (file names)."""
    return clean_text(value).replace("\n", " ").replace("\t", " ")


class Refused(Exception):
    """The request cannot be read; answered with ``page()``, nothing runs."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def page(status: int) -> HTMLResponse:
    """A plain page for a request refused before any view ran (the security headers are
    added around it like on every page)."""
    if status == 413:
        title = gettext("Too much was sent")
        message = gettext("What was sent is too large for this site. Send a smaller file, or fewer at a time.")
    elif status == 404:
        title = gettext("Page not found")
        message = gettext("We could not find that page. It may have moved, or the link may be wrong.")
    else:
        title = gettext("This form could not be read")
        message = gettext("What was sent could not be read as a form. Go back, reload the page and send it again.")
    return HTMLResponse(
        f"<!doctype html><title>{title}</title><main><h1>{title}</h1><p>{message}</p>"
        f'<p><a href="/">{gettext("Go to your home page")}</a></p></main>',
        status_code=status,
    )


#: A path segment that is a number of more digits than any identifier here has: SQLite
#: cannot even bind an integer over 2**63 (19 digits), so it would be a 500, not a 404.
_HUGE_NUMBER = re.compile(r"/[0-9]{19,}(?=/|$)")


def check_path(scope: Scope) -> None:
    path = scope.get("path", "")
    if _CONTROL.search(path) or _HUGE_NUMBER.search(path):
        raise Refused(404)


def clean_query(scope: Scope) -> None:
    """Clean the query string in place (only rewritten when something was dirty)."""
    raw: bytes = scope.get("query_string", b"")
    if not raw or not _dirty_query(raw):
        return
    pairs = parse_qsl(raw.decode("latin-1"), keep_blank_values=True, encoding="utf-8", errors="replace")
    scope["query_string"] = urlencode([(clean_text(k), clean_text(v)) for k, v in pairs]).encode("ascii")


def _dirty_query(raw: bytes) -> bool:
    # A control character arrives percent-encoded (%00-%1F, %7F, %C2%80-%C2%9F, %E2%80%AA...)
    # or, from a careless client, raw.
    text = raw.decode("latin-1")
    return bool(re.search(r"%(?:[01][0-9a-fA-F]|7[fF]|[cC]2|[eE]2)", text)) or bool(_CONTROL.search(text))


@dataclass
class Body:
    data: bytes
    #: The parsed, cleaned form; None when the body is not a form.
    form: FormData | None


async def read_body(scope: Scope, receive: Receive) -> bytes | None:
    """The whole body, or None when the client went away."""
    headers = Headers(scope=scope)
    declared = headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise Refused(413)
    chunks: list[bytes] = []
    size = 0
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise Refused(413)
        chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks)


async def clean_body(scope: Scope, body: bytes) -> Body:
    """Parse a form body with the limits, clean its text fields, and give back the bytes the
    view will read (the same ones when nothing needed cleaning). Raises ``Refused(400)``."""
    headers = Headers(scope=scope)
    content_type, _ = parse_options_header(headers.get("content-type", ""))
    if content_type not in FORM_TYPES:
        return Body(body, None)

    async def stream():  # type: ignore[no-untyped-def]
        yield body
        yield b""

    try:
        if content_type == b"multipart/form-data":
            _check_complete(headers, body)
            form = await MultiPartParser(
                headers, stream(), max_files=MAX_FILES, max_fields=MAX_FIELDS, max_part_size=MAX_FIELD_BYTES
            ).parse()
        else:
            form = await FormParser(headers, stream(), max_fields=MAX_FIELDS, max_part_size=MAX_FIELD_BYTES).parse()
    except (MultiPartException, FormParserError, ValueError, KeyError) as exc:
        raise Refused(400) from exc
    items = form.multi_items()
    cleaned = [(clean_text(k), clean_text(v) if isinstance(v, str) else v) for k, v in items]
    if cleaned == items:
        return Body(body, form)
    clean_form = FormData(cleaned)
    if content_type == b"multipart/form-data":
        data, new_type = await _multipart(cleaned)
    else:
        data, new_type = urlencode(cleaned).encode("ascii"), "application/x-www-form-urlencoded"
    _replace_headers(scope, {b"content-type": new_type.encode("latin-1"), b"content-length": str(len(data)).encode()})
    return Body(data, clean_form)


def _check_complete(headers: Headers, body: bytes) -> None:
    """A multipart body ends with its closing delimiter; one cut short is refused, not read in part."""
    _, params = parse_options_header(headers.get("content-type", ""))
    boundary = params.get(b"boundary", b"")
    if not boundary or b"--" + boundary + b"--" not in body:
        raise Refused(400)


def _quoted(value: str) -> str:
    return '"' + clean_line(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


async def _multipart(items: list[tuple[str, str | UploadFile]]) -> tuple[bytes, str]:
    boundary = "portal" + secrets.token_hex(16)
    out = bytearray()
    for name, value in items:
        out += f"--{boundary}\r\n".encode()
        if isinstance(value, str):
            out += f"Content-Disposition: form-data; name={_quoted(name)}\r\n\r\n".encode()
            out += value.encode("utf-8")
        else:
            disposition = f"form-data; name={_quoted(name)}; filename={_quoted(value.filename or '')}"
            out += f"Content-Disposition: {disposition}\r\n".encode()
            for key, raw in value.headers.raw:
                if key.lower() != b"content-disposition":
                    out += key + b": " + raw + b"\r\n"
            out += b"\r\n"
            await value.seek(0)
            out += await value.read()
            await value.seek(0)
        out += b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={boundary}"


def _replace_headers(scope: Scope, new: dict[bytes, bytes]) -> None:
    kept = [(k, v) for k, v in scope["headers"] if k.lower() not in new]
    scope["headers"] = kept + list(new.items())


def replay(body: bytes, receive: Receive) -> Receive:
    """A receive that hands on ``body`` once, then whatever the client sends next (a disconnect)."""
    sent = False

    async def again() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return again
