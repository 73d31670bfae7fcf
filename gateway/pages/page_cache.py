"""A cache of rendered invoice pages (``GET /p/{token}``) that is never stale after a write.

An invoice page changes only when (a) a row of ``invoices`` or ``payment_attempts`` is written
(amounts, status, code generation, attempts and their outcomes), (b) the JST date turns (the
late fee), or (c) a live payment attempt passes its expiry time. The cache keeps the rendered
page with the *change stamp* read before the database read that built it, the JST date and the
expiry of the live attempt it showed, and serves it again only while all three still hold:

- SQLite: the stamp is the WAL-index header, which every commit of any connection (any thread
  or process) rewrites before readers can see it (``SQLiteChanges``). Exact: a commit that
  returned before the stamp was read is seen.
- PostgreSQL: the stamp counts (1) commits of write transactions made through this process's
  engine, counted *before* they commit, and (2) notifications on the channel ``nofu_pages``,
  which statement triggers on ``invoices`` and ``payment_attempts`` send (migration 0007) and
  PostgreSQL delivers *after* the commit, from any process. A page read while a write commits
  can be cached under the newer count, and is dropped when the notification arrives
  (milliseconds later): what another process commits is seen from the moment its notification
  is received, what this process commits from the moment it commits. While the listening
  connection is down, nothing is cached or served from the cache.

Only the page is cached, not who asks: the CSRF token of the pay form (per browser, from its
cookie) is put into the cached HTML for each response, and the cookies are set per request.
"""

from __future__ import annotations

import logging
import mmap
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Final, Protocol

import psycopg
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from ledger.db import is_read_only

log = logging.getLogger("nofu.pages.cache")

CHANNEL: Final = "nofu_pages"
CACHE_SIZE: Final = 4096
CSRF_MARK: Final = "\x00nofu-csrf\x00"  # where the pay form's CSRF input goes in a cached page


class ChangeSignal(Protocol):
    def stamp(self) -> Hashable | None:
        """A value that differs from every earlier one once the pages' tables may have changed;
        ``None`` when changes cannot be seen right now (then nothing may be cached)."""

    def close(self) -> None: ...


class SQLiteChanges:
    """Whether any connection committed to a SQLite database in WAL mode, from the WAL-index header.

    Every commit rewrites the header at the start of the ``-shm`` file (its ``iChange`` counter,
    last frame and salts; https://www.sqlite.org/walformat.html, "The WAL-Index Header") before
    a reader can see the commit. Its 48 bytes, read through a read-only memory map, are the
    stamp: a tenth of a microsecond, where ``PRAGMA data_version`` starts a read transaction
    (file locks, and waits of tens of milliseconds seen under load). The cache's own connection
    stays open, so SQLite never truncates or deletes that file under the map. A checkpoint also
    changes the header (the cache then re-reads once). Without WAL, ``PRAGMA data_version``.
    """

    HEADER: Final = 48

    def __init__(self, path: str) -> None:
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._cursor = self._conn.cursor()
        self._lock = threading.Lock()
        self._shm: mmap.mmap | None = None
        self._shm_file = None
        self._cursor.execute("PRAGMA data_version").fetchone()  # opens the WAL index, if any
        if self._cursor.execute("PRAGMA journal_mode").fetchone()[0] == "wal":
            try:
                self._shm_file = open(path + "-shm", "rb")  # noqa: SIM115 (closed in close())
                self._shm = mmap.mmap(self._shm_file.fileno(), 0, access=mmap.ACCESS_READ)
            except (OSError, ValueError):  # no such file, or empty: fall back to the pragma
                self._shm = None
            if self._shm is not None and len(self._shm) < self.HEADER:
                self._shm.close()
                self._shm = None

    def stamp(self) -> Hashable | None:
        shm = self._shm
        if shm is not None:
            try:
                return shm[: self.HEADER]
            except ValueError:  # closed by close() meanwhile
                return None
        with self._lock:
            try:
                return int(self._cursor.execute("PRAGMA data_version").fetchone()[0])
            except sqlite3.Error:  # closed, or the file is gone: cache nothing
                return None

    def close(self) -> None:
        with self._lock:
            if self._shm is not None:
                self._shm.close()
                self._shm = None
            if self._shm_file is not None:
                self._shm_file.close()
            self._conn.close()


