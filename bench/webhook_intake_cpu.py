"""CPU the app process spends per webhook delivery (the intake alone, processing off).

    python -m bench.webhook_intake_cpu [--db sqlite|postgresql] [--requests 2000] [--senders 32]
                                       [--rate R] [--rounds N]

Starts the real app (uvicorn, one process, ``NOFU_WEBHOOK_INPROCESS=0``) on a fresh scratch
database, warms it up with 200 deliveries, then sends ``--requests`` distinct signed deliveries
(about 2.5 KB each, ``bench.webhooks.synthetic_events``) over ``--senders`` keep-alive
connections, and reads the server process's utime + stime from ``/proc/<pid>/stat`` before and
after. By default each sender posts its next delivery as soon as the last is answered (closed
loop); ``--rate R`` offers R per second instead (open loop: the same load whatever the server's
speed, so small group-commit batches). Prints CPU ms per delivery and the p50/p99 latency.
Every delivery must be answered 200 and stored. Scratch databases:
``var/bench/webhooks-intake-cpu.sqlite3`` and PostgreSQL ``nofu_bench_intake_cpu`` (its own, so
``bench.webhooks`` may run meanwhile).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import sqlalchemy as sa

from bench._common import DEFAULT_WORKDIR, PG_SERVER_URL, drop_postgres
from bench.webhooks import (
    LoadResult,
    app_env,
    closed_loop,
    cpu_seconds,
    fresh_database,
    open_loop,
    start_server,
    stop,
    synthetic_events,
)

PATH = "/webhooks/stripe"
PG_DB = "nofu_bench_intake_cpu"
WARM_UP = 200


def stored_count(url: str) -> int:
    from ledger.db import create_engine

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT count(*) FROM webhook_events")).scalar_one())
    finally:
        engine.dispose()


class Run(NamedTuple):
    """One measured run: CPU ms per delivery of the app process, latency percentiles (ms)."""

    cpu_ms: float
    p50: float
    p99: float


def measure(kind: str, work: Path, requests: int, rate: float | None, senders: int) -> Run:
    """One run on a fresh database."""
    url = fresh_database(kind, work, "intake-cpu", PG_DB)
    env = app_env(url, "http://127.0.0.1:9", work, in_process=False)
    server, port = start_server("gateway.app:serve_app", env, work / f"intake-cpu-{kind}.log")
    try:
        stamp = int(time.time())

        def offer(bodies: list[tuple[bytes, str]]) -> LoadResult:
            if rate:
                return asyncio.run(open_loop(port, bodies, senders, rate, PATH))  # latency from the schedule
            return asyncio.run(closed_loop(port, bodies, senders, PATH))

        warm = offer(synthetic_events(WARM_UP, stamp))
        bodies = synthetic_events(requests, stamp + 1)
        time.sleep(0.5)
        before = cpu_seconds(server.pid)
        load = offer(bodies)
        spent = cpu_seconds(server.pid) - before
    finally:
        stop([server])
    if warm.errors or load.errors:
        raise AssertionError(f"{warm.errors + load.errors} deliveries were refused")
    if (count := stored_count(url)) != WARM_UP + requests:
        raise AssertionError(f"{count} events stored for {WARM_UP + requests} deliveries")
    return Run(spent * 1000 / requests, load.percentile(50), load.percentile(99))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.webhook_intake_cpu", description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--senders", type=int, default=32)
    parser.add_argument("--rate", type=float, help="offer this many deliveries per second (default: closed loop)")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    try:
        for n in range(args.rounds):
            run = measure(args.db, args.workdir, args.requests, args.rate, args.senders)
            offered = f"at {args.rate:,.0f}/s" if args.rate else "closed loop"
            print(f"{args.db} round {n + 1}: {run.cpu_ms:.3f} ms CPU per delivery in the app process "
                  f"({args.requests}, {offered}, {args.senders} connections; p50 {run.p50:.1f} ms, p99 {run.p99:.1f} ms)",
                  flush=True)  # fmt: skip
    finally:
        if args.db == "postgresql":
            drop_postgres(PG_SERVER_URL, PG_DB)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
