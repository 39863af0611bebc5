"""service requests (start, stop, transfer) and payment arrangement requests

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29 15:00:00
"""
from alembic import op
import sqlalchemy as sa

import portal.billing_core.models


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

BigID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
UTC = portal.billing_core.models.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table('service_request',
    sa.Column('id', BigID, nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('user_id', BigID, nullable=False),
    sa.Column('account_id', BigID, nullable=True),
    sa.Column('stop_on', sa.Date(), nullable=True),
    sa.Column('start_on', sa.Date(), nullable=True),
    sa.Column('service_line1', sa.String(length=200), nullable=True),
    sa.Column('service_line2', sa.String(length=100), nullable=True),
    sa.Column('service_city', sa.String(length=100), nullable=True),
    sa.Column('service_state', sa.String(length=2), nullable=True),
    sa.Column('service_zip', sa.String(length=10), nullable=True),
    sa.Column('forward_line1', sa.String(length=200), nullable=True),
    sa.Column('forward_city', sa.String(length=100), nullable=True),
    sa.Column('forward_state', sa.String(length=2), nullable=True),
    sa.Column('forward_zip', sa.String(length=10), nullable=True),
    sa.Column('contact_name', sa.String(length=200), nullable=False),
    sa.Column('contact_phone', sa.String(length=40), nullable=True),
    sa.Column('contact_email', sa.String(length=254), nullable=False),
    sa.Column('birth_date', sa.Date(), nullable=True),
    sa.Column('id_last4', sa.String(length=4), nullable=True),
    sa.Column('occupancy', sa.String(length=10), nullable=True),
    sa.Column('deposit_cents', sa.BigInteger(), nullable=False),
    sa.Column('message', sa.String(length=500), nullable=True),
    sa.Column('staff_note', sa.Text(), nullable=True),
    sa.Column('created_at', UTC, nullable=False),
    sa.Column('updated_at', UTC, nullable=False),
    sa.Column('handled_by_id', BigID, nullable=True),
    sa.CheckConstraint("kind in ('start', 'stop', 'transfer')", name=op.f('ck_service_request_kind')),
    sa.CheckConstraint("status in ('submitted', 'scheduled', 'completed', 'declined', 'cancelled')", name=op.f('ck_service_request_status')),
    sa.CheckConstraint("occupancy is null or occupancy in ('owner', 'tenant')", name=op.f('ck_service_request_occupancy')),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], name=op.f('fk_service_request_account_id_account')),
    sa.ForeignKeyConstraint(['handled_by_id'], ['user_account.id'], name=op.f('fk_service_request_handled_by_id_user_account')),
    sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], name=op.f('fk_service_request_user_id_user_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_service_request'))
    )
    op.create_index(op.f('ix_service_request_account_id'), 'service_request', ['account_id'], unique=False)
    op.create_index(op.f('ix_service_request_user_id'), 'service_request', ['user_id'], unique=False)
    op.create_index('ix_service_request_status_created', 'service_request', ['status', 'created_at'], unique=False)
    op.create_table('arrangement_request',
    sa.Column('id', BigID, nullable=False),
    sa.Column('account_id', BigID, nullable=False),
    sa.Column('user_id', BigID, nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('total_cents', sa.BigInteger(), nullable=False),
    sa.Column('down_payment_cents', sa.BigInteger(), nullable=False),
    sa.Column('installments', sa.Integer(), nullable=False),
    sa.Column('first_due_on', sa.Date(), nullable=False),
    sa.Column('reason', sa.String(length=1000), nullable=True),
    sa.Column('message', sa.String(length=500), nullable=True),
    sa.Column('created_at', UTC, nullable=False),
    sa.Column('decided_at', UTC, nullable=True),
    sa.Column('decided_by_id', BigID, nullable=True),
    sa.CheckConstraint("status in ('submitted', 'approved', 'declined', 'withdrawn')", name=op.f('ck_arrangement_request_status')),
    sa.CheckConstraint('installments between 1 and 60', name=op.f('ck_arrangement_request_installments')),
    sa.CheckConstraint('total_cents > 0 and down_payment_cents >= 0', name=op.f('ck_arrangement_request_amounts')),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], name=op.f('fk_arrangement_request_account_id_account')),
    sa.ForeignKeyConstraint(['decided_by_id'], ['user_account.id'], name=op.f('fk_arrangement_request_decided_by_id_user_account')),
    sa.ForeignKeyConstraint(['user_id'], ['user_account.id'], name=op.f('fk_arrangement_request_user_id_user_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_arrangement_request'))
    )
    op.create_index(op.f('ix_arrangement_request_account_id'), 'arrangement_request', ['account_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_arrangement_request_account_id'), table_name='arrangement_request')
    op.drop_table('arrangement_request')
    op.drop_index('ix_service_request_status_created', table_name='service_request')
    op.drop_index(op.f('ix_service_request_user_id'), table_name='service_request')
    op.drop_index(op.f('ix_service_request_account_id'), table_name='service_request')
    op.drop_table('service_request')
