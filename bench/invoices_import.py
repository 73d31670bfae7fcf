"""The invoice import benchmark: a tax system's CSV export of N rows (default 100,000) imported
through ``invoices.importer.import_invoices_csv``, on SQLite and/or PostgreSQL.

    .venv/bin/python -m bench.invoices_import [--rows N] [--db sqlite|postgresql|both]
                                              [--ledger-detail batch|invoice|both]

What is timed is the whole import as an operator runs it: size check and encoding detection
(the file is Shift_JIS, as most Japanese tax systems export), the first pass validating every
row against the catalog and the database, the second pass issuing every invoice (notice numbers,
personal data encrypted, ledger 調定 entries through ``post_many``, invoice and history rows by
executemany) in one transaction, and afterwards the signed payment token and confirmation code of
every new invoice (what the printed QR carries), written to a codes file. The 調定 is posted as
one ledger entry per 1,000-row batch (a line pair per tax code, the importer's default) or, with
``--ledger-detail invoice``, one entry per invoice. A second import of the
same file (every row skipped as already imported) is timed too.

The run checks its own result: the invoice count, the ledger receivable against the file's
total, the trial balance, and each token verifying. Databases written: a file under
``var/bench/`` and the PostgreSQL scratch database ``nofu_bench_invoices`` (dropped afterwards).
Goal (issue 3): ≤ 60 s for 100,000 rows on each engine.
"""

from __future__ import annotations

import argparse
import base64
import csv
import os
import random
import sys
import time
from collections.abc import Sequence
from datetime import date
from pathlib import Path

import sqlalchemy as sa

import ledger
from bench._common import (
    DEFAULT_WORKDIR,
    PG_SERVER_URL,
    drop_postgres,
    machine,
    postgres_reachable,
    postgres_version,
    rate,
    recreate_postgres,
    recreate_sqlite,
    stopwatch,
    table,
)
from gateway.bootstrap import prepare_database
from invoices.catalog import Catalog
from invoices.importer import BATCH, COLUMNS, IssuedSlip, import_invoices_csv
from invoices.late_fee import RateTable
from invoices.model import InvoiceContext
from invoices.pii import PiiCipher
from invoices.tokens import KeyRing
from ledger.db import create_engine
from ledger.schema import entries as ledger_entries

PG_DATABASE = "nofu_bench_invoices"
GOAL_SECONDS = 60.0
SURNAMES = ("佐藤", "鈴木", "高橋", "田中", "伊藤", "渡辺", "山本", "中村", "小林", "加藤", "髙橋", "齋藤")
GIVEN = ("太郎", "花子", "一郎", "美咲", "健太", "陽菜", "翔", "結衣", "大輔", "さくら")
WARDS = ("中央区", "北区", "南区", "東区", "西区", "港区")
# (code, installments): taxes billed by installment, and a fee.
SCHEDULE = (
    ("FIXED_ASSET", 4),
    ("CITY_PLANNING", 4),
    ("RESIDENT_TAX", 4),
    ("NHI_TAX", 10),
    ("LIGHT_VEHICLE", 1),
)


def _key(seed: int) -> str:
    return base64.urlsafe_b64encode(bytes((seed + i) % 256 for i in range(32))).decode().rstrip("=")


def context() -> InvoiceContext:
    return InvoiceContext(
        catalog=Catalog.load_default(),
        pii=PiiCipher.from_config(f"b1:{_key(1)}"),
        rates=RateTable.load_default(),
        keyring=KeyRing.from_config(f"b1:{_key(77)}"),
        today=lambda: date(2026, 4, 1),
    )


def generate(path: Path, rows: int, *, seed: int = 3) -> int:
    """Write a Shift_JIS export of ``rows`` invoices; return the total amount in yen."""
    rng = random.Random(seed)
    catalog = Catalog.load_default()
    total = 0
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="cp932", newline="") as f:
        writer = csv.writer(f, lineterminator="\r\n")
        writer.writerow(COLUMNS)
        for n in range(1, rows + 1):
            code, periods = SCHEDULE[n % len(SCHEDULE)]
            installment = 1 + n // len(SCHEDULE) % periods
            due = catalog.get(code).installment(installment).nominal_due_date(2026)
            amount = rng.randint(1_000, 400_000)
            total += amount
            writer.writerow(
                [
                    f"TAXSYS-2026-{n:08d}",
                    "",
                    code,
                    2026,
                    installment,
                    due.isoformat(),
                    amount,
                    f"{rng.randint(1, 9_999_999):010d}",
                    f"{rng.choice(SURNAMES)} {rng.choice(GIVEN)}",
                    f"サンプル市{rng.choice(WARDS)}{rng.randint(1, 9)}丁目{rng.randint(1, 30)}-{rng.randint(1, 20)}",
                    f"0{rng.randint(70, 90)}-{rng.randint(1000, 9999)}-{rng.randint(1000, 9999)}",
                    "2026-04-01",
                ]
            )
    return total


