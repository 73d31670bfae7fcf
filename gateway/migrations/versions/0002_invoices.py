"""Invoices: invoices, history, number sequences, import batches.

Revision ID: 0002_invoices
Revises: 0001_ledger
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_invoices"
down_revision = "0001_ledger"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass  # placeholder reserved for this revision; filled by the work that owns it


def downgrade() -> None:
    pass
