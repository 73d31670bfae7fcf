"""``nofu webhooks …`` and ``nofu worker --once``, run in-process through ``gateway.cli.main``."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from gateway.audit import audit_log
from gateway.cli import main
from gateway.commands.webhooks import since_value
from gateway.payments import PaymentService
from gateway.sandbox import SandboxServer
from ledger.clock import JST, utc_now
from ledger.db import run_transaction
from tests.payments.support import API_KEY, issue
from tests.webhooks.flow import (  # noqa: F401
    app,
    browser_pays,
    clock,
    processor,
    sandbox,
    service,
    settings,
)
from tests.webhooks.support import SECRET, body_of, event, row, rows
from webhooks import store

Nofu = Callable[..., tuple[int, str, str]]


@pytest.fixture
def nofu(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Nofu:
    for name in list(os.environ):
        if name.startswith("NOFU_") and not name.startswith(("NOFU_TEST_", "NOFU_REQUIRE_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("NOFU_DATABASE_URL", db_url)
    monkeypatch.setenv("NOFU_DEV_KEYS_FILE", str(tmp_path / "dev-keys.env"))

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def put(engine: Engine, event_type: str = "payout.paid") -> str:
    evt = event(event_type)
    run_transaction(engine, lambda conn: store(conn, body_of(evt), now=utc_now()))
    return str(evt["id"])


def test_list_show_stats_and_replay(engine: Engine, nofu: Nofu) -> None:
    first, second = put(engine), put(engine, "payout.created")
    code, out, _ = nofu("worker", "--once")
    assert (code, out.strip()) == (0, "processed 2 events")
    code, out, _ = nofu("webhooks", "list")
    assert code == 0 and first in out and second in out and "ignored" in out
    code, out, _ = nofu("webhooks", "list", "--type", "payout.created", "--json")
    assert [item["event_id"] for item in json.loads(out)] == [second]
    code, out, _ = nofu("webhooks", "show", first)
    assert json.loads(json.loads(out)["payload"])["id"] == first
    code, out, _ = nofu("webhooks", "stats", "--json")
    assert json.loads(out)["ignored"] == 2
    code, out, _ = nofu("webhooks", "replay", first)
    assert code == 0 and f"replayed {first}" in out
    assert row(engine, first).state == "pending"
    with engine.connect() as conn:
        audited = conn.execute(sa.select(audit_log.c.actor_id, audit_log.c.subject).where(audit_log.c.action == "webhook.replay")).one()
    assert audited.actor_id.startswith("cli:") and audited.subject == f"webhook_event:{first}"
    code, _, err = nofu("webhooks", "replay", first)  # pending: refused
    assert code == 1 and "[webhook.replay_refused]" in err
    code, _, err = nofu("webhooks", "show", "evt_missing")
    assert code == 1 and "[webhook.event_not_found]" in err


def test_bad_arguments_are_refused(nofu: Nofu) -> None:
    with pytest.raises(SystemExit):
        nofu("webhooks", "list", "--state", "done")
    with pytest.raises(SystemExit):
        nofu("webhooks", "backfill", "--since", "yesterday")
    code, _, err = nofu("webhooks", "list", "--limit", "0")
    assert code == 1 and "[webhook.invalid_limit]" in err
    code, _, err = nofu("worker", "--once", "--batch", "0")
    assert code == 2


def test_since_values() -> None:
    assert abs((utc_now() - since_value("3d")) - timedelta(days=3)) < timedelta(seconds=5)
    assert abs((utc_now() - since_value("90m")) - timedelta(minutes=90)) < timedelta(seconds=5)
    day = since_value("2026-11-20")
    assert (day.tzinfo, day.hour, day.day) == (JST, 0, 20)
    assert since_value("2026-11-20T09:30:00+00:00").hour == 9


def test_backfill_needs_a_provider(nofu: Nofu) -> None:
    code, _, err = nofu("webhooks", "backfill", "--since", "1d")
    assert code == 1 and "[webhook.backfill_failed]" in err


def test_backfill_fetches_what_was_never_delivered(
    engine: Engine, app, sandbox: SandboxServer, service: PaymentService, nofu: Nofu, monkeypatch: pytest.MonkeyPatch  # type: ignore[no-untyped-def]  # noqa: F811
) -> None:
    invoice = issue(engine)
    browser_pays(sandbox, service, invoice.public_id)
    sandbox.control.flush_deliveries(drop=list(sandbox.control.deliveries()["queued"]))
    monkeypatch.setenv("NOFU_STRIPE_SECRET_KEY", API_KEY)
    monkeypatch.setenv("NOFU_STRIPE_API_BASE", sandbox.url)
    monkeypatch.setenv("NOFU_STRIPE_WEBHOOK_SECRET", SECRET)
    code, out, _ = nofu("webhooks", "backfill", "--since", "10m", "--process")
    assert code == 0, out
    added = len(rows(engine))
    assert f"{added} added, 0 already stored" in out and added >= 4
    assert {r.state for r in rows(engine)} <= {"applied", "skipped", "ignored"}
    code, out, _ = nofu("webhooks", "backfill", "--since", "10m")
    assert f"0 added, {added} already stored" in out


def test_backfill_reports_a_provider_failure(nofu: Nofu, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOFU_STRIPE_API_BASE", "http://127.0.0.1:9")  # nothing listens there
    code, _, err = nofu("webhooks", "backfill", "--since", "1d")
    assert code == 1 and "[webhook.backfill_failed]" in err and "event list failed" in err
