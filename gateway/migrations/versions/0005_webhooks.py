"""Webhook inbox: provider events stored first, processing state, dead letters.

Revision ID: 0005_webhooks
Revises: 0004_payments
Create Date: 2026-11-26

What the database itself enforces, on both engines:
- one row per provider event id (unique), so a duplicate delivery can never add a second row;
- one event per effect (``effect_key`` unique): two events about the same payment can never both
  be the one that recorded its money;
- the stored event is evidence: its id, type, raw payload and digest, provider time and receipt
  time never change, and rows are never deleted (triggers);
- a row is ``processing`` exactly when it carries a lease token; every row but poison has a type;
  a finished row (applied, skipped, ignored, dead) has a processed time.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_webhooks"
down_revision = "0004_payments"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
STATES = "('pending', 'processing', 'applied', 'skipped', 'ignored', 'dead', 'poison')"
FIXED = ("event_id", "provider", "event_type", "payload", "payload_sha256", "provider_created_at", "received_at")


def upgrade() -> None:
    op.create_table(
        "webhook_events",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("event_id", sa.String(255), nullable=False),
        sa.Column("event_type", sa.String(100), nullable=True),
        sa.Column("object_id", sa.String(255), nullable=True),
        sa.Column("api_version", sa.String(64), nullable=True),
        sa.Column("livemode", sa.Boolean, nullable=True),
        sa.Column("provider_created_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(12), nullable=False),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column("payload_sha256", sa.String(64), nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_owner", sa.String(200), nullable=True),
        sa.Column("lease_token", sa.String(64), nullable=True),
        sa.Column("outcome", sa.String(500), nullable=True),
        sa.Column("effect_key", sa.String(200), nullable=True),
        sa.Column("last_error", sa.String(2000), nullable=True),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("replays", sa.Integer, nullable=False),
        sa.CheckConstraint(f"state IN {STATES}", name="state"),
        sa.CheckConstraint("source IN ('delivery', 'backfill')", name="source"),
        sa.CheckConstraint("attempts >= 0 AND replays >= 0", name="counts"),
        sa.CheckConstraint("(state = 'processing') = (lease_token IS NOT NULL)", name="lease"),
        sa.CheckConstraint("state = 'poison' OR event_type IS NOT NULL", name="typed"),
        sa.CheckConstraint(
            "state NOT IN ('applied', 'skipped', 'ignored', 'dead') OR processed_at IS NOT NULL",
            name="finished_at",
        ),
        sa.CheckConstraint("length(payload_sha256) = 64", name="digest"),
        sa.UniqueConstraint("event_id", name="uq_webhook_events_event_id"),
        sa.UniqueConstraint("effect_key", name="uq_webhook_events_effect_key"),
    )
    op.create_index("ix_webhook_events_due", "webhook_events", ["state", "next_attempt_at", "id"])
    op.create_index("ix_webhook_events_object", "webhook_events", ["object_id", "id"])
    if op.get_bind().dialect.name == "sqlite":
        _sqlite_triggers()
    else:
        _postgresql_triggers()


def _run(sql: str) -> None:
    # exec_driver_sql: no bind-parameter parsing of trigger bodies.
    op.get_bind().exec_driver_sql(sql)


def _sqlite_triggers() -> None:
    _run(
        "CREATE TRIGGER webhook_events_no_delete BEFORE DELETE ON webhook_events "
        "BEGIN SELECT RAISE(ABORT, 'webhooks: stored events are never deleted'); END"
    )
    changed = " OR ".join(f"NEW.{column} IS NOT OLD.{column}" for column in FIXED)
    # UPDATE OF: processing updates (state, lease, attempts …) do not even fire it.
    _run(
        f"CREATE TRIGGER webhook_events_fixed BEFORE UPDATE OF {', '.join(FIXED)} ON webhook_events WHEN {changed} "
        "BEGIN SELECT RAISE(ABORT, 'webhooks: a stored event never changes'); END"
    )


def _postgresql_triggers() -> None:
    changed = " OR ".join(f"NEW.{column} IS DISTINCT FROM OLD.{column}" for column in FIXED)
    _run(
        f"""
        CREATE FUNCTION webhook_events_guard() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP <> 'UPDATE' OR {changed} THEN
                RAISE EXCEPTION USING
                    MESSAGE = 'webhooks: ' || TG_OP || ' of a stored event refused',
                    ERRCODE = 'integrity_constraint_violation';
            END IF;
            RETURN NEW;
        END $$
        """
    )
    # UPDATE OF: processing updates (state, lease, attempts …) do not even fire it.
    _run(
        f"CREATE TRIGGER webhook_events_guard BEFORE UPDATE OF {', '.join(FIXED)} OR DELETE ON webhook_events "
        "FOR EACH ROW EXECUTE FUNCTION webhook_events_guard()"
    )
    _run(
        "CREATE TRIGGER webhook_events_no_truncate BEFORE TRUNCATE ON webhook_events "
        "FOR EACH STATEMENT EXECUTE FUNCTION webhook_events_guard()"
    )


def downgrade() -> None:
    raise NotImplementedError("the webhook inbox is evidence of what the provider said: there is no downgrade")
