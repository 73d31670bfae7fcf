"""The ledger benchmark: nofu's ledger against its own SQL (the ceiling) and against a peer.

Run ``python -m bench.ledger`` (full: about 15 minutes on 2 shared cores) or
``python -m bench.ledger --quick`` (seconds; add ``--sqlite-only`` to skip PostgreSQL). It
prints, in one run:

1. postings per second, one balanced 2-line posting per transaction through
   ``run_transaction(engine, lambda c: post(c, request))``, on SQLite (1 writer) and PostgreSQL
   (1 and 8 writer threads), each with distinct accounts per writer and with 10 hot accounts;
2. the **ceiling**: the very statements ``ledger.posting`` issues for one posting (captured
   with a ``before_cursor_execute`` listener and checked parameter for parameter against a
   real posting), replayed with the bare driver (sqlite3 / psycopg) with precomputed hashes
   and no checks, one posting per transaction, same writers and accounts; ledger and ceiling
   alternate ``--rounds`` times on fresh databases and the best run of each counts, since on
   a shared machine the best run is the one other work disturbed least;
3. the **peer**: python-accounting 2.0.0 posting the same planned entries (the plan of
   ``bench.peer_python_accounting``), in a child interpreter because it hooks every
   SQLAlchemy session of its process;
4. a batched import of 100,000 postings with ``post_many`` and the trial balance over
   1,000,000 lines (as of a date: aggregates lines; as of now: reads running balances).

Every run checks its own books afterwards (entries written, chain head, each account's
balance against the plan), so a figure is never a count of failures. Databases written:
files under ``var/bench/`` and the PostgreSQL database ``nofu_bench`` (dropped and created
for each scenario), nothing else.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import importlib.util
import io
import os
import pstats
import random
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from functools import partial
from pathlib import Path
from typing import Any, Literal

import psycopg
import sqlalchemy as sa
from psycopg import errors as pg_errors
from sqlalchemy import event
from sqlalchemy.engine import Engine

from bench._common import (
    DEFAULT_WORKDIR,
    PG_SERVER_URL,
    drop_postgres,
    machine,
    postgres_reachable,
    postgres_version,
    rate,
    recreate_postgres,
    recreate_sqlite,
    remove_sqlite,
    sqlite_path,
    stopwatch,
    table,
)
from bench.peer_python_accounting import (
    PEER,
    PEER_VERSION,
    RETRY_BUDGET,
    PlannedPosting,
    accounts_needed,
    expected_balances,
    plan,
    run_isolated,
)
from gateway.bootstrap import prepare_database
from ledger import AccountSpec, EntryRequest, Line, ensure_account, post, post_many, trial_balance
from ledger.db import create_engine, read_transaction, run_transaction
from ledger.schema import GENESIS_HASH, accounts, chain_head

Backend = Literal["sqlite", "postgresql"]
HOT_ACCOUNTS = 10
BENCH_DATE = date(2026, 4, 1)
PARENT_ACCOUNT = "1200"
ATTEMPTS = 8  # as run_transaction


class BenchError(RuntimeError):
    """The benchmark cannot give a trustworthy figure; ``code`` is stable."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


def account_code(index: int) -> str:
    """The ledger account standing for the plan's account ``index``."""
    return f"{PARENT_ACCOUNT}:BENCH_{index:04d}"


@dataclass(frozen=True)
class Scenario:
    backend: Backend
    writers: int
    hot: int | None  # None: distinct accounts per writer

    @property
    def accounts(self) -> str:
        return f"{self.hot} hot" if self.hot else "distinct"


@dataclass(frozen=True)
class Throughput:
    """What one side achieved in one scenario."""

    side: str  # "ledger", "ceiling" or "peer"
    scenario: Scenario
    postings: int
    seconds: float
    errors: int
    note: str = ""

    @property
    def per_second(self) -> float:
        return rate(self.postings, self.seconds)


# --- databases ------------------------------------------------------------------------------


SQLITE_FILES = ("capture", "ledger", "ceiling", "peer", "bulk")
PROFILE_FILES = ("capture", "profile-ledger", "profile-ceiling", "profile")


def fresh_database(backend: Backend, workdir: Path, name: str, server_url: str) -> str:
    """An empty scratch database: ``workdir/name.sqlite3`` (name in SQLITE_FILES) or
    PostgreSQL ``nofu_bench``."""
    if backend == "sqlite":
        return recreate_sqlite(workdir / f"{name}.sqlite3")
    return recreate_postgres(server_url)


