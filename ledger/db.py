"""Database engines and transactions for SQLite (embedded default) and PostgreSQL (production).

Invariants this module keeps:
- SQLite runs in WAL mode with foreign keys on, and every write transaction starts with
  ``BEGIN IMMEDIATE`` so a read-then-write can never lose an update (pysqlite's own deferred
  ``BEGIN`` lets two writers read the same row and both write).
- Read-only work can use :func:`read_transaction`, which starts a deferred transaction on SQLite
  so readers do not queue behind writers.
- :func:`run_transaction` retries a whole unit of work on serialization failures, deadlocks and
  a busy SQLite database; the unit of work must therefore be safe to re-run from the start.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError

T = TypeVar("T")

_READ_ONLY = "nofu_read_only"

# PostgreSQL SQLSTATEs worth retrying: serialization failure, deadlock detected.
_RETRY_SQLSTATES = {"40001", "40P01"}


def is_sqlite(bind: Connection | Engine) -> bool:
    return bind.dialect.name == "sqlite"


def create_engine(url: str, *, echo: bool = False, pool_size: int = 10) -> Engine:
    """An engine configured for nofu's transaction discipline on either engine."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(
            parsed,
            echo=echo,
            connect_args={"timeout": 30, "check_same_thread": False},
            pool_size=pool_size,
            max_overflow=pool_size,
        )
        _configure_sqlite(engine)
        return engine
    if parsed.get_backend_name() == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        return sa.create_engine(
            parsed, echo=echo, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True
        )
    raise ValueError(f"unsupported database {parsed.get_backend_name()!r}: use sqlite or postgresql")


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        # Take transaction control away from pysqlite; we emit BEGIN ourselves.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        # FULL: a commit that returned survives a power cut (public money; see docs/benchmarks.md).
        cursor.execute("PRAGMA synchronous=FULL")
        # 16 MiB of page cache (default 2 MB): a batched import otherwise re-reads the lines'
        # index pages it just evicted (see docs/benchmarks.md). Grows only as pages are used.
        cursor.execute("PRAGMA cache_size=-16384")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        if is_read_only(conn):
            conn.exec_driver_sql("BEGIN")
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")


@contextlib.contextmanager
def read_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction for reads only: deferred on SQLite, ordinary on PostgreSQL."""
    with engine.connect() as conn:
        conn = conn.execution_options(**{_READ_ONLY: True})
        with conn.begin():
            yield conn


def is_read_only(conn: Connection) -> bool:
    """Whether ``conn`` runs a ``read_transaction``."""
    return bool(conn.get_execution_options().get(_READ_ONLY))


def is_retryable(exc: BaseException) -> bool:
    if not isinstance(exc, DBAPIError):
        return False
    orig = exc.orig
    sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if sqlstate in _RETRY_SQLSTATES:
        return True
    message = str(orig).lower()
    return "database is locked" in message or "database is busy" in message


def run_transaction(bind: Engine | Connection, work: Callable[[Connection], T], *, attempts: int = 8) -> T:
    """Run ``work`` in one write transaction, committing at the end; retry transient conflicts.

    ``bind`` is an engine (a pooled connection per try) or a connection the caller keeps open
    between transactions (it must not be in one). The commit happens here, explicitly, so a
    failed commit raises instead of being swallowed.
    """
    for attempt in range(1, attempts + 1):
        try:
            if isinstance(bind, Engine):
                with bind.begin() as conn:
                    return work(conn)
            with bind.begin():
                return work(bind)
        except DBAPIError as exc:
            if attempt == attempts or not is_retryable(exc):
                raise
            time.sleep(min(0.5, 0.005 * 2**attempt) * (0.5 + random.random()))
    raise AssertionError("unreachable")
