"""``nofu invoices import``: prints a summary, lists every bad line, writes payment codes."""

from __future__ import annotations

import argparse
import csv

import pytest

from gateway.commands import invoices as invoice_commands
from invoices.tokens import KeyRing
from tests.invoices._support import PII_KEY, QR_KEY, csv_bytes, row


def run(argv):
    parser = argparse.ArgumentParser(prog="nofu")
    invoice_commands.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.run(args)


@pytest.fixture
def env(monkeypatch, make_db_url, tmp_path):
    monkeypatch.setenv("NOFU_DATABASE_URL", make_db_url("sqlite"))
    monkeypatch.setenv("NOFU_PII_KEYS", PII_KEY)
    monkeypatch.setenv("NOFU_QR_SIGNING_KEYS", QR_KEY)
    monkeypatch.setenv("NOFU_PUBLIC_BASE_URL", "https://pay.example-city.lg.jp")
    return tmp_path


def test_import_then_reimport(env, capsys):
    path = env / "export.csv"
    path.write_bytes(csv_bytes([row(1), row(2)], encoding="cp932"))
    codes = env / "codes.csv"
    assert run(["invoices", "import", str(path), "--actor", "tax-batch", "--codes-out", str(codes)]) == 0
    out = capsys.readouterr().out
    assert "2 invoices issued, 0 already imported" in out and "encoding cp932" in out
    with open(codes, encoding="utf-8") as f:
        lines = list(csv.DictReader(f))
    assert [line["external_ref"] for line in lines] == ["TX-000001", "TX-000002"]
    token = lines[0]["payment_url"].removeprefix("https://pay.example-city.lg.jp/p/")
    KeyRing.from_config(QR_KEY).verify(token)
    assert not (env / "codes.csv.partial").exists()
    assert run(["invoices", "import", str(path)]) == 0
    assert "0 invoices issued, 2 already imported" in capsys.readouterr().out


def test_bad_file_lists_every_line_and_exits_1(env, capsys):
    path = env / "bad.csv"
    path.write_bytes(csv_bytes([row(1, amount=0), row(2), row(3, tax_code="X")]))
    codes = env / "codes.csv"
    assert run(["invoices", "import", str(path), "--codes-out", str(codes)]) == 1
    err = capsys.readouterr().err
    assert "[invoice_import.rejected]" in err
    assert "line 2, column amount: [invoice.amount_zero]" in err
    assert "line 4, column tax_code: [invoice.unknown_tax_code]" in err
    assert not codes.exists() and not (env / "codes.csv.partial").exists()


def test_missing_file(env, capsys):
    assert run(["invoices", "import", str(env / "nope.csv")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_reencrypt_pii_after_rotation(env, capsys, monkeypatch):
    import base64
    import os

    from invoices.pii import PiiCipher
    from invoices.service import list_invoices
    from ledger.db import create_engine

    path = env / "export.csv"
    path.write_bytes(csv_bytes([row(1), row(2), row(3, payer_contact="090-0000-0000")]))
    assert run(["invoices", "import", str(path)]) == 0
    new_key = "t2:" + base64.urlsafe_b64encode(bytes(range(64, 96))).decode().rstrip("=")
    monkeypatch.setenv("NOFU_PII_KEYS", f"{new_key},{PII_KEY}")
    assert run(["invoices", "reencrypt-pii"]) == 0
    assert "re-encrypted the payer data of 3 invoices under key t2" in capsys.readouterr().out
    assert run(["invoices", "reencrypt-pii"]) == 0
    assert "of 0 invoices" in capsys.readouterr().out
    only_new = PiiCipher.from_config(new_key)
    engine = create_engine(os.environ["NOFU_DATABASE_URL"])
    try:
        with engine.connect() as conn:
            items = list_invoices(conn).items
        assert {i.pii_key_id for i in items} == {"t2"}
        assert {i.version for i in items} == {1}
        assert [i.payer(only_new).name for i in items] == ["納税 者1", "納税 者2", "納税 者3"]
        assert items[2].payer(only_new).contact == "090-0000-0000"
    finally:
        engine.dispose()
