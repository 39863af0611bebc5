"""online payments: processor ids and states on payments, processor events, processor customers

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23 11:05:00
"""
from alembic import op
import sqlalchemy as sa

import portal.billing_core.models


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

BigID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
UTC = portal.billing_core.models.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table('processor_event',
    sa.Column('id', BigID, nullable=False),
    sa.Column('event_id', sa.String(length=100), nullable=False),
    sa.Column('type', sa.String(length=60), nullable=False),
    sa.Column('object_id', sa.String(length=100), nullable=True),
    sa.Column('received_at', UTC, nullable=False),
    sa.Column('outcome', sa.String(length=200), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_processor_event')),
    sa.UniqueConstraint('event_id', name=op.f('uq_processor_event_event_id'))
    )
    with op.batch_alter_table('account', schema=None) as batch_op:
        batch_op.add_column(sa.Column('processor_customer_id', sa.String(length=100), nullable=True))
    with op.batch_alter_table('payment', schema=None) as batch_op:
        batch_op.add_column(sa.Column('user_id', BigID, nullable=True))
        batch_op.add_column(sa.Column('processor_id', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('idempotency_key', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('processor_status', sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column('method_label', sa.String(length=80), nullable=True))
        batch_op.add_column(sa.Column('failure_message', sa.String(length=300), nullable=True))
        batch_op.add_column(sa.Column('settled_at', UTC, nullable=True))
        batch_op.add_column(sa.Column('receipt_sent_at', UTC, nullable=True))
        batch_op.create_unique_constraint(batch_op.f('uq_payment_processor_id'), ['processor_id'])
        batch_op.create_unique_constraint(batch_op.f('uq_payment_idempotency_key'), ['idempotency_key'])
        batch_op.create_foreign_key(batch_op.f('fk_payment_user_id_user_account'), 'user_account', ['user_id'], ['id'])


def downgrade() -> None:
    with op.batch_alter_table('payment', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_payment_user_id_user_account'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('uq_payment_idempotency_key'), type_='unique')
        batch_op.drop_constraint(batch_op.f('uq_payment_processor_id'), type_='unique')
        for column in ('receipt_sent_at', 'settled_at', 'failure_message', 'method_label', 'processor_status',
                       'idempotency_key', 'processor_id', 'user_id'):
            batch_op.drop_column(column)
    with op.batch_alter_table('account', schema=None) as batch_op:
        batch_op.drop_column('processor_customer_id')
    op.drop_table('processor_event')