def prepared_engine(url: str, n_accounts: int) -> Engine:
    """Migrate, seed the chart, and add the bench accounts ``1200:BENCH_0000`` …."""
    engine = create_engine(url)
    prepare_database(engine)

    def add(conn: sa.Connection) -> None:
        for index in range(n_accounts):
            ensure_account(
                conn, AccountSpec(account_code(index), f"ベンチ {index}", f"bench {index}", "debit")
            )

    run_transaction(engine, add)
    return engine


def request_for(posting: PlannedPosting, effective_date: date = BENCH_DATE) -> EntryRequest:
    return EntryRequest(
        effective_date=effective_date,
        description=f"bench posting {posting.key}",
        source_ref=f"bench:{posting.key}",
        idempotency_key=posting.key,
        lines=(
            Line.debit(account_code(posting.debit_idx), posting.amount),
            Line.credit(account_code(posting.credit_idx), posting.amount),
        ),
    )


def check_books(engine: Engine, postings: Sequence[PlannedPosting], n_accounts: int) -> None:
    """The database holds exactly ``postings``: head sequence and every bench balance."""
    codes = [account_code(i) for i in range(n_accounts)]
    with read_transaction(engine) as conn:
        seq = conn.scalar(sa.select(chain_head.c.seq).where(chain_head.c.id == 1))
        found: dict[str, int] = {
            code: balance
            for code, balance in conn.execute(
                sa.select(accounts.c.code, accounts.c.balance).where(accounts.c.code.in_(codes))
            )
        }
    if seq != len(postings):
        raise BenchError("books_mismatch", f"chain head at {seq}, {len(postings)} postings made")
    expected = expected_balances(postings, n_accounts)
    for index, code in enumerate(codes):
        if found.get(code) != expected[index]:
            raise BenchError(
                "books_mismatch", f"{code}: balance {found.get(code)}, the plan says {expected[index]}"
            )


def _threads(work: Sequence[Callable[[], None]]) -> float:
    """Start one thread per callable, release them together; the wall time until all end."""
    barrier = threading.Barrier(len(work) + 1)
    failures: list[BaseException] = []

    def body(unit: Callable[[], None]) -> None:
        barrier.wait()
        try:
            unit()
        except BaseException as exc:  # re-raised in the caller
            failures.append(exc)

    threads = [threading.Thread(target=body, args=(unit,)) for unit in work]
    for thread in threads:
        thread.start()
    with stopwatch() as watch:
        barrier.wait()
        for thread in threads:
            thread.join()
    if failures:
        raise failures[0]
    return watch.seconds


# --- 1. the ledger --------------------------------------------------------------------------


def run_ledger(url: str, scenario: Scenario, sequences: Sequence[Sequence[PlannedPosting]]) -> Throughput:
    """Each writer posts its entries, one ``run_transaction`` each; then the books are checked."""
    n_accounts = accounts_needed(scenario.writers, scenario.hot)
    engine = prepared_engine(url, n_accounts)
    requests = [[request_for(p) for p in sequence] for sequence in sequences]
    errors: list[str] = []
    done: list[PlannedPosting] = []
    lock = threading.Lock()

    def writer(index: int) -> Callable[[], None]:
        def work() -> None:
            posted = []
            for posting, request in zip(sequences[index], requests[index], strict=True):
                try:
                    run_transaction(engine, partial(post, request=request))
                except Exception as exc:  # counted: that is part of the measurement
                    with lock:
                        errors.append(f"{type(exc).__name__}: {exc}"[:200])
                else:
                    posted.append(posting)
            with lock:
                done.extend(posted)

        return work

    try:
        seconds = _threads([writer(i) for i in range(scenario.writers)])
        check_books(engine, done, n_accounts)
    finally:
        engine.dispose()
    return Throughput("ledger", scenario, len(done), seconds, len(errors), errors[0] if errors else "")


# --- 2. the ceiling ---------------------------------------------------------------------------

# What ledger.posting issues for one fresh posting, in order (after BEGIN, before COMMIT).
EXPECTED_SQL = (
    "SELECT ledger_chain_head.",
    "SELECT ledger_entries.",
    "SELECT ledger_accounts.",
    "INSERT INTO ledger_lines ",
    "INSERT INTO ledger_entries ",
    "UPDATE ledger_accounts ",
    "UPDATE ledger_chain_head ",
)


@dataclass(frozen=True)
class Statement:
    sql: str
    params: Any  # as the driver received them: a tuple, a dict, or a list of either
    many: bool


