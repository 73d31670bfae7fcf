"""Intake on both engines: verified deliveries are stored first, exactly once; refusals store
nothing; poison is kept for staff; the stored event never changes."""

from __future__ import annotations

import hashlib
import json
import time

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from ledger.clock import to_utc, utc_now
from ledger.db import run_transaction
from tests.webhooks.support import SECRET, body_of, event, row, rows, sign
from webhooks import (
    Intake,
    PayloadTooLarge,
    SignatureInvalid,
    SignatureMissing,
    UnsupportedMediaType,
    webhook_events,
)

JSON = "application/json; charset=utf-8"


@pytest.fixture
def intake(engine: Engine) -> Intake:
    return Intake(engine, [SECRET])


def test_a_delivery_is_stored_with_its_raw_body(engine: Engine, intake: Intake) -> None:
    evt = event("payment_intent.succeeded", {"id": "pi_abc", "object": "payment_intent"}, created=1_800_000_000)
    body = body_of(evt)
    stored = intake.receive(body, sign(body), JSON)
    assert (stored.event_id, stored.duplicate, stored.poison) == (evt["id"], False, False)
    got = row(engine, evt["id"])
    assert bytes(got.payload) == body
    assert got.payload_sha256 == hashlib.sha256(body).hexdigest()
    assert (got.event_type, got.object_id, got.state, got.attempts, got.source) == (
        "payment_intent.succeeded", "pi_abc", "pending", 0, "delivery",
    )  # fmt: skip
    assert to_utc(got.provider_created_at).timestamp() == 1_800_000_000


def test_a_duplicate_delivery_changes_nothing(engine: Engine, intake: Intake) -> None:
    body = body_of(event())
    intake.receive(body, sign(body), JSON)
    before = rows(engine)
    again = intake.receive(body, sign(body), JSON)
    # Stripe re-sends the same event with a fresh timestamp; even a re-serialised body is the same event.
    other_bytes = json.dumps(json.loads(body)).encode()
    third = intake.receive(other_bytes, sign(other_bytes), JSON)
    assert again.duplicate and third.duplicate
    assert rows(engine) == before


def test_unknown_event_types_are_stored(engine: Engine, intake: Intake) -> None:
    body = body_of(event("treasury.financial_account.features_status_updated", {"id": "fa_1"}))
    assert not intake.receive(body, sign(body), JSON).duplicate
    assert row(engine, json.loads(body)["id"]).state == "pending"


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"[1, 2, 3]", b'{"object": "event", "type": "x.y"}', b'{"id": "evt_1", "object": "event"}',
     b'{"id": "evt_2", "type": "charge.succeeded", "object": "charge"}', b"\xff\xfe garbage"],
)
def test_a_verified_body_that_is_not_an_event_is_kept_as_poison(engine: Engine, intake: Intake, body: bytes) -> None:
    from gateway.sandbox import signature_header

    stored = intake.receive(body, signature_header(SECRET, int(time.time()), body), JSON)
    assert stored.poison and not stored.duplicate
    got = row(engine, f"poison:{hashlib.sha256(body).hexdigest()}")
    assert (got.state, got.event_type, bytes(got.payload)) == ("poison", None, body)
    again = intake.receive(body, signature_header(SECRET, int(time.time()), body), JSON)
    assert again.duplicate and len(rows(engine)) == 1


def test_refused_deliveries_store_nothing(engine: Engine, intake: Intake) -> None:
    body = body_of(event())
    with pytest.raises(SignatureInvalid):
        intake.receive(body, sign(body, "whsec_wrong"), JSON)
    with pytest.raises(SignatureMissing):
        intake.receive(body, None, JSON)
    with pytest.raises(UnsupportedMediaType) as media:
        intake.receive(body, sign(body), "text/plain")
    assert media.value.code == "webhook.unsupported_media_type"
    with pytest.raises(UnsupportedMediaType):
        intake.receive(body, sign(body), None)
    small = Intake(engine, [SECRET], max_bytes=len(body) - 1)
    with pytest.raises(PayloadTooLarge) as large:
        small.receive(body, sign(body), JSON)
    assert large.value.code == "webhook.payload_too_large"
    assert rows(engine) == []


def test_on_stored_runs_only_for_new_events(engine: Engine) -> None:
    calls: list[int] = []
    intake = Intake(engine, [SECRET], on_stored=lambda: calls.append(1))
    body = body_of(event())
    intake.receive(body, sign(body), JSON)
    intake.receive(body, sign(body), JSON)
    assert calls == [1]


def test_a_stored_event_can_be_neither_changed_nor_deleted(engine: Engine, intake: Intake) -> None:
    body = body_of(event())
    intake.receive(body, sign(body), JSON)
    t = webhook_events
    for change in (
        t.update().values(payload=b"{}"),
        t.update().values(event_type="charge.succeeded"),
        t.update().values(event_id="evt_other"),
        t.delete(),
    ):
        with pytest.raises(DBAPIError):
            run_transaction(engine, lambda conn, change=change: conn.execute(change))
    # Processing state may change.
    run_transaction(engine, lambda conn: conn.execute(t.update().values(attempts=3)))
    assert rows(engine)[0].attempts == 3


