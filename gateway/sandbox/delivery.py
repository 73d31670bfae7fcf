"""Webhook delivery: signed POSTs, retries with backoff, and injectable faults.

Two modes:
- automatic: a background thread sends each event as it is recorded, applying the
  configured faults (drop, duplicate, delay, reorder; by rule or seeded probability) and
  retrying failed attempts (non-2xx or connection error) after `retry_delays`.
- manual: events queue up and are sent only by `flush()`, in the order asked for, so
  tests are deterministic; a failed attempt goes back to the queue until retries run out.

Locking: the dispatcher has its own lock and never holds it while calling back into the
sandbox (which takes the sandbox lock) or while doing network I/O.
"""

from __future__ import annotations

import heapq
import itertools
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import httpx

from gateway.sandbox.events import endpoint_wants
from gateway.sandbox.signing import signature_header

ACTIONS = ("drop", "duplicate", "delay", "reorder")
USER_AGENT = "Stripe/1.0 (+https://stripe.com/docs/webhooks)"


class DeliveryError(ValueError):
    """A refused delivery control request; `code` is stable."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class DeliveryRule:
    """Apply `action` to the next `times` events matching `event_type` (pattern) or `event_id`.

    `times=0` means every matching event. `delay_seconds` overrides the faults' delay.
    """

    action: str
    event_type: str | None = None
    event_id: str | None = None
    times: int = 1
    delay_seconds: float | None = None

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise DeliveryError("delivery_action_invalid", f"action must be one of {', '.join(ACTIONS)}")
        if self.times < 0:
            raise DeliveryError("delivery_rule_invalid", "times must be ≥ 0")

    def matches(self, event_id: str, event_type: str) -> bool:
        if self.event_id is not None and self.event_id != event_id:
            return False
        return self.event_type is None or endpoint_wants((self.event_type,), event_type)


@dataclass(frozen=True, slots=True)
class DeliveryFaults:
    """Probabilities (0..1) of each fault per event, drawn from a RNG seeded with `seed`.

    Rules are consulted first; an event matched by a rule gets only that rule's action.
    """

    drop: float = 0.0
    duplicate: float = 0.0
    delay: float = 0.0
    reorder: float = 0.0
    delay_seconds: float = 0.5
    seed: int | None = None
    rules: tuple[DeliveryRule, ...] = ()

    def __post_init__(self) -> None:
        for name in ACTIONS:
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise DeliveryError("delivery_probability_invalid", f"{name} must be between 0 and 1")
        if self.delay_seconds < 0:
            raise DeliveryError("delivery_delay_invalid", "delay_seconds must be ≥ 0")


@dataclass(frozen=True, slots=True)
class DeliveryAttempt:
    """One row of the delivery log.

    outcome: "delivered" (2xx), "failed" (will be retried), "abandoned" (failed, retries
    exhausted), "dropped" (fault injected: never sent).
    copy: 0 for the event's own delivery, 1.. for injected duplicates.
    """

    event_id: str
    event_type: str
    attempt: int
    outcome: str
    status_code: int | None
    error: str | None
    at: float
    copy: int = 0


@dataclass(slots=True)
class _Job:
    event_id: str
    event_type: str
    attempt: int = 1
    copy: int = 0


@dataclass(slots=True)
class _Plan:
    drop: bool = False
    copies: int = 1
    delay: float = 0.0
    reorder: bool = False


@dataclass(slots=True)
class _Endpoint:
    url: str | None
    secret: str


@dataclass(slots=True)
class _Held:
    job: _Job
    deadline: float


PayloadFor = Callable[[str], bytes | None]
OnDelivered = Callable[[str], None]


@dataclass(slots=True)
class _State:
    mode: str = "automatic"
    faults: DeliveryFaults = field(default_factory=DeliveryFaults)
    rule_uses: dict[int, int] = field(default_factory=dict)
    heap: list[tuple[float, int, _Job]] = field(default_factory=list)
    held: list[_Held] = field(default_factory=list)
    queued: list[_Job] = field(default_factory=list)
    in_flight: int = 0
    log: list[DeliveryAttempt] = field(default_factory=list)


class WebhookDispatcher:
    def __init__(
        self,
        *,
        url: str | None,
        secret: str,
        retry_delays: Sequence[float],
        timeout: float,
        payload_for: PayloadFor,
        on_delivered: OnDelivered,
    ) -> None:
        self._endpoint = _Endpoint(url, secret)
        self._retry_delays = tuple(retry_delays)
        self._timeout = timeout
        self._payload_for = payload_for
        self._on_delivered = on_delivered
        self._cond = threading.Condition()
        self._state = _State()
        self._rng = random.Random()
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None
        self._stopping = False

    # ---- configuration -------------------------------------------------------------

    @property
    def url(self) -> str | None:
        with self._cond:
            return self._endpoint.url

    def set_endpoint(self, url: str | None, secret: str | None = None) -> None:
        with self._cond:
            self._endpoint.url = url
            if secret is not None:
                self._endpoint.secret = secret

    @property
    def secret(self) -> str:
        with self._cond:
            return self._endpoint.secret

    def set_retry_delays(self, delays: Sequence[float]) -> None:
        if any(delay < 0 for delay in delays):
            raise DeliveryError("delivery_delay_invalid", "retry delays must be ≥ 0")
        with self._cond:
            self._retry_delays = tuple(delays)

    def set_faults(self, faults: DeliveryFaults) -> None:
        with self._cond:
            self._state.faults = faults
            self._state.rule_uses = {}
            self._rng = random.Random(faults.seed)

    def set_mode(self, mode: str) -> None:
        """Switching to automatic releases everything queued in manual mode, in order."""
        if mode not in ("automatic", "manual"):
            raise DeliveryError("delivery_mode_invalid", "mode must be automatic or manual")
        with self._cond:
            self._state.mode = mode
            if mode == "automatic":
                for job in self._state.queued:
                    self._push(job, 0.0)
                self._state.queued.clear()
                self._ensure_thread()
            self._cond.notify_all()

    @property
    def mode(self) -> str:
        with self._cond:
            return self._state.mode

    # ---- intake --------------------------------------------------------------------

    def enqueue(self, event_id: str, event_type: str) -> None:
        """Called (under the sandbox lock) when an event is recorded; never blocks on I/O."""
        job = _Job(event_id, event_type)
        with self._cond:
            if self._state.mode == "manual":
                self._state.queued.append(job)
                return
            plan = self._plan(event_id, event_type)
            if plan.drop:
                self._state.log.append(
                    DeliveryAttempt(event_id, event_type, 0, "dropped", None, "fault injected: drop", time.time())
                )
                return
            for copy in range(plan.copies):
                copied = replace(job, copy=copy)
                if plan.reorder and copy == 0:
                    self._state.held.append(_Held(copied, time.monotonic() + plan.delay))
                else:
                    # a duplicate trails the original slightly, as Stripe's duplicates do
                    self._push(copied, plan.delay + 0.01 * copy)
            self._ensure_thread()
            self._cond.notify_all()

    def _plan(self, event_id: str, event_type: str) -> _Plan:
        faults = self._state.faults
        for index, rule in enumerate(faults.rules):
            used = self._state.rule_uses.get(index, 0)
            if rule.matches(event_id, event_type) and (rule.times == 0 or used < rule.times):
                self._state.rule_uses[index] = used + 1
                delay = faults.delay_seconds if rule.delay_seconds is None else rule.delay_seconds
                return _Plan(
                    drop=rule.action == "drop",
                    copies=2 if rule.action == "duplicate" else 1,
                    delay=delay if rule.action in ("delay", "reorder") else 0.0,
                    reorder=rule.action == "reorder",
                )
        draw = self._rng.random
        if draw() < faults.drop:
            return _Plan(drop=True)
        plan = _Plan()
        if draw() < faults.duplicate:
            plan.copies = 2
        if draw() < faults.delay:
            plan.delay = faults.delay_seconds
        if draw() < faults.reorder:
            plan.reorder = True
            plan.delay = max(plan.delay, faults.delay_seconds)
        return plan

    def _push(self, job: _Job, delay: float) -> None:
        heapq.heappush(self._state.heap, (time.monotonic() + delay, next(self._seq), job))

    # ---- manual mode ---------------------------------------------------------------

    def queued(self) -> list[str]:
        with self._cond:
            return [job.event_id for job in self._state.queued]

    def flush(
        self,
        event_ids: Sequence[str] | None = None,
        *,
        order: str = "fifo",
        drop: Sequence[str] = (),
        duplicate: Sequence[str] = (),
        seed: int | None = None,
    ) -> list[DeliveryAttempt]:
        """Send queued events now, in the calling thread; returns the attempts made.

        `event_ids` picks and orders the events to send (default: all, in `order`:
        "fifo", "reverse" or "shuffle" with `seed`); `drop` discards queued events without
        sending them, `duplicate` sends those events twice in a row.
        """
        if order not in ("fifo", "reverse", "shuffle"):
            raise DeliveryError("delivery_order_invalid", "order must be fifo, reverse or shuffle")
        with self._cond:
            queued = self._state.queued
            known = {job.event_id for job in queued}
            for event_id in [*(event_ids or ()), *drop, *duplicate]:
                if event_id not in known:
                    raise DeliveryError("delivery_not_queued", f"event {event_id} is not queued for delivery")
            dropped = [job for job in queued if job.event_id in set(drop)]
            remaining = [job for job in queued if job.event_id not in set(drop)]
            if event_ids is None:
                chosen = list(remaining)
                if order == "reverse":
                    chosen.reverse()
                elif order == "shuffle":
                    random.Random(seed).shuffle(chosen)
            else:
                by_id = {job.event_id: job for job in remaining}
                chosen = [by_id[event_id] for event_id in event_ids if event_id in by_id]
            chosen_ids = {id(job) for job in chosen}
            self._state.queued = [job for job in remaining if id(job) not in chosen_ids]
            state = self._state
            state.in_flight += 1
            now = time.time()
            attempts = [
                DeliveryAttempt(j.event_id, j.event_type, 0, "dropped", None, "dropped by flush", now)
                for j in dropped
            ]
            self._state.log.extend(attempts)
        try:
            with self._new_client() as client:
                for job in chosen:
                    copies = [job, replace(job, copy=1)] if job.event_id in set(duplicate) else [job]
                    for one in copies:
                        attempt = self._send(one, state, client)
                        attempts.append(attempt)
                        if attempt.outcome == "failed" and one.copy == 0:
                            with self._cond:
                                state.queued.append(replace(one, attempt=one.attempt + 1))
        finally:
            with self._cond:
                state.in_flight -= 1
                self._cond.notify_all()
        return attempts

    # ---- worker --------------------------------------------------------------------

    def _ensure_thread(self) -> None:
        if self._thread is None and not self._stopping:
            self._thread = threading.Thread(target=self._run, name="sandbox-webhooks", daemon=True)
            self._thread.start()

    def _new_client(self) -> httpx.Client:
        """A keep-alive client for one sender (the worker thread, or one flush): a client per
        delivery would cost a TCP connect and an SSL context each time (tens of ms)."""
        return httpx.Client(timeout=self._timeout)

    def _run(self) -> None:
        with self._new_client() as client:
            self._work(client)

    def _work(self, client: httpx.Client) -> None:
        while True:
            with self._cond:
                job = self._next_due_job()
                if job is None:
                    return
                state = self._state  # a reset() meanwhile must not see this job's outcome
                state.in_flight += 1
            try:
                attempt = self._send(job, state, client)
                with self._cond:
                    if attempt.outcome == "failed" and state is self._state:
                        self._push(replace(job, attempt=job.attempt + 1), self._retry_delays[job.attempt - 1])
                    if job.attempt == 1 and job.copy == 0 and state is self._state:
                        self._release_held()  # a later event went out: held ones now trail it
            finally:
                with self._cond:
                    state.in_flight -= 1
                    self._cond.notify_all()

    def _next_due_job(self) -> _Job | None:
        """Wait (holding the condition) until a job is due; None when stopping."""
        while not self._stopping:
            now = time.monotonic()
            for held in list(self._state.held):
                if held.deadline <= now:
                    self._state.held.remove(held)
                    self._push(held.job, 0.0)
            heap = self._state.heap
            if heap and heap[0][0] <= now:
                return heapq.heappop(heap)[2]
            deadlines = [entry[0] for entry in heap[:1]] + [held.deadline for held in self._state.held]
            self._cond.wait(timeout=max(0.0, min(deadlines) - now) if deadlines else None)
        return None

    def _release_held(self) -> None:
        for held in self._state.held:
            self._push(held.job, 0.0)
        self._state.held.clear()

    def _send(self, job: _Job, state: _State, client: httpx.Client) -> DeliveryAttempt:
        """One POST to the endpoint; decides delivered / failed / abandoned."""
        with self._cond:
            url, secret = self._endpoint.url, self._endpoint.secret
            retries_left = job.attempt <= len(self._retry_delays)
        payload = self._payload_for(job.event_id)
        status: int | None = None
        error: str | None = None
        if url is None or payload is None:
            error = "no webhook endpoint configured"
        else:
            timestamp = int(time.time())  # wall clock: receivers check it against their own
            headers = {
                "Content-Type": "application/json; charset=utf-8",
                "Stripe-Signature": signature_header(secret, timestamp, payload),
                "User-Agent": USER_AGENT,
                "Cache-Control": "no-cache",
            }
            try:
                status = client.post(url, content=payload, headers=headers).status_code
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
        delivered = status is not None and 200 <= status < 300
        if delivered:
            outcome = "delivered"
            if job.copy == 0:
                self._on_delivered(job.event_id)
        elif retries_left and url is not None:
            outcome = "failed"
        else:
            outcome = "abandoned"
        attempt = DeliveryAttempt(
            job.event_id, job.event_type, job.attempt, outcome, status, error, time.time(), job.copy
        )
        with self._cond:
            state.log.append(attempt)
        return attempt

    # ---- observation and shutdown -------------------------------------------------

    def log(self) -> list[DeliveryAttempt]:
        with self._cond:
            return list(self._state.log)

    def busy(self) -> int:
        """Deliveries scheduled, held or in flight (manual-mode queue excluded)."""
        with self._cond:
            return len(self._state.heap) + len(self._state.held) + self._state.in_flight

    def wait_idle(self, timeout: float) -> bool:
        """Block until nothing is scheduled or in flight; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._state.heap) + len(self._state.held) + self._state.in_flight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(timeout=min(remaining, 0.05))
            return True

    def reset(self, *, url: str | None, secret: str, retry_delays: Sequence[float]) -> None:
        """Back to the initial state: automatic mode, no faults, empty queues and log.

        A delivery in flight finishes; its outcome is not logged against the new state.
        """
        with self._cond:
            self._state = _State()
            self._rng = random.Random()
            self._endpoint = _Endpoint(url, secret)
            self._retry_delays = tuple(retry_delays)
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)