@dataclass(frozen=True)
class CapturedPosting:
    """The statements of one posting as the driver saw them; ``begin`` is the explicit BEGIN
    (SQLite's ``BEGIN IMMEDIATE``) or None where the driver opens the transaction (psycopg)."""

    backend: Backend
    begin: str | None
    statements: tuple[Statement, ...]

    def names(self, index: int) -> list[str] | None:
        """Parameter names of statement ``index`` (pyformat), None for positional (qmark)."""
        params = self.statements[index].params
        first = params[0] if self.statements[index].many else params
        return list(first) if isinstance(first, dict) else None


@dataclass(frozen=True)
class PrecomputedPosting:
    """Everything the ceiling does not compute while timed (hashes, digests, driver values)."""

    key: str
    codes: tuple[str, ...]  # sorted, as the ledger locks them
    legs: tuple[tuple[str, str, int], ...]  # (code, "D"/"C", amount) in line order
    effective_date: object  # in the driver's form: ISO text for sqlite3, a date for psycopg
    recorded_at: object
    description: str
    source_ref: str
    digest: str
    hash: str


def _driver_values(backend: Backend, moment: datetime) -> tuple[object, object]:
    # What SQLAlchemy hands the driver for Date and DateTime(timezone=True) on each engine.
    if backend == "sqlite":
        return BENCH_DATE.isoformat(), moment.replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
    return BENCH_DATE, moment


def precompute(
    backend: Backend, posting: PlannedPosting, moment: datetime, *, entry_hash: str | None = None
) -> PrecomputedPosting:
    request = request_for(posting)
    effective_date, recorded_at = _driver_values(backend, moment)
    return PrecomputedPosting(
        key=request.idempotency_key,
        codes=tuple(sorted({line.account for line in request.lines})),
        legs=tuple((line.account, "D" if line.side == "debit" else "C", line.amount) for line in request.lines),
        effective_date=effective_date,
        recorded_at=recorded_at,
        description=request.description,
        source_ref=request.source_ref,
        digest=request.digest(),
        # Unique like a real hash (the column is unique), but not a hash of anything.
        hash=entry_hash or hashlib.sha256(request.idempotency_key.encode()).hexdigest(),
    )


def ceiling_params(
    p: PrecomputedPosting, head: Sequence[Any], rows: Sequence[Sequence[Any]]
) -> list[Any]:
    """Positional parameters of statements 3–6 of EXPECTED_SQL, from what 0 and 2 returned.

    ``head`` is (seq, hash, closed_through); ``rows`` are (id, code, status, balance, version)
    ordered by id — the same arithmetic as ``ledger.posting``, without its checks.
    """
    seq = head[0] + 1
    state = {row[1]: [row[0], row[3], row[4]] for row in rows}
    line_rows = []
    for number, (code, side, amount) in enumerate(p.legs, 1):
        account = state[code]
        account[1] += amount if side == "D" else -amount
        account[2] += 1
        line_rows.append((seq, number, account[0], side, amount, p.effective_date, account[1], account[2]))
    entry = (
        seq, p.effective_date, p.recorded_at, p.description, p.source_ref, p.key, p.digest, None,
        head[1], p.hash,
    )
    updates = [(a[1], a[2], a[0]) for a in state.values()]
    return [line_rows, entry, updates, (seq, p.hash, 1)]


def _named(names: list[str] | None, values: Any) -> Any:
    return values if names is None else dict(zip(names, values, strict=True))


def capture_posting(url: str, backend: Backend) -> CapturedPosting:
    """Post one entry through the ledger on a fresh database and record what reached the driver;
    refuse (``ceiling_stale``) unless the ceiling would send exactly the same."""
    engine = prepared_engine(url, 2)
    seen: list[Statement] = []

    def listen(_conn, _cursor, statement, parameters, _context, executemany):  # type: ignore[no-untyped-def]
        seen.append(Statement(statement, parameters, executemany))

    posting = PlannedPosting(0, 1, 12_300, "capture-0")
    with read_transaction(engine) as conn:
        rows = conn.execute(
            sa.select(accounts.c.id, accounts.c.code, accounts.c.status, accounts.c.balance, accounts.c.version)
            .where(accounts.c.code.in_([account_code(0), account_code(1)]))
            .order_by(accounts.c.id)
        ).all()
    event.listen(engine, "before_cursor_execute", listen)
    try:
        run_transaction(engine, lambda conn: post(conn, request_for(posting)))
    finally:
        event.remove(engine, "before_cursor_execute", listen)
        engine.dispose()
    begin = None
    if seen and seen[0].sql.startswith("BEGIN"):
        begin, seen = seen[0].sql, seen[1:]
    captured = CapturedPosting(backend, begin, tuple(seen))
    check_capture(captured, posting, [tuple(r) for r in rows])
    return captured


