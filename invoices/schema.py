"""Tables of invoices (SQLAlchemy Core), on the metadata every nofu package shares.

The migration ``gateway/migrations/versions/0002_invoices.py`` is the source of truth for DDL,
including the named CHECK constraints and the triggers that keep ``invoice_changes`` and
``invoice_imports`` append-only; these definitions are what the code queries with, and
``tests/invoices/test_schema.py`` checks both agree.

Money is ``BigInteger`` yen. An invoice's ``amount`` is the principal currently owed by
調定 (0 once cancelled); ``amount_paid`` is principal received. ``status`` is a function of the
two (and of cancellation), and the database refuses a row where it is not.
"""

from __future__ import annotations

import sqlalchemy as sa

from ledger.schema import BigId, metadata

MAX_INVOICE_AMOUNT = 99_999_999  # Stripe's JPY amount allows 8 digits
MIN_FISCAL_YEAR = 2000
MAX_FISCAL_YEAR = 2099
MAX_INSTALLMENT = 12
MAX_TOKEN_GENERATION = 0xFFFF
STATUSES = ("open", "paid", "overpaid", "cancelled")
CHANGE_KINDS = ("issue", "amend", "cancel", "payment", "revoke_code")

imports = sa.Table(
    "invoice_imports",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("file_sha256", sa.String(64), nullable=False),
    sa.Column("encoding", sa.String(16), nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("rows_total", sa.Integer, nullable=False),
    sa.Column("rows_issued", sa.Integer, nullable=False),
    sa.Column("rows_skipped", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_invoice_imports_file_sha256", "file_sha256"),
)

invoices = sa.Table(
    "invoices",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    # 12 random bytes as hex: the payment token's ref. Never the guessable notice number.
    sa.Column("public_id", sa.String(24), nullable=False, unique=True),
    sa.Column("notice_number", sa.String(13), nullable=False, unique=True),
    sa.Column("fiscal_year", sa.Integer, nullable=False),
    sa.Column("sequence", sa.Integer, nullable=False),
    sa.Column("external_ref", sa.String(64), nullable=True, unique=True),
    sa.Column("payer_ref", sa.String(32), nullable=False),
    # AES-GCM blobs (invoices.pii); the aad binds each to this row's public_id and its field.
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
    # SHA-256 of the issue request's non-personal fields, for idempotent re-issue and re-import.
    sa.Column("issue_digest", sa.String(64), nullable=False),
    sa.Column("issue_entry_id", sa.BigInteger, sa.ForeignKey("ledger_entries.id"), nullable=False),
    sa.Column("import_id", BigId, sa.ForeignKey("invoice_imports.id"), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("fiscal_year", "sequence", name="uq_invoices_fiscal_year_sequence"),
    sa.Index("ix_invoices_payer_ref", "payer_ref"),
    sa.Index("ix_invoices_due_date", "due_date"),
    sa.Index("ix_invoices_status", "status", "id"),
    sa.Index("ix_invoices_tax_code_fiscal_year", "tax_code", "fiscal_year", "id"),
)

changes = sa.Table(
    "invoice_changes",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("invoice_id", BigId, sa.ForeignKey("invoices.id"), nullable=False),
    # The invoice's version after this change: one change per version.
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
    # The receivable/revenue entry, and the 過誤納金 (2100) entry when one was needed.
    sa.Column("ledger_entry_id", sa.BigInteger, sa.ForeignKey("ledger_entries.id"), nullable=True),
    sa.Column("overpayment_entry_id", sa.BigInteger, sa.ForeignKey("ledger_entries.id"), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("invoice_id", "version", name="uq_invoice_changes_invoice_version"),
)

number_sequences = sa.Table(
    "invoice_number_sequences",
    metadata,
    sa.Column("fiscal_year", sa.Integer, primary_key=True, autoincrement=False),
    # The next sequence to hand out; always above every sequence used in that year.
    sa.Column("next_sequence", sa.BigInteger, nullable=False),
)

idempotency_keys = sa.Table(
    "invoice_idempotency_keys",
    metadata,
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("invoice_id", BigId, sa.ForeignKey("invoices.id"), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)
