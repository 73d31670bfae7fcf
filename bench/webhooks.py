"""The webhook benchmark: signed HTTP deliveries through intake, inbox and processor to the books.

Run ``python -m bench.webhooks`` (about 4 minutes on 2 shared cores) or ``--quick`` (about a
minute; ``--sqlite-only`` skips PostgreSQL). It prints, in one run:

1. **end to end**: real payments made in the sandbox (a PaymentIntent per invoice, confirmed the
   way Stripe.js does, so nofu learns of it only from the events), then every event the sandbox
   recorded — ``payment_intent.created``, ``charge.succeeded``, ``payment_intent.succeeded``,
   ``charge.updated``: four per payment, one of which records the money — is POSTed, freshly
   signed, to ``/webhooks/stripe`` of the real app (uvicorn, one process, started as ``nofu serve``
   starts it) by 32 concurrent senders, oldest first. The clock stops when the last event is finished in the inbox. SQLite:
   the app's own processor thread (one process). PostgreSQL: the app only stores, two
   ``nofu worker`` processes apply. Figures: events finished per second, payments posted per
   second; afterwards the books are checked (one receipt per payment, nothing dead, the ledger
   balances and verifies, clearing account = money received);
2. **intake**: 200 concurrent senders (one keep-alive connection each) POSTing distinct signed
   events to the app with processing off — closed loop (each sends its next as soon as the last
   is answered: the saturation throughput, and the latency that queueing behind 199 others
   gives) and open loop at fixed offered rates (latency measured from the scheduled send time,
   so a stalled server cannot hide its queue);
3. **ceiling**: the same loads against a bare Litestar endpoint that only verifies the signature
   with the same function and answers 200 (no database).

The load generator is a small asyncio HTTP/1.1 client in this process (it costs CPU on the same
two cores). Databases written: ``var/bench/webhooks-*.sqlite3`` and the PostgreSQL database
``nofu_bench_webhooks`` (dropped and created per scenario), nothing else.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from litestar import Litestar, Request, Response, post

from bench._common import (
    DEFAULT_WORKDIR,
    PG_SERVER_URL,
    drop_postgres,
    machine,
    postgres_reachable,
    postgres_version,
    recreate_postgres,
    recreate_sqlite,
    table,
)
from gateway.heap import freeze_heap
from webhooks.signature import verify

ROOT = Path(__file__).resolve().parents[1]
SECRET = "whsec_bench_secret"
API_KEY = "sk_test_bench"
PG_DB = "nofu_bench_webhooks"
E2E_SENDERS = 32
INTAKE_SENDERS = 200


# --- a lean HTTP/1.1 client -------------------------------------------------------------------


class Connection:
    """One keep-alive HTTP/1.1 connection; ``post`` returns (status, seconds)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str) -> None:
        self.reader, self.writer, self.host = reader, writer, host

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(reader, writer, f"127.0.0.1:{port}")

    async def post(self, path: str, body: bytes, signature: str) -> int:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json; charset=utf-8\r\n"
            f"Stripe-Signature: {signature}\r\nContent-Length: {len(body)}\r\nUser-Agent: Stripe/1.0\r\n\r\n"
        ).encode()
        self.writer.write(head + body)
        status_line = await self.reader.readline()
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        if length:
            await self.reader.readexactly(length)
        return int(status_line.split()[1])

    def close(self) -> None:
        self.writer.close()


def sign(body: bytes, timestamp: int) -> str:
    from gateway.sandbox.signing import signature_header

    return signature_header(SECRET, timestamp, body)


@dataclass
class LoadResult:
    requests: int
    seconds: float
    latencies: list[float]
    errors: int

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000


async def closed_loop(port: int, bodies: Sequence[tuple[bytes, str]], senders: int, path: str) -> LoadResult:
    """``senders`` connections; each posts the next body as soon as its last one is answered."""
    conns = [await Connection.open(port) for _ in range(senders)]
    latencies: list[float] = []
    errors = 0
    cursor = iter(range(len(bodies)))

    async def run(conn: Connection) -> None:
        nonlocal errors
        for index in cursor:
            body, signature = bodies[index]
            began = time.perf_counter()
            status = await conn.post(path, body, signature)
            latencies.append(time.perf_counter() - began)
            errors += status != 200

    began = time.perf_counter()
    await asyncio.gather(*(run(conn) for conn in conns))
    seconds = time.perf_counter() - began
    for conn in conns:
        conn.close()
    return LoadResult(len(bodies), seconds, latencies, errors)