def check_capture(captured: CapturedPosting, posting: PlannedPosting, rows: list[tuple]) -> None:
    """The ceiling's statements and parameters equal the ledger's, value for value."""
    kinds = tuple(s.sql for s in captured.statements)
    if len(kinds) != len(EXPECTED_SQL) or not all(
        sql.startswith(prefix) for sql, prefix in zip(kinds, EXPECTED_SQL, strict=False)
    ):
        raise BenchError(
            "ceiling_stale",
            "ledger.posting issues other statements than the ceiling replays: "
            + " | ".join(sql.split("\n")[0][:60] for sql in kinds),
        )
    entry = captured.statements[4].params
    recorded_at = entry["recorded_at"] if isinstance(entry, dict) else entry[2]
    entry_hash = entry["hash"] if isinstance(entry, dict) else entry[9]
    moment = recorded_at if isinstance(recorded_at, datetime) else datetime.fromisoformat(recorded_at)
    p = precompute(captured.backend, posting, moment.replace(tzinfo=timezone.utc), entry_hash=entry_hash)
    expected: list[Any] = [(1,), (p.key,), p.codes, *ceiling_params(p, (0, GENESIS_HASH, None), rows)]
    for index, (statement, values) in enumerate(zip(captured.statements, expected, strict=True)):
        names = captured.names(index)
        wanted = [_named(names, v) for v in values] if statement.many else _named(names, values)
        got = list(statement.params) if statement.many else statement.params
        if got != wanted:
            raise BenchError(
                "ceiling_stale",
                f"statement {index} ({statement.sql.split()[0]} …): the ledger sent {got!r}, "
                f"the ceiling would send {wanted!r}",
            )


def _ceiling_sqlite(
    path: str, captured: CapturedPosting, todo: Sequence[PrecomputedPosting], synchronous: str = "FULL"
) -> Callable[[], None]:
    s = [st.sql for st in captured.statements]
    begin = captured.begin or "BEGIN"

    def work() -> None:
        db = sqlite3.connect(path, isolation_level=None, timeout=30, check_same_thread=False)
        # The pragmas ledger.db sets on every connection.
        for pragma in (
            "journal_mode=WAL", "foreign_keys=ON", "busy_timeout=30000", f"synchronous={synchronous}",
            "cache_size=-16384",
        ):
            db.execute(f"PRAGMA {pragma}")
        cur = db.cursor()
        try:
            for p in todo:
                for attempt in range(1, ATTEMPTS + 1):
                    try:
                        cur.execute(begin)
                        head = cur.execute(s[0], (1,)).fetchone()
                        cur.execute(s[1], (p.key,)).fetchall()
                        rows = cur.execute(s[2], p.codes).fetchall()
                        lines_, entry, updates, new_head = ceiling_params(p, head, rows)
                        cur.executemany(s[3], lines_)
                        cur.execute(s[4], entry)
                        cur.executemany(s[5], updates)
                        cur.execute(s[6], new_head)
                        cur.execute("COMMIT")
                        break
                    except sqlite3.OperationalError as exc:
                        if db.in_transaction:
                            cur.execute("ROLLBACK")
                        if attempt == ATTEMPTS or "locked" not in str(exc):
                            raise
        finally:
            db.close()

    return work


def _ceiling_postgres(url: str, captured: CapturedPosting, todo: Sequence[PrecomputedPosting]) -> Callable[[], None]:
    s = [st.sql for st in captured.statements]
    names = [captured.names(i) for i in range(len(s))]

    def work() -> None:
        with psycopg.connect(url) as db:
            cur = db.cursor()
            for p in todo:
                for attempt in range(1, ATTEMPTS + 1):
                    try:
                        head = cur.execute(s[0], _named(names[0], (1,))).fetchone()
                        cur.execute(s[1], _named(names[1], (p.key,))).fetchall()
                        rows = cur.execute(s[2], _named(names[2], p.codes)).fetchall()
                        assert head is not None
                        lines_, entry, updates, new_head = ceiling_params(p, head, rows)
                        cur.executemany(s[3], [_named(names[3], v) for v in lines_])
                        cur.execute(s[4], _named(names[4], entry))
                        cur.executemany(s[5], [_named(names[5], v) for v in updates])
                        cur.execute(s[6], _named(names[6], new_head))
                        db.commit()
                        break
                    except (pg_errors.SerializationFailure, pg_errors.DeadlockDetected):
                        db.rollback()
                        if attempt == ATTEMPTS:
                            raise

    return work


