"""Invoices: invoices, history, number sequences, import batches.

Revision ID: 0002_invoices
Revises: 0001_ledger
Create Date: 2026-11-26

What the database itself enforces, on both engines:
- money: an invoice's amount is 1..99,999,999 yen unless cancelled (then 0), amount_paid ≥ 0,
  and on SQLite both are true integers (SQLite would store 1.5 or '12' in a BIGINT column);
- the status agrees with the money: open ⇔ paid < amount, paid ⇔ paid = amount,
  overpaid ⇔ paid > amount, cancelled ⇒ nothing paid;
- notice numbers are 13 digits, public ids 24 lower-case hex characters, both unique;
- an invoice is never deleted, its version never decreases, a cancelled invoice stays cancelled,
  and its identity (public id, notice number, tax code, payer reference, external reference,
  issue entry) never changes;
- the history (invoice_changes) and the import log (invoice_imports) refuse UPDATE and DELETE
  (and TRUNCATE on PostgreSQL).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_invoices"
down_revision = "0001_ledger"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
MAX_INVOICE_AMOUNT = 99_999_999
STATUSES = "('open', 'paid', 'overpaid', 'cancelled')"
CHANGE_KINDS = "('issue', 'amend', 'cancel', 'payment', 'revoke_code')"
APPEND_ONLY = ("invoice_changes", "invoice_imports")
# Columns that name an invoice; they never change once it is issued.
IDENTITY = (
    "public_id",
    "notice_number",
    "fiscal_year",
    "sequence",
    "external_ref",
    "payer_ref",
    "tax_code",
    "issue_entry_id",
    "issue_digest",
    "import_id",
    "created_at",
)


def upgrade() -> None:
    bind = op.get_bind()
    sqlite = bind.dialect.name == "sqlite"

    def integer_only(*columns: str) -> list[sa.CheckConstraint]:
        if not sqlite:
            return []
        return [
            sa.CheckConstraint(
                " AND ".join(f"({c} IS NULL OR typeof({c}) = 'integer')" for c in columns),
                name="money_integer",
            )
        ]

    if sqlite:
        digits13 = "length(notice_number) = 13 AND notice_number NOT GLOB '*[^0-9]*'"
        hex24 = "length(public_id) = 24 AND public_id NOT GLOB '*[^0-9a-f]*'"
    else:
        digits13 = "notice_number ~ '^[0-9]{13}$'"
        hex24 = "public_id ~ '^[0-9a-f]{24}$'"

    op.create_table(
        "invoice_imports",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("file_sha256", sa.String(64), nullable=False),
        sa.Column("encoding", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("rows_total", sa.Integer, nullable=False),
        sa.Column("rows_issued", sa.Integer, nullable=False),
        sa.Column("rows_skipped", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "rows_issued >= 0 AND rows_skipped >= 0 AND rows_issued + rows_skipped = rows_total",
            name="counts",
        ),
    )
    op.create_index("ix_invoice_imports_file_sha256", "invoice_imports", ["file_sha256"])

    op.create_table(
        "invoices",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("public_id", sa.String(24), nullable=False),
        sa.Column("notice_number", sa.String(13), nullable=False),
        sa.Column("fiscal_year", sa.Integer, nullable=False),
        sa.Column("sequence", sa.Integer, nullable=False),
        sa.Column("external_ref", sa.String(64), nullable=True),
        sa.Column("payer_ref", sa.String(32), nullable=False),
        sa.Column("payer_name", sa.Text, nullable=False),
        sa.Column("payer_address", sa.Text, nullable=True),
        sa.Column("payer_contact", sa.Text, nullable=True),
        sa.Column("pii_key_id", sa.String(16), nullable=False),
        sa.Column("tax_code", sa.String(16), nullable=False),
        sa.Column("installment", sa.SmallInteger, nullable=True),
        sa.Column("issue_date", sa.Date, nullable=False),
        sa.Column("due_date", sa.Date, nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("amount_paid", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("token_generation", sa.Integer, nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("issue_digest", sa.String(64), nullable=False),
        sa.Column("issue_entry_id", sa.BigInteger, sa.ForeignKey("ledger_entries.id"), nullable=False),
        sa.Column("import_id", BigId, sa.ForeignKey("invoice_imports.id"), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(f"status IN {STATUSES}", name="status"),
        sa.CheckConstraint(
            f"(status <> 'cancelled' AND amount BETWEEN 1 AND {MAX_INVOICE_AMOUNT}) "
            "OR (status = 'cancelled' AND amount = 0)",
            name="amount_range",
        ),
        sa.CheckConstraint("amount_paid >= 0", name="amount_paid_range"),
        sa.CheckConstraint(
            "(status = 'open' AND amount_paid < amount) "
            "OR (status = 'paid' AND amount_paid = amount) "
            "OR (status = 'overpaid' AND amount_paid > amount) "
            "OR (status = 'cancelled' AND amount_paid = 0)",
            name="status_matches_money",
        ),
        *integer_only("amount", "amount_paid"),
        sa.CheckConstraint(digits13, name="notice_number_digits"),
        sa.CheckConstraint(hex24, name="public_id_hex"),
        sa.CheckConstraint("fiscal_year BETWEEN 2000 AND 2099", name="fiscal_year_range"),
        sa.CheckConstraint("sequence BETWEEN 1 AND 99999999", name="sequence_range"),
        sa.CheckConstraint("installment IS NULL OR installment BETWEEN 1 AND 12", name="installment_range"),
        sa.CheckConstraint("due_date >= issue_date", name="due_after_issue"),
        sa.CheckConstraint("token_generation BETWEEN 0 AND 65535", name="token_generation_range"),
        sa.CheckConstraint("version >= 1", name="version_positive"),
        sa.UniqueConstraint("public_id", name="uq_invoices_public_id"),
        sa.UniqueConstraint("notice_number", name="uq_invoices_notice_number"),
        sa.UniqueConstraint("external_ref", name="uq_invoices_external_ref"),
        sa.UniqueConstraint("fiscal_year", "sequence", name="uq_invoices_fiscal_year_sequence"),
    )
    op.create_index("ix_invoices_payer_ref", "invoices", ["payer_ref"])
    op.create_index("ix_invoices_due_date", "invoices", ["due_date"])
    op.create_index("ix_invoices_status", "invoices", ["status", "id"])
    op.create_index("ix_invoices_tax_code_fiscal_year", "invoices", ["tax_code", "fiscal_year", "id"])

    op.create_table(
        "invoice_changes",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("invoice_id", BigId, sa.ForeignKey("invoices.id"), nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("reason", sa.String(500), nullable=True),
        sa.Column("reference", sa.String(255), nullable=True),
        sa.Column("amount_before", sa.BigInteger, nullable=True),
        sa.Column("amount_after", sa.BigInteger, nullable=False),
        sa.Column("paid_before", sa.BigInteger, nullable=True),
        sa.Column("paid_after", sa.BigInteger, nullable=False),
        sa.Column("status_before", sa.String(10), nullable=True),
        sa.Column("status_after", sa.String(10), nullable=False),
        sa.Column("ledger_entry_id", sa.BigInteger, sa.ForeignKey("ledger_entries.id"), nullable=True),
        sa.Column("overpayment_entry_id", sa.BigInteger, sa.ForeignKey("ledger_entries.id"), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(f"kind IN {CHANGE_KINDS}", name="kind"),
        sa.CheckConstraint(
            f"status_after IN {STATUSES} AND (status_before IS NULL OR status_before IN {STATUSES})",
            name="statuses",
        ),
        sa.CheckConstraint(
            "amount_after >= 0 AND (amount_before IS NULL OR amount_before >= 0) "
            "AND paid_after >= 0 AND (paid_before IS NULL OR paid_before >= 0)",
            name="money_range",
        ),
        sa.CheckConstraint("(kind = 'issue') = (amount_before IS NULL)", name="issue_has_no_before"),
        sa.CheckConstraint("length(actor) > 0", name="actor_present"),
        sa.CheckConstraint("version >= 1", name="version_positive"),
        *integer_only("amount_before", "amount_after", "paid_before", "paid_after"),
        sa.UniqueConstraint("invoice_id", "version", name="uq_invoice_changes_invoice_version"),
    )

    op.create_table(
        "invoice_number_sequences",
        sa.Column("fiscal_year", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("next_sequence", sa.BigInteger, nullable=False),
        sa.CheckConstraint("fiscal_year BETWEEN 2000 AND 2099", name="fiscal_year_range"),
        # 100,000,000 means the year's 8-digit sequences are all used.
        sa.CheckConstraint("next_sequence BETWEEN 1 AND 100000000", name="next_sequence_range"),
    )

    op.create_table(
        "invoice_idempotency_keys",
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("invoice_id", BigId, sa.ForeignKey("invoices.id"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("length(key) > 0", name="key_present"),
    )

    if sqlite:
        _sqlite_triggers()
    else:
        _postgresql_triggers()


def _run(sql: str) -> None:
    # exec_driver_sql: no bind-parameter parsing of trigger bodies.
    op.get_bind().exec_driver_sql(sql)


def _sqlite_triggers() -> None:
    for table in APPEND_ONLY:
        for event in ("UPDATE", "DELETE"):
            _run(
                f"CREATE TRIGGER {table}_no_{event.lower()} BEFORE {event} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, 'invoices: {event} on {table} refused: the history "
                "is append-only'); END"
            )
    _run(
        "CREATE TRIGGER invoices_no_delete BEFORE DELETE ON invoices "
        "BEGIN SELECT RAISE(ABORT, 'invoices: an invoice cannot be deleted, only cancelled'); END"
    )
    changed = " OR ".join(f"NEW.{c} IS NOT OLD.{c}" for c in IDENTITY)
    _run(
        f"CREATE TRIGGER invoices_identity_guard BEFORE UPDATE ON invoices WHEN {changed} "
        "OR NEW.version < OLD.version "
        "OR (OLD.status = 'cancelled' AND NEW.status <> 'cancelled') "
        "BEGIN SELECT RAISE(ABORT, 'invoices: an invoice''s identity cannot change, its version "
        "never decreases and a cancelled invoice stays cancelled'); END"
    )


def _postgresql_triggers() -> None:
    _run(
        """
        CREATE FUNCTION invoices_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION USING
                MESSAGE = 'invoices: ' || TG_OP || ' on ' || TG_TABLE_NAME || ' refused',
                ERRCODE = 'integrity_constraint_violation';
        END $$
        """
    )
    for table in APPEND_ONLY:
        _run(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION invoices_refuse_change()"
        )
    for table in (*APPEND_ONLY, "invoices"):
        _run(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION invoices_refuse_change()"
        )
    _run(
        "CREATE TRIGGER invoices_no_delete BEFORE DELETE ON invoices "
        "FOR EACH ROW EXECUTE FUNCTION invoices_refuse_change()"
    )
    changed = " OR ".join(f"NEW.{c} IS DISTINCT FROM OLD.{c}" for c in IDENTITY)
    _run(
        f"""
        CREATE FUNCTION invoices_identity_guard() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF {changed} OR NEW.version < OLD.version
               OR (OLD.status = 'cancelled' AND NEW.status <> 'cancelled') THEN
                RAISE EXCEPTION USING
                    MESSAGE = 'invoices: an invoice''s identity cannot change, its version never '
                              || 'decreases and a cancelled invoice stays cancelled',
                    ERRCODE = 'integrity_constraint_violation';
            END IF;
            RETURN NEW;
        END $$
        """
    )
    _run(
        "CREATE TRIGGER invoices_identity_guard BEFORE UPDATE ON invoices "
        "FOR EACH ROW EXECUTE FUNCTION invoices_identity_guard()"
    )


def downgrade() -> None:
    raise NotImplementedError("invoices hold issued receivables: there is no downgrade past them")
