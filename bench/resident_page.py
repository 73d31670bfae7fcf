"""Resident page (`GET /p/{token}`) throughput and p99 latency at 100 concurrent connections,
beside a bare Litestar handler on the same route (the ceiling), in the same run.

    .venv/bin/python -m bench.resident_page [--duration 10] [--rounds 3] [--connections 100] [--workers 1]
                                            [--db sqlite|postgresql]

Both servers are uvicorn processes with the same worker count (nofu as `nofu serve` runs it,
`gateway.app:serve_app`); the load comes from `wrk -t1` (Debian package `wrk`, a C load
generator on one thread, so the server has the other core), in rounds that alternate the
servers. A third server, nofu with the page cache off (every request reads and renders, as when
each request is for another invoice), is measured beside them for reference.

The app runs on SQLite (or `--db postgresql`: the scratch database `nofu_bench_resident`) with
one overdue open invoice. Each request verifies the Ed25519 token (cached), checks that nothing
the page shows has changed (the SQLite WAL-index header or PostgreSQL's notifications, the JST
date, attempt expiry) and answers the cached page with its own CSRF token and cookie (wrk sends
no cookies, so every response makes a new token) — or, when something changed, reads the
invoice and its payments and renders the Jinja page.
Goals (issue 4): ≥ 50 % of the ceiling's requests/s and p99 ≤ 100 ms.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

from bench._common import (
    DEFAULT_WORKDIR,
    drop_postgres,
    machine,
    postgres_reachable,
    recreate_postgres,
    recreate_sqlite,
    remove_sqlite,
    table,
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _seed(db_url: str, keys_file: Path) -> str:
    """Migrate, issue one overdue invoice, return its payment path."""
    from gateway.bootstrap import prepare_database
    from gateway.services import build_services
    from gateway.settings import Settings
    from invoices import service
    from invoices.model import invoice_payment_code
    from ledger.db import run_transaction

    settings = Settings(database_url=db_url, dev_keys_file=str(keys_file))
    services = build_services(settings)
    prepare_database(services.engine)
    request = service.IssueRequest(
        tax_code="FIXED_ASSET", fiscal_year=2025, installment=1, due_date=date(2025, 4, 30),
        issue_date=date(2025, 4, 1), amount=123_400, payer_ref="BENCH-1", payer_name="山田 太郎",
    )  # fmt: skip
    issued = run_transaction(
        services.engine, lambda c: service.issue_invoice(c, services.invoices, request, actor="bench")
    )
    token = invoice_payment_code(services.keys.qr, issued.invoice).token
    services.engine.dispose()
    return f"/p/{token}"


def _serve(factory: str, port: int, workers: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", factory, "--factory", "--host", "127.0.0.1", "--port", str(port),
         "--workers", str(workers), "--log-level", "warning", "--no-access-log"],
        env=env,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return process
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"{factory} did not start on port {port}")


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _wrk(url: str, connections: int, duration: int) -> dict[str, float]:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", url],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50, u50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
    p99, u99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    return {
        "rps": rps,
        "p50_ms": float(p50) * _UNITS[u50],
        "p99_ms": float(p99) * _UNITS[u99],
        "non_2xx": float(errors.group(1)) if errors else 0.0,
        "socket_errors": 1.0 if socket_errors else 0.0,
    }


NOFU, BARE = "nofu GET /p/{token}", "bare Litestar handler (ceiling)"
UNCACHED = "nofu, NOFU_PAGE_CACHE=0 (for reference)"
PG_DB = "nofu_bench_resident"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per server per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=100)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("bench.resident_page: needs wrk (apt-get install wrk)", file=sys.stderr)
        return 2

    workdir = DEFAULT_WORKDIR / "resident"
    workdir.mkdir(parents=True, exist_ok=True)
    db = workdir / "resident.sqlite3"
    keys = workdir / "keys.env"
    if args.db == "postgresql":
        if not postgres_reachable():
            print("bench.resident_page: PostgreSQL is not reachable", file=sys.stderr)
            return 2
        db_url = recreate_postgres(name=PG_DB)
    else:
        db_url = recreate_sqlite(db)
    path = _seed(db_url, keys)
    env = {
        **os.environ,
        "NOFU_DATABASE_URL": db_url,
        "NOFU_DEV_KEYS_FILE": str(keys),
        "NOFU_WEBHOOK_INPROCESS": "0",
        "NOFU_PAYMENT_SWEEP_SECONDS": "0",
    }
    app_port, bare_port, uncached_port = _free_port(), _free_port(), _free_port()
    servers = [
        _serve("gateway.app:serve_app", app_port, args.workers, env),
        _serve("bench.bare_app:create_app", bare_port, args.workers, env),
        _serve("gateway.app:serve_app", uncached_port, args.workers, {**env, "NOFU_PAGE_CACHE": "0"}),
    ]
    ports = {NOFU: app_port, BARE: bare_port, UNCACHED: uncached_port}
    rounds: list[dict[str, dict[str, float]]] = []
    try:
        import httpx

        page = httpx.get(f"http://127.0.0.1:{app_port}{path}")
        assert page.status_code == 200 and "固定資産税" in page.text, page.status_code
        for port in ports.values():
            _wrk(f"http://127.0.0.1:{port}{path}", args.connections, 3)  # warm-up
        # Rounds alternate the two servers, so a neighbour's load on the shared cores falls on both.
        for _ in range(args.rounds):
            rounds.append({name: _wrk(f"http://127.0.0.1:{port}{path}", args.connections, args.duration)
                           for name, port in ports.items()})  # fmt: skip
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=10)
        if args.db == "postgresql":
            drop_postgres(name=PG_DB)
        else:
            remove_sqlite(db)
        keys.unlink(missing_ok=True)

    print(machine())
    print(f"wrk -t1 -c{args.connections} -d{args.duration}s per server, {args.rounds} alternating rounds, "
          f"uvicorn --workers {args.workers}, {args.db}\n")  # fmt: skip
    rows = []
    for number, result in enumerate(rounds, 1):
        for name, r in result.items():
            rows.append([number, name, f"{r['rps']:,.0f}", f"{r['p50_ms']:.1f}", f"{r['p99_ms']:.1f}", int(r["non_2xx"])])
    print(table(["round", "server", "requests/s", "p50 ms", "p99 ms", "non-2xx"], rows))
    ratios = [r[NOFU]["rps"] / r[BARE]["rps"] for r in rounds]
    p99s = [r[NOFU]["p99_ms"] for r in rounds]
    print(
        f"\nnofu / ceiling per round: {', '.join(f'{x:.0%}' for x in ratios)}; median {statistics.median(ratios):.0%} "
        f"(goal ≥ 50 %)\nnofu p99 per round: {', '.join(f'{x:.1f}' for x in p99s)} ms; median "
        f"{statistics.median(p99s):.1f} ms (goal ≤ 100 ms)"
    )
    return 0 if all(r[NOFU]["non_2xx"] == 0 for r in rounds) else 1


if __name__ == "__main__":
    sys.exit(main())
