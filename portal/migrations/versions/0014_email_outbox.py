"""email outbox: every email the portal sends is a row with its status, attempts, last
error and next attempt, so a failed send is retried and shown, never lost (issue 12 item 12)

Bill-ready emails of runs delivered before this migration that were not sent yet get a
queued row, so they go out by the same road.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02 00:30:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'email_outbox',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('kind', sa.String(length=40), nullable=False),
        sa.Column('args', sa.JSON(), nullable=False),
        sa.Column('ref_type', sa.String(length=30), nullable=True),
        sa.Column('ref_id', sa.BigInteger(), nullable=True),
        sa.Column('print_file_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
        sa.Column('recipient', sa.String(length=254), nullable=True),
        sa.Column('status', sa.String(length=12), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('last_error', sa.String(length=500), nullable=True),
        sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('claim', sa.String(length=32), nullable=True),
        sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status in ('queued', 'sending', 'sent', 'retrying', 'failed', 'skipped')",
            name=op.f('ck_email_outbox_status'),
        ),
        sa.ForeignKeyConstraint(
            ['print_file_id'], ['print_file.id'], name=op.f('fk_email_outbox_print_file_id_print_file')
        ),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_email_outbox')),
    )
    op.create_index('ix_email_outbox_print_file_id', 'email_outbox', ['print_file_id', 'status'])
    op.create_index('ix_email_outbox_ref', 'email_outbox', ['ref_type', 'ref_id'])
    op.create_index('ix_email_outbox_status_next_attempt_at', 'email_outbox', ['status', 'next_attempt_at'])
    json_object = 'json_build_object' if op.get_bind().dialect.name == 'postgresql' else 'json_object'
    op.execute(
        "INSERT INTO email_outbox (kind, args, ref_type, ref_id, print_file_id, recipient, status, attempts,"
        " next_attempt_at, created_at)"
        f" SELECT 'email.bill_ready', {json_object}('bill_id', bill_id), 'bill', bill_id, print_file_id, email_to,"
        " 'queued', 0, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP"
        " FROM bill_delivery WHERE channel = 'email' AND sent_at IS NULL"
    )


def downgrade() -> None:
    op.drop_index('ix_email_outbox_status_next_attempt_at', table_name='email_outbox')
    op.drop_index('ix_email_outbox_ref', table_name='email_outbox')
    op.drop_index('ix_email_outbox_print_file_id', table_name='email_outbox')
    op.drop_table('email_outbox')
