"""Concurrent writers: threads and processes posting to the same hot accounts and to their own,
replaying the same keys and reversing the same entries at the same moment.

What must hold afterwards: no lost update (balances = Σ what every writer posted, versions = line
counts), no duplicate (one entry per idempotency key, one reversal per entry), ids gapless, and
``verify`` finds the chain intact.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

import ledger as L
from ledger.db import create_engine, run_transaction
from ledger.schema import accounts, entries, lines
from tests.ledger.support import DAY, fresh_accounts, transfer

ROOT = Path(__file__).resolve().parents[2]


def run_together(count: int, work: Callable[[int, threading.Barrier], Any]) -> list[Any]:
    """Run ``work(index, barrier)`` on ``count`` threads that start together; re-raise failures."""
    barrier = threading.Barrier(count)
    with ThreadPoolExecutor(count) as pool:
        futures = [pool.submit(work, index, barrier) for index in range(count)]
        return [future.result(timeout=120) for future in futures]


def merged(counters: list[Counter[str]]) -> Counter[str]:
    """Sum counters keeping negative and zero totals (``Counter + Counter`` drops them)."""
    total: Counter[str] = Counter()
    for counter in counters:
        total.update(counter)
    return total


def assert_books_match(engine: Engine, net: Counter[str], line_counts: Counter[str], total_entries: int) -> None:
    with engine.begin() as conn:
        stored = {
            row.code: (row.balance, row.version, row.line_count)
            for row in conn.execute(
                sa.select(
                    accounts.c.code, accounts.c.balance, accounts.c.version,
                    sa.select(sa.func.count()).where(lines.c.account_id == accounts.c.id).scalar_subquery().label("line_count"),
                ).where(accounts.c.code.in_(list(line_counts)))
            )
        }
        for code in line_counts:
            balance, version, counted = stored[code]
            assert (balance, version, counted) == (net[code], line_counts[code], line_counts[code]), code
        ids = list(conn.scalars(sa.select(entries.c.id).order_by(entries.c.id)))
        assert ids == list(range(1, total_entries + 1)), "entry ids must be gapless"
        report = L.verify(conn)
        assert report.ok, report.problems
        assert report.head_seq == total_entries
        assert L.trial_balance(conn).balanced


def race_postings(engine: Engine, writers: int, per_writer: int) -> None:
    """Each writer posts to 10 shared hot accounts and to two accounts of its own."""
    hot = run_transaction(engine, lambda c: fresh_accounts(c, *["1200"] * 5, *["2100"] * 5, tag="HOT"))
    own = [run_transaction(engine, lambda c: fresh_accounts(c, "1100", "4100", tag="OWN")) for _ in range(writers)]

    def writer(index: int, barrier: threading.Barrier) -> tuple[list[int], Counter[str], Counter[str]]:
        rng = random.Random(index)
        ids: list[int] = []
        net: Counter[str] = Counter()
        counts: Counter[str] = Counter()
        barrier.wait()
        for number in range(per_writer):
            amount = rng.randint(1, 100_000)
            if number % 3 == 0:
                debit, credit = own[index]
            elif number % 3 == 1:
                debit, credit = rng.sample(hot, 2)
            else:
                debit, credit = rng.choice(hot), own[index][1]
            request = transfer(f"t{index}:{number}", debit, credit, amount)
            ids.append(run_transaction(engine, partial(L.post, request=request)).id)
            # A breath between transactions, so that a writer that just committed does not
            # always take the lock straight back and the writers interleave.
            time.sleep(rng.uniform(0, 0.002))
            net[debit] += amount
            net[credit] -= amount
            counts[debit] += 1
            counts[credit] += 1
        return ids, net, counts

    results = run_together(writers, writer)
    all_ids = [i for ids, _, _ in results for i in ids]
    assert sorted(all_ids) == list(range(1, writers * per_writer + 1)), "an id was given twice or skipped"
    if engine.dialect.name == "postgresql":
        # The writers really overlapped: some writer's ids are not one contiguous run. (Only
        # asserted where lock waits queue in order: SQLite's busy handler polls with growing
        # sleeps, so a writer may legitimately win the lock many times in a row.)
        assert any(ids != list(range(ids[0], ids[0] + len(ids))) for ids, _, _ in results)
    net = merged([n for _, n, _ in results])
    counts = merged([c for _, _, c in results])
    assert_books_match(engine, net, counts, writers * per_writer)


@pytest.mark.postgres
def test_threads_on_hot_and_distinct_accounts_lose_no_update_on_postgresql(pg_engine: Engine) -> None:
    race_postings(pg_engine, writers=8, per_writer=30)


def test_threads_on_hot_accounts_lose_no_update_on_sqlite(make_db_url: Callable[[str], str]) -> None:
    engine = create_engine(make_db_url("sqlite"))
    try:
        race_postings(engine, writers=4, per_writer=20)
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_replays_of_the_same_keys_racing_write_one_entry_per_key(pg_engine: Engine) -> None:
    debit, credit = run_transaction(pg_engine, lambda c: fresh_accounts(c, "1200", "1100"))
    requests = [transfer(f"evt_{n}", debit, credit, 1_000 + n) for n in range(12)]

    def writer(index: int, barrier: threading.Barrier) -> list[L.PostedEntry]:
        mine = requests[:]
        random.Random(index).shuffle(mine)
        barrier.wait()
        if index % 2:  # half post one by one, half post everything as one batch
            return [run_transaction(pg_engine, partial(L.post, request=r)) for r in mine]
        return run_transaction(pg_engine, lambda c: L.post_many(c, mine))

    results = [p for posted in run_together(8, writer) for p in posted]
    by_key: dict[str, list[L.PostedEntry]] = {}
    for posted in results:
        by_key.setdefault(posted.idempotency_key, []).append(posted)
    assert set(by_key) == {r.idempotency_key for r in requests}
    for key, seen in by_key.items():
        assert len(seen) == 8
        assert sum(not p.replayed for p in seen) == 1, key
        assert len({(p.id, p.hash, p.recorded_at) for p in seen}) == 1, key
    with pg_engine.begin() as conn:
        per_key = conn.execute(
            sa.select(entries.c.idempotency_key, sa.func.count()).group_by(entries.c.idempotency_key)
        ).all()
    assert sorted(per_key) == sorted((r.idempotency_key, 1) for r in requests)
    total = sum(r.lines[0].amount for r in requests)
    assert_books_match(pg_engine, Counter({debit: total, credit: -total}), Counter({debit: 12, credit: 12}), 12)


@pytest.mark.postgres
def test_two_threads_reversing_one_entry_only_one_wins(pg_engine: Engine) -> None:
    debit, credit = run_transaction(pg_engine, lambda c: fresh_accounts(c, "1200", "1100"))
    originals = [run_transaction(pg_engine, partial(L.post, request=transfer(f"o{n}", debit, credit, 500))) for n in range(10)]
    outcomes: list[list[object]] = []
    for number, original in enumerate(originals):
        same_key = number % 2 == 1  # odd rounds race the SAME reversal key (a replay), even rounds two keys

        def reverser(index: int, barrier: threading.Barrier, original: L.PostedEntry = original, same_key: bool = same_key) -> object:
            key = f"rev:{original.id}" + ("" if same_key else f":{index}")
            barrier.wait()
            try:
                return run_transaction(pg_engine, lambda c: L.reverse(c, original.id, effective_date=DAY, idempotency_key=key))
            except L.AlreadyReversed as exc:
                return exc

        outcomes.append(run_together(2, reverser))
    for number, pair in enumerate(outcomes):
        won = [o for o in pair if isinstance(o, L.PostedEntry) and not o.replayed]
        assert len(won) == 1, pair
        other = next(o for o in pair if o is not won[0])
        if number % 2:
            assert isinstance(other, L.PostedEntry) and (other.id, other.replayed) == (won[0].id, True)
        else:
            assert isinstance(other, L.AlreadyReversed) and other.code == "ledger.already_reversed"
            assert other.detail["reversal_id"] == won[0].id
    with pg_engine.begin() as conn:
        reversals = conn.scalar(sa.select(sa.func.count()).select_from(entries).where(entries.c.reverses_entry_id.isnot(None)))
    assert reversals == 10
    assert_books_match(pg_engine, Counter({debit: 0, credit: 0}), Counter({debit: 20, credit: 20}), 20)


def test_processes_posting_at_once_keep_the_chain_intact(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        workers, count = 4, 40
        hot = run_transaction(engine, lambda c: fresh_accounts(c, "1200", "1200", "2100", "2100", tag="HOT"))
        own = [run_transaction(engine, lambda c: fresh_accounts(c, "1100", "4100", tag="P")) for _ in range(workers)]
        processes = [
            subprocess.Popen(
                [sys.executable, "-m", "tests.ledger.posting_worker", db_url, str(n), str(count), ",".join(hot), *own[n]],
                cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )
            for n in range(workers)
        ]
        try:
            for process in processes:  # every process is connected and waiting
                assert process.stdout is not None and process.stdout.readline().strip() == "ready"
            for process in processes:
                assert process.stdin is not None
                process.stdin.write("go\n")
                process.stdin.flush()
            reports = []
            for process in processes:
                out, err = process.communicate(timeout=120)
                assert process.returncode == 0, err
                reports.append(json.loads(out))
        finally:
            for process in processes:
                if process.poll() is None:
                    process.kill()
        ids = sorted(i for report in reports for i in report["ids"])
        assert ids == list(range(1, workers * count + 1))
        net = merged([Counter(r["net"]) for r in reports])
        counts = merged([Counter(r["lines"]) for r in reports])
        assert_books_match(engine, net, counts, workers * count)
    finally:
        engine.dispose()
