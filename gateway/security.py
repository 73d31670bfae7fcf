"""Security headers on every response."""

from __future__ import annotations

from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from gateway.settings import Settings

# Resident pages load nothing from elsewhere except Stripe.js when real Stripe keys are configured.
CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self' https://js.stripe.com; "
    "frame-src https://js.stripe.com https://hooks.stripe.com; connect-src 'self' https://api.stripe.com; "
    "form-action 'self'; base-uri 'none'; object-src 'none'; frame-ancestors 'none'"
)


_CSP_NAME = b"content-security-policy"
_FIXED = [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"), (b"referrer-policy", b"no-referrer")]
_HSTS = (b"strict-transport-security", b"max-age=63072000; includeSubDomains")


class _SecurityHeaders(ASGIMiddleware):
    """Sets the fixed headers (replacing any a handler set) and a CSP unless the handler set its
    own. Works on the raw header list: this runs on every response, including the cached pages."""

    def __init__(self, hsts: bool) -> None:
        self.fixed = [*_FIXED, _HSTS] if hsts else list(_FIXED)
        self.replaced = frozenset(name for name, _ in self.fixed)
        self.csp = (_CSP_NAME, CSP.encode())

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() not in self.replaced]
                if not any(k.lower() == _CSP_NAME for k, _ in headers):
                    headers.append(self.csp)
                headers.extend(self.fixed)
                message["headers"] = headers
            await send(message)

        await next_app(scope, receive, send_with_headers)


def security_headers_middleware(settings: Settings) -> _SecurityHeaders:
    return _SecurityHeaders(hsts=settings.public_base_url.startswith("https://"))
