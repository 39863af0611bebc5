"""server-side sessions: a record per signed-in browser, checked on every request

Sign-out, a password reset, "sign out everywhere" and the idle and absolute timeouts end
the record, so a copied session cookie stops working (issue 12 item 1). Only a hash of
the cookie's random id is stored.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 00:30:00
"""
from alembic import op
import sqlalchemy as sa

import portal.billing_core.models


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'user_session',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('user_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('created_at', portal.billing_core.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column('last_seen_at', portal.billing_core.models.UTCDateTime(timezone=True), nullable=False),
        sa.Column('ended_at', portal.billing_core.models.UTCDateTime(timezone=True), nullable=True),
        sa.Column('end_reason', sa.String(length=30), nullable=True),
        sa.Column('remote_addr', sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], name=op.f('fk_user_session_user_id_user_account')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_user_session')),
        sa.UniqueConstraint('token_hash', name=op.f('uq_user_session_token_hash')),
    )
    with op.batch_alter_table('user_session', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_user_session_user_id'), ['user_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('user_session', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_user_session_user_id'))
    op.drop_table('user_session')
