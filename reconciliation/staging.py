"""The ledger side of a run, staged in temporary tables (set-based, nothing in Python lists).

``recon_tmp_items``: one **ledger item** per provider key (``match_ref``): the clearing
account's movement (debit-positive) of every entry linked to that key, over the dates a run looks
at (the day ± the cross-day window). A payment booked in two entries (principal and 過誤納金)
is one item, as the provider sees one charge. An entry no key explains (posted by hand, a link
missing) is an item of its own, keyed ``#entry:<id>`` with ``linked`` 0: on the day it is an
``unexplained_residual`` break. One pass over the clearing account's lines fills the table.

``recon_tmp_pairs``: the matches a run is about to make, computed before they are written so the
query that finds them never reads the table it writes (PostgreSQL would re-scan the growing heap
for every row when it plans an empty table).

``recon_tmp_breaks``: what the detection finds, before it is merged into ``recon_breaks``.

The payout postings this package makes (``source_ref`` ``payout:po_…``) are not items: they are
checked against the payout itself.
"""

from __future__ import annotations

from datetime import date, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from ledger.schema import accounts, entries, lines
from reconciliation.model import ReconciliationConfig
from reconciliation.sources import PAYOUT_REF_PREFIX, STRIPE_REF_PREFIX, LedgerLinks

_temp = sa.MetaData()
SQLITE_CACHE_KIB = 256 * 1024  # the run's SQLite page cache
PG_WORK_MEM = "256MB"
PG_TEMP_BUFFERS = "512MB"

