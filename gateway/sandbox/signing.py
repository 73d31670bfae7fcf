"""Stripe's webhook signature: `Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256>`."""

from __future__ import annotations

import hashlib
import hmac


def signature(secret: str, timestamp: int, payload: bytes) -> str:
    """HMAC-SHA256 over `f"{t}.{raw body}"`, keyed with the whole `whsec_…` string (as Stripe)."""
    signed = str(timestamp).encode("ascii") + b"." + payload
    return hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int, payload: bytes) -> str:
    return f"t={timestamp},v1={signature(secret, timestamp, payload)}"
