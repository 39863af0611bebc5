"""server-side sessions (issue 12 item 1; filled in by the sessions work)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 00:30:00
"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
