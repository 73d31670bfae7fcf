"""Helpers every benchmark shares: scratch databases, timing, a plain-text table, the machine.

Scratch databases are the only databases a benchmark writes to: an SQLite file it may delete
(under ``var/bench/`` by default) and PostgreSQL databases whose name starts with
``nofu_bench``. Anything else is refused, so a typo cannot drop a real database.
"""

from __future__ import annotations

import os
import platform
import re
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

PG_SERVER_URL = os.environ.get("NOFU_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/")
PG_SCRATCH_DB = "nofu_bench"
DEFAULT_WORKDIR = Path("var/bench")
_SCRATCH_NAME = re.compile(r"nofu_bench[a-z0-9_]{0,40}")


class BenchSetupError(RuntimeError):
    """A benchmark was asked to touch something it must not; ``code`` is stable."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


# --- PostgreSQL -------------------------------------------------------------------------------


def pg_url(server_url: str, database: str) -> str:
    """``server_url`` with ``database`` as its database (libpq form, usable by both drivers)."""
    return (
        make_url(server_url)
        .set(drivername="postgresql", database=database)
        .render_as_string(hide_password=False)
    )


def postgres_reachable(server_url: str = PG_SERVER_URL) -> bool:
    try:
        with psycopg.connect(pg_url(server_url, "postgres"), connect_timeout=2):
            return True
    except psycopg.OperationalError:
        return False


def postgres_version(server_url: str = PG_SERVER_URL) -> str:
    with psycopg.connect(pg_url(server_url, "postgres")) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]) if row else "?"


def recreate_postgres(server_url: str = PG_SERVER_URL, name: str = PG_SCRATCH_DB) -> str:
    """Drop (with its connections) and create the scratch database ``name``; return its URL.

    Only names starting with ``nofu_bench`` are accepted.
    """
    if not _SCRATCH_NAME.fullmatch(name):
        raise BenchSetupError("not_a_scratch_database", f"{name!r} does not start with nofu_bench")
    with psycopg.connect(pg_url(server_url, "postgres"), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]
        admin.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
    return pg_url(server_url, name)


def drop_postgres(server_url: str = PG_SERVER_URL, name: str = PG_SCRATCH_DB) -> None:
    if not _SCRATCH_NAME.fullmatch(name):
        raise BenchSetupError("not_a_scratch_database", f"{name!r} does not start with nofu_bench")
    with psycopg.connect(pg_url(server_url, "postgres"), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]


# --- SQLite -----------------------------------------------------------------------------------


def recreate_sqlite(path: Path, *, wal: bool = True) -> str:
    """Delete the file (and its WAL and shared-memory files) and return an SQLAlchemy URL.

    With ``wal`` the new file is created in WAL mode, which SQLite keeps in the file: a peer
    that opens it with default settings then journals the way nofu does.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_sqlite(path)
    if wal:
        with sqlite3.connect(path) as conn:
            conn.execute("PRAGMA journal_mode=WAL").fetchone()
        conn.close()
    return f"sqlite:///{path}"


def remove_sqlite(path: Path) -> None:
    """Delete an SQLite file with its WAL, shared-memory and journal files."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)


def sqlite_path(url: str) -> str:
    database = make_url(url).database
    if not database:
        raise BenchSetupError("not_a_file_database", url)
    return database


# --- timing and output ------------------------------------------------------------------------


@dataclass
class Stopwatch:
    seconds: float = 0.0


@contextmanager
def stopwatch() -> Iterator[Stopwatch]:
    """``with stopwatch() as sw: …``; ``sw.seconds`` holds the wall time once the block ends."""
    watch = Stopwatch()
    began = time.perf_counter()
    try:
        yield watch
    finally:
        watch.seconds = time.perf_counter() - began


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else 0.0


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain-text table, first column left-aligned, the others right-aligned."""
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        return "  ".join(
            cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in enumerate(row)
        ).rstrip()

    out = [line(cells[0]), line(["-" * w for w in widths])]
    out.extend(line(row) for row in cells[1:])
    return "\n".join(out)


def machine() -> str:
    """One line saying what the figures were measured on."""
    return (
        f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}, "
        f"SQLite {sqlite3.sqlite_version}"
    )
