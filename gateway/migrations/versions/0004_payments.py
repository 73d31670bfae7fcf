"""Payments: attempts (one active per invoice), refunds, overpayments, receipts.

Revision ID: 0004_payments
Revises: 0003_staff_auth
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_payments"
down_revision = "0003_staff_auth"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass  # placeholder reserved for this revision; filled by the work that owns it


def downgrade() -> None:
    pass
