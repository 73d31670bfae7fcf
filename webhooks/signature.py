"""Verifying ``Stripe-Signature`` over the raw body with the official SDK.

``Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>…]``: HMAC-SHA256 of ``f"{t}.{raw body}"`` keyed
with the whole ``whsec_…`` secret. Several secrets may be configured while one is rolled (the
provider then signs with both and sends two ``v1`` values); a delivery is authentic when any
``v1`` matches any secret. The timestamp must be within ``tolerance`` seconds of now (default
300, Stripe's): an old, captured delivery cannot be replayed later.

The SDK verifies the body decoded as UTF-8 (it signs ``str``); a body that is not UTF-8 is checked
with the same scheme over its exact bytes, so a garbled but authentic body is still recognised
as the provider's (and kept as poison) rather than refused.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Sequence

# Bound once: the SDK resolves its top-level names lazily, through an import, on every access.
from stripe import SignatureVerificationError, WebhookSignature

from webhooks.errors import (
    NotConfigured,
    SignatureInvalid,
    SignatureMissing,
    TimestampOutsideTolerance,
)

DEFAULT_TOLERANCE = 300
MAX_HEADER = 4096


def _timestamp(header: str) -> int | None:
    for item in header.split(","):
        name, _, value = item.partition("=")
        if name.strip() == "t":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _verify_bytes(payload: bytes, header: str, secret: str) -> bool:
    """The scheme over raw bytes, for bodies the SDK cannot decode (see the module docstring)."""
    timestamp = _timestamp(header)
    if timestamp is None:
        return False
    expected = hmac.new(secret.encode("utf-8"), str(timestamp).encode("ascii") + b"." + payload, hashlib.sha256)
    wanted = expected.hexdigest()
    given = [value for name, _, value in (item.partition("=") for item in header.split(",")) if name.strip() == "v1"]
    return any(hmac.compare_digest(wanted, value.strip()) for value in given)


def verify(
    payload: bytes,
    header: str | None,
    secrets: Sequence[str],
    *,
    tolerance: int = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> str:
    """Check that ``payload`` was signed by the provider with one of ``secrets`` within
    ``tolerance`` seconds; returns the secret that matched.

    Raises ``SignatureMissing``, ``SignatureInvalid`` (no secret matches, or the header cannot be
    read), ``TimestampOutsideTolerance`` (authentic but too old, or too far in the future), or
    ``NotConfigured`` (no secret at all: every delivery would be refused, so say so plainly).
    """
    if not secrets:
        raise NotConfigured("no webhook signing secret is configured (NOFU_STRIPE_WEBHOOK_SECRET)")
    if not header or not header.strip():
        raise SignatureMissing("the Stripe-Signature header is missing")
    if len(header) > MAX_HEADER:
        raise SignatureInvalid("the Stripe-Signature header is too long")
    timestamp = _timestamp(header)
    if timestamp is None:
        raise SignatureInvalid("the Stripe-Signature header carries no timestamp")
    try:
        text: str | None = payload.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    matched: str | None = None
    for secret in secrets:
        if text is not None:
            try:
                # tolerance=None: the SDK checks the signature only; the window is checked below,
                # in both directions (the SDK lets a timestamp from the future through).
                WebhookSignature.verify_header(text, header, secret, tolerance=None)
            except SignatureVerificationError:
                continue
            matched = secret
            break
        if _verify_bytes(payload, header, secret):
            matched = secret
            break
    if matched is None:
        raise SignatureInvalid("no signature matches any configured webhook secret")
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise TimestampOutsideTolerance(
            f"the signature's timestamp is more than {tolerance} s from now", timestamp=timestamp
        )
    return matched