def run_ceiling(
    url: str, scenario: Scenario, sequences: Sequence[Sequence[PlannedPosting]], captured: CapturedPosting
) -> Throughput:
    """The captured statements with the bare driver on a freshly migrated database."""
    n_accounts = accounts_needed(scenario.writers, scenario.hot)
    engine = prepared_engine(url, n_accounts)
    engine.dispose()  # set up through the ledger; timed through the driver only
    moment = datetime.now(timezone.utc)
    todo = [[precompute(scenario.backend, p, moment) for p in sequence] for sequence in sequences]
    if scenario.backend == "sqlite":
        path = sqlite_path(url)
        work = [_ceiling_sqlite(path, captured, t) for t in todo]
    else:
        work = [_ceiling_postgres(url, captured, t) for t in todo]
    seconds = _threads(work)
    engine = create_engine(url)
    try:
        check_books(engine, [p for sequence in sequences for p in sequence], n_accounts)
    finally:
        engine.dispose()
    return Throughput("ceiling", scenario, sum(len(t) for t in todo), seconds, 0)


# --- 3. the peer ------------------------------------------------------------------------------


def peer_available() -> bool:
    return importlib.util.find_spec("python_accounting") is not None


def run_peer(url: str, scenario: Scenario, n_postings: int) -> Throughput:
    """python-accounting posting ``plan(n_postings, …)`` in a child interpreter; it retries a
    failed posting up to RETRY_BUDGET times (the library itself never retries)."""
    result = run_isolated(url, n_postings, scenario.writers, scenario.hot, retries=RETRY_BUDGET, timeout=3600)
    note = f"retried {result['retried']}" if result.get("retried") else ""
    if result["errors"]:
        note = (note + "; " if note else "") + "; ".join(
            f"{count}× {kind}" for kind, count in result["error_kinds"].items()
        )
    return Throughput("peer", scenario, result["postings"], result["seconds"], result["errors"], note)


# --- 4. batched import and the trial balance ----------------------------------------------------


@dataclass(frozen=True)
class BulkFigures:
    backend: Backend
    import_postings: int
    import_seconds: float
    total_lines: int
    build_seconds: float  # all postings up to total_lines, import included
    import_cpu_seconds: float  # CPU of this process (on SQLite that includes SQLite's own work)
    batch: int
    tb_as_of_seconds: list[float] = field(default_factory=list)
    tb_now_seconds: list[float] = field(default_factory=list)
    as_of: date = BENCH_DATE


def bulk_requests(count: int, start: int, n_accounts: int, seed: int = 7) -> Iterator[EntryRequest]:
    """``count`` 2-line entries numbered from ``start``, spread over a year of business dates."""
    rng = random.Random(seed * 1_000_003 + start)
    for i in range(start, start + count):
        debit, credit = rng.sample(range(n_accounts), 2)
        amount = rng.randint(1, 300_000)
        yield request_for(PlannedPosting(debit, credit, amount, f"bulk-{i}"), BENCH_DATE + timedelta(days=i % 365))


def run_bulk(
    url: str, backend: Backend, *, import_postings: int, total_lines: int, batch: int,
    n_accounts: int = 100, repeats: int = 3,
) -> BulkFigures:
    """Import with ``post_many`` (``batch`` entries per transaction), grow to ``total_lines``
    lines, then time the trial balance as of mid-year and as of now ``repeats`` times each."""
    engine = prepared_engine(url, n_accounts)
    total_postings = total_lines // 2

    def load(first: int, count: int) -> tuple[float, float]:
        seconds = cpu = 0.0  # post_many and commit only: building the requests is the caller's work
        for start in range(first, first + count, batch):
            chunk = list(bulk_requests(min(batch, first + count - start), start, n_accounts))
            began = time.process_time()
            with stopwatch() as watch:
                run_transaction(engine, partial(post_many, requests=chunk))
            cpu += time.process_time() - began
            seconds += watch.seconds
        return seconds, cpu

    try:
        import_seconds, import_cpu = load(0, import_postings)
        build_seconds = import_seconds + load(import_postings, total_postings - import_postings)[0]
        if backend == "postgresql":
            with engine.connect() as conn:  # what autovacuum would do soon after a bulk load
                conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE")
        as_of = BENCH_DATE + timedelta(days=182)
        figures = BulkFigures(
            backend, import_postings, import_seconds, total_postings * 2, build_seconds, import_cpu,
            batch, as_of=as_of,
        )
        for _ in range(repeats):
            with read_transaction(engine) as conn, stopwatch() as watch:
                dated = trial_balance(conn, as_of=as_of)
            figures.tb_as_of_seconds.append(watch.seconds)
            with read_transaction(engine) as conn, stopwatch() as watch:
                now = trial_balance(conn)
            figures.tb_now_seconds.append(watch.seconds)
        with read_transaction(engine) as conn:
            at_end = trial_balance(conn, as_of=BENCH_DATE + timedelta(days=365))
            lines_written = conn.scalar(sa.text("SELECT count(*) FROM ledger_lines"))
        if not (dated.balanced and now.balanced) or at_end.rows != now.rows:
            raise BenchError("books_mismatch", "the trial balances disagree with the running balances")
        if lines_written != total_postings * 2:
            raise BenchError("books_mismatch", f"{lines_written} lines written, {total_postings * 2} planned")
    finally:
        engine.dispose()
    return figures


