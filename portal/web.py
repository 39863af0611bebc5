"""What every view needs: a database session, the signed-in user, responses."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from urllib.parse import quote

from sqlalchemy.orm import Session, object_session
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from . import i18n
from .billing_core import audit, user_sessions
from .billing_core.errors import InvalidInput, NotAllowed
from .billing_core.models import Role, User


class SignInRequired(Exception):
    """Raised by a view for an anonymous visitor; answered with the sign-in page."""


class PageNotFound(Exception):
    """Answered with the 404 page; also what anyone gets for what is not theirs."""


#: Staff whose role does not allow the action: answered with a 403 page saying why. The
#: same idea as the core's ``NotAllowed`` (raised by ``permissions.require``); one name for both.
Forbidden = NotAllowed


class FormState:
    """What a form was filled in with, and a message for each field that was wrong, to
    show the form again with each message next to its field."""

    def __init__(self, values: dict[str, str] | None = None) -> None:
        self.values: dict[str, str] = dict(values or {})
        self.errors: dict[str, str] = {}

    def get(self, name: str, default: str = "") -> str:
        return self.values.get(name, default)


@contextmanager
def db(request: Request) -> Iterator[Session]:
    """One database transaction for the request: committed on success. Audit events it
    writes record the request's network address (``audit.origin``)."""
    factory = request.app.state.sessions
    origin = audit.origin.set(remote_addr(request))
    try:
        with factory() as session, session.begin():
            yield session
    finally:
        audit.origin.reset(origin)


def remote_addr(request: Request) -> str | None:
    return request.client.host if request.client else None


def today(request: Request) -> date:
    """The agency's calendar date now (its own time zone)."""
    clock = request.app.state.clock
    return clock().astimezone(request.app.state.settings.tz).date()


def now(request: Request) -> datetime:
    return request.app.state.clock().astimezone(UTC)


SESSION_ID = "sid"
TIMED_OUT = "timed_out"


def signed_in_user(request: Request, session: Session) -> User | None:
    """Who is signed in: the cookie's session id must name a record in the database that
    has not ended or timed out (``billing_core/user_sessions.py``). A copied cookie stops
    working the moment its session ends on the server."""
    user_id = request.session.get("user_id")
    if not user_id:
        return None
    raw = request.session.get(SESSION_ID)
    checked = user_sessions.check(session, raw, user_id, now(request))
    # Ending and touching are short transactions of their own (see user_sessions.check).
    if checked.end:
        with db(request) as own:
            user_sessions.end(own, raw, now(request), checked.end)
    elif checked.touch and isinstance(raw, str):
        with db(request) as own:
            user_sessions.touch(own, raw, now(request))
    if checked.user is None:
        _forget(request)
        if checked.end in ("idle", "expired"):
            request.session[TIMED_OUT] = True  # the sign-in page says why
        return None
    request.state.user = checked.user
    return checked.user


def _forget(request: Request) -> None:
    """Drop the sign-in from the cookie; keep the language the visitor chose."""
    lang = request.session.get("lang")
    request.session.clear()
    if lang:
        request.session["lang"] = lang


def start_session(request: Request, user: User, session: Session | None = None) -> None:
    """A fresh session for ``user``: a new server-side record, and nothing from before
    carries over in the cookie but the language. Written with ``session`` when given, else
    with the database session ``user`` belongs to, else in a transaction of its own."""
    from . import csrf

    def begin(db_session: Session, who: User) -> str:
        # Whoever this browser was signed in as before is signed out on the server too.
        user_sessions.end(db_session, current_session_id(request), now(request), "signed_in_again")
        return user_sessions.start(db_session, who, now(request), remote_addr(request))

    session = session or object_session(user)
    if session is not None:
        raw = begin(session, user)
    else:
        with db(request) as own:
            raw = begin(own, own.get(User, user.id) or user)
    request.session.clear()
    request.session["user_id"] = user.id
    request.session[SESSION_ID] = raw
    request.session["signed_in_at"] = now(request).isoformat()
    request.session["lang"] = user.language
    csrf.rotate(request)


def end_session(request: Request, session: Session, reason: str = "sign_out") -> bool:
    """End this browser's session on the server and in the cookie."""
    ended = user_sessions.end(session, request.session.get(SESSION_ID), now(request), reason)
    _forget(request)
    return ended


def current_session_id(request: Request) -> str | None:
    raw = request.session.get(SESSION_ID)
    return raw if isinstance(raw, str) else None


def error_text(exc: InvalidInput) -> str:
    """An error from the billing core in the reader's language."""
    return i18n.gettext(exc.template, **exc.params)


def require_customer(request: Request, session: Session) -> User:
    user = signed_in_user(request, session)
    if user is None:
        raise SignInRequired()
    if user.role != Role.CUSTOMER.value:
        raise PageNotFound()
    return user


def require_staff(request: Request, session: Session) -> User:
    user = signed_in_user(request, session)
    if user is None:
        raise SignInRequired()
    if not Role(user.role).is_staff:
        raise PageNotFound()
    return user


def page_number(request: Request, name: str) -> int:
    """A page number from the query (``?bills=2``), 1 when missing or wrong."""
    text = request.query_params.get(name, "1")
    return int(text) if text.isascii() and text.isdigit() and 0 < len(text) < 7 and int(text) > 0 else 1


def flash(request: Request, message: str) -> None:
    """A message for the next page this person sees (kept in their signed session, never in the URL)."""
    request.session["flash"] = message[:300]


def pop_flash(request: Request) -> str | None:
    return request.session.pop("flash", None)


def redirect(url: str) -> Response:
    """303 See Other: after a POST the browser follows it with a GET."""
    return RedirectResponse(url, status_code=303)


def sign_in_url(request: Request) -> str:
    target = request.url.path
    if request.url.query:
        target += "?" + request.url.query
    return "/sign-in?next=" + quote(target, safe="/")


def safe_next(target: str | None, default: str) -> str:
    """Only ever redirect to a path on this site."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target
