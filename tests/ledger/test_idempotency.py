"""Idempotent posting: a replay returns the original entry and changes nothing; the same key
with other content is a conflict."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from functools import partial

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

import ledger as L
from ledger.db import run_transaction
from ledger.schema import entries, lines
from tests.ledger.support import DAY, entry, snapshot, transfer


def test_replay_returns_the_original_and_changes_nothing(engine: Engine) -> None:
    request = entry(
        "stripe:evt_1",
        L.Line.debit("1200", 12_300),
        L.Line.credit("1100", 12_000),
        L.Line.credit("4300", 300),
        description="収納 固定資産税 1期",
        source_ref="stripe:evt_1",
    )
    original = run_transaction(engine, lambda c: L.post(c, request))
    assert not original.replayed
    before = snapshot(engine)
    # The same content, even with the lines in another order, is the same entry.
    shuffled = replace(request, lines=tuple(reversed(request.lines)))
    for again in (request, shuffled, request):
        replayed = run_transaction(engine, partial(L.post, request=again))
        assert replayed.replayed
        assert (replayed.id, replayed.hash, replayed.effective_date, replayed.recorded_at, replayed.idempotency_key) == (
            original.id, original.hash, original.effective_date, original.recorded_at, original.idempotency_key
        )
    assert snapshot(engine) == before


def test_replay_still_works_after_the_day_and_an_account_are_closed(engine: Engine) -> None:
    # A provider retrying a webhook days later must get the original back, not an error.
    request = transfer("late-retry", "5100", "1200", 250)
    original = run_transaction(engine, lambda c: L.post(c, request))
    run_transaction(engine, lambda c: L.close_day(c, DAY, closed_by="test"))
    run_transaction(engine, lambda c: L.close_account(c, "5100"))
    before = snapshot(engine)
    replayed = run_transaction(engine, lambda c: L.post(c, request))
    assert (replayed.id, replayed.hash, replayed.replayed) == (original.id, original.hash, True)
    assert snapshot(engine) == before


def test_same_key_twice_in_one_batch_is_written_once_and_batches_mix_replays(engine: Engine) -> None:
    a = transfer("a", "1100", "4100", 100)
    b = transfer("b", "1100", "4100", 200)
    posted = run_transaction(engine, lambda c: L.post_many(c, [a, b, a, a]))
    assert [(p.id, p.replayed) for p in posted] == [(1, False), (2, False), (1, True), (1, True)]
    assert posted[2].hash == posted[0].hash == posted[3].hash
    first = posted[0]
    with engine.begin() as conn:
        assert L.balance(conn, "1100").amount == 300
    assert snapshot(engine).entries == 2
    # A batch mixing a replay with a new entry writes only the new one.
    posted = run_transaction(
        engine, lambda c: L.post_many(c, [transfer("new", "1100", "4100", 5), transfer("a", "1100", "4100", 100)])
    )
    assert [(p.id, p.replayed) for p in posted] == [(3, False), (1, True)]
    assert posted[1].hash == first.hash
    # An all-replay batch writes nothing at all.
    before = snapshot(engine)
    again = run_transaction(engine, lambda c: L.post_many(c, [transfer("new", "1100", "4100", 5), a, b]))
    assert [(p.id, p.replayed) for p in again] == [(3, True), (1, True), (2, True)]
    assert snapshot(engine) == before


CHANGES = {
    "amount": lambda r: replace(r, lines=(L.Line.debit("1100", 501), L.Line.credit("4100", 501))),
    "account": lambda r: replace(r, lines=(L.Line.debit("1200", 500), L.Line.credit("4100", 500))),
    "side": lambda r: replace(r, lines=(L.Line.credit("1100", 500), L.Line.debit("4100", 500))),
    "date": lambda r: replace(r, effective_date=r.effective_date + timedelta(days=1)),
    "description": lambda r: replace(r, description="something else"),
    "source_ref": lambda r: replace(r, source_ref="stripe:evt_other"),
    "split_line": lambda r: replace(
        r, lines=(L.Line.debit("1100", 200), L.Line.debit("1100", 300), L.Line.credit("4100", 500))
    ),
}


def test_same_key_with_other_content_is_a_conflict(engine: Engine) -> None:
    request = transfer("k", "1100", "4100", 500)
    original = run_transaction(engine, lambda c: L.post(c, request))
    before = snapshot(engine)
    for name, change in CHANGES.items():
        with pytest.raises(L.IdempotencyConflict) as info:
            run_transaction(engine, partial(L.post, request=change(request)))
        assert info.value.code == "ledger.idempotency_conflict", name
        assert info.value.detail["entry_id"] == original.id, name
    # Other content under the same key inside one batch.
    with pytest.raises(L.IdempotencyConflict):
        run_transaction(
            engine,
            lambda c: L.post_many(c, [transfer("fresh", "1100", "4100", 1), transfer("fresh", "1100", "4100", 2)]),
        )
    assert snapshot(engine) == before


def test_reversal_is_linked_mirrored_and_restores_balances(engine: Engine) -> None:
    original = run_transaction(
        engine,
        lambda c: L.post(
            c, entry("pay", L.Line.debit("1200", 1_000), L.Line.credit("1100", 970), L.Line.credit("4300", 30))
        ),
    )
    with engine.begin() as conn:
        before = {code: L.balance(conn, code).net_debit for code in ("1200", "1100", "4300")}
    assert before == {"1200": 1_000, "1100": -970, "4300": -30}
    later = DAY + timedelta(days=3)
    reversal = run_transaction(
        engine, lambda c: L.reverse(c, original.id, effective_date=later, idempotency_key="pay:rev")
    )
    assert reversal.id == original.id + 1 and reversal.effective_date == later
    with engine.begin() as conn:
        assert {code: L.balance(conn, code).net_debit for code in before} == dict.fromkeys(before, 0)
        # As of the day before the reversal, the original still stands.
        assert L.balance(conn, "1200", as_of=later - timedelta(days=1)).net_debit == 1_000
        assert L.verify(conn).ok
        row = conn.execute(sa.select(entries).where(entries.c.id == reversal.id)).one()
        assert row.reverses_entry_id == original.id
        assert row.description.startswith(f"Reversal of entry {original.id}")
        mirrored = conn.execute(
            sa.select(lines.c.line_no, lines.c.side, lines.c.amount).where(lines.c.entry_id == reversal.id)
            .order_by(lines.c.line_no)
        ).all()
        assert [tuple(r) for r in mirrored] == [(1, "C", 1_000), (2, "D", 970), (3, "D", 30)]
    # Reversing again with the same key is a replay, with another key it is refused.
    again = run_transaction(engine, lambda c: L.reverse(c, original.id, effective_date=later, idempotency_key="pay:rev"))
    assert (again.id, again.replayed) == (reversal.id, True)
    with pytest.raises(L.AlreadyReversed):
        run_transaction(engine, lambda c: L.reverse(c, original.id, effective_date=later, idempotency_key="pay:rev2"))
    # A reversal is itself an entry and can be reversed (once), re-instating the original.
    run_transaction(engine, lambda c: L.reverse(c, reversal.id, effective_date=later, idempotency_key="pay:rev:rev"))
    with engine.begin() as conn:
        assert L.balance(conn, "1200").net_debit == 1_000


def test_reversal_needs_an_open_date_and_open_accounts(engine: Engine) -> None:
    original = run_transaction(engine, lambda c: L.post(c, transfer("k", "5100", "1200", 400)))
    run_transaction(engine, lambda c: L.close_day(c, DAY, closed_by="test"))
    with pytest.raises(L.ClosedPeriod):
        run_transaction(engine, lambda c: L.reverse(c, original.id, effective_date=DAY, idempotency_key="r"))
    # The original's day is closed, yet it is reversed on an open day.
    reversal = run_transaction(
        engine, lambda c: L.reverse(c, original.id, effective_date=DAY + timedelta(days=1), idempotency_key="r")
    )
    assert reversal.id == 2
    second = run_transaction(engine, lambda c: L.post(c, transfer("k2", "5100", "1200", 100, day=DAY + timedelta(1))))
    run_transaction(engine, lambda c: L.close_account(c, "5100"))
    with pytest.raises(L.ClosedAccount):
        run_transaction(
            engine, lambda c: L.reverse(c, second.id, effective_date=DAY + timedelta(days=2), idempotency_key="r2")
        )