async def open_loop(port: int, bodies: Sequence[tuple[bytes, str]], senders: int, rate: float, path: str) -> LoadResult:
    """Requests scheduled at ``rate`` per second spread over ``senders`` connections; latency runs
    from each request's scheduled time, so waiting for a busy connection counts."""
    conns = [await Connection.open(port) for _ in range(senders)]
    latencies: list[float] = []
    errors = 0
    start = time.perf_counter() + 0.2
    interval = 1.0 / rate

    async def run(k: int, conn: Connection) -> None:
        nonlocal errors
        for index in range(k, len(bodies), senders):
            due = start + index * interval
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            body, signature = bodies[index]
            status = await conn.post(path, body, signature)
            latencies.append(time.perf_counter() - due)
            errors += status != 200

    await asyncio.gather(*(run(k, conn) for k, conn in enumerate(conns)))
    seconds = time.perf_counter() - start
    for conn in conns:
        conn.close()
    return LoadResult(len(bodies), seconds, latencies, errors)


# --- processes ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(target: str, env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", target, "--factory", "--host", "127.0.0.1", "--port", str(port),
         "--no-access-log", "--log-level", "warning"],
        cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process, port
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{target} did not start; see {log}") from None
            time.sleep(0.05)


def start_worker(env: dict[str, str], name: str, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "worker", "--id", name, "--idle", "0.05"],
        cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip


def wait_started(logs: Sequence[Path], timeout: float = 60) -> None:
    """Until every worker has logged that it started (imports and services take a second or two)."""
    deadline = time.monotonic() + timeout
    while not all(log.exists() and b" started" in log.read_bytes() for log in logs):
        if time.monotonic() > deadline:
            raise RuntimeError(f"workers did not start; see {', '.join(map(str, logs))}")
        time.sleep(0.05)