def run(
    kind: str, detail: str, csv_path: Path, rows: int, total: int, workdir: Path, server_url: str
) -> list[object]:
    url = (
        recreate_sqlite(workdir / "invoices_import.sqlite3")
        if kind == "sqlite"
        else recreate_postgres(server_url, PG_DATABASE)
    )
    engine = create_engine(url)
    try:
        prepare_database(engine)
        ctx = context()
        codes_path = workdir / f"invoices_codes_{kind}.csv"
        with open(codes_path, "w", encoding="utf-8", newline="") as out:
            writer = csv.writer(out)
            slips: list[IssuedSlip] = []

            def sink(slip: IssuedSlip) -> None:
                writer.writerow(
                    [slip.code.notice_number, slip.external_ref, slip.code.token, slip.code.confirmation_code]
                )
                if len(slips) < 3:
                    slips.append(slip)

            cpu_before = time.process_time()
            with open(csv_path, "rb") as stream, stopwatch() as first:
                report = import_invoices_csv(
                    engine,
                    stream,
                    ctx=ctx,
                    actor="bench",
                    on_issued=sink,
                    ledger_detail=detail,  # type: ignore[arg-type]
                )
            cpu = time.process_time() - cpu_before
        with open(csv_path, "rb") as stream, stopwatch() as again:
            replay = import_invoices_csv(engine, stream, ctx=ctx, actor="bench")
        # The run checks itself: a figure is never a count of failures.
        assert (report.rows, report.issued, report.skipped) == (rows, rows, 0), report
        assert (replay.issued, replay.skipped) == (0, rows), replay
        with engine.connect() as conn:
            assert ledger.balance(conn, "1100").amount == total
            assert ledger.trial_balance(conn).balanced
            entries = conn.execute(sa.select(sa.func.count()).select_from(ledger_entries)).scalar_one()
        assert entries == (rows if detail == "invoice" else -(-rows // BATCH)), entries
        for slip in slips:
            assert ctx.keyring is not None and ctx.keyring.verify(slip.code.token).ref.hex() == slip.public_id
        with open(codes_path, encoding="utf-8") as f:
            assert sum(1 for _ in f) == rows
        codes_path.unlink()
        return [
            kind,
            detail,
            f"{rows:,}",
            f"{first.seconds:.1f}",
            f"{cpu:.1f}",
            f"{rate(rows, first.seconds):,.0f}",
            f"{again.seconds:.1f}",
            "yes" if first.seconds <= GOAL_SECONDS * rows / 100_000 else "NO",
        ]
    finally:
        engine.dispose()
        if kind == "postgresql":
            drop_postgres(server_url, PG_DATABASE)
        else:
            for suffix in ("", "-wal", "-shm"):
                (workdir / f"invoices_import.sqlite3{suffix}").unlink(missing_ok=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.invoices_import", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--db", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument(
        "--ledger-detail",
        choices=("batch", "invoice", "both"),
        default="batch",
        help="調定 entries: one per 1,000-row batch with a line pair per tax code (the default), or one per invoice",
    )
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR, help="where files go")
    parser.add_argument(
        "--postgres-url", default=PG_SERVER_URL, help="server; only nofu_bench_invoices is used"
    )
    options = parser.parse_args(argv)
    kinds = ["sqlite", "postgresql"] if options.db == "both" else [options.db]
    if "postgresql" in kinds and not postgres_reachable(options.postgres_url):
        print(f"PostgreSQL not reachable at {options.postgres_url}", file=sys.stderr)
        return 2
    csv_path = options.workdir / f"invoices_{options.rows}.csv"
    with stopwatch() as made:
        total = generate(csv_path, options.rows)
    size = csv_path.stat().st_size
    print(
        f"machine: {machine()}"
        + (f", PostgreSQL {postgres_version(options.postgres_url)}" if "postgresql" in kinds else "")
    )
    print(
        f"file: {csv_path} ({options.rows:,} rows, {size / 1e6:.1f} MB Shift_JIS, generated in {made.seconds:.1f} s)"
    )
    details = ["batch", "invoice"] if options.ledger_detail == "both" else [options.ledger_detail]
    results = [
        run(kind, detail, csv_path, options.rows, total, options.workdir, options.postgres_url)
        for kind in kinds
        for detail in details
    ]
    print(
        table(
            [
                "database",
                "ledger entries",
                "rows",
                "import s",
                "client CPU s",
                "rows/s",
                "re-import s",
                f"≤ {GOAL_SECONDS:.0f} s/100k",
            ],
            results,
        )
    )
    print(f"load average after: {os.getloadavg()[0]:.1f} (the machine is shared: wall time grows with it)")
    print(
        "import = size check + encoding detection + validation pass + issue pass (one transaction) "
        "+ signed payment code per invoice; re-import = the same file again, every row skipped"
    )
    csv_path.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
