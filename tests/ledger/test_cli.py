"""``nofu ledger …`` and ``nofu`` start-up errors, run in-process through ``gateway.cli.main``."""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

import ledger as L
from gateway.cli import main
from ledger.db import run_transaction
from tests.ledger.support import DAY, past_the_guards, snapshot, transfer


@pytest.fixture
def nofu(db_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    """Run ``nofu ARGS`` against the test database; returns (exit code, stdout, stderr)."""
    for name in list(os.environ):
        if name.startswith("NOFU_") and not name.startswith(("NOFU_TEST_", "NOFU_REQUIRE_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("NOFU_DATABASE_URL", db_url)

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def seed(engine: Engine) -> None:
    run_transaction(engine, lambda c: L.post(c, transfer("e1", "1100", "4100", 12_300, day=DAY)))
    run_transaction(engine, lambda c: L.post(c, transfer("e2", "1200", "1100", 12_300, day=DAY + timedelta(days=1))))


def test_verify_passes_on_clean_books_and_names_the_edited_entry(engine: Engine, nofu) -> None:  # type: ignore[no-untyped-def]
    seed(engine)
    code, out, _ = nofu("ledger", "verify")
    assert code == 0, out
    assert "checked 2 entries, 4 lines" in out and "OK" in out
    with past_the_guards(engine, "ledger_lines") as conn:
        conn.exec_driver_sql("UPDATE ledger_lines SET amount = 99999 WHERE entry_id = 2 AND line_no = 1")
    code, out, _ = nofu("ledger", "verify")
    assert code == 1
    assert "first problem at entry 2: hash_mismatch" in out


def test_trial_balance_and_accounts(engine: Engine, nofu) -> None:  # type: ignore[no-untyped-def]
    seed(engine)
    code, out, _ = nofu("ledger", "trial-balance")
    assert code == 0 and "balanced" in out
    assert "¥12,300" in out and "NOT BALANCED" not in out
    code, out, _ = nofu("ledger", "trial-balance", "--as-of", DAY.isoformat(), "--json")
    assert code == 0
    report = json.loads(out)
    rows = {row["code"]: row for row in report["rows"]}
    assert report["as_of"] == DAY.isoformat()
    assert (rows["1100"]["debit"], rows["1200"]["debit"], rows["4100"]["credit"]) == (12_300, 0, 12_300)
    assert report["total_debit"] == report["total_credit"] == 12_300
    code, out, _ = nofu("ledger", "trial-balance", "--as-of", (DAY - timedelta(days=1)).isoformat(), "--json")
    assert json.loads(out)["total_debit"] == 0
    # accounts: the chart with balances on the normal side
    code, out, _ = nofu("ledger", "accounts")
    assert code == 0
    line_4100 = next(line for line in out.splitlines() if line.startswith("4100 "))
    assert "¥12,300" in line_4100 and "税収" in line_4100
    code, out, _ = nofu("ledger", "accounts", "--json")
    listed = {a["code"]: a for a in json.loads(out)}
    assert {s.code for s in L.load_chart()} <= set(listed)
    assert (listed["1200"]["balance"], listed["1200"]["version"]) == (12_300, 1)


def test_post_from_a_file_is_all_or_nothing_and_idempotent(engine: Engine, nofu, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    def legs(amount: object) -> list[dict[str, object]]:
        return [{"account": "1100", "side": "debit", "amount": amount}, {"account": "4100", "side": "credit", "amount": amount}]

    items = [
        {"effective_date": DAY.isoformat(), "description": f"調定 {n}", "source_ref": f"invoice:{n}",
         "idempotency_key": f"invoice:{n}:issue", "lines": legs(1_000 * n)}
        for n in (1, 2)
    ]
    good = tmp_path / "good.json"
    good.write_text(json.dumps(items, ensure_ascii=False), encoding="utf-8")
    code, out, _ = nofu("ledger", "post", str(good))
    assert (code, out.strip()) == (0, "posted 2 entries (0 already posted, unchanged)")
    code, out, _ = nofu("ledger", "post", str(good))
    assert (code, out.strip()) == (0, "posted 0 entries (2 already posted, unchanged)")
    before = snapshot(engine)
    for name, content, error in (
        ("float.json", json.dumps([{**items[0], "idempotency_key": "x", "lines": legs(1.5)}]), "ledger.invalid_amount"),
        ("conflict.json", json.dumps([{**items[0], "description": "other"}]), "ledger.idempotency_conflict"),
        ("broken.json", "[{", "ledger.invalid_entry"),
        ("missing.json", None, "ledger.invalid_entry"),
    ):
        path = tmp_path / name
        if content is not None:
            path.write_text(content, encoding="utf-8")
        code, _, err = nofu("ledger", "post", str(path))
        assert code == 1 and f"[{error}]" in err and len(err.strip().splitlines()) == 1, (name, err)
    assert snapshot(engine) == before
    with engine.begin() as conn:
        assert L.balance(conn, "1100").amount == 3_000


def test_close_day_then_posting_on_it_is_refused(engine: Engine, nofu, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    seed(engine)
    code, out, _ = nofu("ledger", "close-day", DAY.isoformat(), "--by", "会計課 山田")
    assert code == 0 and f"through {DAY.isoformat()} by 会計課 山田" in out and "anchor: entry 2" in out
    file = tmp_path / "late.json"
    file.write_text(json.dumps([{
        "effective_date": DAY.isoformat(), "description": "late", "source_ref": "s", "idempotency_key": "late",
        "lines": [{"account": "1100", "side": "debit", "amount": 5}, {"account": "4100", "side": "credit", "amount": 5}],
    }]), encoding="utf-8")
    code, _, err = nofu("ledger", "post", str(file))
    assert code == 1 and "[ledger.period_closed]" in err
    code, _, err = nofu("ledger", "close-day", DAY.isoformat(), "--by", "again")
    assert code == 1 and "[ledger.period_closed]" in err


def test_invalid_database_url_stops_with_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for url in ("not a url", "mysql://user@host/db", ""):
        monkeypatch.setenv("NOFU_DATABASE_URL", url)
        code = main(["ledger", "accounts"])
        _, err = capsys.readouterr()
        assert code == 2, url
        assert len(err.strip().splitlines()) == 1 and "NOFU_DATABASE_URL" in err and "Traceback" not in err, err


def test_an_empty_database_asks_for_nofu_db_upgrade(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NOFU_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.sqlite3'}")
    for command in (["ledger", "verify"], ["ledger", "accounts"], ["ledger", "trial-balance"]):
        code = main(command)
        _, err = capsys.readouterr()
        assert code == 2, command
        assert len(err.strip().splitlines()) == 1 and "nofu db upgrade" in err and "empty" in err
