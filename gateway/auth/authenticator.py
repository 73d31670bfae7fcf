"""From an ``Authorization`` header to a :class:`StaffIdentity`, with a short in-process cache.

Cost per request: a cache hit is a dictionary look-up and a SHA-256; a miss is one primary-key
read in a worker thread (the event loop never waits on the database). ``last_used_at`` is written
at most once per ``touch_interval`` (default 60 s) per token, and only on a miss.

Revocation and expiry: a verified token is trusted from the cache for at most ``cache_seconds``
(default 5 s), so a token revoked by ``nofu token revoke`` (another process) is refused by every
worker within 5 seconds; a revocation through :meth:`StaffAuthenticator.forget` in this process
takes effect at once. Expiry is re-checked on every cache hit. Only successful verifications are
cached, so the cache holds at most one entry per live token (and is bounded anyway).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import anyio.to_thread
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from gateway.auth import tokens
from gateway.auth.errors import Unauthorized
from gateway.auth.identity import StaffIdentity
from ledger.clock import utc_now
from ledger.db import read_transaction, run_transaction

log = logging.getLogger("nofu.auth")

MAX_HEADER = 512
MAX_CACHE_ENTRIES = 4096
_BEARER = re.compile(r"Bearer +(\S+) *", re.IGNORECASE)


def bearer_token(headers: list[str]) -> str:
    """The token in the request's only ``Authorization: Bearer <token>`` header (RFC 6750 §2.1)."""
    if not headers:
        raise Unauthorized("an Authorization: Bearer token is required", reason="missing")
    if len(headers) > 1:
        raise Unauthorized("send exactly one Authorization header", reason="malformed")
    header = headers[0]
    match = _BEARER.fullmatch(header) if len(header) <= MAX_HEADER else None
    if match is None:
        raise Unauthorized("the Authorization header must read 'Bearer <token>'", reason="malformed")
    return match.group(1)


@dataclass(frozen=True)
class _Verified:
    identity: StaffIdentity
    expires_at: datetime | None
    checked_at: datetime


class StaffAuthenticator:
    """Verifies bearer tokens against ``staff_tokens``; one per app (it owns the cache)."""

    def __init__(
        self,
        engine: Engine,
        *,
        cache_seconds: float = 5.0,
        touch_interval: timedelta = timedelta(seconds=60),
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.engine = engine
        self.cache_ttl = timedelta(seconds=cache_seconds)
        self.touch_interval = touch_interval
        self.clock = clock
        self._cache: dict[str, _Verified] = {}
        self._lock = threading.Lock()

    def _cached(self, key: str, now: datetime) -> StaffIdentity | None:
        hit = self._cache.get(key)
        if hit is None:
            return None
        fresh = now - hit.checked_at < self.cache_ttl
        alive = hit.expires_at is None or now < hit.expires_at
        if fresh and alive:
            return hit.identity
        with self._lock:
            self._cache.pop(key, None)
        return None

    def verify(self, token: str) -> StaffIdentity:
        """The identity behind ``token`` (cached for ``cache_seconds``), or :class:`Unauthorized`.

        Blocking on a cache miss: async callers use :meth:`identify`.
        """
        now = self.clock()
        key = tokens.digest(token)
        identity = self._cached(key, now)
        if identity is not None:
            return identity
        if tokens.TOKEN.fullmatch(token) is None:  # garbage never reaches the database
            raise Unauthorized("the bearer token is malformed", reason="malformed")
        with read_transaction(self.engine) as conn:
            info = tokens.verify_token(conn, token, now=now)
        if info.last_used_at is None or now - info.last_used_at >= self.touch_interval:
            self._touch(info.id, now)
        verified = _Verified(info.identity(), info.expires_at, now)
        with self._lock:
            if len(self._cache) >= MAX_CACHE_ENTRIES:
                self._cache.clear()
            self._cache[key] = verified
        return verified.identity

    def _touch(self, token_id: str, now: datetime) -> None:
        try:
            run_transaction(
                self.engine,
                lambda conn: tokens.touch(conn, token_id, now=now, interval=self.touch_interval),
                attempts=2,
            )
        except DBAPIError:
            # Bookkeeping only: a busy database must not turn a valid token away.
            log.warning("could not record last use of staff token %s", token_id, exc_info=True)

    async def identify(self, authorization: list[str]) -> StaffIdentity:
        """The identity for a request's ``Authorization`` header values; never blocks the loop."""
        token = bearer_token(authorization)
        identity = self._cached(tokens.digest(token), self.clock())
        if identity is not None:
            return identity
        return await anyio.to_thread.run_sync(self.verify, token)

    def forget(self, token_id: str | None = None) -> None:
        """Drop cached verifications (of one token, or all): use after revoking in this process."""
        with self._lock:
            if token_id is None:
                self._cache.clear()
            else:
                for key in [k for k, v in self._cache.items() if v.identity.id == token_id]:
                    del self._cache[key]
