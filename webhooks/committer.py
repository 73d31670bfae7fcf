"""Group commit for the intake: concurrent deliveries share one transaction.

Each delivery still gets its answer only after its event is committed — durability is not traded
away — but when many arrive at once, one writer thread stores all that are waiting (up to
``max_batch``) in one transaction: one commit (one fsync) for the lot instead of one each, and no
crowd of request threads competing for the database. Under light load a batch is one event and
nothing waits for anything.

A batch that fails (the database is down) fails every delivery in it; each then answers 5xx and
the provider delivers again later. Storing is idempotent, so nothing is lost or doubled either way.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from datetime import datetime

from sqlalchemy.engine import Connection, Engine

from ledger.clock import utc_now
from ledger.db import run_transaction
from webhooks.inbox import Stored, store_many
from webhooks.writers import one_writer

log = logging.getLogger("nofu.webhooks")

DEFAULT_MAX_BATCH = 256
_STOP = object()


class GroupCommitter:
    """Stores submitted bodies on its own thread, many per transaction (see the module docstring)."""

    def __init__(
        self,
        engine: Engine,
        *,
        max_batch: int = DEFAULT_MAX_BATCH,
        clock: Callable[[], datetime] = utc_now,
        on_stored: Callable[[], None] | None = None,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.engine = engine
        self.max_batch = max_batch
        self.clock = clock
        self.on_stored = on_stored
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.batches = 0
        self.stored = 0

    def start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="nofu-webhook-intake", daemon=True)
                self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(_STOP)
            thread.join(timeout)

    def submit(self, payload: bytes) -> Future[Stored]:
        """Queue one verified body; the future resolves once it is committed (or fails)."""
        self.start()
        future: Future[Stored] = Future()
        self._queue.put((payload, future))
        return future

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch = [first]
            while len(batch) < self.max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    self._queue.put(_STOP)  # finish this batch, then stop
                    break
                batch.append(item)
            self._commit(batch)  # type: ignore[arg-type]

    def _commit(self, batch: list[tuple[bytes, Future[Stored]]]) -> None:
        def work(conn: Connection) -> list[Stored]:
            return store_many(conn, [payload for payload, _ in batch], now=self.clock())

        try:
            with one_writer(self.engine):
                results = run_transaction(self.engine, work)
        except BaseException as exc:  # every delivery in the batch answers 5xx and is re-sent
            log.exception("webhook intake batch of %d failed", len(batch))
            for _, future in batch:
                future.set_exception(exc)
            return
        self.batches += 1
        self.stored += len(batch)
        for (_, future), result in zip(batch, results, strict=True):
            future.set_result(result)
        if self.on_stored is not None and any(not r.duplicate and not r.poison for r in results):
            self.on_stored()
