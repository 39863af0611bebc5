"""The demo outbox (development only): every email the demo's mail catcher received,
with its links clickable, so a newcomer can confirm a sign-up or reset a password with
no mail server. It exists only while the demo stand-ins are on (``portal/devstack.py``),
and answers only requests to and from this machine; otherwise every path under it is 404.
"""

from __future__ import annotations

import re

from markupsafe import Markup, escape
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .. import devstack
from ..web import PageNotFound

_URL = re.compile(r"https?://[^\s<>\"']+")


def _only_here(request: Request) -> None:
    settings = request.app.state.settings
    client = request.client.host if request.client else None
    # TestClient's client is "testclient"; a real socket gives an address.
    local_client = client == "testclient" or devstack.is_loopback(client)
    host = request.url.hostname
    if not (settings.demo_standins and settings.development and local_client and devstack.is_loopback(host)):
        raise PageNotFound()


def linkify(text: str) -> Markup:
    """The message's text, escaped, with each web address a link."""
    escaped = str(escape(text))
    return Markup(_URL.sub(lambda m: f'<a href="{m.group(0)}">{m.group(0)}</a>', escaped))


def outbox_page(request: Request) -> Response:
    _only_here(request)
    settings = request.app.state.settings
    return request.app.state.templates.TemplateResponse(
        request, "dev/outbox.html", {"messages": devstack.messages(settings)}, headers={"Cache-Control": "no-store"}
    )


def message_page(request: Request) -> Response:
    _only_here(request)
    message = devstack.read_message(request.app.state.settings, request.path_params["name"])
    if message is None:
        raise PageNotFound()
    return request.app.state.templates.TemplateResponse(
        request,
        "dev/outbox_message.html",
        {"message": message, "body": linkify(message.body)},
        headers={"Cache-Control": "no-store"},
    )


ROUTES = [
    Route("/", outbox_page, methods=["GET"]),
    Route("/{name:str}", message_page, methods=["GET"]),
]
