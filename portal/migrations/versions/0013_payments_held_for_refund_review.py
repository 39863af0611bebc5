"""payments held for refund review (issue 12 item 2): the part of a payment beyond what
the account owed when it posted, and when and by whom staff reviewed it

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 00:30:00
"""

from alembic import op
import sqlalchemy as sa

import portal.billing_core.models


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

BigID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
UTC = portal.billing_core.models.UTCDateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table('payment', schema=None) as batch_op:
        batch_op.add_column(sa.Column('overpaid_cents', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('refund_reviewed_at', UTC, nullable=True))
        batch_op.add_column(sa.Column('refund_reviewed_by_id', BigID, nullable=True))
        batch_op.create_index(batch_op.f('ix_payment_overpaid_cents'), ['overpaid_cents'], unique=False)
        batch_op.create_foreign_key(
            batch_op.f('fk_payment_refund_reviewed_by_id_user_account'),
            'user_account',
            ['refund_reviewed_by_id'],
            ['id'],
        )
        batch_op.create_check_constraint(
            batch_op.f('ck_payment_overpaid'), 'overpaid_cents > 0 AND overpaid_cents <= amount_cents'
        )


def downgrade() -> None:
    with op.batch_alter_table('payment', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_payment_overpaid'), type_='check')
        batch_op.drop_constraint(batch_op.f('fk_payment_refund_reviewed_by_id_user_account'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_payment_overpaid_cents'))
        for column in ('refund_reviewed_by_id', 'refund_reviewed_at', 'overpaid_cents'):
            batch_op.drop_column(column)
