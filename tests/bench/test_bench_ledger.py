"""The ledger benchmark keeps running: its quick mode on SQLite, and the checks that stop it from
reporting a figure it cannot trust (a stale ceiling, books that do not match the plan)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from bench._common import BenchSetupError, recreate_postgres, recreate_sqlite, table
from bench.ledger import (
    QUICK,
    BenchError,
    CapturedPosting,
    Options,
    Scenario,
    Statement,
    capture_posting,
    check_books,
    check_capture,
    main,
    peer_available,
    prepared_engine,
    profile,
    render,
    run_benchmark,
    run_ledger,
)
from bench.peer_python_accounting import PlannedPosting, plan


def test_quick_mode_on_sqlite_posts_every_entry_on_every_side(tmp_path: Path) -> None:
    options = Options(**QUICK, postgres=False, workdir=tmp_path)  # type: ignore[arg-type]
    report = run_benchmark(options)

    sides = {"ledger", "ceiling", "peer"} if peer_available() else {"ledger", "ceiling"}
    assert {t.side for t in report.throughput} == sides
    assert {t.scenario for t in report.throughput} == {Scenario("sqlite", 1, None), Scenario("sqlite", 1, 10)}
    for t in report.throughput:
        wanted = options.peer_postings if t.side == "peer" else options.postings
        assert (t.side, t.postings, t.errors) == (t.side, wanted, 0)
        assert t.seconds > 0 and t.per_second > 0
    [bulk] = report.bulk
    assert bulk.import_postings == options.import_postings
    assert bulk.total_lines == options.total_lines
    assert 0 < bulk.import_seconds <= bulk.build_seconds
    assert len(bulk.tb_as_of_seconds) == len(bulk.tb_now_seconds) == 3

    assert not list(tmp_path.glob("*.sqlite3*"))  # the bench removes its files

    text = render(report)
    assert "ledger/ceiling" in text and "ledger/peer" in text
    assert "synchronous=FULL" in text
    assert text.count("\nsqlite ") == 3  # two throughput rows and the bulk row


def test_the_command_line_runs_quick_on_sqlite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--quick", "--sqlite-only", "--no-peer", "--postings", "20", "--workdir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "ledger and ceiling: 20 postings per scenario" in out
    assert "post_many import" in out


def test_the_ceiling_replays_exactly_what_the_ledger_sent(tmp_path: Path) -> None:
    captured = capture_posting(recreate_sqlite(tmp_path / "capture.sqlite3"), "sqlite")
    assert captured.begin == "BEGIN IMMEDIATE"
    assert len(captured.statements) == 7


def test_a_ceiling_that_no_longer_matches_the_ledger_is_refused(tmp_path: Path) -> None:
    captured = capture_posting(recreate_sqlite(tmp_path / "capture.sqlite3"), "sqlite")
    posting = PlannedPosting(0, 1, 12_300, "capture-0")
    engine = prepared_engine(recreate_sqlite(tmp_path / "fresh.sqlite3"), 2)
    with engine.connect() as conn:
        rows = [tuple(r) for r in conn.exec_driver_sql(
            "SELECT id, code, status, balance, version FROM ledger_accounts "
            "WHERE code IN ('1200:BENCH_0000', '1200:BENCH_0001') ORDER BY id"
        )]
    engine.dispose()
    check_capture(captured, posting, rows)  # the real capture passes

    missing = dataclasses.replace(captured, statements=captured.statements[:-1])
    with pytest.raises(BenchError) as refused:
        check_capture(missing, posting, rows)
    assert refused.value.code == "ceiling_stale"

    head_update = captured.statements[6]
    seq, entry_hash, row_id = head_update.params
    other = Statement(head_update.sql, (seq + 1, entry_hash, row_id), head_update.many)
    changed = CapturedPosting("sqlite", captured.begin, (*captured.statements[:6], other))
    with pytest.raises(BenchError) as refused:
        check_capture(changed, posting, rows)
    assert refused.value.code == "ceiling_stale"


def test_books_that_do_not_match_the_plan_are_refused(tmp_path: Path) -> None:
    scenario = Scenario("sqlite", 1, None)
    sequences = plan(5, 1, None)
    url = recreate_sqlite(tmp_path / "ledger.sqlite3")
    assert run_ledger(url, scenario, sequences).postings == 5
    engine = prepared_engine(url, 10)
    try:
        with pytest.raises(BenchError) as refused:
            check_books(engine, list(sequences[0][:4]), 10)  # one posting too few
        assert refused.value.code == "books_mismatch"
        bent = [dataclasses.replace(p, amount=p.amount + 1) for p in sequences[0]]
        with pytest.raises(BenchError) as refused:
            check_books(engine, bent, 10)
        assert refused.value.code == "books_mismatch"
    finally:
        engine.dispose()


def test_profile_post_compares_ledger_and_ceiling_and_names_the_hot_functions(tmp_path: Path) -> None:
    text = profile("post", tmp_path, 30)
    assert "per posting: ledger" in text and "ceiling" in text
    assert "function calls" in text and "tottime" in text  # cProfile's table follows


def test_an_unknown_profile_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BenchError) as refused:
        profile("everything", tmp_path, 10)
    assert refused.value.code == "unknown_profile"


def test_only_scratch_postgres_databases_are_dropped() -> None:
    with pytest.raises(BenchSetupError) as refused:
        recreate_postgres(name="test")  # refused before any connection is made
    assert refused.value.code == "not_a_scratch_database"


def test_table_aligns_columns() -> None:
    assert table(["a", "bb"], [["xyz", 1]]).splitlines() == ["a    bb", "---  --", "xyz   1"]