def test_the_database_keeps_states_and_leases_consistent(engine: Engine, intake: Intake) -> None:
    body = body_of(event())
    intake.receive(body, sign(body), JSON)
    t = webhook_events
    for bad in (
        t.update().values(state="done"),
        t.update().values(state="processing"),  # processing needs a lease token
        t.update().values(lease_token="abc"),  # and only processing carries one
        t.update().values(state="applied"),  # finished needs a processed time
        t.update().values(attempts=-1),
    ):
        with pytest.raises(DBAPIError):
            run_transaction(engine, lambda conn, bad=bad: conn.execute(bad))


def test_concurrent_duplicates_store_one_row(engine: Engine) -> None:
    from concurrent.futures import ThreadPoolExecutor

    intake = Intake(engine, [SECRET])
    body = body_of(event())
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: intake.receive(body, sign(body), JSON), range(16)))
    assert sum(not r.duplicate for r in results) == 1
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(webhook_events)).scalar_one() == 1


def test_group_commit_stores_concurrent_deliveries_together(engine: Engine) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from webhooks.committer import GroupCommitter

    woken: list[int] = []
    committer = GroupCommitter(engine, on_stored=lambda: woken.append(1))
    intake = Intake(engine, [SECRET], committer=committer)
    bodies = [body_of(event()) for _ in range(60)]
    try:
        with ThreadPoolExecutor(16) as pool:
            results = list(pool.map(lambda b: intake.receive(b, sign(b), JSON), bodies + bodies[:10]))
    finally:
        committer.stop()
    assert sum(not r.duplicate for r in results) == 60
    assert [r.event_id for r in results[:60]] == [json.loads(b)["id"] for b in bodies]
    assert len(rows(engine)) == 60 and committer.stored == 70
    assert committer.batches < 70 and woken  # several deliveries shared a commit; the processor was woken


def test_a_body_repeated_within_one_batch_is_stored_once(engine: Engine) -> None:
    from webhooks.inbox import store_many

    body = body_of(event())
    other = body_of(event())
    results = run_transaction(engine, lambda conn: store_many(conn, [body, other, body], now=utc_now()))
    assert [r.duplicate for r in results] == [False, False, True]
    assert len(rows(engine)) == 2


def test_a_failed_batch_fails_every_delivery_in_it(engine: Engine) -> None:
    from webhooks.committer import GroupCommitter

    unreachable = sa.create_engine("sqlite:////nonexistent/dir/nofu.sqlite3")
    committer = GroupCommitter(unreachable)
    broken = Intake(engine, [SECRET], committer=committer)
    body = body_of(event())
    try:
        with pytest.raises(DBAPIError):
            broken.receive(body, sign(body), JSON)
    finally:
        committer.stop()
    assert rows(engine) == []


def test_deliveries_from_an_event_loop_are_answered_after_their_batch_commits(engine: Engine) -> None:
    import asyncio

    from webhooks.committer import GroupCommitter

    committer = GroupCommitter(engine)
    intake = Intake(engine, [SECRET], committer=committer)
    bodies = [body_of(event()) for _ in range(40)]

    async def deliver_all() -> list:
        return await asyncio.gather(*(intake.receive_async(b, sign(b), JSON) for b in bodies + bodies[:5]))

    try:
        results = asyncio.run(deliver_all())
    finally:
        committer.stop()
    assert [r.event_id for r in results] == [json.loads(b)["id"] for b in bodies + bodies[:5]]
    assert sum(not r.duplicate for r in results) == 40 and all(r.duplicate for r in results[40:])
    assert len(rows(engine)) == 40 and committer.batches < 45


def test_a_delivery_given_up_while_its_batch_commits_does_not_stop_the_committer(engine: Engine) -> None:
    """A request cancelled (or a future abandoned) while its batch is being stored: the event is
    stored all the same, and the next deliveries are still stored and answered."""
    import asyncio
    import threading

    from webhooks.committer import GroupCommitter

    entered, release = threading.Event(), threading.Event()

    def slow_clock():  # called inside the batch's transaction
        entered.set()
        release.wait(10)
        return utc_now()

    committer = GroupCommitter(engine, clock=slow_clock)
    first, second, third = (body_of(event()) for _ in range(3))

    async def cancel_one() -> None:
        task = asyncio.ensure_future(committer.store(first))
        await asyncio.get_running_loop().run_in_executor(None, entered.wait, 10)
        abandoned = committer.submit(second)  # queued behind the batch in progress
        assert abandoned.cancel()
        task.cancel()
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await task

    try:
        asyncio.run(cancel_one())
        assert not committer.submit(third).result(10).duplicate
    finally:
        release.set()
        committer.stop()
    assert {r.event_id for r in rows(engine)} == {json.loads(b)["id"] for b in (first, second, third)}


def test_the_committer_replaces_a_connection_the_server_dropped(pg_engine: Engine) -> None:
    """The writer keeps its connection between batches; when PostgreSQL has dropped it (a restart,
    an idle timeout), the next batch is stored on a fresh one instead of failing."""
    from webhooks.committer import GroupCommitter

    committer = GroupCommitter(pg_engine)
    before, after = body_of(event()), body_of(event())
    try:
        assert not committer.submit(before).result(10).duplicate
        with pg_engine.connect() as admin:
            dropped = admin.execute(
                sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid()")
            ).scalars().all()  # fmt: skip
        assert dropped == [True]  # the committer's kept connection
        assert not committer.submit(after).result(10).duplicate
    finally:
        committer.stop()
    assert len(rows(pg_engine)) == 2
