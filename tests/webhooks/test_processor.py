"""The processor on both engines: each event applied once, in its own transaction with its
effect; failures retry with backoff and dead-letter; leases survive a dead worker; handlers may
ask for work outside the transaction."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ledger.clock import to_utc, utc_now
from ledger.db import run_transaction
from tests.webhooks.support import (
    body_of,
    create_effects,
    effect_counts,
    event,
    row,
    write_effect,
)
from webhooks import (
    BackgroundProcessor,
    HandlerRegistry,
    InboxEvent,
    NotYet,
    Outcome,
    Outside,
    Processor,
    Refuse,
    RetryPolicy,
    Triage,
    store,
    webhook_events,
)
from webhooks.processor import LOST


class Clock:
    def __init__(self) -> None:
        self.now = utc_now()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def effects_engine(engine: Engine) -> Engine:
    create_effects(engine)
    return engine


def put(engine: Engine, event_type: str = "test.thing", clock: Clock | None = None, **fields: object) -> str:
    """Store an event created a second before ``clock``'s now (so it is due at once)."""
    now = (clock or utc_now)()
    fields.setdefault("created", int(now.timestamp()) - 1)
    evt = event(event_type, **fields)
    run_transaction(engine, lambda conn: store(conn, body_of(evt), now=now))
    return str(evt["id"])


def applying(conn: Connection, evt: InboxEvent) -> Outcome:
    write_effect(conn, evt.event_id)
    return Outcome.applied("done")


def registry(**handlers: object) -> HandlerRegistry:
    reg = HandlerRegistry()
    for name, handler in handlers.items():
        reg.register(name.replace("__", "."), handler)  # type: ignore[arg-type]
    return reg


def test_an_event_is_applied_with_its_effect(effects_engine: Engine, clock: Clock) -> None:
    event_id = put(effects_engine, clock=clock)
    processor = Processor(effects_engine, registry(test__thing=applying), clock=clock)
    assert processor.drain() == 1
    got = row(effects_engine, event_id)
    assert (got.state, got.outcome, got.attempts, got.lease_token) == ("applied", "done", 1, None)
    assert effect_counts(effects_engine) == {event_id: 1}
    assert processor.drain() == 0  # nothing is due any more


def test_events_without_a_handler_are_ignored(engine: Engine, clock: Clock) -> None:
    event_id = put(engine, "payout.paid", clock=clock)
    Processor(engine, registry(), clock=clock).drain()
    got = row(engine, event_id)
    assert got.state == "ignored" and "payout.paid" in got.outcome


def test_a_family_handler_and_an_exact_one(engine: Engine, clock: Clock) -> None:
    seen: list[str] = []
    reg = HandlerRegistry()
    reg.register("charge.*", lambda conn, e: seen.append("family") or Outcome.skipped("f"))
    reg.register("charge.refunded", lambda conn, e: seen.append("exact") or Outcome.applied("e"))
    put(engine, "charge.succeeded", clock=clock)
    put(engine, "charge.refunded", clock=clock)
    Processor(engine, reg, clock=clock).drain()
    assert sorted(seen) == ["exact", "family"]
    with pytest.raises(ValueError):
        reg.register("charge.*", applying)


def test_a_failing_handler_rolls_back_its_effect_and_retries_with_backoff(effects_engine: Engine, clock: Clock) -> None:
    event_id = put(effects_engine, clock=clock)
    failures = {"left": 2}

    def flaky(conn: Connection, evt: InboxEvent) -> Outcome:
        write_effect(conn, evt.event_id)  # written, then rolled back with the failure
        if failures["left"]:
            failures["left"] -= 1
            raise RuntimeError("database of the tax system is down")
        return Outcome.applied("finally")

    policy = RetryPolicy(base_seconds=10, factor=2, jitter=0)
    processor = Processor(effects_engine, registry(test__thing=flaky), policy=policy, clock=clock)
    processor.drain()
    first = row(effects_engine, event_id)
    assert first.state == "pending" and "tax system is down" in first.last_error
    assert to_utc(first.next_attempt_at) == clock.now + timedelta(seconds=10)
    assert effect_counts(effects_engine) == {}
    assert processor.drain() == 0  # not due yet
    clock.advance(seconds=10)
    processor.drain()
    assert to_utc(row(effects_engine, event_id).next_attempt_at) == clock.now + timedelta(seconds=20)
    clock.advance(seconds=20)
    processor.drain()
    done = row(effects_engine, event_id)
    assert (done.state, done.attempts, done.outcome) == ("applied", 3, "finally")
    assert effect_counts(effects_engine) == {event_id: 1}


