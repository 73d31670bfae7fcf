"""Staff API tokens with roles, audit log.

Revision ID: 0003_staff_auth
Revises: 0002_invoices
Create Date: 2026-11-26

The database enforces, on both engines:
- ``audit_log`` refuses UPDATE and DELETE (and TRUNCATE on PostgreSQL): it is append-only;
- ``staff_tokens`` rows are never deleted; a token's id, name, role, hash, creation and expiry
  never change; a revocation is final. Only ``last_used_at`` and a first revocation may be written.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_staff_auth"
down_revision = "0002_invoices"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

# Columns fixed at issue; a trigger refuses any change to them.
TOKEN_FIXED = ("id", "name", "role", "secret_sha256", "created_at", "created_by", "expires_at")


def upgrade() -> None:
    op.create_table(
        "staff_tokens",
        sa.Column("id", sa.String(16), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("secret_sha256", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_by", sa.String(200), nullable=True),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        # The naming convention of ``ledger.schema.metadata`` makes these ck_staff_tokens_<name>.
        sa.CheckConstraint("role IN ('treasury', 'clerk', 'auditor')", name="role"),
        sa.CheckConstraint("(revoked_at IS NULL) = (revoked_by IS NULL)", name="revoked_pair"),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_id", sa.String(200), nullable=False),
        sa.Column("actor_name", sa.String(200), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=True),
        sa.Column("detail", sa.Text, nullable=False),
    )
    op.create_index("ix_audit_log_subject", "audit_log", ["subject", "id"])
    op.create_index("ix_audit_log_actor", "audit_log", ["actor_id", "id"])
    op.create_index("ix_audit_log_action", "audit_log", ["action", "id"])
    op.create_index("ix_audit_log_occurred_at", "audit_log", ["occurred_at"])
    if op.get_bind().dialect.name == "sqlite":
        _sqlite_triggers()
    else:
        _postgresql_triggers()


def _run(sql: str) -> None:
    # exec_driver_sql: no bind-parameter parsing of trigger bodies.
    op.get_bind().exec_driver_sql(sql)


def _sqlite_triggers() -> None:
    for event in ("UPDATE", "DELETE"):
        _run(
            f"CREATE TRIGGER audit_log_no_{event.lower()} BEFORE {event} ON audit_log "
            f"BEGIN SELECT RAISE(ABORT, 'audit: {event} on audit_log refused: the audit log is "
            "append-only'); END"
        )
    _run(
        "CREATE TRIGGER staff_tokens_no_delete BEFORE DELETE ON staff_tokens "
        "BEGIN SELECT RAISE(ABORT, 'auth: staff tokens cannot be deleted, only revoked'); END"
    )
    changed = " OR ".join(f"NEW.{c} IS NOT OLD.{c}" for c in TOKEN_FIXED)
    _run(
        "CREATE TRIGGER staff_tokens_guard BEFORE UPDATE ON staff_tokens "
        f"WHEN {changed} OR (OLD.revoked_at IS NOT NULL AND (NEW.revoked_at IS NOT OLD.revoked_at "
        "OR NEW.revoked_by IS NOT OLD.revoked_by)) "
        "BEGIN SELECT RAISE(ABORT, 'auth: a staff token''s identity cannot change and a revocation "
        "is final'); END"
    )


def _postgresql_triggers() -> None:
    _run(
        """
        CREATE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION USING
                MESSAGE = 'audit: ' || TG_OP || ' on ' || TG_TABLE_NAME || ' refused: append-only',
                ERRCODE = 'integrity_constraint_violation';
        END $$
        """
    )
    _run(
        "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log "
        "FOR EACH ROW EXECUTE FUNCTION audit_refuse_change()"
    )
    for table in ("audit_log", "staff_tokens"):
        _run(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change()"
        )
    _run(
        """
        CREATE FUNCTION staff_tokens_refuse_delete() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION USING
                MESSAGE = 'auth: staff tokens cannot be deleted, only revoked',
                ERRCODE = 'integrity_constraint_violation';
        END $$
        """
    )
    _run(
        "CREATE TRIGGER staff_tokens_no_delete BEFORE DELETE ON staff_tokens "
        "FOR EACH ROW EXECUTE FUNCTION staff_tokens_refuse_delete()"
    )
    changed = " OR ".join(f"NEW.{c} IS DISTINCT FROM OLD.{c}" for c in TOKEN_FIXED)
    _run(
        f"""
        CREATE FUNCTION staff_tokens_guard() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF {changed}
               OR (OLD.revoked_at IS NOT NULL AND (NEW.revoked_at IS DISTINCT FROM OLD.revoked_at
                   OR NEW.revoked_by IS DISTINCT FROM OLD.revoked_by)) THEN
                RAISE EXCEPTION USING
                    MESSAGE = 'auth: a staff token''s identity cannot change and a revocation is final',
                    ERRCODE = 'integrity_constraint_violation';
            END IF;
            RETURN NEW;
        END $$
        """
    )
    _run(
        "CREATE TRIGGER staff_tokens_guard BEFORE UPDATE ON staff_tokens "
        "FOR EACH ROW EXECUTE FUNCTION staff_tokens_guard()"
    )


def downgrade() -> None:
    raise NotImplementedError("the audit log is append-only: there is no downgrade past it")
