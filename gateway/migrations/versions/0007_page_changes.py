"""Page changes: PostgreSQL tells listeners when an invoice page may have changed.

Revision ID: 0007_page_changes
Revises: 0006_reconciliation
Create Date: 2026-11-26

Statement triggers on ``invoices`` and ``payment_attempts`` send a notification on the channel
``nofu_pages`` (PostgreSQL delivers it after the commit, once per transaction), which the
resident page cache listens to (``gateway/pages/page_cache.py``). SQLite needs nothing: the
cache reads ``PRAGMA data_version`` there.
"""

from __future__ import annotations

from alembic import op

revision = "0007_page_changes"
down_revision = "0006_reconciliation"
branch_labels = None
depends_on = None

TABLES = ("invoices", "payment_attempts")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        """
        CREATE FUNCTION nofu_notify_page_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('nofu_pages', '');
            RETURN NULL;
        END $$
        """
    )
    for table in TABLES:
        op.execute(
            f"CREATE TRIGGER {table}_page_change AFTER INSERT OR UPDATE OR DELETE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION nofu_notify_page_change()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.execute(f"DROP TRIGGER {table}_page_change ON {table}")
    op.execute("DROP FUNCTION nofu_notify_page_change()")
