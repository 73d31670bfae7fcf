"""Payments: attempts (one active per invoice), refunds, overpayments, receipts.

Revision ID: 0004_payments
Revises: 0003_staff_auth
Create Date: 2026-11-26

What the database itself enforces, on both engines:
- the lock on the bill: at most one attempt per invoice in an active state (created,
  requires_action, processing) — a partial unique index, so a second tab, a second device or a
  double tap can only join the attempt already there;
- money: amount = principal + late fee, 1..99,999,999 yen; what was received is 0 or the whole
  amount and is split exactly into principal applied + late fee applied + 過誤納金; a succeeded
  attempt has received its amount; a refund's parts add up to it; an overpayment's refunded part
  stays within it; on SQLite every money column holds a true integer;
- a terminal attempt (succeeded, failed, canceled, expired) never changes status again and its
  received money never changes; versions never decrease; nothing here is ever deleted;
- receipts are append-only.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_payments"
down_revision = "0003_staff_auth"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
MAX_CHARGE = 99_999_999
ACTIVE = "('created', 'requires_action', 'processing')"
TERMINAL = "('succeeded', 'failed', 'canceled', 'expired')"
NO_DELETE = ("payment_attempts", "refunds", "overpayments", "receipts")


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"

    def integer_only(*columns: str) -> list[sa.CheckConstraint]:
        # SQLite would store 1.5 or '12' in a BIGINT column; money must be a true integer.
        if not sqlite:
            return []
        return [
            sa.CheckConstraint(
                " AND ".join(f"({c} IS NULL OR typeof({c}) = 'integer')" for c in columns),
                name="money_integer",
            )
        ]

    def hex_id(column: str, prefix: str) -> sa.CheckConstraint:
        if sqlite:
            rule = (
                f"length({column}) = 27 AND substr({column}, 1, 3) = '{prefix}' "
                f"AND substr({column}, 4) NOT GLOB '*[^0-9a-f]*'"
            )
        else:
            rule = f"{column} ~ '^{prefix}[0-9a-f]{{24}}$'"
        return sa.CheckConstraint(rule, name="public_id_format")

    op.create_table(
        "payment_attempts",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("public_id", sa.String(32), nullable=False),
        sa.Column("invoice_id", BigId, sa.ForeignKey("invoices.id"), nullable=False),
        sa.Column("principal", sa.BigInteger, nullable=False),
        sa.Column("late_fee", sa.BigInteger, nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("provider_payment_id", sa.String(255), nullable=True),
        sa.Column("client_secret", sa.String(255), nullable=True),
        sa.Column("idempotency_key", sa.String(255), nullable=False),
        sa.Column("next_action_url", sa.String(2000), nullable=True),
        sa.Column("failure_code", sa.String(64), nullable=True),
        sa.Column("failure_message", sa.String(500), nullable=True),
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
        sa.CheckConstraint(f"status IN {ACTIVE[:-1]}, {TERMINAL[1:]}", name="status"),
        sa.CheckConstraint("provider IN ('stripe', 'sandbox')", name="provider"),
        sa.CheckConstraint("currency = 'jpy'", name="currency"),
        sa.CheckConstraint(
            f"principal >= 1 AND late_fee >= 0 AND amount = principal + late_fee "
            f"AND amount BETWEEN 1 AND {MAX_CHARGE}",
            name="amount_parts",
        ),
        sa.CheckConstraint(
            "(amount_received = 0 AND principal_applied = 0 AND late_fee_applied = 0 AND overpaid = 0) "
            "OR (amount_received = amount AND principal_applied >= 0 AND late_fee_applied >= 0 "
            "AND overpaid >= 0 AND principal_applied + late_fee_applied + overpaid = amount_received)",
            name="received_parts",
        ),
        sa.CheckConstraint(
            "status <> 'succeeded' OR (amount_received = amount AND succeeded_at IS NOT NULL)",
            name="succeeded_received",
        ),
        sa.CheckConstraint("length(idempotency_key) > 0", name="idempotency_key_present"),
        sa.CheckConstraint("expires_at > created_at", name="expires_after_created"),
        sa.CheckConstraint("version >= 1", name="version_positive"),
        hex_id("public_id", "pa_"),
        *integer_only("principal", "late_fee", "amount", "amount_received", "principal_applied",
                      "late_fee_applied", "overpaid"),  # fmt: skip
        sa.UniqueConstraint("public_id", name="uq_payment_attempts_public_id"),
        sa.UniqueConstraint("provider_payment_id", name="uq_payment_attempts_provider_payment_id"),
        sa.UniqueConstraint("idempotency_key", name="uq_payment_attempts_idempotency_key"),
    )
    op.create_index("ix_payment_attempts_invoice", "payment_attempts", ["invoice_id", "id"])
    op.create_index("ix_payment_attempts_status_expires", "payment_attempts", ["status", "expires_at"])
    op.create_index(
        "uq_payment_attempts_one_active",
        "payment_attempts",
        ["invoice_id"],
        unique=True,
        sqlite_where=sa.text(f"status IN {ACTIVE}"),
        postgresql_where=sa.text(f"status IN {ACTIVE}"),
    )

    op.create_table(
        "overpayments",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("attempt_id", BigId, sa.ForeignKey("payment_attempts.id"), nullable=False),
        sa.Column("invoice_id", BigId, sa.ForeignKey("invoices.id"), nullable=False),
        sa.Column("reason", sa.String(20), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("refunded_amount", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("ledger_entry_id", sa.BigInteger, sa.ForeignKey("ledger_entries.id"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("reason IN ('already_paid', 'invoice_cancelled', 'excess')", name="reason"),
        sa.CheckConstraint(
            f"amount BETWEEN 1 AND {MAX_CHARGE} AND refunded_amount BETWEEN 0 AND amount", name="amount_range"
        ),
        sa.CheckConstraint(
            "(status = 'open' AND refunded_amount < amount) OR (status = 'refunded' AND refunded_amount = amount)",
            name="status_matches_money",
        ),
        *integer_only("amount", "refunded_amount"),
        sa.UniqueConstraint("attempt_id", name="uq_overpayments_attempt_id"),
    )
    op.create_index("ix_overpayments_status", "overpayments", ["status", "id"])

    op.create_table(
        "refunds",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("public_id", sa.String(32), nullable=False),
        sa.Column("attempt_id", BigId, sa.ForeignKey("payment_attempts.id"), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("overpayment_part", sa.BigInteger, nullable=False),
        sa.Column("principal_part", sa.BigInteger, nullable=False),
        sa.Column("late_fee_part", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("provider_refund_id", sa.String(255), nullable=True),
        sa.Column("idempotency_key", sa.String(255), nullable=False),
        sa.Column("actor_id", sa.String(200), nullable=False),
        sa.Column("actor_name", sa.String(200), nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("ledger_entry_id", sa.BigInteger, sa.ForeignKey("ledger_entries.id"), nullable=True),
        sa.Column("invoice_entry_id", sa.BigInteger, sa.ForeignKey("ledger_entries.id"), nullable=True),
        sa.Column("failure_code", sa.String(64), nullable=True),
        sa.Column("failure_message", sa.String(500), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.CheckConstraint("status IN ('pending', 'succeeded', 'failed')", name="status"),
        sa.CheckConstraint(
            f"amount BETWEEN 1 AND {MAX_CHARGE} AND overpayment_part >= 0 AND principal_part >= 0 "
            "AND late_fee_part >= 0 AND overpayment_part + principal_part + late_fee_part = amount",
            name="amount_parts",
        ),
        sa.CheckConstraint("status = 'pending' OR completed_at IS NOT NULL", name="completed_when_done"),
        sa.CheckConstraint("length(reason) > 0 AND length(actor_id) > 0", name="who_and_why"),
        sa.CheckConstraint("version >= 1", name="version_positive"),
        hex_id("public_id", "rf_"),
        *integer_only("amount", "overpayment_part", "principal_part", "late_fee_part"),
        sa.UniqueConstraint("public_id", name="uq_refunds_public_id"),
        sa.UniqueConstraint("provider_refund_id", name="uq_refunds_provider_refund_id"),
        sa.UniqueConstraint("idempotency_key", name="uq_refunds_idempotency_key"),
    )
    op.create_index("ix_refunds_attempt", "refunds", ["attempt_id", "id"])
    op.create_index("ix_refunds_status", "refunds", ["status", "id"])

    op.create_table(
        "receipts",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("receipt_number", sa.String(32), nullable=False),
        sa.Column("attempt_id", BigId, sa.ForeignKey("payment_attempts.id"), nullable=False),
        sa.Column("invoice_id", BigId, sa.ForeignKey("invoices.id"), nullable=False),
        sa.Column("kind", sa.String(12), nullable=False),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("principal", sa.BigInteger, nullable=False),
        sa.Column("late_fee", sa.BigInteger, nullable=False),
        sa.Column("provider_reference", sa.String(255), nullable=False),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('payment', 'overpayment')", name="kind"),
        sa.CheckConstraint(
            f"amount BETWEEN 1 AND {MAX_CHARGE} AND principal >= 0 AND late_fee >= 0 "
            "AND principal + late_fee <= amount",
            name="amount_parts",
        ),
        *integer_only("amount", "principal", "late_fee"),
        sa.UniqueConstraint("receipt_number", name="uq_receipts_receipt_number"),
        sa.UniqueConstraint("attempt_id", name="uq_receipts_attempt_id"),
    )

    if sqlite:
        _sqlite_triggers()
    else:
        _postgresql_triggers()


def _run(sql: str) -> None:
    # exec_driver_sql: no bind-parameter parsing of trigger bodies.
    op.get_bind().exec_driver_sql(sql)


# A terminal attempt keeps its status and its money; versions only grow.
_ATTEMPT_GUARD = (
    "(OLD.status IN {terminal} AND NEW.status <> OLD.status) "
    "OR ({distinct_received}) OR NEW.version < OLD.version "
    "OR NEW.invoice_id <> OLD.invoice_id OR NEW.amount <> OLD.amount"
)


def _sqlite_triggers() -> None:
    for table in NO_DELETE:
        _run(
            f"CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table} "
            f"BEGIN SELECT RAISE(ABORT, 'payments: rows of {table} are never deleted'); END"
        )
    _run(
        "CREATE TRIGGER receipts_no_update BEFORE UPDATE ON receipts "
        "BEGIN SELECT RAISE(ABORT, 'payments: receipts are append-only'); END"
    )
    guard = _ATTEMPT_GUARD.format(
        terminal=TERMINAL,
        distinct_received="OLD.amount_received > 0 AND NEW.amount_received IS NOT OLD.amount_received",
    )
    _run(
        f"CREATE TRIGGER payment_attempts_guard BEFORE UPDATE ON payment_attempts WHEN {guard} "
        "BEGIN SELECT RAISE(ABORT, 'payments: a terminal attempt stays terminal, received money "
        "never changes and versions never decrease'); END"
    )


def _postgresql_triggers() -> None:
    _run(
        """
        CREATE FUNCTION payments_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION USING
                MESSAGE = 'payments: ' || TG_OP || ' on ' || TG_TABLE_NAME || ' refused',
                ERRCODE = 'integrity_constraint_violation';
        END $$
        """
    )
    for table in NO_DELETE:
        _run(
            f"CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION payments_refuse_change()"
        )
        _run(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION payments_refuse_change()"
        )
    _run(
        "CREATE TRIGGER receipts_no_update BEFORE UPDATE ON receipts "
        "FOR EACH ROW EXECUTE FUNCTION payments_refuse_change()"
    )
    guard = _ATTEMPT_GUARD.format(
        terminal=TERMINAL,
        distinct_received="OLD.amount_received > 0 AND NEW.amount_received IS DISTINCT FROM OLD.amount_received",
    )
    _run(
        f"""
        CREATE FUNCTION payment_attempts_guard() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF {guard} THEN
                RAISE EXCEPTION USING
                    MESSAGE = 'payments: a terminal attempt stays terminal, received money never '
                              || 'changes and versions never decrease',
                    ERRCODE = 'integrity_constraint_violation';
            END IF;
            RETURN NEW;
        END $$
        """
    )
    _run(
        "CREATE TRIGGER payment_attempts_guard BEFORE UPDATE ON payment_attempts "
        "FOR EACH ROW EXECUTE FUNCTION payment_attempts_guard()"
    )


def downgrade() -> None:
    raise NotImplementedError("payments hold received money: there is no downgrade past them")