# The two big tables get their unique index after they are filled: building it from the data
# costs a fraction of maintaining it row by row (a million text keys in random order).
tmp_items = sa.Table(
    "recon_tmp_items",
    _temp,
    sa.Column("match_ref", sa.String(255), nullable=False),
    sa.Column("linked", sa.Integer, nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("first_date", sa.Date, nullable=False),
    sa.Column("in_day", sa.Integer, nullable=False),
    sa.Column("entry_id", sa.BigInteger, nullable=False),
    prefixes=["TEMPORARY"],
)

tmp_pairs = sa.Table(
    "recon_tmp_pairs",
    _temp,
    sa.Column("match_ref", sa.String(255), nullable=False),
    sa.Column("provider_txn_id", sa.String(64), nullable=False),
    sa.Column("rule", sa.String(16), nullable=False),
    sa.Column("ledger_amount", sa.BigInteger, nullable=False),
    sa.Column("provider_amount", sa.BigInteger, nullable=False),
    prefixes=["TEMPORARY"],
)

tmp_breaks = sa.Table(
    "recon_tmp_breaks",
    _temp,
    sa.Column("break_key", sa.String(300), primary_key=True),
    sa.Column("category", sa.String(24), nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("provider_amount", sa.BigInteger, nullable=True),
    sa.Column("ledger_amount", sa.BigInteger, nullable=True),
    sa.Column("provider_txn_id", sa.String(64), nullable=True),
    sa.Column("match_ref", sa.String(255), nullable=True),
    sa.Column("ledger_entry_id", sa.BigInteger, nullable=True),
    sa.Column("payout_id", sa.String(64), nullable=True),
    sa.Column("bank_line_id", sa.BigInteger, nullable=True),
    sa.Column("notice_number", sa.String(32), nullable=True),
    sa.Column("detail", sa.String(500), nullable=False),
    # Set by the merge: the day already has a break with this key.
    sa.Column("known", sa.Integer, nullable=False, server_default="0"),
    prefixes=["TEMPORARY"],
)

tmp_unmatched = sa.Table(
    "recon_tmp_unmatched",
    _temp,
    sa.Column("id", sa.String(64), primary_key=True),  # a provider transaction of the day no match took
    prefixes=["TEMPORARY"],
)

TEMP_TABLES = (tmp_items, tmp_pairs, tmp_breaks, tmp_unmatched)


def window(day: date, config: ReconciliationConfig) -> tuple[date, date]:
    return day - timedelta(days=config.cross_day_window), day + timedelta(days=config.cross_day_window)


def account_id(conn: Connection, code: str) -> int:
    found = conn.scalar(sa.select(accounts.c.id).where(accounts.c.code == code))
    if found is None:
        from ledger.errors import UnknownAccount

        raise UnknownAccount(f"account {code!r} does not exist", account=code)
    return int(found)


def tune_session(conn: Connection) -> None:
    """Room for a day of a million rows, for this run only.

    PostgreSQL: sorts and hashes in memory (``work_mem``, this transaction only) and temporary
    tables in a large local buffer pool (``temp_buffers``; it can only be set before the session's
    first temporary table, so a pooled connection keeps the size its first run gave it, and a later
    attempt is skipped). This is server memory, not the run's; see docs/reconciliation.md.
    SQLite: a page cache that holds a day's indexes (the default 2 MB makes a million-row day seek
    through the OS cache).
    """
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"SET LOCAL work_mem = '{PG_WORK_MEM}'")
        savepoint = conn.begin_nested()
        try:
            # Session-wide: the pool is sized once, at the session's first temporary table.
            conn.exec_driver_sql(f"SET temp_buffers = '{PG_TEMP_BUFFERS}'")
            savepoint.commit()
        except DBAPIError:
            savepoint.rollback()  # the session already has temporary tables: keep its pool
    elif conn.dialect.name == "sqlite":
        conn.exec_driver_sql(f"PRAGMA cache_size = -{SQLITE_CACHE_KIB}")
        conn.exec_driver_sql(f"PRAGMA temp.cache_size = -{SQLITE_CACHE_KIB}")


def create_temp_tables(conn: Connection) -> None:
    tune_session(conn)
    drop_temp_tables(conn)
    for table in TEMP_TABLES:
        table.create(conn)


def index_filled(conn: Connection, table: sa.Table, *, postgresql: bool = True) -> None:
    """The unique index on ``match_ref`` of a freshly filled temporary table, then its statistics.
    ``postgresql=False``: SQLite only (PostgreSQL joins the table by hashing, it needs no index)."""
    if postgresql or conn.dialect.name != "postgresql":
        conn.exec_driver_sql(f"CREATE UNIQUE INDEX {table.name}_key ON {table.name} (match_ref)")
    analyze(conn, table)


def analyze(conn: Connection, *tables: sa.Table) -> None:
    """Give PostgreSQL's planner the current size of tables a run just filled (temporary tables
    have no statistics; autovacuum has not seen a day's million rows yet)."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"ANALYZE {', '.join(table.name for table in tables)}")


def drop_temp_tables(conn: Connection) -> None:
    for table in TEMP_TABLES:
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {table.name}")


def signed_amount() -> sa.ColumnElement[int]:
    return sa.case((lines.c.side == "D", lines.c.amount), else_=-lines.c.amount)


def stage_ledger(conn: Connection, day: date, config: ReconciliationConfig, links: LedgerLinks) -> None:
    """Fill ``recon_tmp_items`` for ``day`` (see the module docstring)."""
    clearing = account_id(conn, config.clearing_account)
    lo, hi = window(day, config)
    prefix_len = len(STRIPE_REF_PREFIX)
    convention = sa.case(
        (entries.c.source_ref.like(f"{STRIPE_REF_PREFIX}%"), sa.func.substr(entries.c.source_ref, prefix_len + 1)),
        else_=sa.null(),
    )
    query = (
        sa.select(
            lines.c.entry_id.label("entry_id"),
            lines.c.effective_date.label("effective_date"),
            signed_amount().label("amount"),
            entries.c.source_ref.label("source_ref"),
        )
        .join(entries, entries.c.id == lines.c.entry_id)
        .where(
            lines.c.account_id == clearing,
            lines.c.effective_date >= lo,
            lines.c.effective_date <= hi,
            sa.not_(entries.c.source_ref.like(f"{PAYOUT_REF_PREFIX}%")),
        )
    )
    linked = links.select()
    if linked is not None:
        link = linked.distinct().subquery("links")
        query = query.add_columns(sa.func.coalesce(link.c.match_ref, convention).label("match_ref")).outerjoin(
            link, link.c.entry_id == lines.c.entry_id
        )
    else:
        query = query.add_columns(convention.label("match_ref"))
    moves = query.subquery("moves")
    key = sa.func.coalesce(moves.c.match_ref, sa.literal("#entry:") + sa.cast(moves.c.entry_id, sa.String))
    in_day = sa.func.max(sa.case((moves.c.effective_date == day, 1), else_=0))
    grouped = (
        sa.select(
            key.label("key"),
            sa.func.max(sa.case((moves.c.match_ref.is_(None), 0), else_=1)),
            sa.func.sum(moves.c.amount),
            sa.func.min(moves.c.effective_date),
            in_day,
            sa.func.min(moves.c.entry_id),
        )
        .group_by(key)
    )
    conn.execute(
        tmp_items.insert().from_select(
            ["match_ref", "linked", "amount", "first_date", "in_day", "entry_id"], grouped
        )
    )
    index_filled(conn, tmp_items)
