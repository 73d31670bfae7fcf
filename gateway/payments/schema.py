"""Tables of the payment work (SQLAlchemy Core), on the metadata every nofu package shares.

The migration ``gateway/migrations/versions/0004_payments.py`` is the source of truth for DDL:
named CHECK constraints, the partial unique index that allows one active attempt per invoice,
and the triggers that keep terminal attempts terminal and receipts append-only.
``tests/payments/test_schema.py`` checks both agree.

Money is ``BigInteger`` yen.
"""

from __future__ import annotations

import sqlalchemy as sa

from ledger.schema import BigId, metadata

ACTIVE_STATUSES = ("created", "requires_action", "processing")
TERMINAL_STATUSES = ("succeeded", "failed", "canceled", "expired")
ATTEMPT_STATUSES = ACTIVE_STATUSES + TERMINAL_STATUSES
REFUND_STATUSES = ("pending", "succeeded", "failed")
OVERPAYMENT_STATUSES = ("open", "refunded")
OVERPAYMENT_REASONS = ("already_paid", "invoice_cancelled", "excess")
RECEIPT_KINDS = ("payment", "overpayment")
PROVIDERS = ("stripe", "sandbox")
MAX_CHARGE = 99_999_999  # Stripe: JPY amounts have at most 8 digits

attempts = sa.Table(
    "payment_attempts",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    # "pa_" + 24 hex characters: what URLs, the provider's metadata and staff see.
    sa.Column("public_id", sa.String(32), nullable=False, unique=True),
    sa.Column("invoice_id", BigId, sa.ForeignKey("invoices.id"), nullable=False),
    # What was charged, fixed when the attempt starts: principal + 延滞金 as of that JST day.
    sa.Column("principal", sa.BigInteger, nullable=False),
    sa.Column("late_fee", sa.BigInteger, nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("provider", sa.String(16), nullable=False),
    sa.Column("provider_payment_id", sa.String(255), nullable=True, unique=True),
    sa.Column("client_secret", sa.String(255), nullable=True),
    # Our Idempotency-Key for creating the PaymentIntent: a retried create never makes a second.
    sa.Column("idempotency_key", sa.String(255), nullable=False, unique=True),
    sa.Column("next_action_url", sa.String(2000), nullable=True),
    sa.Column("failure_code", sa.String(64), nullable=True),
    sa.Column("failure_message", sa.String(500), nullable=True),
    # Money actually received (0 or amount) and where it went: the invoice's principal, its
    # late fee, or 過誤納金 (an overpayments row).
    sa.Column("amount_received", sa.BigInteger, nullable=False),
    sa.Column("principal_applied", sa.BigInteger, nullable=False),
    sa.Column("late_fee_applied", sa.BigInteger, nullable=False),
    sa.Column("overpaid", sa.BigInteger, nullable=False),
    sa.Column("ledger_entry_id", sa.BigInteger, sa.ForeignKey("ledger_entries.id"), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("succeeded_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Index("ix_payment_attempts_invoice", "invoice_id", "id"),
    sa.Index("ix_payment_attempts_status_expires", "status", "expires_at"),
    # The lock on the bill: at most one attempt per invoice in an active state.
    sa.Index(
        "uq_payment_attempts_one_active",
        "invoice_id",
        unique=True,
        sqlite_where=sa.text("status IN ('created', 'requires_action', 'processing')"),
        postgresql_where=sa.text("status IN ('created', 'requires_action', 'processing')"),
    ),
)

overpayments = sa.Table(
    "overpayments",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("attempt_id", BigId, sa.ForeignKey("payment_attempts.id"), nullable=False, unique=True),
    sa.Column("invoice_id", BigId, sa.ForeignKey("invoices.id"), nullable=False),
    sa.Column("reason", sa.String(20), nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("refunded_amount", sa.BigInteger, nullable=False),
    sa.Column("status", sa.String(10), nullable=False),
    sa.Column("ledger_entry_id", sa.BigInteger, sa.ForeignKey("ledger_entries.id"), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_overpayments_status", "status", "id"),
)

refunds = sa.Table(
    "refunds",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("public_id", sa.String(32), nullable=False, unique=True),
    sa.Column("attempt_id", BigId, sa.ForeignKey("payment_attempts.id"), nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    # How the amount is taken back, fixed when the refund is reserved: first 過誤納金, then
    # principal (re-opening the receivable), then the late fee.
    sa.Column("overpayment_part", sa.BigInteger, nullable=False),
    sa.Column("principal_part", sa.BigInteger, nullable=False),
    sa.Column("late_fee_part", sa.BigInteger, nullable=False),
    sa.Column("status", sa.String(10), nullable=False),
    sa.Column("provider_refund_id", sa.String(255), nullable=True, unique=True),
    sa.Column("idempotency_key", sa.String(255), nullable=False, unique=True),
    sa.Column("actor_id", sa.String(200), nullable=False),
    sa.Column("actor_name", sa.String(200), nullable=False),
    sa.Column("reason", sa.String(500), nullable=False),
    # The 過誤納金 entry (Dr 2100 / Cr 1200) and the invoice's entry (record_refund), if any.
    sa.Column("ledger_entry_id", sa.BigInteger, sa.ForeignKey("ledger_entries.id"), nullable=True),
    sa.Column("invoice_entry_id", sa.BigInteger, sa.ForeignKey("ledger_entries.id"), nullable=True),
    sa.Column("failure_code", sa.String(64), nullable=True),
    sa.Column("failure_message", sa.String(500), nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Index("ix_refunds_attempt", "attempt_id", "id"),
    sa.Index("ix_refunds_status", "status", "id"),
)

receipts = sa.Table(
    "receipts",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("receipt_number", sa.String(32), nullable=False, unique=True),
    sa.Column("attempt_id", BigId, sa.ForeignKey("payment_attempts.id"), nullable=False, unique=True),
    sa.Column("invoice_id", BigId, sa.ForeignKey("invoices.id"), nullable=False),
    sa.Column("kind", sa.String(12), nullable=False),
    sa.Column("paid_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("amount", sa.BigInteger, nullable=False),
    sa.Column("principal", sa.BigInteger, nullable=False),
    sa.Column("late_fee", sa.BigInteger, nullable=False),
    sa.Column("provider_reference", sa.String(255), nullable=False),
    # Which receipt key made the verification code (the code itself is recomputed, not stored).
    sa.Column("key_id", sa.String(32), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)
