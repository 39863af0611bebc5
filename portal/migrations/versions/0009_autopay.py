"""autopay: enrollments with their recorded authorization; failure notices on payments

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29 14:50:00
"""
from alembic import op
import sqlalchemy as sa

import portal.billing_core.models


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

BigID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
UTC = portal.billing_core.models.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table('autopay_enrollment',
    sa.Column('id', BigID, nullable=False),
    sa.Column('account_id', BigID, nullable=False),
    sa.Column('user_id', BigID, nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('method_kind', sa.String(length=20), nullable=False),
    sa.Column('payment_method_id', sa.String(length=100), nullable=True),
    sa.Column('method_label', sa.String(length=80), nullable=True),
    sa.Column('setup_id', sa.String(length=100), nullable=True),
    sa.Column('authorization_version', sa.String(length=20), nullable=False),
    sa.Column('authorization_text', sa.Text(), nullable=False),
    sa.Column('authorization_language', sa.String(length=5), nullable=False),
    sa.Column('authorized_at', UTC, nullable=False),
    sa.Column('authorized_from', sa.String(length=64), nullable=True),
    sa.Column('ended_at', UTC, nullable=True),
    sa.Column('ended_by_id', BigID, nullable=True),
    sa.CheckConstraint("status in ('active', 'cancelled', 'replaced')", name=op.f('ck_autopay_enrollment_status')),
    sa.CheckConstraint("method_kind in ('card', 'us_bank_account')", name=op.f('ck_autopay_enrollment_method_kind')),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], name=op.f('fk_autopay_enrollment_account_id_account')),
    sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], name=op.f('fk_autopay_enrollment_user_id_user_account')),
    sa.ForeignKeyConstraint(['ended_by_id'], ['user_account.id'], name=op.f('fk_autopay_enrollment_ended_by_id_user_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_autopay_enrollment')),
    sa.UniqueConstraint('setup_id', name=op.f('uq_autopay_enrollment_setup_id'))
    )
    op.create_index(op.f('ix_autopay_enrollment_account_id'), 'autopay_enrollment', ['account_id'], unique=False)
    op.create_index('uq_autopay_enrollment_active_account', 'autopay_enrollment', ['account_id'], unique=True,
                    sqlite_where=sa.text("status = 'active'"), postgresql_where=sa.text("status = 'active'"))
    with op.batch_alter_table('payment', schema=None) as batch_op:
        batch_op.add_column(sa.Column('failure_notice_sent_at', UTC, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('payment', schema=None) as batch_op:
        batch_op.drop_column('failure_notice_sent_at')
    op.drop_index('uq_autopay_enrollment_active_account', table_name='autopay_enrollment')
    op.drop_index(op.f('ix_autopay_enrollment_account_id'), table_name='autopay_enrollment')
    op.drop_table('autopay_enrollment')
