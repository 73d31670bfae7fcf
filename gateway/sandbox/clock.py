"""The sandbox's notion of "now", which tests may freeze, set and advance."""

from __future__ import annotations

import threading
import time


class SandboxClock:
    """Unix time in whole seconds, either following the wall clock with an offset or frozen.

    Invariant: `now()` never goes backwards unless `set()` is called with an earlier time
    (tests may do that on purpose; `advance()` refuses negative steps).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._offset = 0.0
        self._frozen_at: int | None = None

    def now(self) -> int:
        with self._lock:
            if self._frozen_at is not None:
                return self._frozen_at
            return int(time.time() + self._offset)

    @property
    def frozen(self) -> bool:
        with self._lock:
            return self._frozen_at is not None

    def set(self, now: int, *, frozen: bool = True) -> int:
        """Jump to `now`; frozen clocks stay there until set or advanced again."""
        with self._lock:
            if frozen:
                self._frozen_at = now
            else:
                self._frozen_at = None
                self._offset = now - time.time()
        return now

    def advance(self, seconds: int) -> int:
        """Move forward by `seconds` (≥ 0), keeping the frozen/running state."""
        if seconds < 0:
            raise ValueError("the clock only advances forwards")
        with self._lock:
            if self._frozen_at is not None:
                self._frozen_at += seconds
                return self._frozen_at
            self._offset += seconds
            return int(time.time() + self._offset)

    def reset(self) -> None:
        """Back to the wall clock."""
        with self._lock:
            self._offset = 0.0
            self._frozen_at = None
