"""``nofu reconcile`` in-process through ``gateway.cli.main``, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from gateway.cli import main
from ledger.clock import utc_now
from reconciliation import pull_day
from reconciliation.zengin import ZenginEntry, write_zengin
from tests.reconciliation.support import Day, payment

DAY = date(2026, 11, 9)


@pytest.fixture
def nofu(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    for name in list(os.environ):
        if name.startswith("NOFU_") and not name.startswith(("NOFU_TEST_", "NOFU_REQUIRE_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("NOFU_DATABASE_URL", db_url)
    monkeypatch.setenv("NOFU_DEV_KEYS_FILE", str(tmp_path / "dev-keys.env"))
    monkeypatch.chdir(tmp_path)

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_a_day_and_its_payout_reconcile_from_the_command_line(nofu, engine: Engine, tmp_path: Path) -> None:
    day = Day(DAY, [payment(12_300, tax_code="FIXED_ASSET", hour=9), payment(5_000, tax_code="NHI_TAX", hour=15)]).build()
    day.pay_out()
    assert day.payout is not None
    day.bank.clear()
    day.write(engine)
    source = day.source()
    for business_day in (day.day, day.payout_day):
        pull_day(engine, source, business_day, now=utc_now())

    code, out, err = nofu("reconcile", "--date", DAY.isoformat(), "--no-pull")
    assert (code, err) == (0, "")
    assert "gross          ¥17,300" in out and "1100:FIXED_ASSET" in out and "no breaks" in out
    report = tmp_path / "var" / "reconciliation" / f"reconciliation-{DAY.isoformat()}.csv"
    assert report.read_bytes().startswith(b"\xef\xbb\xbf")

    statement = tmp_path / "zengin.txt"
    statement.write_bytes(write_zengin([ZenginEntry(day.payout_day, day.payout.amount, payer="ｽﾄﾗｲﾌﾟ", reference=7)]))
    out_file = tmp_path / "payout.csv"
    code, out, err = nofu("reconcile", "--date", day.payout_day.isoformat(), "--no-pull", "--bank-statement",
                          str(statement), "--out", str(out_file))  # fmt: skip
    assert code == 0, err
    assert "(zengin): 1 lines, 1 new" in out
    assert f"payout {day.payout.id} paid ¥{day.payout.amount:,}" in out and "at the bank" in out
    assert out_file.exists()
    code, out, _ = nofu("reconcile", "--date", day.payout_day.isoformat(), "--no-pull", "--bank-statement", str(statement))
    assert code == 0 and "(already imported)" in out


def test_refusals_print_one_line_with_their_code(nofu, tmp_path: Path) -> None:
    code, _, err = nofu("reconcile", "--date", "2026-02-30", "--no-pull")
    assert code == 1 and "[reconciliation.invalid_date]" in err
    code, _, err = nofu("reconcile", "--date", DAY.isoformat())
    assert code == 1 and "[reconciliation.provider_not_configured]" in err
    bad = tmp_path / "bad.csv"
    bad.write_text("date,amount\n2026-11-09,abc\n", encoding="utf-8")
    code, _, err = nofu("reconcile", "--date", DAY.isoformat(), "--no-pull", "--bank-statement", str(bad))
    assert code == 1 and "[reconciliation.bank_statement_invalid]" in err and "line 2, amount: [csv.invalid_amount]" in err
    code, _, err = nofu("reconcile", "--date", DAY.isoformat(), "--no-pull", "--bank-statement", str(tmp_path / "none.csv"))
    assert code == 2 and "cannot read" in err
