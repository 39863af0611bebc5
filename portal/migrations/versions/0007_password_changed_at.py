"""password_changed_at: a password change ends sessions signed in before it

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23 10:20:00
"""
from alembic import op
import sqlalchemy as sa

import portal.billing_core.models


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('user_account', schema=None) as batch_op:
        batch_op.add_column(sa.Column('password_changed_at', portal.billing_core.models.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('user_account', schema=None) as batch_op:
        batch_op.drop_column('password_changed_at')
