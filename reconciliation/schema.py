"""Tables of the reconciliation (SQLAlchemy Core), on the metadata every nofu package shares.

The migration ``gateway/migrations/versions/0006_reconciliation.py`` is the source of truth for
DDL; ``tests/reconciliation/test_schema.py`` checks both agree.

- ``recon_provider_txns`` / ``recon_payouts``: the provider's statement, pulled idempotently
  (one row per provider id; pulling again changes nothing).
- ``recon_bank_imports`` / ``recon_bank_lines``: statements of the designated bank account; a
  line is unique per (account, line_key), so re-importing a file or an overlapping one adds nothing.
- ``recon_matches``: ledger item ↔ provider transaction. **Each side matches at most once**: the
  ledger item's key (``match_ref``, the primary key) and the provider transaction are each unique.
- ``recon_payout_matches``: payout ↔ bank line, each UNIQUE as well.
- ``recon_runs`` (one per business day), ``recon_breaks`` (one per day and break key: a re-run
  updates, never duplicates) and ``recon_break_notes`` (the queue's history).

Money is ``BigInteger`` yen.
"""

from __future__ import annotations

import sqlalchemy as sa

from ledger.schema import BigId, metadata

BREAK_CATEGORIES = (
    "missing_in_ledger", "missing_at_provider", "amount_mismatch", "duplicate", "fee_variance",
    "payout_in_transit", "payout_failed", "unexplained_residual",
)  # fmt: skip
BREAK_STATUSES = ("open", "escalated", "resolved", "healed", "cleared")
NOTE_KINDS = ("comment", "assign", "resolve", "escalate", "heal", "clear", "reopen")
RUN_STATUSES = ("reconciled", "signed_off")
MATCH_RULES = ("key", "key_cross_day")
PAYOUT_MATCH_RULES = ("same_day", "date_window")

