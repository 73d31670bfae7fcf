"""Tables of the ledger (SQLAlchemy Core). ``metadata`` is shared by every nofu package.

The migrations in ``gateway/migrations`` are the source of truth for DDL, including the
triggers that make the journal append-only and balanced; these definitions are what the code
queries with, and a test checks that both agree.

Amounts are ``BigInteger`` yen. Balances are signed, debit-positive (Σdebit − Σcredit).
"""

from __future__ import annotations

import sqlalchemy as sa

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)

# Largest amount of one journal line: 2**53 − 1, the largest integer a JSON number keeps exactly
# in every client (JavaScript's Number.MAX_SAFE_INTEGER), ≈ ¥9 quadrillion, far above any payout.
# 1,024 such lines still sum inside a signed 64-bit integer.
MAX_AMOUNT = 2**53 - 1
# Running balances must stay inside what BIGINT holds.
MAX_BALANCE = 2**63 - 1

# Surrogate keys: BIGINT on PostgreSQL, INTEGER (the rowid alias) on SQLite so it autoincrements.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

accounts = sa.Table(
    "ledger_accounts",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("code", sa.String(64), nullable=False, unique=True),
    sa.Column("parent_id", BigId, sa.ForeignKey("ledger_accounts.id"), nullable=True),
    sa.Column("name_ja", sa.String(200), nullable=False),
    sa.Column("name_en", sa.String(200), nullable=False),
    sa.Column("normal_side", sa.String(6), nullable=False),
    sa.Column("status", sa.String(6), nullable=False),
    sa.Column("balance", sa.BigInteger, nullable=False),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("normal_side IN ('debit', 'credit')", name="normal_side"),
    sa.CheckConstraint("status IN ('open', 'closed')", name="status"),
    sa.CheckConstraint("version >= 0", name="version"),
)

# One row: the head of the hash chain. Every posting locks it, so entries get gapless ids in
# commit order and concurrent writers cannot fork the chain.
chain_head = sa.Table(
    "ledger_chain_head",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Column("closed_through", sa.Date, nullable=True),
    sa.CheckConstraint("id = 1", name="single_row"),
)

entries = sa.Table(
    "ledger_entries",
    metadata,
    # The chain sequence number: assigned under the chain-head lock, not by a sequence.
    sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("effective_date", sa.Date, nullable=False),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("description", sa.String(500), nullable=False),
    sa.Column("source_ref", sa.String(200), nullable=False),
    sa.Column("idempotency_key", sa.String(255), nullable=False, unique=True),
    sa.Column("content_digest", sa.String(64), nullable=False),
    sa.Column(
        "reverses_entry_id",
        sa.BigInteger,
        sa.ForeignKey("ledger_entries.id"),
        nullable=True,
        unique=True,
    ),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False, unique=True),
    sa.CheckConstraint("id > 0", name="id_positive"),
)

lines = sa.Table(
    "ledger_lines",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    # Lines are written before their entry (the entry's insert trigger checks they balance),
    # so the foreign key is checked at commit.
    sa.Column(
        "entry_id",
        sa.BigInteger,
        sa.ForeignKey("ledger_entries.id", deferrable=True, initially="DEFERRED"),
        nullable=False,
    ),
    sa.Column("line_no", sa.SmallInteger, nullable=False),
    sa.Column("account_id", BigId, sa.ForeignKey("ledger_accounts.id"), nullable=False),
    sa.Column("side", sa.String(1), nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("effective_date", sa.Date, nullable=False),
    sa.Column("balance_after", sa.BigInteger, nullable=False),
    sa.Column("account_version", sa.BigInteger, nullable=False),
    sa.CheckConstraint("side IN ('D', 'C')", name="side"),
    sa.CheckConstraint(f"amount > 0 AND amount <= {MAX_AMOUNT}", name="amount_range"),
    # Also the index behind look-ups of an entry's lines (entry_id is its first column).
    sa.UniqueConstraint("entry_id", "line_no", name="uq_ledger_lines_entry_line"),
    sa.UniqueConstraint("account_id", "account_version", name="uq_ledger_lines_account_version"),
    sa.Index("ix_ledger_lines_account_date", "account_id", "effective_date", "side", "amount"),
)

period_closes = sa.Table(
    "ledger_period_closes",
    metadata,
    sa.Column("business_date", sa.Date, primary_key=True),
    sa.Column("closed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("closed_by", sa.String(200), nullable=False),
    # The chain head at close: an anchor an auditor can copy out of the system.
    sa.Column("head_seq", sa.BigInteger, nullable=False),
    sa.Column("head_hash", sa.String(64), nullable=False),
)

GENESIS_HASH = "0" * 64
