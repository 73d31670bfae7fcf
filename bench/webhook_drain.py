"""CPU a webhook processor spends per event, in process, on PostgreSQL (no HTTP, no intake).

    python -m bench.webhook_drain prepare [--payments 400]
    python -m bench.webhook_drain run [--skip-drain]

``prepare`` pays ``--payments`` invoices in the sandbox, as ``bench.webhooks`` does, keeps the
migrated database as the template ``nofu_bench_drain_tpl`` and the events the sandbox recorded
(four per payment, oldest first) in ``var/bench/webhook-drain-events.json``. ``run`` copies the
template to ``nofu_bench_drain``, stores every event in the inbox (16 a transaction, as the
intake's group commit does), then one ``Processor`` (the one ``nofu worker`` builds, batches of
20) drains it on this thread; it prints the events' outcomes and, per event, this process's CPU,
PostgreSQL's CPU (every ``postgres`` process, from ``/proc``) and the wall time.

The machine's speed drifts by a factor of two within minutes here, so CPU seconds compare two
commits only when runs alternate. Instructions do not drift: run it under callgrind, once as is
and once with ``--skip-drain`` (everything but the drain), and divide the difference by the
events — the figure in docs/webhooks.md::

    PYTHONHASHSEED=0 valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        python -m bench.webhook_drain run [--skip-drain]      # prints "I refs"

Databases written: ``nofu_bench_drain_tpl`` and ``nofu_bench_drain`` (``--database`` to run two
checkouts at once), nothing else.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path

import psycopg

from bench._common import DEFAULT_WORKDIR, PG_SERVER_URL, drop_postgres, pg_url
from bench.webhooks import API_KEY, SECRET, app_env, cpu_seconds, fresh_database, make_payments, postgres_pids

TEMPLATE = "nofu_bench_drain_tpl"
EVENTS = DEFAULT_WORKDIR / "webhook-drain-events.json"


def prepare(payments: int) -> None:
    from gateway.sandbox import SandboxConfig, SandboxServer

    url = fresh_database("postgresql", DEFAULT_WORKDIR, "drain", pg_db=TEMPLATE)
    with SandboxServer(SandboxConfig(api_key=API_KEY, webhook_secret=SECRET)) as sandbox:
        bodies, _ = make_payments(url, app_env(url, sandbox.url, DEFAULT_WORKDIR, in_process=False), payments)
    EVENTS.write_text(json.dumps([body.decode() for body in bodies]))
    print(f"prepared {payments} payments, {len(bodies)} events: template {TEMPLATE}, {EVENTS}")


def copy_template(name: str) -> str:
    drop_postgres(PG_SERVER_URL, name)  # refuses names that are not nofu_bench…
    with psycopg.connect(pg_url(PG_SERVER_URL, "postgres"), autocommit=True) as admin:
        # a copy needs the template to itself (prepare's page-cache listener may linger)
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (TEMPLATE,))
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{TEMPLATE}"')  # type: ignore[arg-type]
    return pg_url(PG_SERVER_URL, name)


def run(database: str, *, skip_drain: bool) -> None:
    from gateway.services import build_services
    from gateway.settings import Settings
    from gateway.webhook_handlers import build_processor
    from ledger.clock import utc_now
    from ledger.db import create_engine, run_transaction
    from webhooks import inbox

    if not EVENTS.exists():
        raise SystemExit(f"{EVENTS} is missing: run `python -m bench.webhook_drain prepare` first")
    url = copy_template(database)
    settings = Settings.from_env(app_env(url, "http://127.0.0.1:9", DEFAULT_WORKDIR, in_process=False))
    engine = create_engine(url)
    services = build_services(settings, engine)
    bodies = [body.encode() for body in json.loads(EVENTS.read_text())]
    for start in range(0, len(bodies), 16):
        run_transaction(engine, lambda c, s=start: inbox.store_many(c, bodies[s : s + 16], now=utc_now()))
    processor = build_processor(engine, services.payments, settings)
    before = {pid: cpu_seconds(pid) for pid in postgres_pids()}
    cpu, wall = time.process_time(), time.perf_counter()
    drained = 0 if skip_drain else processor.drain()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    postgres = sum(cpu_seconds(pid) - before.get(pid, 0.0) for pid in postgres_pids())
    engine.dispose()
    if skip_drain:
        print(f"stored {len(bodies)} events, not drained")
        return
    if drained != len(bodies) or set(processor.counts) - {"applied", "skipped", "ignored"}:
        raise AssertionError(f"drained {drained} of {len(bodies)}: {dict(processor.counts)}")
    per = 1000 / drained
    print(
        f"{drained} events {dict(processor.counts)}; per event: processor CPU {cpu * per:.3f} ms, "
        f"PostgreSQL CPU {postgres * per:.3f} ms, wall {wall * per:.3f} ms"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.webhook_drain", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare", help="pay invoices in the sandbox and keep the database and events")
    p.add_argument("--payments", type=int, default=400)
    r = sub.add_parser("run", help="store the events in a copy of the template and drain them")
    r.add_argument("--skip-drain", action="store_true", help="everything but the drain (callgrind's baseline)")
    r.add_argument("--database", default="nofu_bench_drain", help="the copy's name (nofu_bench…)")
    args = parser.parse_args(argv)
    DEFAULT_WORKDIR.mkdir(parents=True, exist_ok=True)
    if args.command == "prepare":
        prepare(args.payments)
    else:
        run(args.database, skip_drain=args.skip_drain)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
