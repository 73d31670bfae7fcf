"""`nofu demo --check`: the README's first command, paying one invoice end to end."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.cli import main


def test_demo_check_pays_an_invoice_through_the_sandbox(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("NOFU_DATABASE_URL", "NOFU_STRIPE_SECRET_KEY", "NOFU_STRIPE_API_BASE", "NOFU_PUBLIC_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    assert main(["demo", "--check"]) == 0
    out = capsys.readouterr().out
    assert "staff API token:   nofu_" in out
    assert out.count("/p/") >= 5
    assert "demo check: paid" in out and "ledger verify: OK" in out
    # a second run reuses the seeded invoices instead of issuing them again
    assert main(["demo", "--check"]) == 0
    second = capsys.readouterr().out
    assert "2026-00000006" not in second and "demo check: paid" in second


@pytest.mark.parametrize("value", ["mysql://x", "not a url"])
def test_bad_database_url_is_one_line(monkeypatch, capsys, value: str) -> None:
    monkeypatch.setenv("NOFU_DATABASE_URL", value)
    assert main(["demo", "--check"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nofu: NOFU_DATABASE_URL") and len(err.strip().splitlines()) == 1
