"""Stripe's idempotency layer for POST requests.

- Same API key + same `Idempotency-Key` + same endpoint and params → the saved status and
  body are replayed, with `Idempotent-Replayed: true`.
- Same key with other params or another endpoint → 400 `idempotency_error`.
- Keys are at most 255 characters and are kept for `ttl` seconds of sandbox time (24 h).
- Only responses produced once the endpoint ran are saved (successes and card errors);
  parameter validation failures are not, so a corrected retry with the same key works.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from gateway.sandbox.errors import StripeApiError, invalid_request

MAX_KEY_LENGTH = 255


@dataclass(frozen=True, slots=True)
class SavedResponse:
    method: str
    path: str
    fingerprint: str
    status: int
    body: bytes
    request_id: str
    saved_at: int


def fingerprint(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, separators=(",", ":"))


def check_key(key: str) -> None:
    if len(key) > MAX_KEY_LENGTH:
        raise invalid_request(
            f"Idempotency keys may be at most {MAX_KEY_LENGTH} characters long; "
            f"the key you sent is {len(key)} characters.",
            code="idempotency_key_too_long",
        )


class IdempotencyStore:
    """Saved responses keyed by (API key, idempotency key). Callers hold the sandbox lock."""

    def __init__(self, ttl: int) -> None:
        self._ttl = ttl
        self._saved: dict[tuple[str, str], SavedResponse] = {}

    def lookup(
        self, api_key: str, key: str, method: str, path: str, params: dict[str, Any], now: int
    ) -> SavedResponse | None:
        """The response to replay, None for a fresh key, or an idempotency_error."""
        saved = self._saved.get((api_key, key))
        if saved is None:
            return None
        if now - saved.saved_at >= self._ttl:
            del self._saved[(api_key, key)]
            return None
        if (saved.method, saved.path) != (method, path):
            raise StripeApiError(
                400,
                "idempotency_error",
                f"Keys for idempotent requests can only be used for the same endpoint they were "
                f"first used for ('{saved.method} {saved.path}' vs '{method} {path}'). Try using a "
                f"key other than '{key}' if you meant to execute a different request.",
            )
        if saved.fingerprint != fingerprint(params):
            raise StripeApiError(
                400,
                "idempotency_error",
                "Keys for idempotent requests can only be used with the same parameters they "
                f"were first used with. Try using a key other than '{key}' if you meant to "
                "execute a different request.",
            )
        return saved

    def save(self, api_key: str, key: str, response: SavedResponse) -> None:
        self._saved[(api_key, key)] = response

    def clear(self) -> None:
        self._saved.clear()
