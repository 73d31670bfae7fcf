"""Rate limits and CSRF protection for the resident routes.

Rate limits (per client address, Litestar's ``RateLimitMiddleware``), each in its own store so
one budget never eats another:

    POST /p                          10 per hour    manual entry: guessing confirmation codes
    POST /p/{token}/pay, …/confirm   30 per minute  starting and confirming payments
    GET  /receipts/{number}          30 per hour    checking receipts: guessing codes

``GET /p/{token}`` is not limited: the token is an Ed25519 signature nobody can guess, and
the page is read-only (the benchmark measures it at 100 connections from one address).

Limits are counted in memory **per process**: with N workers a client gets up to N times the
budget. Run one worker, or register a shared store (e.g. ``RedisStore``) under the store names
below in ``Litestar(stores=...)``. The client address is the connection's peer: behind a reverse
proxy run uvicorn with ``--proxy-headers --forwarded-allow-ips=<proxy>`` so it is the resident's
address, not the proxy's (otherwise every resident shares one budget).

CSRF: Litestar's double-submit cookie (``CSRFConfig``) on every unsafe request except the
token-authenticated ``/api/`` and ``/webhooks/`` paths. The secret is derived from the active
QR signing key, so every worker agrees on it without another setting to manage; rotating the
QR key expires open forms once (a resident re-opens the page).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

from litestar.config.csrf import CSRFConfig
from litestar.middleware.rate_limit import RateLimitConfig

from gateway.services import Services

CSRF_COOKIE: Final = "nofu_csrf"
CSRF_EXCLUDE: Final = ["^/api/", "^/webhooks/"]

MANUAL_ENTRY_LIMIT: Final = RateLimitConfig(
    rate_limit=("hour", 10), store="rate_limit_manual_entry", set_rate_limit_headers=True
)
PAYMENT_LIMIT: Final = RateLimitConfig(
    rate_limit=("minute", 30), store="rate_limit_payment", set_rate_limit_headers=True
)
RECEIPT_CHECK_LIMIT: Final = RateLimitConfig(
    rate_limit=("hour", 30), store="rate_limit_receipt_check", set_rate_limit_headers=True
)


def csrf_secret(services: Services) -> str:
    """A 256-bit secret derived from the active QR signing key (HMAC with a context label)."""
    ring = services.keys.qr
    seed = ring.signing_keys[ring.active_key_id].private_bytes_raw()
    return hmac.new(seed, b"nofu/csrf-secret/v1", hashlib.sha256).hexdigest()


def csrf_config(services: Services) -> CSRFConfig:
    return CSRFConfig(
        secret=csrf_secret(services),
        cookie_name=CSRF_COOKIE,
        cookie_secure=services.settings.public_base_url.startswith("https://"),
        cookie_httponly=True,
        cookie_samesite="lax",
        exclude=CSRF_EXCLUDE,
    )