provider_txns = sa.Table(
    "recon_provider_txns",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("type", sa.String(32), nullable=False),
    sa.Column("reporting_category", sa.String(64), nullable=True),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("fee", sa.BigInteger, nullable=False),
    sa.Column("net", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    # JST business date and hour of created_at, stored so day queries use an index.
    sa.Column("business_date", sa.Date, nullable=False),
    sa.Column("created_hour", sa.SmallInteger, nullable=False),
    sa.Column("available_on", sa.Date, nullable=True),
    sa.Column("source_id", sa.String(255), nullable=True),
    # The key our books know it by (pi_… of a charge, re_… of a refund).
    sa.Column("match_ref", sa.String(255), nullable=True),
    sa.Column("payment_ref", sa.String(255), nullable=True),
    sa.Column("notice_number", sa.String(32), nullable=True),
    sa.Column("attempt_ref", sa.String(64), nullable=True),
    sa.Column("payout_id", sa.String(64), nullable=True),
    sa.Column("pulled_at", sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("net = amount - fee", name="net"),
    sa.Index("ix_recon_provider_txns_day", "business_date", "type"),
    sa.Index("ix_recon_provider_txns_match_ref", "match_ref"),
    sa.Index("ix_recon_provider_txns_payout", "payout_id"),
)

payouts = sa.Table(
    "recon_payouts",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("arrival_date", sa.Date, nullable=False),
    sa.Column("balance_txn_id", sa.String(64), nullable=True),
    sa.Column("failure_code", sa.String(64), nullable=True),
    sa.Column("pulled_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_recon_payouts_arrival", "arrival_date"),
)

bank_imports = sa.Table(
    "recon_bank_imports",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("sha256", sa.String(64), nullable=False, unique=True),
    sa.Column("format", sa.String(16), nullable=False),
    sa.Column("account", sa.String(64), nullable=False),
    sa.Column("lines_total", sa.Integer, nullable=False),
    sa.Column("lines_new", sa.Integer, nullable=False),
    sa.Column("imported_by", sa.String(200), nullable=False),
    sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
)

bank_lines = sa.Table(
    "recon_bank_lines",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("account", sa.String(64), nullable=False),
    sa.Column("line_key", sa.String(200), nullable=False),
    sa.Column("value_date", sa.Date, nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("description", sa.String(200), nullable=False),
    sa.Column("reference", sa.String(64), nullable=True),
    sa.Column("import_id", BigId, sa.ForeignKey("recon_bank_imports.id"), nullable=False),
    sa.UniqueConstraint("account", "line_key", name="uq_recon_bank_lines_account_line_key"),
    sa.Index("ix_recon_bank_lines_value_date", "value_date", "amount"),
)

matches = sa.Table(
    "recon_matches",
    metadata,
    # The ledger item's key is the primary key: a ledger item matches at most once (and no
    # surrogate id costs a fourth index on a million-row day).
    sa.Column("match_ref", sa.String(255), primary_key=True),
    # The run (business day) that made the match; a re-run of that day remakes its matches.
    sa.Column("business_date", sa.Date, nullable=False),
    # No foreign key: matches are only ever made from recon_provider_txns, and a per-row FK
    # check costs PostgreSQL more than the whole match on a day of a million rows.
    sa.Column("provider_txn_id", sa.String(64), nullable=False, unique=True),
    sa.Column("rule", sa.String(16), nullable=False),
    sa.Column("ledger_amount", sa.BigInteger, nullable=False),
    sa.Column("provider_amount", sa.BigInteger, nullable=False),
    sa.Index("ix_recon_matches_day", "business_date"),
)

payout_matches = sa.Table(
    "recon_payout_matches",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("business_date", sa.Date, nullable=False),
    sa.Column("payout_id", sa.String(64), sa.ForeignKey("recon_payouts.id"), nullable=False, unique=True),
    sa.Column("bank_line_id", BigId, sa.ForeignKey("recon_bank_lines.id"), nullable=False, unique=True),
    sa.Column("rule", sa.String(16), nullable=False),
    sa.Column("days_apart", sa.SmallInteger, nullable=False),
    # The payout's posting (Dr 1300 + Dr 5100 / Cr 1200), made when the match is made.
    sa.Column("ledger_entry_id", sa.BigInteger, sa.ForeignKey("ledger_entries.id"), nullable=True),
    sa.Index("ix_recon_payout_matches_day", "business_date"),
)

runs = sa.Table(
    "recon_runs",
    metadata,
    sa.Column("business_date", sa.Date, primary_key=True),
    sa.Column("status", sa.String(12), nullable=False),
    sa.Column("runs", sa.Integer, nullable=False),
    sa.Column("first_run_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_run_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_run_by", sa.String(200), nullable=False),
    sa.Column("report_sha256", sa.String(64), nullable=False),
    # The run's findings (totals, charts) as canonical JSON.
    sa.Column("summary", sa.Text, nullable=False),
    sa.Column("signed_off_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("signed_off_by", sa.String(200), nullable=True),
    # The ledger's chain head when the day was closed (ledger.close_day), an auditor's anchor.
    sa.Column("close_head_seq", sa.BigInteger, nullable=True),
    sa.Column("close_head_hash", sa.String(64), nullable=True),
    sa.CheckConstraint("(status = 'signed_off') = (signed_off_at IS NOT NULL)", name="signed_off"),
)

breaks = sa.Table(
    "recon_breaks",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("business_date", sa.Date, nullable=False),
    # Stable identity across re-runs: "<category>:<record>" (e.g. "missing_in_ledger:txn_…").
    sa.Column("break_key", sa.String(300), nullable=False),
    sa.Column("category", sa.String(24), nullable=False),
    sa.Column("status", sa.String(12), nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("provider_amount", sa.BigInteger, nullable=True),
    sa.Column("ledger_amount", sa.BigInteger, nullable=True),
    sa.Column("provider_txn_id", sa.String(64), nullable=True),
    sa.Column("match_ref", sa.String(255), nullable=True),
    sa.Column("ledger_entry_id", sa.BigInteger, nullable=True),
    sa.Column("payout_id", sa.String(64), nullable=True),
    sa.Column("bank_line_id", sa.BigInteger, nullable=True),
    sa.Column("tax_code", sa.String(64), nullable=True),
    sa.Column("notice_number", sa.String(32), nullable=True),
    sa.Column("detail", sa.String(500), nullable=False),
    # Whether the latest run still finds it.
    sa.Column("detected", sa.Boolean, nullable=False),
    sa.Column("first_run", sa.Integer, nullable=False),
    sa.Column("last_run", sa.Integer, nullable=False),
    sa.Column("assignee", sa.String(200), nullable=True),
    sa.Column("resolution", sa.String(500), nullable=True),
    sa.Column("resolved_by", sa.String(200), nullable=True),
    sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("business_date", "break_key", name="uq_recon_breaks_day_key"),
    sa.CheckConstraint(f"category IN {BREAK_CATEGORIES}", name="category"),
    sa.CheckConstraint(f"status IN {BREAK_STATUSES}", name="status"),
    sa.CheckConstraint("status != 'resolved' OR resolution IS NOT NULL", name="resolution"),
    sa.Index("ix_recon_breaks_day_status", "business_date", "status"),
)

break_notes = sa.Table(
    "recon_break_notes",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("break_id", BigId, sa.ForeignKey("recon_breaks.id"), nullable=False),
    sa.Column("kind", sa.String(12), nullable=False),
    sa.Column("actor_id", sa.String(200), nullable=False),
    sa.Column("actor_name", sa.String(200), nullable=False),
    sa.Column("body", sa.String(2000), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint(f"kind IN {NOTE_KINDS}", name="kind"),
    sa.Index("ix_recon_break_notes_break", "break_id", "id"),
)
