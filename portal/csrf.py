"""CSRF protection for every unsafe request.

The token lives in the signed session. A request that changes anything
(POST, PUT, PATCH, DELETE) must carry it, either as the ``csrf_token`` form
field (plain HTML forms, which work without JavaScript) or in the
``X-CSRF-Token`` header (htmx sends it from ``hx-headers`` on ``<body>``).
Stripe's webhooks, which prove themselves by signature, are the only exemption.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Iterable

from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
FIELD = "csrf_token"
HEADER = "x-csrf-token"
MAX_FORM_BYTES = 20 * 1024 * 1024


def token_for(request: Request) -> str:
    token = request.session.get(FIELD)
    if not token:
        token = secrets.token_urlsafe(32)
        request.session[FIELD] = token
    return token


def rotate(request: Request) -> str:
    request.session[FIELD] = secrets.token_urlsafe(32)
    return request.session[FIELD]


class CSRFMiddleware:
    def __init__(self, app: ASGIApp, exempt_paths: Iterable[str] = ()) -> None:
        self.app = app
        self.exempt = tuple(exempt_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in SAFE_METHODS or scope["path"].startswith(self.exempt):
            await self.app(scope, receive, send)
            return
        # Read the body once, then hand the same bytes on to the endpoint.
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body = message.get("body", b"")
            size += len(body)
            if size > MAX_FORM_BYTES:
                await HTMLResponse("Request too large.", status_code=413)(scope, receive, send)
                return
            chunks.append(body)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        request = Request(scope, replay)
        expected = request.session.get(FIELD, "")
        supplied = request.headers.get(HEADER, "")
        if not supplied:
            content_type = request.headers.get("content-type", "")
            if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
                form = await request.form()
                supplied = str(form.get(FIELD, ""))
                await form.close()
        if not expected or not supplied or not hmac.compare_digest(str(expected), supplied):
            response = HTMLResponse(
                "<!doctype html><title>Please try again</title><main><h1>Please try again</h1>"
                "<p>This form had expired or did not come from this site. Go back, reload the page "
                "and send it again.</p></main>",
                status_code=403,
            )
            await response(scope, receive, send)
            return
        replayed = False
        await self.app(scope, replay, send)
