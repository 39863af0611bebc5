"""Sign-in through an outside OpenID Connect provider (Authlib's Starlette client).

Off unless ``OIDC_ISSUER`` and ``OIDC_CLIENT_ID`` are set. The provider's discovery
document names its endpoints and keys; the ID token's signature, issuer, audience and nonce
are checked by Authlib, and the ``state`` kept in our signed session ties the answer to the
browser that asked. Who the answer signs in is decided in ``users.outside_sign_in``.
"""

from __future__ import annotations

import logging

from authlib.integrations.starlette_client import OAuth, OAuthError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from .. import i18n
from ..billing_core import permissions
from ..billing_core.models import User
from ..billing_core.permissions import Action
from ..i18n import gettext
from ..services import signin
from ..settings import Settings
from ..web import PageNotFound, db, now, redirect, remote_addr, start_session

log = logging.getLogger(__name__)
NAME = "outside"


def client_for(settings: Settings) -> OAuth | None:
    if not settings.oidc_enabled:
        return None
    oauth = OAuth()
    oauth.register(
        NAME,
        client_id=settings.oidc_client_id,
        client_secret=settings.oidc_client_secret,
        server_metadata_url=f"{settings.oidc_issuer}/.well-known/openid-configuration",
        client_kwargs={"scope": "openid email profile"},
    )
    return oauth


def _client(request: Request):  # type: ignore[no-untyped-def]
    oauth = request.app.state.oauth
    if oauth is None:
        raise PageNotFound()
    return oauth.create_client(NAME)


async def start(request: Request) -> Response:
    client = _client(request)
    callback = str(request.url_for("outside_callback"))
    try:
        return await client.authorize_redirect(request, callback)
    except Exception:  # the provider is down or its discovery document is wrong
        log.exception("outside sign-in: the provider could not be reached")
        return _back(request, gettext("That sign-in service is not answering. Please sign in with your password."))


async def callback(request: Request) -> Response:
    client = _client(request)
    try:
        token = await client.authorize_access_token(request)
    except OAuthError as exc:
        log.info("outside sign-in refused by the provider: %s", exc.error)
        return _back(request, gettext("The sign-in was cancelled or did not work. Please try again."))
    except Exception:
        log.exception("outside sign-in: the provider's answer could not be checked")
        return _back(request, gettext("That sign-in service is not answering. Please sign in with your password."))
    claims = dict(token.get("userinfo") or {})
    issuer = request.app.state.settings.oidc_issuer
    language = i18n.language()

    def sign_in() -> tuple[User | None, bool]:
        with db(request) as session:
            reached = signin.outside_sign_in(session, issuer, claims, language, now(request), remote_addr(request))
            if reached.user is not None:
                start_session(request, reached.user)
            return reached.user, reached.made

    user, made = await run_in_threadpool(sign_in)
    if user is None:
        return _back(
            request,
            gettext(
                "We could not sign you in that way: the sign-in service did not confirm your email address. "
                "Please sign in with your email and password, or sign up."
            ),
        )
    if permissions.can(user.role, Action.STAFF_VIEW):
        return redirect("/staff")
    return redirect("/my/link" if made else "/my")


def _back(request: Request, message: str) -> Response:
    return request.app.state.templates.TemplateResponse(
        request, "sign_in.html", {"next": "", "email": "", "error": message}, status_code=400
    )