# --- the run ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    postings: int = 1000
    rounds: int = 3  # ledger and ceiling alternate this many times; the best run counts
    peer_postings: int = 500
    import_postings: int = 100_000
    total_lines: int = 1_000_000
    batch: int = 10_000
    postgres: bool = True
    bulk_postgres: bool = True
    peer: bool = True
    workdir: Path = DEFAULT_WORKDIR
    server_url: str = PG_SERVER_URL


QUICK = dict(postings=60, rounds=1, peer_postings=20, import_postings=2_000, total_lines=10_000, batch=500)


@dataclass
class Report:
    options: Options
    throughput: list[Throughput] = field(default_factory=list)
    bulk: list[BulkFigures] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    load: list[tuple[float, float, float]] = field(default_factory=list)  # at start and end

    def runs(self, side: str, scenario: Scenario) -> list[Throughput]:
        return [t for t in self.throughput if t.side == side and t.scenario == scenario]

    def find(self, side: str, scenario: Scenario) -> Throughput | None:
        """The best run: on a shared machine it is the one least disturbed by other work."""
        return max(self.runs(side, scenario), key=lambda t: t.per_second, default=None)

    @property
    def scenarios(self) -> list[Scenario]:
        return list(dict.fromkeys(t.scenario for t in self.throughput))


def scenarios(postgres: bool) -> list[Scenario]:
    found = [Scenario("sqlite", 1, None), Scenario("sqlite", 1, HOT_ACCOUNTS)]
    if postgres:
        found += [Scenario("postgresql", w, hot) for w in (1, 8) for hot in (None, HOT_ACCOUNTS)]
    return found


def run_benchmark(options: Options, progress: Callable[[str], None] = lambda _: None) -> Report:
    report = Report(options)
    report.load.append(os.getloadavg())
    postgres = options.postgres and postgres_reachable(options.server_url)
    if options.postgres and not postgres:
        report.notes.append(f"PostgreSQL not reachable at {options.server_url}: SQLite only")
    peer = options.peer and peer_available()
    if options.peer and not peer:
        report.notes.append("python-accounting not installed (pip install -e '.[bench]'): no peer figures")
    workdir = options.workdir
    try:
        engines: tuple[Backend, ...] = ("sqlite", "postgresql") if postgres else ("sqlite",)
        captured: dict[Backend, CapturedPosting] = {}
        for backend in engines:
            captured[backend] = capture_posting(fresh_database(backend, workdir, "capture", options.server_url), backend)
        for scenario in scenarios(postgres):
            sequences = plan(options.postings, scenario.writers, scenario.hot)
            name = f"{scenario.backend} {scenario.writers}w {scenario.accounts}"
            for round_ in range(1, options.rounds + 1):
                progress(f"{name}: ledger, round {round_}")
                url = fresh_database(scenario.backend, workdir, "ledger", options.server_url)
                report.throughput.append(run_ledger(url, scenario, sequences))
                progress(f"{name}: ceiling, round {round_}")
                url = fresh_database(scenario.backend, workdir, "ceiling", options.server_url)
                report.throughput.append(run_ceiling(url, scenario, sequences, captured[scenario.backend]))
            if peer:
                progress(f"{name}: peer")
                url = fresh_database(scenario.backend, workdir, "peer", options.server_url)
                report.throughput.append(run_peer(url, scenario, options.peer_postings))
        for backend in engines if options.bulk_postgres else ("sqlite",):
            progress(f"{backend}: batched import and trial balance")
            url = fresh_database(backend, workdir, "bulk", options.server_url)
            report.bulk.append(
                run_bulk(
                    url, backend, import_postings=options.import_postings,
                    total_lines=options.total_lines, batch=options.batch,
                )
            )
    finally:
        if postgres:
            drop_postgres(options.server_url)
        for name in SQLITE_FILES:
            remove_sqlite(workdir / f"{name}.sqlite3")
    report.load.append(os.getloadavg())
    return report