def test_dead_letter_after_the_attempt_limit(engine: Engine, clock: Clock) -> None:
    event_id = put(engine, clock=clock)

    def broken(conn: Connection, evt: InboxEvent) -> Outcome:
        raise ValueError("cannot parse the metadata")

    processor = Processor(engine, registry(test__thing=broken), policy=RetryPolicy(max_attempts=3, jitter=0), clock=clock)
    for _ in range(5):
        processor.drain()
        clock.advance(hours=2)
    got = row(engine, event_id)
    assert (got.state, got.attempts) == ("dead", 3)
    assert got.processed_at is not None and "cannot parse the metadata" in got.last_error


def test_not_yet_waits_and_refuse_dead_letters_at_once(engine: Engine, clock: Clock) -> None:
    waiting = put(engine, "test.wait", clock=clock)
    refused = put(engine, "test.refuse", clock=clock)
    reg = registry(
        test__wait=lambda conn, e: (_ for _ in ()).throw(NotYet("the payment is not known yet")),
        test__refuse=lambda conn, e: (_ for _ in ()).throw(Refuse("not ours")),
    )
    Processor(engine, reg, clock=clock).drain()
    assert row(engine, waiting).state == "pending"
    assert row(engine, waiting).last_error == "not yet: the payment is not known yet"
    assert (row(engine, refused).state, row(engine, refused).attempts) == ("dead", 1)
    assert row(engine, refused).last_error == "refused: not ours"


def test_outside_steps_run_between_transactions(effects_engine: Engine, clock: Clock) -> None:
    event_id = put(effects_engine, clock=clock)
    calls: list[str] = []

    def handler(conn: Connection, evt: InboxEvent) -> Outcome:
        if evt.prepared is None:
            raise Outside(lambda: calls.append("step") or "answer", "ask the provider")
        write_effect(conn, evt.event_id)
        return Outcome.applied(f"with {evt.prepared} after {evt.steps} step")

    def step_fails(conn: Connection, evt: InboxEvent) -> Outcome:
        raise Outside(lambda: (_ for _ in ()).throw(NotYet("provider says processing")), "ask")

    other = put(effects_engine, "test.other", clock=clock)
    processor = Processor(effects_engine, registry(test__thing=handler, test__other=step_fails), clock=clock)
    processor.drain()
    assert calls == ["step"]
    assert row(effects_engine, event_id).outcome == "with answer after 1 step"
    assert effect_counts(effects_engine) == {event_id: 1}
    assert row(effects_engine, other).last_error == "not yet: provider says processing"


def test_a_handler_that_keeps_asking_fails(engine: Engine, clock: Clock) -> None:
    event_id = put(engine, clock=clock)
    reg = registry(test__thing=lambda conn, e: (_ for _ in ()).throw(Outside(lambda: None, "again")))
    Processor(engine, reg, clock=clock).drain()
    assert "outside steps" in row(engine, event_id).last_error


def test_a_worker_that_died_leaves_the_event_to_be_claimed_after_its_lease(effects_engine: Engine, clock: Clock) -> None:
    event_id = put(effects_engine, clock=clock)
    reg = registry(test__thing=applying)
    dead_worker = Processor(effects_engine, reg, clock=clock, worker_id="dead", lease=timedelta(seconds=60))
    claims = dead_worker.claim()
    assert len(claims) == 1 and row(effects_engine, event_id).lease_owner == "dead"
    survivor = Processor(effects_engine, reg, clock=clock, worker_id="alive")
    assert survivor.claim() == []  # the lease holds
    clock.advance(seconds=61)
    assert survivor.drain() == 1
    got = row(effects_engine, event_id)
    assert (got.state, got.attempts) == ("applied", 2)
    # The first worker wakes up late: its lease is gone, it applies nothing.
    assert dead_worker.process(claims[0]) == LOST
    assert effect_counts(effects_engine) == {event_id: 1}


