"""Staff API tokens with roles, audit log.

Revision ID: 0003_staff_auth
Revises: 0002_invoices
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_staff_auth"
down_revision = "0002_invoices"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass  # placeholder reserved for this revision; filled by the work that owns it


def downgrade() -> None:
    pass