def _pct(part: Throughput | None, whole: Throughput | None) -> str:
    if part is None or whole is None or not whole.per_second:
        return "-"
    return f"{100 * part.per_second / whole.per_second:.0f} %"


def _times(part: Throughput | None, whole: Throughput | None) -> str:
    if part is None or whole is None or not whole.per_second:
        return "-"
    return f"{part.per_second / whole.per_second:.1f}×"


def render(report: Report) -> str:
    o = report.options
    out = [f"nofu ledger benchmark — {machine()}"]
    if o.postgres and any(t.scenario.backend == "postgresql" for t in report.throughput):
        out[0] += f", PostgreSQL {postgres_version(o.server_url)}"
    if report.load:
        out[0] += "; load average " + " → ".join(f"{a:.1f}/{b:.1f}/{c:.1f}" for a, b, c in report.load)
    out.append("SQLite: WAL, synchronous=FULL; one balanced 2-line posting per transaction")
    out.append(
        f"ledger and ceiling: {o.postings} postings per scenario, best of {o.rounds} alternating "
        f"runs; peer ({PEER} {PEER_VERSION}): {o.peer_postings} postings, one run"
    )
    out.append("")
    rows = []
    for scenario in report.scenarios:
        ledger, ceiling, peer = (report.find(side, scenario) for side in ("ledger", "ceiling", "peer"))
        rows.append(
            [
                scenario.backend, scenario.writers, scenario.accounts,
                f"{ledger.per_second:,.0f}" if ledger else "-",
                f"{ceiling.per_second:,.0f}" if ceiling else "-",
                _pct(ledger, ceiling),
                f"{peer.per_second:,.1f}" if peer else "-",
                _times(ledger, peer),
                sum(t.errors for side in ("ledger", "ceiling", "peer") for t in report.runs(side, scenario)),
            ]
        )
    out.append(
        table(
            ["engine", "writers", "accounts", "ledger/s", "ceiling/s", "ledger/ceiling",
             "peer/s", "ledger/peer", "errors"],
            rows,
        )
    )
    for scenario in report.scenarios:
        label = f"{scenario.backend} {scenario.writers}w {scenario.accounts}"
        if o.rounds > 1:
            runs = " | ".join(
                f"{side} " + ", ".join(f"{t.per_second:,.0f}" for t in report.runs(side, scenario))
                for side in ("ledger", "ceiling")
            )
            out.append(f"  runs/s {label}: {runs}")
        for t in report.throughput:
            if t.note and t.scenario == scenario:
                out.append(f"  {t.side} {label}: {t.note}")
    if report.bulk:
        out.append("")
        bulk_rows = []
        for b in report.bulk:
            bulk_rows.append(
                [
                    b.backend,
                    f"{b.import_postings:,} in {b.import_seconds:.2f} s, CPU {b.import_cpu_seconds:.2f} s",
                    f"{b.total_lines:,} lines in {b.build_seconds:.1f} s",
                    f"{min(b.tb_as_of_seconds):.3f}–{max(b.tb_as_of_seconds):.3f} s",
                    f"{min(b.tb_now_seconds) * 1000:.1f}–{max(b.tb_now_seconds) * 1000:.1f} ms",
                ]
            )
        out.append(
            table(
                ["engine", f"post_many import ({report.bulk[0].batch:,}/txn)", "build",
                 f"trial balance as of {report.bulk[0].as_of}", "trial balance now"],
                bulk_rows,
            )
        )
    out.extend(f"note: {n}" for n in report.notes)
    return "\n".join(out)


# --- where the time goes ----------------------------------------------------------------------


def _without_fsync(engine: Engine) -> Engine:
    # Runs after ledger.db's own connect hook, so it wins; only for profiling.
    event.listen(engine, "connect", lambda dbapi, _record: dbapi.execute("PRAGMA synchronous=OFF"))
    engine.dispose()
    return engine


def _top(profiler: cProfile.Profile, lines: int = 25) -> str:
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(lines)
    return "\n".join(line for line in out.getvalue().splitlines() if line.strip())


