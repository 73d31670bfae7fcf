"""Importing a statement of the designated bank account (CSV or 全銀 入出金取引明細).

Invariant: importing is idempotent. A file already imported (same SHA-256) returns its first
import; a line already known in its account (same ``line_key``) is not added again, so an
overlapping statement adds only what is new.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from reconciliation.bank_csv import parse_csv
from reconciliation.errors import BankAccountMismatch, BankStatementInvalid, LineError
from reconciliation.model import BankStatement, ReconciliationConfig
from reconciliation.schema import bank_imports, bank_lines
from reconciliation.zengin import looks_like_zengin, parse_zengin

MAX_BYTES = 50 * 1024 * 1024
DEFAULT_ACCOUNT = "designated"  # CSV lines carry no account: they are the designated account's


@dataclass(frozen=True)
class BankImport:
    import_id: int
    format: str
    lines: int
    new_lines: int
    already_imported: bool


def parse_statement(data: bytes, config: ReconciliationConfig | None = None) -> BankStatement:
    """Detect the format (a 全銀 file starts with header ``103``), parse, check the account."""
    config = config or ReconciliationConfig()
    if not data:
        raise BankStatementInvalid("the file is empty", (LineError(0, "statement.empty", "no bytes"),))
    if len(data) > MAX_BYTES:
        raise BankStatementInvalid(f"the file is larger than {MAX_BYTES:,} bytes")
    sha = hashlib.sha256(data).hexdigest()
    if looks_like_zengin(data):
        lines = parse_zengin(data)
        statement = BankStatement("zengin", lines, sha)
        designated = config.bank_account_number
        if designated and any(account != designated for account in statement.accounts):
            raise BankAccountMismatch(
                f"the statement is for {', '.join(statement.accounts)}, not the designated account {designated}",
                accounts=list(statement.accounts),
                designated=designated,
            )
        # Lines of the designated account are stored under one name whatever the format.
        if designated:
            lines = tuple(dataclasses.replace(line, account=DEFAULT_ACCOUNT) for line in lines)
        return BankStatement("zengin", lines, sha)
    return BankStatement("csv", parse_csv(data, account=DEFAULT_ACCOUNT), sha)


def _insert(conn: Connection) -> Any:
    return (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(bank_lines)


def import_statement(conn: Connection, statement: BankStatement, *, actor: str, now: datetime) -> BankImport:
    """Store the statement's lines (see the module invariant) in the caller's transaction."""
    existing = conn.execute(sa.select(bank_imports).where(bank_imports.c.sha256 == statement.sha256)).first()
    if existing is not None:
        return BankImport(existing.id, existing.format, existing.lines_total, 0, already_imported=True)
    result = conn.execute(
        bank_imports.insert().values(
            sha256=statement.sha256, format=statement.format, account=",".join(statement.accounts)[:64] or DEFAULT_ACCOUNT,
            lines_total=len(statement.lines), lines_new=0, imported_by=actor[:200], imported_at=now,
        )  # fmt: skip
    )
    import_id = int(result.inserted_primary_key[0])  # type: ignore[index]
    new = 0
    rows = [
        {
            "account": line.account or DEFAULT_ACCOUNT,
            "line_key": line.line_key,
            "value_date": line.value_date,
            "amount": line.amount,
            "description": line.description,
            "reference": line.reference,
            "import_id": import_id,
        }
        for line in statement.lines
    ]
    for start in range(0, len(rows), 1000):
        chunk = rows[start : start + 1000]
        inserted = conn.execute(
            _insert(conn).on_conflict_do_nothing(index_elements=["account", "line_key"]).returning(bank_lines.c.id),
            chunk,
        )
        new += len(inserted.all())
    conn.execute(bank_imports.update().where(bank_imports.c.id == import_id).values(lines_new=new))
    return BankImport(import_id, statement.format, len(statement.lines), new, already_imported=False)
