"""The reconciliation benchmark: one business day of N provider balance transactions (charges)
against N ledger payments, plus the payout that sweeps them and its bank deposit, reconciled by
``reconciliation.reconcile_day`` on SQLite and/or PostgreSQL.

    .venv/bin/python -m bench.reconciliation [--n 1000000] [--small 100000] [--db sqlite|postgresql|both]

The data is generated once with bulk SQL (recursive CTE on SQLite, ``generate_series`` on
PostgreSQL): N ledger entries Dr 1200 / Cr 1100:FIXED_ASSET with ``source_ref`` ``stripe:pi_<i>``,
N charge transactions at the provider with the contracted 3.6 % fee, one in 10,000 with an amount
1 yen off (an ``amount_mismatch`` break each), the payout of their net due that day and its bank
line. The ledger rows are balanced by construction (on PostgreSQL the generating session skips the
ledger's per-row triggers with ``session_replication_role = replica``; the timed run has them all);
their hash chain is not computed (the reconciliation does not read it).

What is timed is ``reconcile_day`` itself (the statement is already pulled), ``--repeat`` times
(default 3), each on a fresh copy of the generated database (a file copy, or ``CREATE DATABASE …
TEMPLATE``) in a fresh child process, so that its peak resident memory
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``) is the run's alone; the median is reported (the
machine is shared). A second run on the same copy (the idempotent re-run) is timed too. Each run
checks its own result: N matches, N/10,000 amount mismatches and nothing else, the payout matched
and posted, the clearing account where it must be, the re-run's digest equal to the first.
Goals (issue 6): ≤ 60 s and ≤ 1 GB for N = 1,000,000 on each engine, time(N) / time(N/10) ≤ 12.

Databases written: ``var/bench/reconciliation-<n>*.sqlite3`` and the PostgreSQL scratch databases
``nofu_bench_reconciliation`` and ``nofu_bench_reconciliation_template`` (dropped afterwards).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bench._common import (
    DEFAULT_WORKDIR,
    PG_SERVER_URL,
    drop_postgres,
    machine,
    pg_url,
    postgres_reachable,
    postgres_version,
    recreate_postgres,
    recreate_sqlite,
    stopwatch,
    table,
)
from gateway.bootstrap import prepare_database
from ledger.db import create_engine

DAY = date(2026, 6, 1)
PG_DATABASE = "nofu_bench_reconciliation"
PG_TEMPLATE = "nofu_bench_reconciliation_template"
MISMATCH_EVERY = 10_000
CHUNK = 250_000  # rows per generating transaction


def _ids(conn: sa.Connection) -> tuple[int, int]:
    rows: dict[str, int] = {
        code: int(account_id)
        for code, account_id in conn.execute(
            sa.text("SELECT code, id FROM ledger_accounts WHERE code IN ('1200', '1100:FIXED_ASSET')")
        )
    }
    return int(rows["1200"]), int(rows["1100:FIXED_ASSET"])


def _series(dialect: str, lo: int, hi: int) -> str:
    if dialect == "sqlite":
        return (f"WITH RECURSIVE s(i) AS (SELECT {lo} UNION ALL SELECT i + 1 FROM s WHERE i < {hi}) "
                "SELECT i FROM s")  # fmt: skip
    return f"SELECT i FROM generate_series({lo}::bigint, {hi}::bigint) AS g(i)"


AMOUNT = "(1000 + (i % 997) * 37)"


def _run(conn: sa.Connection, sql: str) -> None:
    # psycopg reads % as a placeholder even without parameters.
    conn.exec_driver_sql(sql.replace("%", "%%") if conn.dialect.name == "postgresql" else sql)


def generate(engine: Engine, n: int) -> None:
    """The day's data, with bulk SQL only (see the module docstring)."""
    dialect = engine.dialect.name
    pad = "printf('%064d', {x})" if dialect == "sqlite" else "lpad(({x})::text, 64, '0')"
    text = "CAST({x} AS TEXT)" if dialect == "sqlite" else "({x})::text"
    def day(d: date) -> str:
        return f"'{d.isoformat()}'" if dialect == "sqlite" else f"DATE '{d.isoformat()}'"

    with engine.begin() as conn:
        clearing, receivable = _ids(conn)
    for lo in range(1, n + 1, CHUNK):
        hi = min(n, lo + CHUNK - 1)
        series = _series(dialect, lo, hi)
        with engine.begin() as conn:
            if dialect == "postgresql":
                # The ledger's per-row triggers (balance checks) made generating a million entries
                # take minutes; the rows are balanced by construction. Only this session, only the
                # scratch database; the timed run has every trigger.
                conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
            _run(
                conn,
                "INSERT INTO ledger_lines (entry_id, line_no, account_id, side, amount, effective_date, balance_after, account_version) "
                f"SELECT i, 1, {clearing}, 'D', {AMOUNT}, {day(DAY)}, 0, i FROM ({series}) AS q "
                f"UNION ALL SELECT i, 2, {receivable}, 'C', {AMOUNT}, {day(DAY)}, 0, i FROM ({series}) AS q2"
            )
            recorded = "'2026-06-01 12:00:00'" if dialect == "sqlite" else "'2026-06-01 12:00:00+00'::timestamptz"
            _run(
                conn,
                "INSERT INTO ledger_entries (id, effective_date, recorded_at, description, source_ref, idempotency_key, "
                "content_digest, reverses_entry_id, prev_hash, hash) "
                f"SELECT i, {day(DAY)}, {recorded}, 'bench payment', 'stripe:pi_' || {text.format(x='i')}, "
                f"'bench:' || {text.format(x='i')}, {pad.format(x='i')}, NULL, {pad.format(x='i - 1')}, {pad.format(x='i')} "
                f"FROM ({series}) AS q"
            )
            # Provider charges through the day (JST), fee at 3.6 % rounded half up; every
            # MISMATCH_EVERY-th one 1 yen more than the ledger booked.
            amount = f"({AMOUNT} + CASE WHEN i % {MISMATCH_EVERY} = 0 THEN 1 ELSE 0 END)"
            fee = f"(({amount} * 72 + 1000) / 2000)"
            offset = f"((i - 1) * 86399 / {n})"
            if dialect == "sqlite":
                created = f"datetime('2026-05-31 15:00:00', '+' || {offset} || ' seconds')"
                pulled = "'2026-06-02 00:00:00'"
            else:
                created = f"('2026-05-31 15:00:00+00'::timestamptz + make_interval(secs => {offset}))"
                pulled = "'2026-06-02 00:00:00+00'::timestamptz"
            _run(
                conn,
                "INSERT INTO recon_provider_txns (id, type, reporting_category, amount, fee, net, currency, created_at, "
                "business_date, created_hour, available_on, source_id, match_ref, payment_ref, notice_number, "
                "attempt_ref, payout_id, pulled_at) "
                f"SELECT 'txn_' || {text.format(x='i')}, 'charge', 'charge', {amount}, {fee}, {amount} - {fee}, 'jpy', "
                f"{created}, {day(DAY)}, {offset} / 3600, {day(DAY + timedelta(days=1))}, "
                f"'ch_' || {text.format(x='i')}, 'pi_' || {text.format(x='i')}, 'pi_' || {text.format(x='i')}, NULL, NULL, "
                f"'po_bench', {pulled} FROM ({series}) AS q"
            )
    with engine.begin() as conn:
        total, net = conn.execute(sa.text(
            "SELECT SUM(amount), SUM(net) FROM recon_provider_txns WHERE payout_id = 'po_bench'"
        )).one()  # fmt: skip
        booked = conn.execute(sa.text("SELECT SUM(amount) FROM ledger_lines WHERE account_id = :a"), {"a": clearing}).scalar_one()
        conn.execute(sa.text("UPDATE ledger_accounts SET balance = :b, version = :n WHERE id = :a"), {"b": booked, "n": n, "a": clearing})
        conn.execute(sa.text("UPDATE ledger_accounts SET balance = :b, version = :n WHERE id = :a"), {"b": -booked, "n": n, "a": receivable})
        conn.execute(sa.text("UPDATE ledger_chain_head SET seq = :n, hash = :h WHERE id = 1"), {"n": n, "h": f"{n:064d}"})
        stamp = "2026-06-02 01:00:00+00:00"
        conn.execute(sa.text(
            "INSERT INTO recon_provider_txns (id, type, reporting_category, amount, fee, net, currency, created_at, "
            "business_date, created_hour, available_on, source_id, match_ref, payment_ref, payout_id, pulled_at) "
            "VALUES ('txn_po_bench', 'payout', 'payout', :neg, 0, :neg, 'jpy', :at, :d2, 10, :d2, 'po_bench', "
            "'po_bench', NULL, 'po_bench', :at)"), {"neg": -int(net), "at": stamp, "d2": DAY + timedelta(days=1)})  # fmt: skip
        conn.execute(sa.text(
            "INSERT INTO recon_payouts (id, amount, currency, status, created_at, arrival_date, balance_txn_id, pulled_at) "
            "VALUES ('po_bench', :net, 'jpy', 'paid', :at, :d, 'txn_po_bench', :at)"), {"net": int(net), "at": stamp, "d": DAY})  # fmt: skip
        conn.execute(sa.text(
            "INSERT INTO recon_bank_imports (sha256, format, account, lines_total, lines_new, imported_by, imported_at) "
            "VALUES ('bench', 'csv', 'designated', 1, 1, 'bench', :at)"), {"at": stamp})  # fmt: skip
        import_id = conn.execute(sa.text("SELECT id FROM recon_bank_imports WHERE sha256 = 'bench'")).scalar_one()
        conn.execute(sa.text(
            "INSERT INTO recon_bank_lines (account, line_key, value_date, amount, description, import_id) "
            "VALUES ('designated', 'bench:1', :d, :net, 'STRIPE PAYOUT', :imp)"), {"d": DAY, "net": int(net), "imp": import_id})  # fmt: skip
        assert total is not None
    if dialect == "postgresql":
        with engine.connect() as conn:  # what autovacuum would do soon after a bulk load
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM ANALYZE")
    else:
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")


