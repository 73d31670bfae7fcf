"""When a failed or waiting event is tried again, and when it stops being tried.

Exponential backoff with jitter: the n-th failed attempt waits ``base × factor^(n−1)`` seconds,
capped at ``cap``, ±``jitter`` (so a burst of events waiting for the same thing spreads out).
After ``max_attempts`` attempts the event is dead-lettered for staff (list and replay them with
``nofu webhooks list --state dead`` / ``replay``).

With the defaults (10 s, ×2, cap 1 h, 16 attempts) an event is tried for about 7.4 hours:
10 s, 20 s, 40 s … 2,560 s, then hourly. Stripe itself keeps redelivering for three days, and a
redelivery of an event already in the inbox is a duplicate, so it does not restart the count;
the backfill (``nofu webhooks backfill``) does not either. Only a replay does.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

DEFAULT_MAX_ATTEMPTS = 16


@dataclass(frozen=True)
class RetryPolicy:
    base_seconds: float = 10.0
    factor: float = 2.0
    cap_seconds: float = 3600.0
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if self.base_seconds < 0 or self.cap_seconds < self.base_seconds or self.factor < 1:
            raise ValueError("backoff needs 0 ≤ base ≤ cap and factor ≥ 1")
        if not 1 <= self.max_attempts <= 1000:
            raise ValueError("max_attempts must be 1..1000")
        if not 0 <= self.jitter < 1:
            raise ValueError("jitter must be a fraction in [0, 1)")

    def delay(self, attempts: int, draw: Callable[[], float] = random.random) -> timedelta:
        """How long to wait after the ``attempts``-th attempt failed (attempts ≥ 1)."""
        raw = min(self.cap_seconds, self.base_seconds * self.factor ** max(0, attempts - 1))
        spread = raw * self.jitter * (2 * draw() - 1)
        return timedelta(seconds=max(0.0, raw + spread))

    def exhausted(self, attempts: int) -> bool:
        return attempts >= self.max_attempts

    def schedule(self) -> list[float]:
        """The nominal waits (no jitter) between attempts, in seconds: for the documentation."""
        return [min(self.cap_seconds, self.base_seconds * self.factor**n) for n in range(self.max_attempts - 1)]
