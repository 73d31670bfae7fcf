"""Helpers shared by the ledger tests: entry builders, fresh accounts, database snapshots, and a
way to write past the database's own guards (to play the tamperer)."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timezone

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

import ledger as L
from ledger.db import is_sqlite
from ledger.schema import accounts, chain_head, entries, lines, period_closes

DAY = date(2026, 4, 1)

# Normal side of each parent account in the packaged chart.
PARENT_SIDE = {
    "1100": "debit",
    "1200": "debit",
    "1300": "debit",
    "2100": "credit",
    "4100": "credit",
    "4200": "credit",
    "4300": "credit",
    "5100": "debit",
}

_serial = itertools.count(1)


def unique(prefix: str = "k") -> str:
    """A string no other call in this process returns (idempotency keys, sub-account codes)."""
    return f"{prefix}{next(_serial)}"


def entry(
    key: str,
    *legs: L.Line,
    day: date = DAY,
    description: str = "test entry",
    source_ref: str = "test:ledger",
) -> L.EntryRequest:
    return L.EntryRequest(day, description, source_ref, key, tuple(legs))


def transfer(key: str, debit: str, credit: str, amount: int, day: date = DAY) -> L.EntryRequest:
    """The simplest balanced entry: one debit, one credit."""
    return entry(key, L.Line.debit(debit, amount), L.Line.credit(credit, amount), day=day)


def fresh_accounts(conn: Connection, *parents: str, tag: str = "T") -> list[str]:
    """Create one new sub-account under each parent and return their codes."""
    codes = []
    for parent in parents:
        code = f"{parent}:{unique(tag)}"
        L.ensure_account(conn, L.AccountSpec(code, f"試験 {code}", f"Test {code}", PARENT_SIDE[parent]))  # type: ignore[arg-type]
        codes.append(code)
    return codes


@dataclass(frozen=True)
class Snapshot:
    """Everything a refused posting must leave untouched."""

    entries: int
    lines: int
    closes: int
    head: tuple
    accounts: tuple


def snapshot(engine: Engine) -> Snapshot:
    with engine.begin() as conn:
        return Snapshot(
            entries=conn.execute(sa.select(sa.func.count()).select_from(entries)).scalar_one(),
            lines=conn.execute(sa.select(sa.func.count()).select_from(lines)).scalar_one(),
            closes=conn.execute(sa.select(sa.func.count()).select_from(period_closes)).scalar_one(),
            head=tuple(conn.execute(sa.select(chain_head)).one()),
            accounts=tuple(
                tuple(row)
                for row in conn.execute(
                    sa.select(accounts.c.code, accounts.c.status, accounts.c.balance, accounts.c.version)
                    .order_by(accounts.c.code)
                )
            ),
        )


def account_id(conn: Connection, code: str) -> int:
    found = L.find_account(conn, code)
    assert found is not None, code
    return found.id


def head_seq(conn: Connection) -> int:
    return int(conn.execute(sa.select(chain_head.c.seq)).scalar_one())


def lines_net(conn: Connection, code: str, *, through: date | None = None) -> int:
    """Σdebits − Σcredits of the account's own lines, straight from the journal."""
    signed = sa.case((lines.c.side == "D", lines.c.amount), else_=-lines.c.amount)
    query = (
        sa.select(sa.func.coalesce(sa.func.sum(signed), 0))
        .join(accounts, accounts.c.id == lines.c.account_id)
        .where(accounts.c.code == code)
    )
    if through is not None:
        query = query.where(lines.c.effective_date <= through)
    return int(conn.execute(query).scalar_one())


def insert_raw_entry(
    conn: Connection,
    entry_id: int,
    legs: list[tuple[int, str, object]],
    *,
    day: date = DAY,
    with_entry: bool = True,
    key: str | None = None,
) -> None:
    """Write an entry with plain INSERTs, skipping every Python check: ``legs`` are
    (account_id, 'D'/'C', amount). Versions are far above real ones, hashes are made up."""
    if legs:
        conn.execute(
            lines.insert(),
            [
                {
                    "entry_id": entry_id,
                    "line_no": number,
                    "account_id": account,
                    "side": side,
                    "amount": amount,
                    "effective_date": day,
                    "balance_after": 0,
                    "account_version": 1_000_000 + entry_id * 100 + number,
                }
                for number, (account, side, amount) in enumerate(legs, 1)
            ],
        )
    if with_entry:
        conn.execute(
            entries.insert().values(
                id=entry_id,
                effective_date=day,
                recorded_at=datetime.now(timezone.utc),
                description="raw",
                source_ref="raw",
                idempotency_key=key or unique("raw"),
                content_digest="0" * 64,
                reverses_entry_id=None,
                prev_hash="0" * 64,
                hash=f"{entry_id:064x}",
            )
        )


@contextlib.contextmanager
def past_the_guards(engine: Engine, *tables: str) -> Iterator[Connection]:
    """A transaction in which the append-only triggers of ``tables`` do not fire: what someone
    with direct database access could do. PostgreSQL: replica role (superuser) for this
    transaction only; SQLite: drop the tables' triggers and recreate them before commit."""
    with engine.begin() as conn:
        if not is_sqlite(conn):
            conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
            yield conn
            return
        saved = conn.execute(
            sa.text("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name IN :t").bindparams(
                sa.bindparam("t", expanding=True)
            ),
            {"t": list(tables)},
        ).all()
        assert saved, f"no triggers on {tables}"
        for name, _ in saved:
            conn.exec_driver_sql(f"DROP TRIGGER {name}")
        yield conn
        for _, sql in saved:
            conn.exec_driver_sql(sql)
