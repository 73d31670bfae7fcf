"""CPU a webhook processor spends per event, in process, on PostgreSQL (no HTTP, no intake).

    python -m bench.webhook_drain prepare [--payments 400]
    python -m bench.webhook_drain run [--skip-drain]
    python -m bench.webhook_drain floor

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

``floor`` is the same drain with no processor at all: it records every statement a real drain
sends (SQL, parameters, commits; through SQLAlchemy's cursor events) on one copy, then replays
them, in order and in the same transactions, with bare psycopg on a second copy that holds the
same stored events. The replay writes exactly the rows the drain wrote (it checks so), so its CPU
is what these rows cost with no Python of ours around them: the floor under any processor that
writes them, the figure the throughput goal is held against in docs/webhooks.md.

Databases written: ``nofu_bench_drain_tpl`` and ``nofu_bench_drain`` (``--database`` to run two
checkouts at once; ``floor`` also ``<database>_replay``), nothing else.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import psycopg
import sqlalchemy as sa

from bench._common import DEFAULT_WORKDIR, PG_SERVER_URL, drop_postgres, pg_url
from bench.webhooks import API_KEY, SECRET, CpuMeter, app_env, fresh_database, make_payments, postgres_pids

if TYPE_CHECKING:
    from webhooks.processor import Processor

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


def stored_copy(database: str, stored_at: datetime) -> tuple[str, int]:
    """A copy of the template with every recorded event stored (16 a transaction, as the
    intake's group commit does) at ``stored_at``: its URL and how many events."""
    from ledger.db import create_engine, run_transaction
    from webhooks import inbox

    if not EVENTS.exists():
        raise SystemExit(f"{EVENTS} is missing: run `python -m bench.webhook_drain prepare` first")
    url = copy_template(database)
    engine = create_engine(url)
    bodies = [body.encode() for body in json.loads(EVENTS.read_text())]
    for start in range(0, len(bodies), 16):
        run_transaction(engine, lambda c, s=start: inbox.store_many(c, bodies[s : s + 16], now=stored_at))
    engine.dispose()
    return url, len(bodies)


def processor_for(url: str) -> Processor:
    """The processor ``nofu worker`` builds (batches of 20), on its own engine."""
    from gateway.services import build_services
    from gateway.settings import Settings
    from gateway.webhook_handlers import build_processor
    from ledger.db import create_engine

    settings = Settings.from_env(app_env(url, "http://127.0.0.1:9", DEFAULT_WORKDIR, in_process=False))
    engine = create_engine(url)
    return build_processor(engine, build_services(settings, engine).payments, settings)


class Usage:
    """This process's CPU, PostgreSQL's (every ``postgres`` process, ``CpuMeter``) and the wall
    time over a block."""

    def __enter__(self) -> Usage:
        self._meter = CpuMeter({"PostgreSQL": postgres_pids})
        self._meter.start()
        self._cpu, self._wall = time.process_time(), time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cpu, self.wall = time.process_time() - self._cpu, time.perf_counter() - self._wall
        self._meter.stop()
        self.postgres = self._meter.spent["PostgreSQL"]

    def per_event(self, events: int, client: str) -> str:
        per = 1000 / events
        return f"{client} CPU {self.cpu * per:.3f} ms, PostgreSQL CPU {self.postgres * per:.3f} ms, wall {self.wall * per:.3f} ms"


def drain_all(processor: Processor, events: int) -> None:
    """Drain, and refuse a drain that left any of the ``events`` unfinished or failed."""
    claimed = processor.drain()
    if claimed != events or set(processor.counts) - {"applied", "skipped", "ignored"}:
        raise AssertionError(f"drained {claimed} of {events}: {dict(processor.counts)}")


def run(database: str, *, skip_drain: bool) -> None:
    from ledger.clock import utc_now

    url, events = stored_copy(database, utc_now())
    if skip_drain:
        print(f"stored {events} events, not drained")
        return
    processor = processor_for(url)
    with Usage() as usage:
        drain_all(processor, events)
    processor.engine.dispose()
    print(f"{events} events {dict(processor.counts)}; per event: {usage.per_event(events, 'processor')}")


Step = tuple[str, Any, bool] | str  # a statement (SQL, parameters, executemany) or "commit" / "rollback"


def record(url: str, events: int) -> tuple[list[Step], dict[str, int]]:
    """Drain the copy at ``url`` with the real processor, recording every statement it sends."""
    processor = processor_for(url)
    steps: list[Step] = []

    def sent(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        steps.append((statement, parameters, executemany))

    sa.event.listen(processor.engine, "before_cursor_execute", sent)
    sa.event.listen(processor.engine, "commit", lambda conn: steps.append("commit"))
    sa.event.listen(processor.engine, "rollback", lambda conn: steps.append("rollback"))
    drain_all(processor, events)
    processor.engine.dispose()
    return steps, books(url)


def replay(url: str, steps: list[Step]) -> None:
    """Send ``steps`` with bare psycopg on one connection, in order, in the same transactions."""
    with psycopg.connect(url) as conn, conn.cursor() as cursor:
        for step in steps:
            if step == "commit":
                conn.commit()
            elif step == "rollback":
                conn.rollback()
            else:
                statement, parameters, many = step
                if many:
                    cursor.executemany(statement, parameters)
                else:
                    cursor.execute(statement, parameters)


def books(url: str) -> dict[str, int]:
    """What a drain leaves behind, to hold a replay against the drain it recorded."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM receipts), (SELECT count(*) FROM ledger_entries),"
            " (SELECT count(*) FROM ledger_lines), (SELECT coalesce(sum(balance), 0)::bigint FROM ledger_accounts WHERE balance > 0),"
            " (SELECT count(*) FROM webhook_events WHERE state IN ('applied', 'skipped', 'ignored')),"
            " (SELECT count(*) FROM invoice_changes), (SELECT count(*) FROM audit_log)"
        ).fetchone()
    assert row is not None
    return dict(zip(("receipts", "entries", "lines", "debits", "finished", "changes", "audit"), row, strict=True))


def floor(database: str) -> None:
    from ledger.clock import utc_now

    stored_at = utc_now()
    url, events = stored_copy(database, stored_at)
    steps, drain_books = record(url, events)
    replay_url, _ = stored_copy(f"{database}_replay", stored_at)
    with Usage() as usage:
        replay(replay_url, steps)
    replay_books = books(replay_url)
    if replay_books != drain_books:
        raise AssertionError(f"the replay wrote other rows than the drain: {replay_books} != {drain_books}")
    statements = sum(len(parameters) if many else 1 for _, parameters, many in (s for s in steps if isinstance(s, tuple)))
    commits = steps.count("commit")
    print(
        f"{events} events: {statements} statements and {commits} commits replayed by bare psycopg, "
        f"{replay_books['receipts']} receipts and {replay_books['finished']} events finished as in the drain; "
        f"per event: {usage.per_event(events, 'client')}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.webhook_drain", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare", help="pay invoices in the sandbox and keep the database and events")
    p.add_argument("--payments", type=int, default=400)
    r = sub.add_parser("run", help="store the events in a copy of the template and drain them")
    r.add_argument("--skip-drain", action="store_true", help="everything but the drain (callgrind's baseline)")
    r.add_argument("--database", default="nofu_bench_drain", help="the copy's name (nofu_bench…)")
    f = sub.add_parser("floor", help="replay a drain's statements with bare psycopg: what its rows cost alone")
    f.add_argument("--database", default="nofu_bench_drain", help="the copies' name (nofu_bench…)")
    args = parser.parse_args(argv)
    DEFAULT_WORKDIR.mkdir(parents=True, exist_ok=True)
    if args.command == "prepare":
        prepare(args.payments)
    elif args.command == "run":
        run(args.database, skip_drain=args.skip_drain)
    else:
        floor(args.database)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