def profile(kind: str, workdir: Path, count: int) -> str:
    """Where the time goes on SQLite, with synchronous=OFF so the disk does not hide the CPU.

    ``post``: per-posting time of the ledger and of the ceiling for ``count`` one-posting
    transactions, then cProfile of the ledger's. ``import``: three ``post_many`` batches of
    ``count`` entries, timed, then profiled.
    """
    out = [f"profile {kind} — {machine()}; load average {os.getloadavg()[0]:.1f}; SQLite synchronous=OFF"]
    if kind == "post":
        sequence = plan(count, 1, None)[0]
        captured = capture_posting(recreate_sqlite(workdir / "capture.sqlite3"), "sqlite")
        requests = [request_for(p) for p in sequence]
        timed = {}
        for side in ("ledger", "ceiling"):
            url = recreate_sqlite(workdir / f"profile-{side}.sqlite3")
            engine = _without_fsync(prepared_engine(url, accounts_needed(1, None)))
            if side == "ledger":
                with stopwatch() as watch:
                    for request in requests:
                        run_transaction(engine, partial(post, request=request))
            else:
                moment = datetime.now(timezone.utc)
                todo = [precompute("sqlite", p, moment) for p in sequence]
                with stopwatch() as watch:
                    _ceiling_sqlite(sqlite_path(url), captured, todo, synchronous="OFF")()
            check_books(engine, sequence, accounts_needed(1, None))
            engine.dispose()
            timed[side] = watch.seconds / count
        out.append(
            f"per posting: ledger {timed['ledger'] * 1000:.3f} ms, ceiling {timed['ceiling'] * 1000:.3f} ms "
            f"({timed['ceiling'] / timed['ledger']:.0%})"
        )
        engine = _without_fsync(prepared_engine(recreate_sqlite(workdir / "profile.sqlite3"), 10))
        profiler = cProfile.Profile()
        profiler.enable()
        for request in requests:
            run_transaction(engine, partial(post, request=request))
        profiler.disable()
        engine.dispose()
    elif kind == "import":
        engine = _without_fsync(prepared_engine(recreate_sqlite(workdir / "profile.sqlite3"), 100))
        batches = [list(bulk_requests(count, start, 100)) for start in range(0, 6 * count, count)]
        with stopwatch() as watch:
            for batch in batches[:3]:
                run_transaction(engine, partial(post_many, requests=batch))
        out.append(f"post_many: {3 * count:,} entries in {watch.seconds:.2f} s")
        profiler = cProfile.Profile()
        profiler.enable()
        for batch in batches[3:]:
            run_transaction(engine, partial(post_many, requests=batch))
        profiler.disable()
        engine.dispose()
    else:
        raise BenchError("unknown_profile", f"{kind!r}: use post or import")
    for name in PROFILE_FILES:
        remove_sqlite(workdir / f"{name}.sqlite3")
    out.append(_top(profiler))
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ledger", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    parser.add_argument("--sqlite-only", action="store_true", help="skip PostgreSQL")
    parser.add_argument("--no-peer", action="store_true", help="skip python-accounting")
    parser.add_argument("--no-bulk-postgres", action="store_true", help="batched import on SQLite only")
    parser.add_argument("--postings", type=int, help="per scenario, ledger and ceiling")
    parser.add_argument("--peer-postings", type=int, help="per scenario, python-accounting")
    parser.add_argument("--rounds", type=int, help="alternating ledger/ceiling runs per scenario")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR, help="where SQLite files go")
    parser.add_argument("--postgres-url", default=PG_SERVER_URL, help="server; only nofu_bench is used")
    parser.add_argument(
        "--profile", choices=("post", "import"),
        help="instead of the benchmark: where the time goes on SQLite (cProfile, fsync off)",
    )
    args = parser.parse_args(argv)
    if args.profile:
        print(profile(args.profile, args.workdir, args.postings or (2000 if args.profile == "post" else 10_000)))
        return 0
    settings: dict[str, Any] = dict(QUICK) if args.quick else {}
    if args.postings is not None:
        settings["postings"] = args.postings
    if args.peer_postings is not None:
        settings["peer_postings"] = args.peer_postings
    if args.rounds is not None:
        settings["rounds"] = args.rounds
    options = Options(
        **settings,
        postgres=not args.sqlite_only,
        bulk_postgres=not args.no_bulk_postgres,
        peer=not args.no_peer,
        workdir=args.workdir,
        server_url=args.postgres_url,
    )
    report = run_benchmark(options, progress=lambda step: print(f"… {step}", file=sys.stderr, flush=True))
    print(render(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
