"""final bills held for review (issue 12 item 13): a stop of service whose final read is far
beyond the account's history, or whose last day of service is still ahead, waits in
final_bill_review until a supervisor approves and posts it

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02 00:30:00
"""
from alembic import op
import sqlalchemy as sa

import portal.billing_core.models


revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None

BigID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
UTC = portal.billing_core.models.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table('final_bill_review',
    sa.Column('id', BigID, nullable=False),
    sa.Column('account_id', BigID, nullable=False),
    sa.Column('stop_on', sa.Date(), nullable=False),
    sa.Column('reads', sa.JSON(), nullable=False),
    sa.Column('reasons', sa.String(length=200), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('forward_line1', sa.String(length=200), nullable=True),
    sa.Column('forward_city', sa.String(length=100), nullable=True),
    sa.Column('forward_state', sa.String(length=2), nullable=True),
    sa.Column('forward_zip', sa.String(length=10), nullable=True),
    sa.Column('entered_by_id', BigID, nullable=False),
    sa.Column('entered_at', UTC, nullable=False),
    sa.Column('decided_by_id', BigID, nullable=True),
    sa.Column('decided_at', UTC, nullable=True),
    sa.Column('bill_id', BigID, nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.CheckConstraint("status in ('held', 'posted')", name=op.f('ck_final_bill_review_status')),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], name=op.f('fk_final_bill_review_account_id_account')),
    sa.ForeignKeyConstraint(['bill_id'], ['bill.id'], name=op.f('fk_final_bill_review_bill_id_bill')),
    sa.ForeignKeyConstraint(['decided_by_id'], ['user_account.id'], name=op.f('fk_final_bill_review_decided_by_id_user_account')),
    sa.ForeignKeyConstraint(['entered_by_id'], ['user_account.id'], name=op.f('fk_final_bill_review_entered_by_id_user_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_final_bill_review'))
    )
    op.create_index(op.f('ix_final_bill_review_account_id'), 'final_bill_review', ['account_id'], unique=False)
    op.create_index(
        'uq_final_bill_review_held_account', 'final_bill_review', ['account_id'], unique=True,
        sqlite_where=sa.text("status = 'held'"), postgresql_where=sa.text("status = 'held'"),
    )


def downgrade() -> None:
    op.drop_index('uq_final_bill_review_held_account', table_name='final_bill_review')
    op.drop_index(op.f('ix_final_bill_review_account_id'), table_name='final_bill_review')
    op.drop_table('final_bill_review')
