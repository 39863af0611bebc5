"""profile: phone and notification choices on sign-ins; outside (OpenID Connect) subjects

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-29 15:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('user_account', schema=None) as batch_op:
        batch_op.add_column(sa.Column('phone', sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column('notify_receipts', sa.Boolean(), server_default='1', nullable=False))
        batch_op.add_column(sa.Column('notify_updates', sa.Boolean(), server_default='1', nullable=False))
        batch_op.add_column(sa.Column('oidc_subject', sa.String(length=300), nullable=True))
        batch_op.create_unique_constraint(batch_op.f('uq_user_account_oidc_subject'), ['oidc_subject'])


def downgrade() -> None:
    with op.batch_alter_table('user_account', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_user_account_oidc_subject'), type_='unique')
        for column in ('oidc_subject', 'notify_updates', 'notify_receipts', 'phone'):
            batch_op.drop_column(column)