def child(url: str, n: int) -> dict[str, Any]:
    """Run in a fresh process: two runs of the day, with the run's own peak memory."""
    import resource
    import time

    from reconciliation import reconcile_day

    engine = create_engine(url)
    began = time.perf_counter()
    first = reconcile_day(engine, DAY, actor="bench", today=DAY + timedelta(days=10))
    seconds = time.perf_counter() - began
    began = time.perf_counter()
    second = reconcile_day(engine, DAY, actor="bench", today=DAY + timedelta(days=10))
    rerun = time.perf_counter() - began
    with engine.connect() as conn:
        matches = conn.execute(sa.text("SELECT COUNT(*) FROM recon_matches")).scalar_one()
        clearing = conn.execute(sa.text("SELECT balance FROM ledger_accounts WHERE code = '1200'")).scalar_one()
    summary = first.summary
    off = n // MISMATCH_EVERY
    assert summary["breaks"] == ({"amount_mismatch": {"count": off, "amount": off}} if off else {}), summary["breaks"]
    assert second.report_sha256 == first.report_sha256
    assert matches == n, matches
    payouts: list[dict[str, Any]] = summary["payouts"]  # type: ignore[assignment]
    [payout] = payouts
    assert payout["ledger_entry"] is not None and payout["transactions"] == n
    # The payout credited the provider's gross; the ledger booked 1 yen less on each mismatch.
    assert clearing == -(n // MISMATCH_EVERY), clearing
    return {
        "seconds": seconds,
        "rerun_seconds": rerun,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "matches": matches,
        "breaks": summary["breaks"],
    }


def _copy_sqlite(template: Path, target: Path) -> str:
    for suffix in ("", "-wal", "-shm"):
        target.with_name(target.name + suffix).unlink(missing_ok=True)
    shutil.copyfile(template, target)
    return f"sqlite:///{target}"


def _clone_postgres(template: str, name: str) -> str:
    with psycopg.connect(pg_url(PG_SERVER_URL, "postgres"), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')  # type: ignore[arg-type]
    return pg_url(PG_SERVER_URL, name)


def measure(db: str, n: int, workdir: Path, repeat: int) -> dict[str, Any]:
    """Generate the day once, then run it ``repeat`` times, each on a fresh copy (the median is
    reported: the machine is shared, and one run can land on someone else's busy second)."""
    if db == "sqlite":
        template_path = workdir / f"reconciliation-{n}-template.sqlite3"
        url = recreate_sqlite(template_path)
    else:
        url = recreate_postgres(PG_SERVER_URL, PG_TEMPLATE)
    engine = create_engine(url)
    try:
        prepare_database(engine)
        with stopwatch() as generating:
            generate(engine, n)
    finally:
        engine.dispose()
    runs = []
    try:
        for _ in range(repeat):
            if db == "sqlite":
                run_url = _copy_sqlite(template_path, workdir / f"reconciliation-{n}.sqlite3")
            else:
                run_url = _clone_postgres(PG_TEMPLATE, PG_DATABASE)
            os.sync()  # the copy is on disk before the clock starts
            done = subprocess.run(
                [sys.executable, "-m", "bench.reconciliation", "--child", run_url, "--n", str(n)],
                capture_output=True, text=True, check=False, env={**os.environ, "PYTHONPATH": os.getcwd()},
            )  # fmt: skip
            if done.returncode != 0:
                raise RuntimeError(f"the run failed:\n{done.stderr[-4000:]}")
            runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    finally:
        if db == "postgresql":
            drop_postgres(PG_SERVER_URL, PG_DATABASE)
            drop_postgres(PG_SERVER_URL, PG_TEMPLATE)
    times = sorted(r["seconds"] for r in runs)
    return {
        "generate_seconds": generating.seconds,
        "seconds": statistics.median(times),
        "all_seconds": times,
        "rerun_seconds": statistics.median(r["rerun_seconds"] for r in runs),
        "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.reconciliation", description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=100_000, help="the size the linear-growth ratio compares with")
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per size, each on a fresh copy (median)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.n)))
        return 0
    dbs = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    if "postgresql" in dbs and not postgres_reachable(PG_SERVER_URL):
        print(f"PostgreSQL is not reachable at {PG_SERVER_URL}", file=sys.stderr)
        return 2
    print(f"reconciliation benchmark: one day, N charges ↔ N ledger payments + payout + bank line; {machine()}")
    if "postgresql" in dbs:
        print(f"PostgreSQL {postgres_version(PG_SERVER_URL)}")
    rows = []
    ok = True
    for db in dbs:
        results = {size: measure(db, size, args.workdir, args.repeat) for size in (args.small, args.n)}
        big, small = results[args.n], results[args.small]
        ratio = big["seconds"] / small["seconds"]
        for size, result in results.items():
            rows.append([db, f"{size:,}", f"{result['generate_seconds']:.1f}", f"{result['seconds']:.1f}",
                         " / ".join(f"{t:.1f}" for t in result["all_seconds"]), f"{result['rerun_seconds']:.1f}",
                         f"{result['peak_rss_mb']:.0f}", f"{ratio:.2f}" if size == args.n else ""])  # fmt: skip
        ok = ok and big["seconds"] <= 60 and big["peak_rss_mb"] <= 1024 and ratio <= 12
    print(table(["engine", "N", "generate s", "reconcile s (median)", "runs s", "re-run s", "peak RSS MB",
                 "t(N)/t(N/10)"], rows))  # fmt: skip
    print("goals (N = 1,000,000): reconcile ≤ 60 s, peak RSS ≤ 1,024 MB, ratio ≤ 12:", "met" if ok else "NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
