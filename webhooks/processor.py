"""The processor: claims due events and applies each in its own transaction.

Claiming (one short transaction per batch): due rows — ``pending`` whose retry time has come, and
``processing`` whose lease ran out because its worker died — are selected ``FOR UPDATE SKIP
LOCKED`` on PostgreSQL (several workers take disjoint batches without waiting on each other) and
marked ``processing`` with this batch's lease token and a lease expiry. On SQLite every write
transaction starts with ``BEGIN IMMEDIATE``, so claims are serialised by the database itself.

Applying (one transaction per event): the row is locked again and must still carry our token —
if the lease ran out and another worker took the event, we stop. The handler runs in that
transaction and the outcome is written in it, so the effect and the "done" mark commit together:
an event is never applied twice, and a worker killed mid-event rolls back and leaves the row to
be claimed again when its lease expires. While our transaction holds the row lock no other
worker can claim the row (SKIP LOCKED passes it by), even if our lease has run out meanwhile.

Two events about the same object (``charge.succeeded`` and ``payment_intent.succeeded``) may be
in hand at once in two workers; the service they call is idempotent, so the money moves once, and
the inbox records which event moved it: an applied outcome names its one-time effect
(``effect_key``, unique), and an event that arrives second at an effect already on record is
recorded as skipped, naming the first.

Failures and "not yet" retry with backoff (``webhooks.retry``) and dead-letter after the limit;
``Refuse`` dead-letters at once. A worker that keeps dying on one event also dead-letters it:
every claim counts as an attempt.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ledger.clock import to_utc, utc_now
from ledger.db import run_transaction
from webhooks.handlers import (
    HandlerRegistry,
    InboxEvent,
    NotYet,
    Outcome,
    OutcomeKind,
    Outside,
    Refuse,
)
from webhooks.retry import RetryPolicy
from webhooks.schema import (
    DEAD,
    MAX_ERROR,
    MAX_OUTCOME,
    PENDING,
    PROCESSING,
    webhook_events,
)
from webhooks.writers import one_writer

log = logging.getLogger("nofu.webhooks")

LOST = "lost"  # the lease was taken over: another worker owns the event now
DEFAULT_LEASE = timedelta(seconds=60)
DEFAULT_BATCH = 20
MAX_STEPS = 4  # Outside steps per processing: a handler that keeps asking is failing

t = webhook_events


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class Claim:
    id: int
    token: str


class Processor:
    """Applies stored events through the handler registry (see the module docstring).

    Thread-safe for one thread per instance; run several instances (threads or processes) for
    parallelism on PostgreSQL. ``clock`` is injectable so tests can move past backoff delays.
    """

    def __init__(
        self,
        engine: Engine,
        registry: HandlerRegistry,
        *,
        policy: RetryPolicy | None = None,
        lease: timedelta = DEFAULT_LEASE,
        batch_size: int = DEFAULT_BATCH,
        worker_id: str | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if lease <= timedelta(0):
            raise ValueError("the lease must be positive")
        self.engine = engine
        self.registry = registry
        self.policy = policy or RetryPolicy()
        self.lease = lease
        self.batch_size = batch_size
        self.worker_id = (worker_id or default_worker_id())[:200]
        self.clock = clock
        self.counts: Counter[str] = Counter()
        self._wake = threading.Event()

    def now(self) -> datetime:
        return to_utc(self.clock())

    # --- claiming ---------------------------------------------------------------------------

    def claim(self, limit: int | None = None) -> list[Claim]:
        """Take up to ``limit`` due events under a fresh lease (one transaction)."""
        limit = limit or self.batch_size
        with one_writer(self.engine):
            return run_transaction(self.engine, lambda conn: self._claim(conn, limit))

    def _claim(self, conn: Connection, limit: int) -> list[Claim]:
        now = self.now()
        token = uuid.uuid4().hex

        def due(state: str, n: int) -> list[Any]:
            return list(
                conn.execute(
                    sa.select(t.c.id, t.c.attempts)
                    .where(t.c.state == state, t.c.next_attempt_at <= now)
                    .order_by(t.c.next_attempt_at, t.c.id)
                    .limit(n)
                    .with_for_update(skip_locked=True)
                )
            )

        # Leases that ran out first (their worker died: they have waited longest), then new work.
        expired = due(PROCESSING, limit)
        rows = expired + (due(PENDING, limit - len(expired)) if len(expired) < limit else [])
        worn_out = [row.id for row in expired if self.policy.exhausted(row.attempts)]
        if worn_out:
            conn.execute(
                t.update()
                .where(t.c.id.in_(worn_out))
                .values(
                    state=DEAD, lease_token=None, lease_owner=None, processed_at=now,
                    last_error="the worker processing it stopped (lease expired) on every attempt",
                )
            )
            self.counts[DEAD] += len(worn_out)
            log.error("webhook events dead-lettered after lost leases", extra={"events": worn_out})
        ids = [row.id for row in rows if row.id not in worn_out]
        if not ids:
            return []
        conn.execute(
            t.update()
            .where(t.c.id.in_(ids))
            .values(
                state=PROCESSING, lease_token=token, lease_owner=self.worker_id,
                next_attempt_at=now + self.lease, attempts=t.c.attempts + 1,
            )
        )
        return [Claim(id, token) for id in ids]

    # --- applying ---------------------------------------------------------------------------

    def process(self, claim: Claim) -> str:
        """Apply one claimed event; returns its new state (or ``lost``)."""
        prepared: Any = None
        steps = 0
        while True:

            def apply(conn: Connection, done: Any = prepared, n: int = steps) -> str:
                return self._apply(conn, claim, done, n)

            try:
                with one_writer(self.engine):
                    state = run_transaction(self.engine, apply)
            except Outside as need:
                if steps >= MAX_STEPS:
                    return self._failed(claim, f"the handler asked for more than {MAX_STEPS} outside steps")
                try:
                    prepared = need.step()
                except NotYet as wait:
                    return self._failed(claim, f"not yet: {wait.reason}")
                except Refuse as refusal:
                    return self._dead(claim, f"refused: {refusal.reason}")
                except Exception as exc:  # noqa: BLE001 — whatever the step raised is the event's failure
                    return self._failed(claim, f"{need.reason}: {_describe(exc)}", exc)
                steps += 1
                continue
            except NotYet as wait:
                return self._failed(claim, f"not yet: {wait.reason}")
            except Refuse as refusal:
                return self._dead(claim, f"refused: {refusal.reason}")
            except Exception as exc:  # noqa: BLE001 — a handler's failure of any kind is recorded and retried
                return self._failed(claim, _describe(exc), exc)
            self.counts[state] += 1
            return state

    def _locked(self, conn: Connection, claim: Claim) -> Any:
        row = conn.execute(sa.select(t).where(t.c.id == claim.id).with_for_update()).first()
        if row is None or row.state != PROCESSING or row.lease_token != claim.token:
            return None
        return row

    def _apply(self, conn: Connection, claim: Claim, prepared: Any, steps: int) -> str:
        row = self._locked(conn, claim)
        if row is None:
            log.info("webhook event %s taken over by another worker", claim.id)
            return LOST
        handler = self.registry.handler_for(row.event_type)
        if handler is None:
            outcome = Outcome.ignored(f"nofu does not act on {row.event_type}")
        else:
            event = InboxEvent(
                id=row.id,
                event_id=row.event_id,
                type=row.event_type,
                object_id=row.object_id,
                created=None if row.provider_created_at is None else to_utc(row.provider_created_at),
                payload=InboxEvent.load_payload(row.payload),
                attempts=row.attempts,
                prepared=prepared,
                steps=steps,
            )
            outcome = handler(conn, event)
            if not isinstance(outcome, Outcome):
                raise TypeError(f"the handler for {row.event_type} returned {type(outcome).__name__}, not an Outcome")
        values: dict[str, Any] = {}
        effect = outcome.effect if outcome.kind is OutcomeKind.APPLIED else None
        if effect:
            other = conn.execute(
                sa.select(t.c.event_id).where(t.c.effect_key == effect, t.c.id != claim.id)
            ).scalar()
            if other is not None:
                # Two events raced to the same effect; the other one is on record as its cause.
                outcome = Outcome.skipped(f"{effect} was applied by {other}")
            else:
                values["effect_key"] = effect[:200]
        conn.execute(
            t.update()
            .where(t.c.id == claim.id, t.c.lease_token == claim.token)
            .values(
                state=outcome.kind.value, outcome=outcome.note[:MAX_OUTCOME], processed_at=self.now(),
                lease_token=None, lease_owner=None, **values,
            )
        )
        return outcome.kind.value

    def _failed(self, claim: Claim, message: str, exc: BaseException | None = None) -> str:
        def work(conn: Connection) -> str:
            row = self._locked(conn, claim)
            if row is None:
                return LOST
            now = self.now()
            if self.policy.exhausted(row.attempts):
                values: dict[str, Any] = {"state": DEAD, "processed_at": now}
            else:
                values = {"state": PENDING, "next_attempt_at": now + self.policy.delay(row.attempts)}
            conn.execute(
                t.update()
                .where(t.c.id == claim.id)
                .values(lease_token=None, lease_owner=None, last_error=message[:MAX_ERROR], **values)
            )
            return str(values["state"])

        with one_writer(self.engine):
            state = run_transaction(self.engine, work)
        self.counts[state] += 1
        level = logging.ERROR if state == DEAD else logging.WARNING
        log.log(level, "webhook event %s %s: %s", claim.id, "dead-lettered" if state == DEAD else "will retry",
                message, exc_info=exc if state == DEAD and exc is not None else None)  # fmt: skip
        return state

    def _dead(self, claim: Claim, message: str) -> str:
        def work(conn: Connection) -> str:
            if self._locked(conn, claim) is None:
                return LOST
            conn.execute(
                t.update()
                .where(t.c.id == claim.id)
                .values(state=DEAD, processed_at=self.now(), lease_token=None, lease_owner=None,
                        last_error=message[:MAX_ERROR])
            )
            return DEAD

        with one_writer(self.engine):
            state = run_transaction(self.engine, work)
        self.counts[state] += 1
        log.error("webhook event %s dead-lettered: %s", claim.id, message)
        return state

    # --- loops ------------------------------------------------------------------------------

    def run_once(self) -> int:
        """Claim one batch and process it; returns how many events were claimed."""
        claims = self.claim()
        for claim in claims:
            self.process(claim)
        return len(claims)

    def drain(self, *, max_batches: int | None = None) -> int:
        """Process until nothing is due (or ``max_batches`` batches); returns events claimed."""
        total = batches = 0
        while max_batches is None or batches < max_batches:
            claimed = self.run_once()
            total += claimed
            batches += 1
            if not claimed:
                break
        return total

    def wake(self) -> None:
        """New work was stored: stop idling (called by the intake in the same process)."""
        self._wake.set()

    def run(self, stop: threading.Event, *, idle_seconds: float = 1.0) -> None:
        """Work until ``stop`` is set: batches back to back while there is work, otherwise wait
        for a wake-up or ``idle_seconds`` (retries and expired leases come due on their own)."""
        while not stop.is_set():
            try:
                claimed = self.run_once()
            except Exception:  # the loop must outlive a bad moment (database restart, …)
                log.exception("webhook processor round failed")
                claimed = 0
                stop.wait(idle_seconds)
            if not claimed and not stop.is_set():
                self._wake.wait(idle_seconds)
                self._wake.clear()


def _describe(exc: BaseException) -> str:
    code = getattr(exc, "code", None)
    text = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return f"[{code}] {text}" if isinstance(code, str) else f"{type(exc).__name__}: {text}"


class BackgroundProcessor:
    """A processor on its own daemon thread: ``start()`` on app start-up, ``stop()`` on shutdown.
    ``stop`` lets the event in hand finish (its transaction commits or rolls back whole)."""

    def __init__(self, processor: Processor, *, idle_seconds: float = 1.0, name: str = "nofu-webhooks") -> None:
        self.processor = processor
        self.idle_seconds = idle_seconds
        self.name = name
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self.processor.run, args=(self._stop,), kwargs={"idle_seconds": self.idle_seconds},
            name=self.name, daemon=True,
        )  # fmt: skip
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self.processor.wake()
        if self._thread is not None:
            self._thread.join(timeout=timeout)
            self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()
