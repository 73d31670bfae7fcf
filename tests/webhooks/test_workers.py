"""Several ``nofu worker`` processes on one PostgreSQL database, while the same events are
delivered many times at once, and one worker is killed with SIGKILL in the middle of its batch:
at the end every event is stored once and finished, and every payment's money is recorded once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from gateway.payments import PaymentService
from gateway.sandbox import SandboxServer
from gateway.settings import Settings
from gateway.webhook_handlers import provider_events
from ledger.clock import utc_now
from ledger.db import create_engine, read_transaction
from tests.payments.support import API_KEY, Clock, assert_books_ok, issue, make_service
from tests.webhooks.flow import browser_pays, sandbox  # noqa: F401 (fixture)
from tests.webhooks.support import SECRET, AppServer, sign
from webhooks import webhook_events

ROOT = Path(__file__).resolve().parents[2]
PAYMENTS = 36
WORKERS = 3
LEASE_SECONDS = 3


def start_worker(env: dict[str, str], name: str, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "worker", "--id", name, "--batch", "8", "--idle", "0.1",
         "--lease", str(LEASE_SECONDS)],
        cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip


def inbox(engine: Engine) -> list[sa.Row]:
    with read_transaction(engine) as conn:
        return list(conn.execute(sa.select(webhook_events).order_by(webhook_events.c.id)))


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


@pytest.mark.postgres
@pytest.mark.slow
def test_workers_on_postgresql_apply_each_event_once_even_when_one_is_killed(
    make_db_url: Callable[[str], str], sandbox: SandboxServer, tmp_path: Path  # noqa: F811
) -> None:
    from tests.conftest import require_postgres

    require_postgres()
    url = make_db_url("postgresql")
    engine = create_engine(url)
    settings = Settings(
        database_url=url, dev_keys_file=str(tmp_path / "dev-keys.env"), stripe_secret_key=API_KEY,
        stripe_api_base=sandbox.url, stripe_webhook_secret=SECRET, webhook_inprocess="0", payment_sweep_seconds="0",
    )  # fmt: skip
    sandbox.control.reset()
    since = utc_now()
    service: PaymentService = make_service(engine, sandbox, Clock())
    with AppServer(settings) as app:
        sandbox.control.set_webhook_endpoint(f"{app.url}/webhooks/stripe")
        sandbox.control.set_delivery_mode("manual")
        invoices = [issue(engine, amount=1_000 + n) for n in range(PAYMENTS)]
        for n, invoice in enumerate(invoices):
            method = "pm_card_chargeDeclined" if n % 6 == 5 else "pm_card_visa"
            browser_pays(sandbox, service, invoice.public_id, method)
        events = list(provider_events(service, since))
        env = {
            **os.environ,
            "NOFU_DATABASE_URL": url,
            "NOFU_DEV_KEYS_FILE": settings.dev_keys_file,
            "NOFU_STRIPE_SECRET_KEY": API_KEY,
            "NOFU_STRIPE_API_BASE": sandbox.url,
            "NOFU_STRIPE_WEBHOOK_SECRET": SECRET,
        }
        logs = [tmp_path / f"worker{n}.log" for n in range(WORKERS)]
        workers = [start_worker(env, f"worker{n}", logs[n]) for n in range(WORKERS)]
        try:
            # The same events at once: the provider's own delivery (each event twice) and eight
            # senders re-posting every event, freshly signed, concurrently.
            payloads = [json.dumps(evt).encode() for evt in events]

            def resend(_: int) -> list[int]:
                with httpx.Client(timeout=30) as client:
                    return [
                        client.post(f"{app.url}/webhooks/stripe", content=body,
                                    headers={"Content-Type": "application/json", "Stripe-Signature": sign(body)}).status_code
                        for body in payloads
                    ]  # fmt: skip

            # Meanwhile, kill worker0 as soon as it holds claimed events (mid-batch, possibly
            # mid-transaction).
            victim = workers[0]
            held: list[str] = []
            held_at_death: list[str] = []
            t = webhook_events
            holding = sa.select(t.c.event_id).where(t.c.state == "processing", t.c.lease_owner == "worker0")

            def kill_victim_when_busy() -> None:
                deadline = time.monotonic() + 60
                while len(held) < 2 and time.monotonic() < deadline and victim.poll() is None:
                    with read_transaction(engine) as conn:
                        held[:] = conn.execute(holding).scalars()
                    time.sleep(0.002)
                victim.send_signal(signal.SIGKILL)
                victim.wait(10)
                # What it still held when it died (it may have finished an event or two of those
                # seen between that look and the signal: an event takes about a millisecond).
                with read_transaction(engine) as conn:
                    held_at_death[:] = conn.execute(holding).scalars()

            with ThreadPoolExecutor(10) as pool:
                killer = pool.submit(kill_victim_when_busy)
                flushed = pool.submit(lambda: sandbox.control.flush_deliveries(duplicate=list(sandbox.control.deliveries()["queued"])))
                resent = list(pool.map(resend, range(8)))
                flushed.result()
                killer.result()
            assert all(status == 200 for statuses in resent for status in statuses)
            victim.wait(10)
            assert victim.returncode == -signal.SIGKILL
            assert held_at_death, f"worker0 was killed before it held any event (it had held {held})"

            def all_finished() -> bool:
                return all(r.state in ("applied", "skipped", "ignored", "dead") for r in inbox(engine))

            wait_for(all_finished, 120, "the surviving workers to finish every event (after the lease ran out)")
        finally:
            for worker in workers:
                if worker.poll() is None:
                    worker.send_signal(signal.SIGTERM)
            for worker in workers:
                try:
                    worker.wait(30)
                except subprocess.TimeoutExpired:
                    worker.kill()

    rows = inbox(engine)
    # Every provider event stored exactly once, and finished.
    assert sorted(r.event_id for r in rows) == sorted(str(evt["id"]) for evt in events)
    assert Counter(r.state for r in rows)["dead"] == 0, [(r.event_type, r.last_error) for r in rows if r.state == "dead"]
    # What worker0 held when it died was taken over and finished by the others.
    taken_over = [r for r in rows if r.event_id in held_at_death]
    assert all(r.attempts >= 2 for r in taken_over), [(r.event_id, r.attempts) for r in taken_over]
    # Each payment's money recorded once (by one event); each decline released its invoice.
    paid = [inv for n, inv in enumerate(invoices) if n % 6 != 5]
    with read_transaction(engine) as conn:
        receipts = conn.execute(sa.text("SELECT count(*) FROM receipts")).scalar_one()
        statuses = dict(conn.execute(sa.text("SELECT public_id, status FROM invoices")).all())
        failed = conn.execute(sa.text("SELECT count(*) FROM payment_attempts WHERE status = 'failed'")).scalar_one()
    assert receipts == len(paid)
    assert all(statuses[inv.public_id] == "paid" for inv in paid)
    assert failed == PAYMENTS - len(paid)
    # ... and exactly one event is on record as the one that recorded it (two workers may have
    # had charge.succeeded and payment_intent.succeeded of one payment in hand at once).
    effects = Counter(r.effect_key for r in rows if r.effect_key and r.effect_key.endswith(":received"))
    assert len(effects) == len(paid) and set(effects.values()) == {1}
    assert_books_ok(engine)
    for n, log in enumerate(logs[1:], start=1):
        assert "stopped" in log.read_text(), f"worker{n} did not stop cleanly on SIGTERM"
    engine.dispose()
