"""Webhook inbox: provider events stored first, processing state, dead letters.

Revision ID: 0005_webhooks
Revises: 0004_payments
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_webhooks"
down_revision = "0004_payments"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass  # placeholder reserved for this revision; filled by the work that owns it


def downgrade() -> None:
    pass