class PostgresChanges:
    """Local write commits + ``LISTEN nofu_pages`` on a connection of its own, on a thread."""

    RECONNECT_SECONDS: Final = 1.0

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._conninfo = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._local = 0
        self._notified = 0
        self._count_lock = threading.Lock()
        self._listening = False
        self._stopping = threading.Event()
        event.listen(engine, "commit", self._on_commit)
        self._thread = threading.Thread(target=self._listen, name="nofu-page-changes", daemon=True)
        self._thread.start()

    def _on_commit(self, conn: Connection) -> None:
        if not is_read_only(conn):
            with self._count_lock:
                self._local += 1  # before the commit: a reader from now on re-reads

    def stamp(self) -> tuple[int, int] | None:
        return (self._local, self._notified) if self._listening else None

    def _listen(self) -> None:
        while not self._stopping.is_set():
            try:
                with psycopg.connect(self._conninfo, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self._notified += 1  # whatever happened while not listening
                    self._listening = True
                    while not self._stopping.is_set():
                        for _ in conn.notifies(timeout=0.5):
                            self._notified += 1
            except psycopg.Error as exc:
                if not self._stopping.is_set():
                    log.warning("page cache off: listening for changes failed: %s", exc)
            finally:
                self._listening = False
            self._stopping.wait(self.RECONNECT_SECONDS)

    def close(self) -> None:
        self._stopping.set()
        event.remove(self._engine, "commit", self._on_commit)
        self._thread.join(timeout=5)


def change_signal(engine: Engine) -> ChangeSignal | None:
    """The engine's change signal; ``None`` (no caching) for an in-memory SQLite database."""
    if engine.dialect.name == "sqlite":
        path = engine.url.database
        return None if not path or path == ":memory:" else SQLiteChanges(path)
    if engine.dialect.name == "postgresql":
        return PostgresChanges(engine)
    return None


@dataclass(frozen=True)
class CachedPage:
    """A rendered page: ``head`` + the CSRF input + ``tail`` (``tail`` is None: no form)."""

    stamp: Hashable
    day: date
    until: datetime | None  # the live attempt's expiry, when the page shows one
    head: bytes
    tail: bytes | None


def split_page(html: str) -> tuple[bytes, bytes | None]:
    head, mark, tail = html.partition(CSRF_MARK)
    return head.encode(), (tail.encode() if mark else None)


class PageCache:
    """A bounded LRU of rendered pages, each valid while its stamp, day and expiry hold."""

    def __init__(self, signal: ChangeSignal | None, size: int = CACHE_SIZE) -> None:
        self.signal = signal
        self._size = size
        self._pages: OrderedDict[Hashable, CachedPage] = OrderedDict()
        self._lock = threading.Lock()

    def stamp(self) -> Hashable | None:
        return None if self.signal is None else self.signal.stamp()

    def get(self, key: Hashable, stamp: Hashable | None, day: date, now: datetime) -> CachedPage | None:
        if stamp is None:
            return None
        with self._lock:
            page = self._pages.get(key)
            if page is None:
                return None
            if page.stamp != stamp or page.day != day or (page.until is not None and now >= page.until):
                del self._pages[key]
                return None
            self._pages.move_to_end(key)
            return page

    def put(self, key: Hashable, page: CachedPage) -> None:
        if page.stamp is None:
            return
        with self._lock:
            self._pages[key] = page
            self._pages.move_to_end(key)
            while len(self._pages) > self._size:
                self._pages.popitem(last=False)

    def close(self) -> None:
        with self._lock:
            self._pages.clear()
        if self.signal is not None:
            self.signal.close()
