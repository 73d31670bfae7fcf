"""Shared helpers for the invoice service tests (imported, not a conftest)."""

from __future__ import annotations

import base64
import csv
import io
from collections.abc import Iterable, Mapping
from datetime import date

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from invoices.catalog import Catalog
from invoices.late_fee import RateTable
from invoices.model import InvoiceContext, IssueRequest
from invoices.pii import PiiCipher
from invoices.tokens import KeyRing

TODAY = date(2026, 4, 1)
PII_KEY = "t1:" + base64.urlsafe_b64encode(bytes(range(32))).decode().rstrip("=")
QR_KEY = "q1:" + base64.urlsafe_b64encode(bytes(range(100, 132))).decode().rstrip("=")
NAME = "山田 太郎"
ADDRESS = "東京都千代田区霞が関1-2-3"
CONTACT = "090-1234-5678"

CTX = InvoiceContext(
    catalog=Catalog.load_default(),
    pii=PiiCipher.from_config(PII_KEY),
    rates=RateTable.load_default(),
    keyring=KeyRing.from_config(QR_KEY),
    today=lambda: TODAY,
)


def request(**overrides: object) -> IssueRequest:
    values: dict[str, object] = {
        "tax_code": "FIXED_ASSET",
        "fiscal_year": 2026,
        "installment": 1,
        "due_date": date(2026, 4, 30),
        "amount": 12_300,
        "payer_ref": "000123",
        "payer_name": NAME,
        "payer_address": ADDRESS,
        "payer_contact": CONTACT,
        "issue_date": date(2026, 4, 1),
    }
    values.update(overrides)
    return IssueRequest(**values)  # type: ignore[arg-type]


TABLES = (
    "invoices",
    "invoice_changes",
    "invoice_imports",
    "invoice_idempotency_keys",
    "invoice_number_sequences",
    "ledger_entries",
    "ledger_lines",
)


def counts(engine: Engine) -> dict[str, int]:
    """Rows per table, to show that a refusal wrote nothing."""
    with engine.connect() as conn:
        return {t: conn.execute(sa.text(f"SELECT COUNT(*) FROM {t}")).scalar_one() for t in TABLES}


def net(engine: Engine, code: str) -> int:
    """Debit-positive balance of exactly this account (not its children)."""
    with engine.connect() as conn:
        return conn.execute(
            sa.text("SELECT balance FROM ledger_accounts WHERE code = :c"), {"c": code}
        ).scalar_one()


HEADER = (
    "external_ref",
    "notice_number",
    "tax_code",
    "fiscal_year",
    "installment",
    "due_date",
    "amount",
    "payer_ref",
    "payer_name",
    "payer_address",
    "payer_contact",
    "issue_date",
)


def row(n: int, **overrides: object) -> dict[str, object]:
    values: dict[str, object] = {
        "external_ref": f"TX-{n:06d}",
        "notice_number": "",
        "tax_code": "FIXED_ASSET",
        "fiscal_year": 2026,
        "installment": 1,
        "due_date": "2026-04-30",
        "amount": 1000 + n,
        "payer_ref": f"{n:08d}",
        "payer_name": f"納税 者{n}",
        "payer_address": f"東京都港区{n}丁目",
        "payer_contact": "",
        "issue_date": "2026-04-01",
    }
    values.update(overrides)
    return values


def csv_bytes(
    rows: Iterable[Mapping[str, object]],
    *,
    header: Iterable[str] = HEADER,
    encoding: str = "utf-8",
    newline: str = "\r\n",
) -> bytes:
    header = list(header)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator=newline)
    writer.writerow(header)
    for item in rows:
        writer.writerow([item.get(name, "") for name in header])
    return out.getvalue().encode(encoding)