def stop(processes: Sequence[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()


def cpu_seconds(pid: int) -> float:
    """User + system CPU of one process so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    pids.append(int(entry.name))
            except OSError:
                pass
    return pids


class CpuMeter:
    """CPU seconds spent by named groups of processes between ``start`` and ``stop``: where the
    two cores went (load generator, intake, workers, PostgreSQL). PostgreSQL backends come and
    go; those alive at either reading are counted, so a backend that lived only in between is
    missed (the app and workers keep their connections, so it is a small undercount)."""

    def __init__(self, groups: dict[str, Callable[[], list[int]]]) -> None:
        self.groups = groups
        self.before: dict[str, dict[int, float]] = {}
        self.spent: dict[str, float] = {}

    def _read(self) -> dict[str, dict[int, float]]:
        return {name: {pid: cpu_seconds(pid) for pid in pids()} for name, pids in self.groups.items()}

    def start(self) -> None:
        self.before = self._read()

    def stop(self) -> None:
        after = self._read()
        self.spent = {
            name: sum(after[name].get(pid, 0.0) - self.before[name].get(pid, 0.0) for pid in after[name])
            for name in self.groups
        }


def ceiling_app() -> Litestar:
    """A Litestar app with one endpoint that verifies the signature and answers 200: the most
    an intake on this stack could do without storing anything."""
    secrets = (SECRET,)

    @post("/webhooks/stripe", status_code=200)
    async def receive(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
        body = await request.body()
        verify(body, request.headers.get("stripe-signature"), secrets)
        return Response({"received": True})

    return Litestar(route_handlers=[receive], on_startup=[freeze_heap])  # as nofu's app: gateway.app.serve_app


# --- scenarios ----------------------------------------------------------------------------------


def app_env(url: str, sandbox_url: str, work: Path, *, in_process: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOFU_")}
    env.update(
        NOFU_DATABASE_URL=url,
        NOFU_DEV_KEYS_FILE=str(work / "bench-dev-keys.env"),
        NOFU_STRIPE_SECRET_KEY=API_KEY,
        NOFU_STRIPE_API_BASE=sandbox_url,
        NOFU_STRIPE_WEBHOOK_SECRET=SECRET,
        NOFU_WEBHOOK_INPROCESS="1" if in_process else "0",
        NOFU_PAYMENT_SWEEP_SECONDS="0",
        PYTHONPATH=str(ROOT),
    )
    return env


def fresh_database(kind: str, work: Path, name: str, pg_db: str = PG_DB) -> str:
    """A migrated scratch database: ``var/bench/webhooks-<name>.sqlite3`` or PostgreSQL ``pg_db``."""
    from gateway.bootstrap import prepare_database
    from ledger.db import create_engine

    url = recreate_sqlite(work / f"webhooks-{name}.sqlite3") if kind == "sqlite" else recreate_postgres(PG_SERVER_URL, pg_db)
    engine = create_engine(url)
    prepare_database(engine)
    engine.dispose()
    return url


def make_payments(url: str, env: dict[str, str], count: int) -> tuple[list[bytes], int]:
    """``count`` invoices each paid at the sandbox by a 'browser'; returns every event the
    sandbox recorded (oldest first, as delivery bodies) and the number of payments."""
    from gateway.services import build_services
    from gateway.settings import Settings
    from invoices.model import IssueRequest
    from invoices.service import issue_invoice
    from ledger.clock import today_jst
    from ledger.db import create_engine, run_transaction

    settings = Settings.from_env(env)
    engine = create_engine(url)
    services = build_services(settings, engine)
    payments = services.payments
    assert payments.provider is not None
    client = payments.provider.client  # type: ignore[attr-defined]
    due = today_jst() + timedelta(days=30)

    def pay(n: int) -> None:
        request = IssueRequest(
            tax_code="FIXED_ASSET", fiscal_year=due.year, installment=1, due_date=due, amount=10_000 + n,
            payer_ref=f"B{n:07d}", payer_name="納付 太郎", payer_address="東京都千代田区1-1", payer_contact="",
            issue_date=today_jst(),
        )  # fmt: skip
        issued = run_transaction(engine, lambda conn: issue_invoice(conn, services.invoices, request, actor="bench"))
        attempt = payments.start_or_join(issued.invoice.public_id)
        client.v1.payment_intents.confirm(
            attempt.provider_payment_id, params={"payment_method": "pm_card_visa", "return_url": "http://127.0.0.1/r"}
        )

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(pay, range(count)))
    events = [evt.to_dict() for evt in client.v1.events.list(params={"limit": 100}).auto_paging_iter()]
    events.reverse()  # the provider lists newest first; it delivers roughly oldest first
    engine.dispose()
    return [json.dumps(evt, indent=2, ensure_ascii=False).encode("utf-8") for evt in events], count


def unfinished(engine: Any) -> bool:
    """Whether any event is still to be worked (pending or processing). Once every delivery has
    been answered, every event is stored, so none left means all finished (``check_books``
    counts them after). One look through the due index that stops at the first such row: a
    count of finished rows read the whole inbox, payloads and all, twenty times a second (3 % of
    PostgreSQL's CPU in the measured window), and a count of unfinished ones still stepped over
    every row's index entries left behind by earlier states (4 %)."""
    with engine.connect() as conn:
        return bool(
            conn.execute(
                sa.text("SELECT EXISTS (SELECT 1 FROM webhook_events WHERE state IN ('pending', 'processing'))")
            ).scalar_one()
        )


def check_books(engine: Any, payments: int, events: int) -> str:
    """Everything the run claims is in the books: one receipt per payment, no dead event, the
    ledger balances and verifies, clearing (1200) holds exactly the money received."""
    import ledger

    with engine.connect() as conn:
        receipts = conn.execute(sa.text("SELECT count(*) FROM receipts")).scalar_one()
        states = dict(conn.execute(sa.text("SELECT state, count(*) FROM webhook_events GROUP BY state")).all())
        received = conn.execute(sa.text("SELECT COALESCE(SUM(amount_received), 0) FROM payment_attempts")).scalar_one()
        clearing = conn.execute(sa.text("SELECT balance FROM ledger_accounts WHERE code = '1200'")).scalar_one()
    from ledger.db import read_transaction

    with read_transaction(engine) as conn:
        report = ledger.verify(conn)
        balanced = ledger.trial_balance(conn).balanced
    problems = []
    if receipts != payments:
        problems.append(f"{receipts} receipts for {payments} payments")
    if states.get("dead") or sum(states.values()) != events:
        problems.append(f"states {states}")
    if not (report.ok and balanced and clearing == received):
        problems.append(f"books: verify {report.ok}, balanced {balanced}, 1200 {clearing} vs {received}")
    if problems:
        raise AssertionError("; ".join(problems))
    return f"{receipts} receipts, states {states}, ledger verified and balanced, 1200 = ¥{clearing:,}"


def end_to_end(kind: str, work: Path, payments: int, workers: int) -> dict[str, Any]:
    from gateway.sandbox import SandboxConfig, SandboxServer
    from ledger.db import create_engine

    url = fresh_database(kind, work, "e2e")
    with SandboxServer(SandboxConfig(api_key=API_KEY, webhook_secret=SECRET)) as sandbox:
        env = app_env(url, sandbox.url, work, in_process=kind == "sqlite")
        bodies, paid = make_payments(url, env, payments)
        stamp = int(time.time())
        signed = [(body, sign(body, stamp)) for body in bodies]
        processes: list[subprocess.Popen[bytes]] = []
        try:
            app, port = start_server("gateway.app:serve_app", env, work / f"e2e-{kind}-app.log")
            processes.append(app)
            logs = [work / f"e2e-{kind}-worker{n}.log" for n in range(workers)]
            for n, log in enumerate(logs):
                processes.append(start_worker(env, f"bench{n}", log))
            engine = create_engine(url)
            wait_started(logs)  # the clock measures processing, not the workers' start-up
            time.sleep(0.2)
            meter = CpuMeter({
                "load generator": lambda: [os.getpid()], "app (intake)": lambda: [app.pid],
                "workers": lambda: [p.pid for p in processes[1:]], "PostgreSQL": postgres_pids,
            })  # fmt: skip
            meter.start()
            began = time.perf_counter()
            load = asyncio.run(closed_loop(port, signed, E2E_SENDERS, "/webhooks/stripe"))
            while unfinished(engine):
                if time.perf_counter() - began > 600:
                    raise AssertionError(f"events of {len(bodies)} still unfinished after 10 minutes")
                time.sleep(0.05)  # each look is a query: keep them few
            seconds = time.perf_counter() - began
            meter.stop()
        finally:
            stop(processes)
        books = check_books(engine, paid, len(bodies))
        engine.dispose()
    if load.errors:
        raise AssertionError(f"{load.errors} deliveries were refused")
    return {
        "kind": kind, "workers": workers, "events": len(bodies), "payments": paid, "seconds": seconds,
        "events_per_s": len(bodies) / seconds, "payments_per_s": paid / seconds, "intake_per_s": load.rate,
        "intake_p50": load.percentile(50), "intake_p99": load.percentile(99), "books": books,
        "cpu_ms_per_event": {name: spent * 1000 / len(bodies) for name, spent in meter.spent.items() if spent},
    }  # fmt: skip


def synthetic_events(count: int, stamp: int) -> list[tuple[bytes, str]]:
    """Distinct signed events of about 2.5 KB (a delivered ``payment_intent.succeeded`` is
    2–3 KB); their type has no handler, which does not matter with processing off."""
    template: dict[str, Any] = {
        "object": "event", "api_version": "2026-10-28.endive", "created": stamp, "livemode": False,
        "pending_webhooks": 1, "request": {"id": "req_bench", "idempotency_key": None}, "type": "payout.paid",
        "data": {"object": {"id": "po_bench", "object": "payout", "amount": 1_234_567, "currency": "jpy",
                            "status": "paid", "metadata": {}, "description": "x" * 2000}},
    }  # fmt: skip
    out = []
    for n in range(count):
        body = json.dumps(dict(template, id=f"evt_bench{stamp}{n:08d}"), indent=2).encode()
        out.append((body, sign(body, stamp)))
    return out


def intake(kind: str | None, work: Path, requests: int, rates: Sequence[float]) -> dict[str, Any]:
    """Intake (kind = sqlite | postgresql) or the ceiling (kind None) under 200 senders."""
    if kind is None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        server, port = start_server("bench.webhooks:ceiling_app", env, work / "ceiling.log")
    else:
        url = fresh_database(kind, work, "intake")
        env = app_env(url, "http://127.0.0.1:9", work, in_process=False)
        server, port = start_server("gateway.app:serve_app", env, work / f"intake-{kind}.log")
    try:
        stamp = int(time.time())
        closed = asyncio.run(closed_loop(port, synthetic_events(requests, stamp), INTAKE_SENDERS, "/webhooks/stripe"))
        opened = []
        for n, rate in enumerate(rates):
            bodies = synthetic_events(int(rate * 10), stamp + n + 1)  # ten seconds at this rate
            opened.append((rate, asyncio.run(open_loop(port, bodies, INTAKE_SENDERS, rate, "/webhooks/stripe"))))
    finally:
        stop([server])
    for result in [closed, *(r for _, r in opened)]:
        if result.errors:
            raise AssertionError(f"{result.errors} requests were refused")
    return {"kind": kind or "ceiling", "closed": closed, "open": opened}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.webhooks", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (about a minute)")
    parser.add_argument("--sqlite-only", action="store_true")
    parser.add_argument("--postgres-only", action="store_true", help="skip SQLite (PostgreSQL must be reachable)")
    parser.add_argument("--e2e-only", action="store_true", help="only the end-to-end run (no intake or ceiling)")
    parser.add_argument("--payments", type=int, help="payments in the end-to-end run (default 1000, quick 200)")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    args = parser.parse_args(argv)
    work: Path = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    payments = args.payments or (200 if args.quick else 1000)
    intake_requests = 3_000 if args.quick else 20_000
    rates = (200.0, 500.0) if args.quick else (200.0, 500.0, 800.0)
    kinds = ["sqlite"] if args.sqlite_only or not postgres_reachable() else ["sqlite", "postgresql"]
    if args.postgres_only:
        kinds = ["postgresql"]

    print(f"machine: {machine()}" + (f", PostgreSQL {postgres_version()}" if "postgresql" in kinds else ""))
    e2e_rows = []
    for kind in kinds:
        result = end_to_end(kind, work, payments, workers=0 if kind == "sqlite" else 2)
        print(f"  {kind}: {result['books']}")
        cpu = result["cpu_ms_per_event"]
        print(f"  {kind}: CPU ms per event: " + ", ".join(f"{name} {ms:.2f}" for name, ms in cpu.items())
              + f"; total {sum(cpu.values()):.2f} (2 cores give {2000 / result['events_per_s']:.2f} at this rate)")
        e2e_rows.append(result)
    print("\n1. end to end: signed delivery → verified → stored → applied → posted "
          f"({E2E_SENDERS} senders, 4 events per payment)")  # fmt: skip
    print(table(
        ["database", "processing", "events", "seconds", "events/s", "payments posted/s", "intake req/s", "intake p99 ms"],
        [[r["kind"], "app thread" if r["workers"] == 0 else f"{r['workers']} nofu workers", r["events"],
          f"{r['seconds']:.2f}", f"{r['events_per_s']:,.0f}", f"{r['payments_per_s']:,.0f}",
          f"{r['intake_per_s']:,.0f}", f"{r['intake_p99']:.1f}"] for r in e2e_rows],
    ))  # fmt: skip

    if args.e2e_only:
        if "postgresql" in kinds:
            drop_postgres(PG_SERVER_URL, PG_DB)
        return 0
    intake_rows = [intake(kind, work, intake_requests, rates) for kind in [*kinds, None]]
    print(f"\n2./3. intake at {INTAKE_SENDERS} concurrent senders (processing off), and the ceiling")
    rows = []
    for r in intake_rows:
        closed: LoadResult = r["closed"]
        rows.append([r["kind"], "closed loop", f"{closed.rate:,.0f}", f"{closed.percentile(50):.1f}",
                     f"{closed.percentile(99):.1f}", f"{max(closed.latencies) * 1000:.1f}"])  # fmt: skip
        for rate, result in r["open"]:
            rows.append([r["kind"], f"open {rate:,.0f}/s", f"{result.rate:,.0f}", f"{result.percentile(50):.1f}",
                         f"{result.percentile(99):.1f}", f"{max(result.latencies) * 1000:.1f}"])  # fmt: skip
    print(table(["endpoint", "load", "req/s", "p50 ms", "p99 ms", "max ms"], rows))
    if "postgresql" in kinds:
        drop_postgres(PG_SERVER_URL, PG_DB)
    return 0


if __name__ == "__main__":
    sys.exit(main())
