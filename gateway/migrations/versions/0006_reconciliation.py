"""Reconciliation: provider statements, bank statements, matches, breaks, sign-offs.

Revision ID: 0006_reconciliation
Revises: 0005_webhooks
Create Date: 2026-11-26

The database enforces, on both engines:
- a ledger item (its key) and a provider transaction each match at most once (UNIQUE on both
  columns of ``recon_matches``), and so do a payout and a bank line (``recon_payout_matches``);
- one break per business day and key (a re-run updates it); a resolved break has a resolution;
- ``recon_break_notes`` (the exceptions queue's history) is append-only.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_reconciliation"
down_revision = "0005_webhooks"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

CATEGORIES = (
    "missing_in_ledger", "missing_at_provider", "amount_mismatch", "duplicate", "fee_variance",
    "payout_in_transit", "payout_failed", "unexplained_residual",
)  # fmt: skip
STATUSES = ("open", "escalated", "resolved", "healed", "cleared")
NOTE_KINDS = ("comment", "assign", "resolve", "escalate", "heal", "clear", "reopen")


def upgrade() -> None:
    op.create_table(
        "recon_provider_txns",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("reporting_category", sa.String(64), nullable=True),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("fee", sa.BigInteger, nullable=False),
        sa.Column("net", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("business_date", sa.Date, nullable=False),
        sa.Column("created_hour", sa.SmallInteger, nullable=False),
        sa.Column("available_on", sa.Date, nullable=True),
        sa.Column("source_id", sa.String(255), nullable=True),
        sa.Column("match_ref", sa.String(255), nullable=True),
        sa.Column("payment_ref", sa.String(255), nullable=True),
        sa.Column("notice_number", sa.String(32), nullable=True),
        sa.Column("attempt_ref", sa.String(64), nullable=True),
        sa.Column("payout_id", sa.String(64), nullable=True),
        sa.Column("pulled_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("net = amount - fee", name="net"),
    )
    op.create_index("ix_recon_provider_txns_day", "recon_provider_txns", ["business_date", "type"])
    op.create_index("ix_recon_provider_txns_match_ref", "recon_provider_txns", ["match_ref"])
    op.create_index("ix_recon_provider_txns_payout", "recon_provider_txns", ["payout_id"])

    op.create_table(
        "recon_payouts",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("arrival_date", sa.Date, nullable=False),
        sa.Column("balance_txn_id", sa.String(64), nullable=True),
        sa.Column("failure_code", sa.String(64), nullable=True),
        sa.Column("pulled_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_recon_payouts_arrival", "recon_payouts", ["arrival_date"])

    op.create_table(
        "recon_bank_imports",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("format", sa.String(16), nullable=False),
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("lines_total", sa.Integer, nullable=False),
        sa.Column("lines_new", sa.Integer, nullable=False),
        sa.Column("imported_by", sa.String(200), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "recon_bank_lines",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("account", sa.String(64), nullable=False),
        sa.Column("line_key", sa.String(200), nullable=False),
        sa.Column("value_date", sa.Date, nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("description", sa.String(200), nullable=False),
        sa.Column("reference", sa.String(64), nullable=True),
        sa.Column("import_id", BigId, sa.ForeignKey("recon_bank_imports.id"), nullable=False),
        sa.UniqueConstraint("account", "line_key", name="uq_recon_bank_lines_account_line_key"),
    )
    op.create_index("ix_recon_bank_lines_value_date", "recon_bank_lines", ["value_date", "amount"])

    op.create_table(
        "recon_matches",
        sa.Column("match_ref", sa.String(255), primary_key=True),
        sa.Column("business_date", sa.Date, nullable=False),
        # No foreign key: matches are only ever made from recon_provider_txns, and a per-row
        # FK check costs PostgreSQL more than the whole match on a day of a million rows.
        sa.Column("provider_txn_id", sa.String(64), nullable=False, unique=True),
        sa.Column("rule", sa.String(16), nullable=False),
        sa.Column("ledger_amount", sa.BigInteger, nullable=False),
        sa.Column("provider_amount", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_recon_matches_day", "recon_matches", ["business_date"])

    op.create_table(
        "recon_payout_matches",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("business_date", sa.Date, nullable=False),
        sa.Column("payout_id", sa.String(64), sa.ForeignKey("recon_payouts.id"), nullable=False, unique=True),
        sa.Column("bank_line_id", BigId, sa.ForeignKey("recon_bank_lines.id"), nullable=False, unique=True),
        sa.Column("rule", sa.String(16), nullable=False),
        sa.Column("days_apart", sa.SmallInteger, nullable=False),
        sa.Column("ledger_entry_id", sa.BigInteger, sa.ForeignKey("ledger_entries.id"), nullable=True),
    )
    op.create_index("ix_recon_payout_matches_day", "recon_payout_matches", ["business_date"])

    op.create_table(
        "recon_runs",
        sa.Column("business_date", sa.Date, primary_key=True),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("runs", sa.Integer, nullable=False),
        sa.Column("first_run_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_run_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_run_by", sa.String(200), nullable=False),
        sa.Column("report_sha256", sa.String(64), nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("signed_off_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("signed_off_by", sa.String(200), nullable=True),
        sa.Column("close_head_seq", sa.BigInteger, nullable=True),
        sa.Column("close_head_hash", sa.String(64), nullable=True),
        sa.CheckConstraint("(status = 'signed_off') = (signed_off_at IS NOT NULL)", name="signed_off"),
    )

    op.create_table(
        "recon_breaks",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("business_date", sa.Date, nullable=False),
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
        sa.CheckConstraint(f"category IN {CATEGORIES}", name="category"),
        sa.CheckConstraint(f"status IN {STATUSES}", name="status"),
        sa.CheckConstraint("status != 'resolved' OR resolution IS NOT NULL", name="resolution"),
    )
    op.create_index("ix_recon_breaks_day_status", "recon_breaks", ["business_date", "status"])

    op.create_table(
        "recon_break_notes",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("break_id", BigId, sa.ForeignKey("recon_breaks.id"), nullable=False),
        sa.Column("kind", sa.String(12), nullable=False),
        sa.Column("actor_id", sa.String(200), nullable=False),
        sa.Column("actor_name", sa.String(200), nullable=False),
        sa.Column("body", sa.String(2000), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(f"kind IN {NOTE_KINDS}", name="kind"),
    )
    op.create_index("ix_recon_break_notes_break", "recon_break_notes", ["break_id", "id"])
    _notes_append_only()


def _run(sql: str) -> None:
    op.get_bind().exec_driver_sql(sql)


def _notes_append_only() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for event in ("UPDATE", "DELETE"):
            _run(
                f"CREATE TRIGGER recon_break_notes_no_{event.lower()} BEFORE {event} ON recon_break_notes "
                "BEGIN SELECT RAISE(ABORT, 'reconciliation: break notes are append-only'); END"
            )
        return
    _run(
        """
        CREATE FUNCTION recon_notes_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION USING
                MESSAGE = 'reconciliation: break notes are append-only',
                ERRCODE = 'integrity_constraint_violation';
        END $$
        """
    )
    _run(
        "CREATE TRIGGER recon_break_notes_append_only BEFORE UPDATE OR DELETE ON recon_break_notes "
        "FOR EACH ROW EXECUTE FUNCTION recon_notes_refuse_change()"
    )
    _run(
        "CREATE TRIGGER recon_break_notes_no_truncate BEFORE TRUNCATE ON recon_break_notes "
        "FOR EACH STATEMENT EXECUTE FUNCTION recon_notes_refuse_change()"
    )


def downgrade() -> None:
    raise NotImplementedError("signed-off reconciliations are records: there is no downgrade past them")
