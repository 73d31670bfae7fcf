"""The processor: claims due events and applies each in its own transaction.

Claiming (one short transaction per batch): due rows — ``pending`` whose retry time has come, and
``processing`` whose lease ran out because its worker died — are selected ``FOR UPDATE SKIP
LOCKED`` on PostgreSQL (several workers take disjoint batches without waiting on each other) and
marked ``processing`` with this batch's lease token and a lease expiry. On SQLite every write
transaction starts with ``BEGIN IMMEDIATE``, so claims are serialised by the database itself.

Applying (one transaction per event): the handler runs in the event's transaction and the
outcome is written in it, by an update that only matches while the row still carries our lease
token — if the lease ran out and another worker took the event, nothing matches and the whole
transaction rolls back, effect included. So the effect and the "done" mark commit together: an
event is never applied twice, and a worker killed mid-event rolls back and leaves the row to be
claimed again when its lease expires. The row is locked by that last update, after whatever the
handler locked (attempt, invoice, the ledger's chain head), so workers lock in one order. Failure
and dead-letter marks lock the row first and check the token (``FOR UPDATE``).

Two events about the same object (``charge.succeeded`` and ``payment_intent.succeeded``) may be
in hand at once in two workers; the service they call is idempotent, so the money moves once, and
the inbox records which event moved it: an applied outcome names its one-time effect
(``effect_key``, unique), and an event that arrives second at an effect already on record is
recorded as skipped, naming the first.

Cost (it decides throughput): a worker holds one connection for a batch (no pool checkout per
event); on PostgreSQL the claim is one ``UPDATE … FROM (SELECT … FOR UPDATE SKIP LOCKED LIMIT n)
RETURNING`` that hands back what the handlers read (type, ids, payload — never changed once
stored), so an event's own transaction is what its handler does plus one prebuilt update and one
commit. The prebuilt statements run on the driver's cursor (``ledger.db.execute``).

Triage (when the registry has one, see ``webhooks.handlers``): before a batch is applied, the
triage reads what it needs once for the whole batch and decides the events that change nothing
(skipped, ignored); their outcomes are written by one executemany of the same guarded update in
one transaction, which has no effect to keep atomic with them. A lease lost on any of them rolls
that transaction back and every event of the batch goes through its handler as usual. The events
the triage names for a second look (a later event about an object an earlier one of the batch
acts on) are triaged again after the others ran — by then, usually, the earlier event's effect is
committed and they are decided too. Every event that changes anything is still applied alone in
its own transaction. Unknown event types are ignored there too, triage or not.

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
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ledger.clock import to_utc, utc_now
from ledger.db import execute, run_transaction
from webhooks.handlers import (
    HandlerRegistry,
    InboxEvent,
    NotYet,
    Outcome,
    OutcomeKind,
    Outside,
    Refuse,
    Triage,
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


class _Lost(Exception):
    """The outcome update found another worker's token: roll the event's transaction back."""
DEFAULT_LEASE = timedelta(seconds=60)
DEFAULT_BATCH = 20
MAX_STEPS = 4  # Outside steps per processing: a handler that keeps asking is failing

t = webhook_events
T = TypeVar("T")

# Statements are built once (building a Core statement and its cache key per call costs about
# as much as running it). Bind names avoid column names, which Core reserves in SET clauses.
_CLAIMED_COLUMNS = (
    t.c.id, t.c.attempts, t.c.event_id, t.c.event_type, t.c.object_id, t.c.provider_created_at, t.c.payload,
)  # fmt: skip


def _due(state: str) -> Any:
    return (
        sa.select(t.c.next_attempt_at.label("due_at"), *_CLAIMED_COLUMNS)
        .where(t.c.state == state, t.c.next_attempt_at <= sa.bindparam("p_now"))
        .order_by(t.c.next_attempt_at, t.c.id)
        .limit(sa.bindparam("p_limit"))
        .with_for_update(skip_locked=True)
    )


_DUE_EXPIRED = _due(PROCESSING)
_DUE_PENDING = _due(PENDING)
_LEASE_VALUES = {
    "state": PROCESSING, "lease_token": sa.bindparam("p_token"), "lease_owner": sa.bindparam("p_owner"),
    "next_attempt_at": sa.bindparam("p_until"), "attempts": t.c.attempts + 1,
}  # fmt: skip
_LEASE = t.update().where(t.c.id.in_(sa.bindparam("p_ids", expanding=True))).values(**_LEASE_VALUES)
# PostgreSQL: select due rows (skipping those another worker holds) and lease them in one statement.
_pending_due = (
    sa.select(t.c.id, t.c.next_attempt_at)
    .where(t.c.state == PENDING, t.c.next_attempt_at <= sa.bindparam("p_now"))
    .order_by(t.c.next_attempt_at, t.c.id)
    .limit(sa.bindparam("p_limit"))
    .with_for_update(skip_locked=True)
    .subquery("due")
)
_CLAIM_PENDING_PG = (
    t.update()
    .where(t.c.id == _pending_due.c.id)
    .values(**_LEASE_VALUES)
    .returning(_pending_due.c.next_attempt_at.label("due_at"), *_CLAIMED_COLUMNS)
)
_LOCK = (
    sa.select(t.c.id)
    .where(t.c.id == sa.bindparam("p_id"), t.c.state == PROCESSING, t.c.lease_token == sa.bindparam("p_token"))
    .with_for_update()
)
_EFFECT_OWNER = sa.select(t.c.event_id).where(t.c.effect_key == sa.bindparam("p_effect"), t.c.id != sa.bindparam("p_id"))
_DONE_VALUES = {
    "state": sa.bindparam("p_state"), "outcome": sa.bindparam("p_outcome"), "processed_at": sa.bindparam("p_at"),
    "lease_token": None, "lease_owner": None,
}  # fmt: skip
_DONE = (
    t.update()
    .where(t.c.id == sa.bindparam("p_id"), t.c.state == PROCESSING, t.c.lease_token == sa.bindparam("p_token"))
    .values(**_DONE_VALUES)
)
_other = t.alias("other")
# An applied outcome names its effect, unless another event is already on record for it.
_DONE_WITH_EFFECT = _DONE.where(
    ~sa.exists().where(_other.c.effect_key == sa.bindparam("p_effect"), _other.c.id != sa.bindparam("p_id"))
).values(effect_key=sa.bindparam("p_effect"))


def _unhandled(event_type: str) -> Outcome:
    return Outcome.ignored(f"nofu does not act on {event_type}")


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class Claim:
    """One event leased to this worker: its row id and lease token, and what the claim read of
    the stored event (which never changes once stored) for the handler."""

    id: int
    token: str
    attempts: int
    event_id: str
    event_type: str | None
    object_id: str | None
    created: datetime | None
    payload: bytes = field(repr=False)

    @classmethod
    def of(cls, row: Any, token: str, attempts: int) -> Claim:
        return cls(
            id=row.id, token=token, attempts=attempts, event_id=row.event_id, event_type=row.event_type,
            object_id=row.object_id, created=None if row.provider_created_at is None else to_utc(row.provider_created_at),
            payload=bytes(row.payload),
        )  # fmt: skip


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

    def _write(self, conn: Connection, work: Callable[[Connection], T]) -> T:
        with one_writer(self.engine):
            return run_transaction(conn, work)

    # --- claiming ---------------------------------------------------------------------------

    def claim(self, limit: int | None = None) -> list[Claim]:
        """Take up to ``limit`` due events under a fresh lease (one transaction)."""
        with self.engine.connect() as conn:
            return self._claim_on(conn, limit)

    def _claim_on(self, conn: Connection, limit: int | None = None) -> list[Claim]:
        n = limit or self.batch_size
        return self._write(conn, lambda c: self._claim(c, n))

    def _claim(self, conn: Connection, limit: int) -> list[Claim]:
        now = self.now()
        token = uuid.uuid4().hex
        lease = {"p_token": token, "p_owner": self.worker_id, "p_until": now + self.lease}
        # Leases that ran out first (their worker died: they have waited longest), then new work.
        expired = list(execute(conn, _DUE_EXPIRED, {"p_now": now, "p_limit": limit}))
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
        taken = [row for row in expired if row.id not in worn_out]
        if taken:
            conn.execute(_LEASE, {"p_ids": [row.id for row in taken], **lease})
        claims = [Claim.of(row, token, row.attempts + 1) for row in taken]
        if len(expired) < limit:
            wanted = {"p_now": now, "p_limit": limit - len(expired)}
            if conn.dialect.name == "postgresql":
                # RETURNING shows the attempts as counted by this claim; its order is not the due order.
                fresh = sorted(execute(conn, _CLAIM_PENDING_PG, {**wanted, **lease}), key=lambda r: (r.due_at, r.id))
                claims += [Claim.of(row, token, row.attempts) for row in fresh]
            else:
                due = list(execute(conn, _DUE_PENDING, wanted))
                if due:
                    conn.execute(_LEASE, {"p_ids": [row.id for row in due], **lease})
                claims += [Claim.of(row, token, row.attempts + 1) for row in due]
        return claims

    # --- applying ---------------------------------------------------------------------------

    def process(self, claim: Claim, conn: Connection | None = None) -> str:
        """Apply one claimed event; returns its new state (or ``lost``). ``conn``: a connection
        the caller keeps between events (not in a transaction), else one is taken for it."""
        if conn is None:
            with self.engine.connect() as own:
                return self._process(own, claim)
        return self._process(conn, claim)

    def _process(self, conn: Connection, claim: Claim, event: InboxEvent | None = None) -> str:
        prepared: Any = None
        steps = 0
        while True:

            def apply(c: Connection, done: Any = prepared, n: int = steps) -> str:
                return self._apply(c, claim, done, n, event)

            try:
                state = self._write(conn, apply)
            except _Lost:
                log.info("webhook event %s taken over by another worker", claim.id)
                state = LOST
            except Outside as need:
                if steps >= MAX_STEPS:
                    return self._failed(conn, claim, f"the handler asked for more than {MAX_STEPS} outside steps")
                if not self._write(conn, lambda c: self._locked(c, claim)):
                    log.info("webhook event %s taken over by another worker", claim.id)
                    return LOST  # not ours any more: its new owner runs the step
                try:
                    prepared = need.step()
                except NotYet as wait:
                    return self._failed(conn, claim, f"not yet: {wait.reason}")
                except Refuse as refusal:
                    return self._dead(conn, claim, f"refused: {refusal.reason}")
                except Exception as exc:  # noqa: BLE001 — whatever the step raised is the event's failure
                    return self._failed(conn, claim, f"{need.reason}: {_describe(exc)}", exc)
                steps += 1
                continue
            except NotYet as wait:
                return self._failed(conn, claim, f"not yet: {wait.reason}")
            except Refuse as refusal:
                return self._dead(conn, claim, f"refused: {refusal.reason}")
            except Exception as exc:  # noqa: BLE001 — a handler's failure of any kind is recorded and retried
                return self._failed(conn, claim, _describe(exc), exc)
            self.counts[state] += 1
            return state

    @staticmethod
    def _locked(conn: Connection, claim: Claim) -> bool:
        """Lock the event's row for this transaction; False if it is no longer ours."""
        return execute(conn, _LOCK, {"p_id": claim.id, "p_token": claim.token}).first() is not None

    @staticmethod
    def _event(claim: Claim) -> InboxEvent:
        """The claimed event as handlers see it (parses the payload; raises if it is not an object)."""
        return InboxEvent(
            id=claim.id,
            event_id=claim.event_id,
            type=claim.event_type or "",
            object_id=claim.object_id,
            created=claim.created,
            payload=InboxEvent.load_payload(claim.payload),
            attempts=claim.attempts,
        )

    def _done_values(self, claim: Claim, outcome: Outcome, now: datetime) -> dict[str, Any]:
        return {
            "p_id": claim.id, "p_token": claim.token, "p_at": now, "p_state": outcome.kind.value,
            "p_outcome": outcome.note[:MAX_OUTCOME],
        }  # fmt: skip

    def _apply(self, conn: Connection, claim: Claim, prepared: Any, steps: int, event: InboxEvent | None) -> str:
        event_type = claim.event_type or ""
        handler = self.registry.handler_for(event_type)
        if handler is None:
            outcome = _unhandled(event_type)
        else:
            event = (event or self._event(claim)).with_state(prepared, steps)
            outcome = handler(conn, event)
            if not isinstance(outcome, Outcome):
                raise TypeError(f"the handler for {event_type} returned {type(outcome).__name__}, not an Outcome")
        values = self._done_values(claim, outcome, self.now())
        effect = outcome.effect if outcome.kind is OutcomeKind.APPLIED else None
        if effect:
            if execute(conn, _DONE_WITH_EFFECT, {**values, "p_effect": effect[:200]}).rowcount == 1:
                return outcome.kind.value
            other = execute(conn, _EFFECT_OWNER, {"p_effect": effect[:200], "p_id": claim.id}).scalar()
            if other is None:
                raise _Lost
            # Two events raced to the same effect; the other one is on record as its cause.
            outcome = Outcome.skipped(f"{effect} was applied by {other}")
            values.update(p_state=outcome.kind.value, p_outcome=outcome.note[:MAX_OUTCOME])
        if execute(conn, _DONE, values).rowcount != 1:
            raise _Lost
        return outcome.kind.value

    def _failed(self, conn: Connection, claim: Claim, message: str, exc: BaseException | None = None) -> str:
        def work(conn: Connection) -> str:
            if not self._locked(conn, claim):
                return LOST
            now = self.now()
            if self.policy.exhausted(claim.attempts):
                values: dict[str, Any] = {"state": DEAD, "processed_at": now}
            else:
                values = {"state": PENDING, "next_attempt_at": now + self.policy.delay(claim.attempts)}
            conn.execute(
                t.update()
                .where(t.c.id == claim.id)
                .values(lease_token=None, lease_owner=None, last_error=message[:MAX_ERROR], **values)
            )
            return str(values["state"])

        state = self._write(conn, work)
        self.counts[state] += 1
        level = logging.ERROR if state == DEAD else logging.WARNING
        log.log(level, "webhook event %s %s: %s", claim.id, "dead-lettered" if state == DEAD else "will retry",
                message, exc_info=exc if state == DEAD and exc is not None else None)  # fmt: skip
        return state

    def _dead(self, conn: Connection, claim: Claim, message: str) -> str:
        def work(conn: Connection) -> str:
            if not self._locked(conn, claim):
                return LOST
            conn.execute(
                t.update()
                .where(t.c.id == claim.id)
                .values(state=DEAD, processed_at=self.now(), lease_token=None, lease_owner=None,
                        last_error=message[:MAX_ERROR])
            )
            return DEAD

        state = self._write(conn, work)
        self.counts[state] += 1
        log.error("webhook event %s dead-lettered: %s", claim.id, message)
        return state

    # --- loops ------------------------------------------------------------------------------

    def run_once(self) -> int:
        """Claim one batch and process it on one connection; returns how many were claimed."""
        with self.engine.connect() as conn:
            claims = self._claim_on(conn)
            self._run_batch(conn, claims)
        return len(claims)

    def _run_batch(self, conn: Connection, claims: list[Claim]) -> None:
        """Triage the batch, apply what is left one event at a time, then triage what the
        triage wanted to see again and apply what is still left (see the module docstring)."""
        unhandled: dict[int, Outcome] = {}
        events: dict[int, InboxEvent] = {}
        for claim in claims:
            event_type = claim.event_type or ""
            if self.registry.handler_for(event_type) is None:
                unhandled[claim.id] = _unhandled(event_type)
                continue
            try:
                events[claim.id] = self._event(claim)
            except Exception:  # noqa: BLE001 — an unreadable payload fails in its own processing
                pass
        rest, again = self._triage(conn, claims, events, unhandled, second_look=True)
        for claim in rest:
            self._process(conn, claim, events.get(claim.id))
        if again:  # those the triage wanted again all have a handler: nothing unhandled among them
            rest, _ = self._triage(conn, again, events, {}, second_look=False)
            for claim in rest:
                self._process(conn, claim, events.get(claim.id))

    def _triage(
        self,
        conn: Connection,
        claims: list[Claim],
        events: dict[int, InboxEvent],
        unhandled: dict[int, Outcome],
        *,
        second_look: bool,
    ) -> tuple[list[Claim], list[Claim]]:
        """Record in one transaction the outcomes the triage can decide for ``claims`` (whose
        payloads, where they parsed, are in ``events``) and those of the ``unhandled`` ones;
        returns the events left to apply one by one and, when ``second_look``, those the triage
        wants to see again after them. A lone event goes straight to its handler: triaging it
        would cost as much or more."""
        triage = self.registry.triage
        if len(claims) < 2:
            return claims, []
        batch = [events[claim.id] for claim in claims if claim.id in events]
        if not unhandled and (triage is None or not batch):
            return claims, []
        batch_ids = {event.id for event in batch}

        def work(c: Connection) -> Triage:
            found = triage(c, batch) if triage is not None and batch else Triage()
            for event_id, outcome in found.decided.items():
                if outcome.kind is OutcomeKind.APPLIED or event_id not in batch_ids:
                    raise ValueError(f"a triage may only skip or ignore events of its batch ({outcome})")
            outcomes = {**unhandled, **found.decided}
            now = self.now()
            values = [self._done_values(claim, outcomes[claim.id], now) for claim in claims if claim.id in outcomes]
            if values and execute(c, _DONE, values).rowcount != len(values):
                raise _Lost  # some lease ran out: let each event find out on its own
            return Triage(outcomes, found.again)

        try:
            result = self._write(conn, work)
        except _Lost:
            result = Triage()
        except Exception:  # the triage is an optimisation: on any failure the handlers decide
            log.exception("webhook triage of %d events failed; applying them one by one", len(claims))
            result = Triage()
        for outcome in result.decided.values():
            self.counts[outcome.kind.value] += 1
        left = [claim for claim in claims if claim.id not in result.decided]
        if not second_look:
            return left, []
        return [c for c in left if c.id not in result.again], [c for c in left if c.id in result.again]

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
