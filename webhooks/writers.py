"""One writer at a time on SQLite, queued in Python rather than in SQLite's busy handler.

SQLite allows one write transaction at a time; a writer that finds the database locked sleeps in
SQLite's busy handler (1, 2, 5, 10 … 100 ms steps) and tries again, so under contention latency
jumps by whole sleeps. Writers inside one process — the intake's committer and the processor —
therefore take this lock first and queue in order. On PostgreSQL it is a no-op: row locks and
``SKIP LOCKED`` do the work there.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from sqlalchemy.engine import Engine

_locks: dict[str, threading.Lock] = {}
_guard = threading.Lock()


def _lock_for(engine: Engine) -> threading.Lock:
    key = str(engine.url)
    with _guard:
        return _locks.setdefault(key, threading.Lock())


@contextlib.contextmanager
def one_writer(engine: Engine) -> Iterator[None]:
    """Hold the process's write turn for ``engine`` (SQLite only)."""
    if engine.dialect.name != "sqlite":
        yield
        return
    with _lock_for(engine):
        yield
