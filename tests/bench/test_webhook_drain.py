"""The processing floor (``bench.webhook_drain floor``) replays a real drain row for row, and
notices when a replay does not."""

from __future__ import annotations

from pathlib import Path

import pytest

import bench.webhook_drain as drain
from bench._common import PG_SERVER_URL, drop_postgres
from ledger.clock import utc_now
from tests.conftest import require_postgres

NAMES = ("nofu_bench_drain_t", "nofu_bench_drain_t_replay", "nofu_bench_drain_t_short", "nofu_bench_drain_t_tpl")


@pytest.mark.postgres
def test_the_floor_replays_a_drain_row_for_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    require_postgres()
    monkeypatch.setattr(drain, "TEMPLATE", "nofu_bench_drain_t_tpl")
    monkeypatch.setattr(drain, "EVENTS", tmp_path / "events.json")
    monkeypatch.setattr(drain, "DEFAULT_WORKDIR", tmp_path)  # the development keys it generates
    try:
        drain.prepare(3)
        stored_at = utc_now()
        url, events = drain.stored_copy("nofu_bench_drain_t", stored_at)
        steps, drained = drain.record(url, events)
        assert events == 12
        assert (drained["receipts"], drained["finished"], drained["audit"]) == (3, 12, 3)
        commits = [n for n, step in enumerate(steps) if step == "commit"]
        assert len(commits) >= 3 + 1  # a transaction per money event, and the claims'

        replay_url, _ = drain.stored_copy("nofu_bench_drain_t_replay", stored_at)
        drain.replay(replay_url, steps)
        assert drain.books(replay_url) == drained

        # A replay that stops before the last payment's transaction is told apart.
        last_receipt = max(n for n, step in enumerate(steps) if isinstance(step, tuple) and "INSERT INTO receipts" in step[0])
        short_url, _ = drain.stored_copy("nofu_bench_drain_t_short", stored_at)
        drain.replay(short_url, steps[: max(n for n in commits if n < last_receipt) + 1])
        short = drain.books(short_url)
        assert short != drained and short["receipts"] == 2
    finally:
        for name in NAMES:
            drop_postgres(PG_SERVER_URL, name)