def test_an_event_whose_workers_keep_dying_is_dead_lettered(engine: Engine, clock: Clock) -> None:
    event_id = put(engine, clock=clock)
    processor = Processor(engine, registry(test__thing=applying), clock=clock, policy=RetryPolicy(max_attempts=2))
    for _ in range(3):
        processor.claim()  # claimed and never finished: the worker "died"
        clock.advance(minutes=2)
    got = row(engine, event_id)
    assert got.state == "dead" and "lease expired" in got.last_error


def test_backlog_is_worked_in_the_providers_order(engine: Engine, clock: Clock) -> None:
    order: list[str] = []
    base = int(clock.now.timestamp())
    late = put(engine, clock=clock, created=base - 100)  # delivered now, created long ago
    newer = put(engine, clock=clock, created=base - 10)
    oldest = put(engine, clock=clock, created=base - 1000)
    reg = registry(test__thing=lambda conn, e: order.append(e.event_id) or Outcome.applied("ok"))
    Processor(engine, reg, clock=clock, batch_size=1).drain()
    assert order == [oldest, late, newer]


def test_background_processor_wakes_on_new_work(effects_engine: Engine) -> None:
    done = threading.Event()

    def handler(conn: Connection, evt: InboxEvent) -> Outcome:
        write_effect(conn, evt.event_id)
        done.set()
        return Outcome.applied("ok")

    processor = Processor(effects_engine, registry(test__thing=handler))
    background = BackgroundProcessor(processor, idle_seconds=30)
    background.start()
    try:
        put(effects_engine)
        processor.wake()
        assert done.wait(10), "the woken processor did not pick up the event"
    finally:
        background.stop()
    assert not background.running


def test_retry_policy_schedule() -> None:
    policy = RetryPolicy()
    schedule = policy.schedule()
    assert schedule[:3] == [10, 20, 40] and schedule[-1] == 3600 and len(schedule) == 15
    assert 7 * 3600 < sum(schedule) < 8 * 3600
    assert policy.delay(1, draw=lambda: 0.0) == timedelta(seconds=8)
    assert policy.delay(1, draw=lambda: 1.0) == timedelta(seconds=12)
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)


