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
from starlette.types import ASGIApp, Receive, Scope, Send

from . import form_hygiene
from .i18n import gettext

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
FIELD = "csrf_token"
HEADER = "x-csrf-token"


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
    """Also the portal's one reader of request bodies: ``form_hygiene`` checks and cleans
    every request here before the token is compared, so a malformed request is answered
    400/413 and a view only ever reads clean fields."""

    def __init__(self, app: ASGIApp, exempt_paths: Iterable[str] = ()) -> None:
        self.app = app
        self.exempt = tuple(exempt_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            form_hygiene.check_path(scope)
            form_hygiene.clean_query(scope)
        except form_hygiene.Refused as refused:
            await form_hygiene.page(refused.status)(scope, receive, send)
            return
        if scope["method"] in SAFE_METHODS or scope["path"].startswith(self.exempt):
            await self.app(scope, receive, send)
            return
        try:
            raw = await form_hygiene.read_body(scope, receive)
            if raw is None:
                return
            body = await form_hygiene.clean_body(scope, raw)
        except form_hygiene.Refused as refused:
            await form_hygiene.page(refused.status)(scope, receive, send)
            return
        try:
            request = Request(scope)
            expected = request.session.get(FIELD, "")
            supplied = request.headers.get(HEADER, "") or str(body.form.get(FIELD, "") if body.form else "")
        finally:
            if body.form is not None:
                await body.form.close()
        if not expected or not supplied or not hmac.compare_digest(str(expected), supplied):
            await _try_again_page()(scope, receive, send)
            return
        await self.app(scope, form_hygiene.replay(body.data, receive), send)


def _try_again_page() -> HTMLResponse:
    title = gettext("Please try again")
    message = gettext(
        "This form had expired or did not come from this site. Go back, reload the page and send it again."
    )
    return HTMLResponse(
        f"<!doctype html><title>{title}</title><main><h1>{title}</h1><p>{message}</p></main>", status_code=403
    )
