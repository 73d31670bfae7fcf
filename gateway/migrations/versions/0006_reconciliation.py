"""Reconciliation: provider statements, bank statements, matches, breaks, sign-offs.

Revision ID: 0006_reconciliation
Revises: 0005_webhooks
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_reconciliation"
down_revision = "0005_webhooks"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass  # placeholder reserved for this revision; filled by the work that owns it


def downgrade() -> None:
    pass