@pytest.mark.postgres
def test_concurrent_workers_on_postgresql_apply_each_event_once(pg_engine: Engine) -> None:
    create_effects(pg_engine)
    ids = [put(pg_engine) for _ in range(300)]
    claimed_by: dict[str, set[str]] = {}
    lock = threading.Lock()

    def handler(conn: Connection, evt: InboxEvent) -> Outcome:
        worker = threading.current_thread().name
        with lock:
            claimed_by.setdefault(evt.event_id, set()).add(worker)
        write_effect(conn, evt.event_id, worker)
        return Outcome.applied("ok")

    reg = registry(test__thing=handler)
    workers = [Processor(pg_engine, reg, batch_size=7, worker_id=f"w{i}") for i in range(6)]
    threads = [threading.Thread(target=w.drain, name=f"w{i}") for i, w in enumerate(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert effect_counts(pg_engine) == dict.fromkeys(ids, 1)
    assert all(len(who) == 1 for who in claimed_by.values())
    assert len({next(iter(who)) for who in claimed_by.values()}) > 1, "SKIP LOCKED should spread the work"


def test_one_effect_is_credited_to_one_event(engine: Engine, clock: Clock) -> None:
    first, second = put(engine, clock=clock), put(engine, clock=clock)
    reg = registry(test__thing=lambda conn, e: Outcome.applied(f"money of pa_1 by {e.event_id}", "payment:pa_1:received"))
    Processor(engine, reg, clock=clock).drain()
    a, b = row(engine, first), row(engine, second)
    assert (a.state, a.effect_key) == ("applied", "payment:pa_1:received")
    assert (b.state, b.effect_key) == ("skipped", None)
    assert b.outcome == f"payment:pa_1:received was applied by {first}"


def test_a_lease_taken_over_mid_event_rolls_the_effect_back_on_postgresql(pg_engine: Engine) -> None:
    """The outcome is written only while the row still carries our token: a worker whose lease
    ran out and was taken over while its handler ran commits nothing, effect included."""
    create_effects(pg_engine)
    clock = Clock()
    event_id = put(pg_engine, clock=clock)
    late_clock = Clock()
    late_clock.now = clock.now + timedelta(seconds=61)

    def slow(conn: Connection, evt: InboxEvent) -> Outcome:
        write_effect(conn, evt.event_id, "slow")
        # Meanwhile the lease runs out and another worker claims the event (the row is not
        # locked by this transaction until its outcome is written, so the claim is not blocked).
        assert len(Processor(pg_engine, reg, clock=late_clock, worker_id="fast").claim()) == 1
        return Outcome.applied("slow")

    reg = registry(test__thing=slow)
    slow_worker = Processor(pg_engine, reg, clock=clock, worker_id="slow", lease=timedelta(seconds=60))
    [claim] = slow_worker.claim()
    assert slow_worker.process(claim) == LOST
    assert effect_counts(pg_engine) == {}
    got = row(pg_engine, event_id)
    assert (got.state, got.lease_owner, got.attempts) == ("processing", "fast", 2)


def test_a_claim_hands_over_the_stored_event(engine: Engine, clock: Clock) -> None:
    first = put(engine, clock=clock, created=int(clock.now.timestamp()) - 5)
    second = put(engine, clock=clock, created=int(clock.now.timestamp()) - 50)
    claims = Processor(engine, registry(), clock=clock, worker_id="w").claim()
    assert [c.event_id for c in claims] == [second, first]  # the provider's order
    stored = row(engine, second)
    c = claims[0]
    assert (c.id, c.event_type, c.object_id, c.attempts, c.payload) == (
        stored.id, "test.thing", stored.object_id, 1, bytes(stored.payload)
    )
    assert c.created == to_utc(stored.provider_created_at) and c.token == stored.lease_token


# --- triage ----------------------------------------------------------------------------------


def _counting(engine: Engine) -> list[str]:
    """The SQL of every statement sent on ``engine`` from now on (executemany counts once)."""
    sent: list[str] = []
    sa.event.listen(engine, "before_cursor_execute", lambda conn, cursor, sql, *rest: sent.append(sql))
    return sent


def test_triage_records_what_changes_nothing_in_one_transaction(effects_engine: Engine, clock: Clock) -> None:
    """Events the triage decides are finished without their handler, by one statement; the
    others are applied one by one as usual; unknown types are ignored there too."""
    ids = [put(effects_engine, clock=clock, n=n) for n in range(6)] + [put(effects_engine, "payout.paid", clock=clock)]
    handled: list[str] = []

    def handler(conn: Connection, evt: InboxEvent) -> Outcome:
        handled.append(evt.event_id)
        return applying(conn, evt)

    def triage(conn: Connection, events: list[InboxEvent]) -> Triage:
        return Triage({e.id: Outcome.skipped(f"triaged {e.event_id}") for e in events if e.payload["n"] % 2})

    reg = registry(test__thing=handler)
    reg.register_triage(triage)
    sent = _counting(effects_engine)
    processor = Processor(effects_engine, reg, clock=clock)
    assert processor.drain() == 7
    states = {event_id: (row(effects_engine, event_id).state, row(effects_engine, event_id).outcome) for event_id in ids}
    assert [states[i] for i in ids[:6]] == [
        ("applied", "done"), ("skipped", f"triaged {ids[1]}"), ("applied", "done"),
        ("skipped", f"triaged {ids[3]}"), ("applied", "done"), ("skipped", f"triaged {ids[5]}"),
    ]  # fmt: skip
    assert states[ids[6]][0] == "ignored"
    assert handled == [ids[0], ids[2], ids[4]]
    assert effect_counts(effects_engine) == {i: 1 for i in handled}
    assert processor.counts == {"applied": 3, "skipped": 3, "ignored": 1}
    # Four events finished by one guarded update (sent once, as an executemany).
    finishing = [sql for sql in sent if sql.lstrip().upper().startswith("UPDATE") and "outcome" in sql]
    assert len(finishing) == 1 + 3  # the triage's, then one per applied event


def test_triage_looks_again_after_the_rest_of_the_batch(engine: Engine, clock: Clock) -> None:
    """An event the triage wants to see again is triaged after the others ran, and sees their
    effects; what it still cannot decide goes to its handler."""
    first, second, third = (put(engine, clock=clock, created=int(clock.now.timestamp()) - 9 + n) for n in range(3))
    done: set[str] = set()
    looks: list[list[str]] = []

    def handler(conn: Connection, evt: InboxEvent) -> Outcome:
        done.add(evt.event_id)
        return Outcome.applied("handled")

    def triage(conn: Connection, events: list[InboxEvent]) -> Triage:
        looks.append([e.event_id for e in events])
        if len(looks) == 1:  # first look: act on the first, look again at the others
            return Triage({}, frozenset(e.id for e in events[1:]))
        return Triage({e.id: Outcome.skipped("after the first") for e in events if first in done and e.event_id == second})

    reg = registry(test__thing=handler)
    reg.register_triage(triage)
    Processor(engine, reg, clock=clock).drain()
    assert looks == [[first, second, third], [second, third]]
    assert [row(engine, i).state for i in (first, second, third)] == ["applied", "skipped", "applied"]
    assert done == {first, third}


def test_a_triage_may_not_apply_and_its_failures_fall_back_to_the_handlers(engine: Engine, clock: Clock) -> None:
    ids = [put(engine, clock=clock) for _ in range(3)]
    for bad in (
        lambda conn, events: Triage({events[0].id: Outcome.applied("not allowed here")}),
        lambda conn, events: Triage({10**9: Outcome.skipped("not of this batch")}),
        lambda conn, events: 1 / 0,
    ):
        run_transaction(engine, lambda conn: conn.execute(
            webhook_events.update().values(state="pending", outcome=None, next_attempt_at=clock.now)
        ))  # fmt: skip
        reg = registry(test__thing=lambda conn, e: Outcome.applied("by the handler"))
        reg.register_triage(bad)  # type: ignore[arg-type]
        Processor(engine, reg, clock=clock).drain()
        assert [(row(engine, i).state, row(engine, i).outcome) for i in ids] == [("applied", "by the handler")] * 3


@pytest.mark.postgres
def test_a_lease_lost_before_the_triage_writes_leaves_each_event_to_find_out(pg_engine: Engine) -> None:
    """The triage's update is guarded by the lease like every outcome: if one lease of the batch
    was taken over meanwhile, nothing of the triage is written and each event is processed on
    its own (the lost one is left to its new owner). PostgreSQL: the takeover runs while the
    triage's transaction is open, which SQLite's single writer would not allow."""
    clock = Clock()
    ids = [put(pg_engine, clock=clock) for _ in range(3)]
    late = Clock()
    late.now = clock.now + timedelta(seconds=61)
    taken: list[str] = []

    def triage(conn: Connection, events: list[InboxEvent]) -> Triage:
        if not taken:  # another worker takes the first event over (its lease ran out) before we write
            taken.extend(c.event_id for c in Processor(pg_engine, registry(), clock=late, worker_id="other").claim(limit=1))
        return Triage({e.id: Outcome.skipped("triaged") for e in events})

    reg = registry(test__thing=lambda conn, e: Outcome.applied("by the handler"))
    reg.register_triage(triage)
    slow = Processor(pg_engine, reg, clock=clock, worker_id="slow", lease=timedelta(seconds=60))
    assert slow.run_once() == 3
    assert taken == [ids[0]]
    states = [(row(pg_engine, i).state, row(pg_engine, i).outcome, row(pg_engine, i).lease_owner) for i in ids]
    assert states == [("processing", None, "other"), ("applied", "by the handler", None), ("applied", "by the handler", None)]
    assert slow.counts == {"applied": 2, "lost": 1}
