"""Headers on every response that tell the browser what the page may do.

The Content-Security-Policy allows scripts only from this site and never ``eval``:
the vendored htmx contains an ``eval`` path (for ``hx-on`` and ``js:`` values), which
``htmx-config`` in base.html switches off, and the browser now refuses it as well.

``X-Frame-Options: DENY`` says what ``frame-ancestors 'none'`` says, for browsers that read
only the older header. Outside development, ``Strict-Transport-Security`` tells the browser
to use HTTPS only for two years, subdomains included (the session cookie is Secure there).
The application puts this middleware outside Starlette's error handler
(``portal.app.Portal``), so the 500 page and every refusal carry the same headers.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
HSTS = "max-age=63072000; includeSubDomains"
#: Stripe.js, its card fields (frames) and its API, as Stripe documents for a CSP.
STRIPE_SOURCES = {
    "script-src": ["https://js.stripe.com"],
    "frame-src": ["https://js.stripe.com", "https://hooks.stripe.com"],
    "connect-src": ["https://api.stripe.com"],
}


def _origin(url: str) -> str | None:
    parts = urlsplit(url or "")
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else None


def content_security_policy(settings) -> str:  # type: ignore[no-untyped-def]
    """The policy, opened to the payment processor's script and API when payments are set up
    (Stripe's, or the stand-in's that tests point STRIPE_JS_URL and STRIPE_API_BASE at)."""
    if not settings.stripe_secret_key:
        return POLICY
    extra = {k: list(v) for k, v in STRIPE_SOURCES.items()}
    for url in (settings.stripe_js_url, settings.stripe_api_base):
        origin = _origin(url)
        if origin:
            for directive in extra:
                if origin not in extra[directive]:
                    extra[directive].append(origin)
    policy = POLICY.replace("script-src 'self'", "script-src 'self' " + " ".join(extra["script-src"]))
    return policy + f"; frame-src {' '.join(extra['frame-src'])}; connect-src 'self' {' '.join(extra['connect-src'])}"


class SecurityHeadersMiddleware:
    def __init__(self, app: ASGIApp, policy: str = POLICY, hsts: bool = True) -> None:
        self.app = app
        self.headers = [
            (b"content-security-policy", policy.encode()),
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"same-origin"),
        ]
        if hsts:
            self.headers.append((b"strict-transport-security", HSTS.encode()))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = [*message.get("headers", []), *(h for h in self.headers if h[0] not in names)]
            await send(message)

        await self.app(scope, receive, send_with_headers)
