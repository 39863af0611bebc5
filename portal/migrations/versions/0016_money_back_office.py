"""the money back office (issue 14): cash drawers and counter receipts, mail batches and
bank or lockbox imports, returned payments, adjustments with approval, deposits, refunds and
write-offs; accounts can be "cash only"; the ledger gains the kinds deposit, refund, write_off

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02 17:01:45
"""
from alembic import op
import sqlalchemy as sa

import portal.billing_core.models


revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('payment_batch',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('label', sa.String(length=100), nullable=False),
    sa.Column('deposit_date', sa.Date(), nullable=False),
    sa.Column('control_count', sa.Integer(), nullable=True),
    sa.Column('control_total_cents', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('created_by_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('created_at', portal.billing_core.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('posted_by_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('posted_at', portal.billing_core.models.UTCDateTime(timezone=True), nullable=True),
    sa.CheckConstraint("kind in ('mail', 'lockbox')", name=op.f('ck_payment_batch_kind')),
    sa.CheckConstraint("status in ('open', 'posted', 'cancelled')", name=op.f('ck_payment_batch_status')),
    sa.ForeignKeyConstraint(['created_by_id'], ['user_account.id'], name=op.f('fk_payment_batch_created_by_id_user_account')),
    sa.ForeignKeyConstraint(['posted_by_id'], ['user_account.id'], name=op.f('fk_payment_batch_posted_by_id_user_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payment_batch'))
    )
    op.create_table('payment_import',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('file_sha256', sa.String(length=64), nullable=False),
    sa.Column('filename', sa.String(length=200), nullable=False),
    sa.Column('format', sa.String(length=10), nullable=False),
    sa.Column('layout', sa.String(length=40), nullable=True),
    sa.Column('imported_at', portal.billing_core.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('imported_by_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('batch_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('matched', sa.Integer(), nullable=False),
    sa.Column('duplicate', sa.Integer(), nullable=False),
    sa.Column('unmatched', sa.Integer(), nullable=False),
    sa.Column('rejected', sa.Integer(), nullable=False),
    sa.Column('total_cents', sa.BigInteger(), nullable=False),
    sa.CheckConstraint("format in ('bai2', 'csv')", name=op.f('ck_payment_import_format')),
    sa.ForeignKeyConstraint(['batch_id'], ['payment_batch.id'], name=op.f('fk_payment_import_batch_id_payment_batch')),
    sa.ForeignKeyConstraint(['imported_by_id'], ['user_account.id'], name=op.f('fk_payment_import_imported_by_id_user_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payment_import')),
    sa.UniqueConstraint('file_sha256', name=op.f('uq_payment_import_file_sha256'))
    )
    op.create_table('cash_drawer',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('name', sa.String(length=40), nullable=False),
    sa.Column('cashier_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('business_date', sa.Date(), nullable=False),
    sa.Column('opened_at', portal.billing_core.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('float_cents', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('closed_at', portal.billing_core.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('count', sa.JSON(), nullable=True),
    sa.Column('expected', sa.JSON(), nullable=True),
    sa.Column('over_short', sa.JSON(), nullable=True),
    sa.Column('over_short_reason', sa.Text(), nullable=True),
    sa.Column('signed_off_by_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('signed_off_at', portal.billing_core.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('sign_off_note', sa.Text(), nullable=True),
    sa.Column('ledger_transaction_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.CheckConstraint("status in ('open', 'closed', 'signed_off')", name=op.f('ck_cash_drawer_status')),
    sa.CheckConstraint('float_cents >= 0', name=op.f('ck_cash_drawer_float')),
    sa.ForeignKeyConstraint(['cashier_id'], ['user_account.id'], name=op.f('fk_cash_drawer_cashier_id_user_account')),
    sa.ForeignKeyConstraint(['ledger_transaction_id'], ['ledger_transaction.id'], name=op.f('fk_cash_drawer_ledger_transaction_id_ledger_transaction')),
    sa.ForeignKeyConstraint(['signed_off_by_id'], ['user_account.id'], name=op.f('fk_cash_drawer_signed_off_by_id_user_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cash_drawer'))
    )
    with op.batch_alter_table('cash_drawer', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_cash_drawer_business_date'), ['business_date'], unique=False)
        batch_op.create_index(batch_op.f('ix_cash_drawer_cashier_id'), ['cashier_id'], unique=False)
        batch_op.create_index('uq_cash_drawer_open_cashier', ['cashier_id'], unique=True, sqlite_where=sa.text("status = 'open'"), postgresql_where=sa.text("status = 'open'"))

    op.create_table('deposit',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('account_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('amount_cents', sa.BigInteger(), nullable=False),
    sa.Column('reason', sa.String(length=20), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('billed_on', sa.Date(), nullable=False),
    sa.Column('billed_transaction_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('released_on', sa.Date(), nullable=True),
    sa.Column('release_transaction_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('created_by_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('created_at', portal.billing_core.models.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("reason in ('new_customer', 'after_shutoff', 'returned_payments', 'other')", name=op.f('ck_deposit_reason')),
    sa.CheckConstraint("status in ('billed', 'credited', 'applied', 'cancelled')", name=op.f('ck_deposit_status')),
    sa.CheckConstraint('amount_cents > 0', name=op.f('ck_deposit_positive')),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], name=op.f('fk_deposit_account_id_account')),
    sa.ForeignKeyConstraint(['billed_transaction_id'], ['ledger_transaction.id'], name=op.f('fk_deposit_billed_transaction_id_ledger_transaction')),
    sa.ForeignKeyConstraint(['created_by_id'], ['user_account.id'], name=op.f('fk_deposit_created_by_id_user_account')),
    sa.ForeignKeyConstraint(['release_transaction_id'], ['ledger_transaction.id'], name=op.f('fk_deposit_release_transaction_id_ledger_transaction')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_deposit'))
    )
    with op.batch_alter_table('deposit', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_deposit_account_id'), ['account_id'], unique=False)

    op.create_table('write_off',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('account_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('amount_cents', sa.BigInteger(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('prepared_by_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('prepared_at', portal.billing_core.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('decided_by_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('decided_at', portal.billing_core.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('decision_note', sa.Text(), nullable=True),
    sa.Column('ledger_transaction_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.CheckConstraint("status in ('pending', 'posted', 'rejected')", name=op.f('ck_write_off_status')),
    sa.CheckConstraint('amount_cents > 0', name=op.f('ck_write_off_positive')),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], name=op.f('fk_write_off_account_id_account')),
    sa.ForeignKeyConstraint(['decided_by_id'], ['user_account.id'], name=op.f('fk_write_off_decided_by_id_user_account')),
    sa.ForeignKeyConstraint(['ledger_transaction_id'], ['ledger_transaction.id'], name=op.f('fk_write_off_ledger_transaction_id_ledger_transaction')),
    sa.ForeignKeyConstraint(['prepared_by_id'], ['user_account.id'], name=op.f('fk_write_off_prepared_by_id_user_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_write_off'))
    )
    with op.batch_alter_table('write_off', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_write_off_account_id'), ['account_id'], unique=False)

    op.create_table('adjustment',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('account_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('service_type', sa.String(length=20), nullable=False),
    sa.Column('amount_cents', sa.BigInteger(), nullable=False),
    sa.Column('reason_code', sa.String(length=20), nullable=False),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('bill_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('prepared_by_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('prepared_at', portal.billing_core.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('decided_by_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('decided_at', portal.billing_core.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('decision_note', sa.Text(), nullable=True),
    sa.Column('ledger_transaction_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('working', sa.JSON(), nullable=True),
    sa.Column('repair_proof', sa.String(length=300), nullable=True),
    sa.CheckConstraint("reason_code in ('leak', 'meter_error', 'billing_error', 'courtesy', 'fee_waiver', 'other')", name=op.f('ck_adjustment_reason_code')),
    sa.CheckConstraint("status in ('pending', 'posted', 'rejected')", name=op.f('ck_adjustment_status')),
    sa.CheckConstraint('amount_cents <> 0', name=op.f('ck_adjustment_nonzero')),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], name=op.f('fk_adjustment_account_id_account')),
    sa.ForeignKeyConstraint(['bill_id'], ['bill.id'], name=op.f('fk_adjustment_bill_id_bill')),
    sa.ForeignKeyConstraint(['decided_by_id'], ['user_account.id'], name=op.f('fk_adjustment_decided_by_id_user_account')),
    sa.ForeignKeyConstraint(['ledger_transaction_id'], ['ledger_transaction.id'], name=op.f('fk_adjustment_ledger_transaction_id_ledger_transaction')),
    sa.ForeignKeyConstraint(['prepared_by_id'], ['user_account.id'], name=op.f('fk_adjustment_prepared_by_id_user_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_adjustment'))
    )
    with op.batch_alter_table('adjustment', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_adjustment_account_id'), ['account_id'], unique=False)
        batch_op.create_index('ix_adjustment_status', ['status', 'prepared_at'], unique=False)

    op.create_table('counter_receipt',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('number', sa.String(length=20), nullable=False),
    sa.Column('drawer_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('taken_by_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('taken_at', portal.billing_core.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('tender', sa.String(length=20), nullable=False),
    sa.Column('total_cents', sa.BigInteger(), nullable=False),
    sa.Column('tendered_cents', sa.BigInteger(), nullable=True),
    sa.Column('change_cents', sa.BigInteger(), nullable=False),
    sa.Column('check_number', sa.String(length=30), nullable=True),
    sa.Column('check_bank', sa.String(length=100), nullable=True),
    sa.Column('approval_code', sa.String(length=20), nullable=True),
    sa.Column('payer_name', sa.String(length=200), nullable=True),
    sa.Column('email', sa.String(length=254), nullable=True),
    sa.Column('language', sa.String(length=5), nullable=False),
    sa.Column('emailed_at', portal.billing_core.models.UTCDateTime(timezone=True), nullable=True),
    sa.CheckConstraint("tender in ('cash', 'check', 'card', 'money_order')", name=op.f('ck_counter_receipt_tender')),
    sa.CheckConstraint('change_cents >= 0', name=op.f('ck_counter_receipt_change')),
    sa.CheckConstraint('total_cents > 0', name=op.f('ck_counter_receipt_positive')),
    sa.ForeignKeyConstraint(['drawer_id'], ['cash_drawer.id'], name=op.f('fk_counter_receipt_drawer_id_cash_drawer')),
    sa.ForeignKeyConstraint(['taken_by_id'], ['user_account.id'], name=op.f('fk_counter_receipt_taken_by_id_user_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_counter_receipt')),
    sa.UniqueConstraint('number', name=op.f('uq_counter_receipt_number'))
    )
    with op.batch_alter_table('counter_receipt', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_counter_receipt_drawer_id'), ['drawer_id'], unique=False)

    op.create_table('payment_batch_item',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('batch_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('line_no', sa.Integer(), nullable=False),
    sa.Column('scan_line', sa.String(length=60), nullable=True),
    sa.Column('account_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('amount_cents', sa.BigInteger(), nullable=False),
    sa.Column('check_number', sa.String(length=30), nullable=True),
    sa.Column('payment_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.CheckConstraint('amount_cents > 0', name=op.f('ck_payment_batch_item_positive')),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], name=op.f('fk_payment_batch_item_account_id_account')),
    sa.ForeignKeyConstraint(['batch_id'], ['payment_batch.id'], name=op.f('fk_payment_batch_item_batch_id_payment_batch')),
    sa.ForeignKeyConstraint(['payment_id'], ['payment.id'], name=op.f('fk_payment_batch_item_payment_id_payment')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payment_batch_item'))
    )
    with op.batch_alter_table('payment_batch_item', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_payment_batch_item_batch_id'), ['batch_id'], unique=False)

    op.create_table('payment_import_row',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('import_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('line_no', sa.Integer(), nullable=False),
    sa.Column('bank_reference', sa.String(length=100), nullable=True),
    sa.Column('account_text', sa.String(length=60), nullable=True),
    sa.Column('scan_line', sa.String(length=60), nullable=True),
    sa.Column('amount_cents', sa.BigInteger(), nullable=True),
    sa.Column('check_number', sa.String(length=30), nullable=True),
    sa.Column('received_on', sa.Date(), nullable=True),
    sa.Column('outcome', sa.String(length=12), nullable=False),
    sa.Column('reason', sa.String(length=300), nullable=True),
    sa.Column('account_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('payment_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('resolution', sa.String(length=12), nullable=True),
    sa.Column('resolved_by_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('resolved_at', portal.billing_core.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('note', sa.String(length=300), nullable=True),
    sa.CheckConstraint("outcome in ('matched', 'duplicate', 'unmatched', 'rejected')", name=op.f('ck_payment_import_row_outcome')),
    sa.CheckConstraint("resolution in ('assigned', 'returned')", name=op.f('ck_payment_import_row_resolution')),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], name=op.f('fk_payment_import_row_account_id_account')),
    sa.ForeignKeyConstraint(['import_id'], ['payment_import.id'], name=op.f('fk_payment_import_row_import_id_payment_import')),
    sa.ForeignKeyConstraint(['payment_id'], ['payment.id'], name=op.f('fk_payment_import_row_payment_id_payment')),
    sa.ForeignKeyConstraint(['resolved_by_id'], ['user_account.id'], name=op.f('fk_payment_import_row_resolved_by_id_user_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payment_import_row'))
    )
    with op.batch_alter_table('payment_import_row', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_payment_import_row_bank_reference'), ['bank_reference'], unique=False)
        batch_op.create_index(batch_op.f('ix_payment_import_row_import_id'), ['import_id'], unique=False)
        batch_op.create_index('ix_payment_import_row_queue', ['outcome', 'resolution'], unique=False)

    op.create_table('refund',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('account_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('amount_cents', sa.BigInteger(), nullable=False),
    sa.Column('reason', sa.String(length=200), nullable=False),
    sa.Column('method', sa.String(length=10), nullable=False),
    sa.Column('payment_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('requested_by_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('requested_at', portal.billing_core.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('decided_by_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('decided_at', portal.billing_core.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('decision_note', sa.Text(), nullable=True),
    sa.Column('payee_name', sa.String(length=200), nullable=True),
    sa.Column('mailing_line1', sa.String(length=200), nullable=True),
    sa.Column('mailing_city', sa.String(length=100), nullable=True),
    sa.Column('mailing_state', sa.String(length=2), nullable=True),
    sa.Column('mailing_zip', sa.String(length=10), nullable=True),
    sa.Column('processor_refund_id', sa.String(length=100), nullable=True),
    sa.Column('idempotency_key', sa.String(length=100), nullable=True),
    sa.Column('exported_at', portal.billing_core.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('paid_at', portal.billing_core.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('failure_message', sa.String(length=300), nullable=True),
    sa.Column('approved_transaction_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('paid_transaction_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.CheckConstraint("method in ('card', 'check')", name=op.f('ck_refund_method')),
    sa.CheckConstraint("status in ('requested', 'approved', 'rejected', 'paid', 'failed')", name=op.f('ck_refund_status')),
    sa.CheckConstraint('amount_cents > 0', name=op.f('ck_refund_positive')),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], name=op.f('fk_refund_account_id_account')),
    sa.ForeignKeyConstraint(['approved_transaction_id'], ['ledger_transaction.id'], name=op.f('fk_refund_approved_transaction_id_ledger_transaction')),
    sa.ForeignKeyConstraint(['decided_by_id'], ['user_account.id'], name=op.f('fk_refund_decided_by_id_user_account')),
    sa.ForeignKeyConstraint(['paid_transaction_id'], ['ledger_transaction.id'], name=op.f('fk_refund_paid_transaction_id_ledger_transaction')),
    sa.ForeignKeyConstraint(['payment_id'], ['payment.id'], name=op.f('fk_refund_payment_id_payment')),
    sa.ForeignKeyConstraint(['requested_by_id'], ['user_account.id'], name=op.f('fk_refund_requested_by_id_user_account')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_refund')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_refund_idempotency_key')),
    sa.UniqueConstraint('processor_refund_id', name=op.f('uq_refund_processor_refund_id'))
    )
    with op.batch_alter_table('refund', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_refund_account_id'), ['account_id'], unique=False)
        batch_op.create_index('ix_refund_status', ['status', 'requested_at'], unique=False)

    # Plain ADD COLUMN on both databases: on SQLite, batch mode would recreate account and
    # payment, which other tables' rows reference (the drop is refused once there is data).
    op.add_column('account', sa.Column('cash_only', sa.Boolean(), server_default='0', nullable=False))
    op.add_column('account', sa.Column('cash_only_since', sa.Date(), nullable=True))
    op.add_column('account', sa.Column('cash_only_reason', sa.String(length=200), nullable=True))
    sqlite = op.get_bind().dialect.name == 'sqlite'
    for name, type_ in PAYMENT_COLUMNS:
        parent = PAYMENT_REFERENCES.get(name)
        if parent and sqlite:
            # SQLite takes a reference only inside ADD COLUMN (alembic would ALTER it in after).
            op.execute(
                f'ALTER TABLE payment ADD COLUMN {name} INTEGER '
                f'CONSTRAINT fk_payment_{name}_{parent} REFERENCES {parent} (id)'
            )
        else:
            op.add_column('payment', sa.Column(name, type_, nullable=True))
    if not sqlite:
        for name, parent in PAYMENT_REFERENCES.items():
            op.create_foreign_key(op.f(f'fk_payment_{name}_{parent}'), 'payment', parent, [name], ['id'])
    for name in ('batch_id', 'drawer_id', 'receipt_id'):
        op.create_index(op.f(f'ix_payment_{name}'), 'payment', [name], unique=False)
    op.create_index(op.f('ix_payment_bank_reference'), 'payment', ['bank_reference'], unique=True)

    _ledger_kinds(KINDS_BEFORE, KINDS_AFTER)


def downgrade() -> None:
    _ledger_kinds(KINDS_AFTER, KINDS_BEFORE)
    # First the tables that reference payment, then payment's own columns (batch mode on
    # SQLite: nothing references payment then), then the rest; account's columns last, with
    # a plain DROP COLUMN (account is referenced everywhere: it cannot be recreated).
    for table in ('refund', 'payment_import_row', 'payment_batch_item'):
        for index in INDEXES[table]:
            op.drop_index(index, table_name=table)
        op.drop_table(table)
    for name in ('bank_reference', 'receipt_id', 'drawer_id', 'batch_id'):
        op.drop_index(op.f(f'ix_payment_{name}'), table_name='payment')
    with op.batch_alter_table('payment', schema=None) as batch_op:
        if op.get_bind().dialect.name != 'sqlite':
            for name, parent in PAYMENT_REFERENCES.items():
                batch_op.drop_constraint(op.f(f'fk_payment_{name}_{parent}'), type_='foreignkey')
        for name, _ in reversed(PAYMENT_COLUMNS):
            batch_op.drop_column(name)
    for table in ('counter_receipt', 'adjustment', 'write_off', 'deposit', 'cash_drawer', 'payment_import', 'payment_batch'):
        for index in INDEXES.get(table, ()):
            op.drop_index(index, table_name=table)
        op.drop_table(table)
    for column in ('cash_only_reason', 'cash_only_since', 'cash_only'):
        op.execute(f'ALTER TABLE account DROP COLUMN {column}')


INDEXES = {
    'refund': ('ix_refund_status', 'ix_refund_account_id'),
    'payment_import_row': (
        'ix_payment_import_row_queue', 'ix_payment_import_row_import_id', 'ix_payment_import_row_bank_reference'
    ),
    'payment_batch_item': ('ix_payment_batch_item_batch_id',),
    'counter_receipt': ('ix_counter_receipt_drawer_id',),
    'adjustment': ('ix_adjustment_status', 'ix_adjustment_account_id'),
    'write_off': ('ix_write_off_account_id',),
    'deposit': ('ix_deposit_account_id',),
    'cash_drawer': ('uq_cash_drawer_open_cashier', 'ix_cash_drawer_cashier_id', 'ix_cash_drawer_business_date'),
}


BigID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
PAYMENT_COLUMNS = (
    ('drawer_id', BigID),
    ('receipt_id', BigID),
    ('batch_id', BigID),
    ('check_number', sa.String(length=30)),
    ('approval_code', sa.String(length=20)),
    ('bank_reference', sa.String(length=100)),
    ('returned_on', sa.Date()),
    ('return_code', sa.String(length=10)),
    ('return_fee_transaction_id', BigID),
    ('recovery_cents', sa.BigInteger()),
)
PAYMENT_REFERENCES = {
    'drawer_id': 'cash_drawer',
    'receipt_id': 'counter_receipt',
    'batch_id': 'payment_batch',
    'return_fee_transaction_id': 'ledger_transaction',
}
KINDS_BEFORE = "('bill', 'payment', 'adjustment', 'fee', 'reversal')"
KINDS_AFTER = "('bill', 'payment', 'adjustment', 'fee', 'reversal', 'deposit', 'refund', 'write_off', 'recovery')"


def _ledger_kinds(old: str, new: str) -> None:
    """Change the kinds ledger_transaction allows. On SQLite, recreating the table (batch
    mode) would copy the whole ledger and drop its append-only triggers; a CHECK whose new
    form every stored row still meets is changed in place instead, SQLite's documented way
    (writable_schema, then a new schema_version so every connection rereads it)."""
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        op.drop_constraint(op.f("ck_ledger_transaction_kind"), "ledger_transaction", type_="check")
        op.create_check_constraint(op.f("ck_ledger_transaction_kind"), "ledger_transaction", f"kind in {new}")
        return
    version = bind.exec_driver_sql("PRAGMA schema_version").scalar()
    bind.exec_driver_sql("PRAGMA writable_schema=ON")
    bind.exec_driver_sql(
        "UPDATE sqlite_master SET sql = replace(sql, ?, ?) WHERE type = 'table' AND name = 'ledger_transaction'",
        (f"kind in {old}", f"kind in {new}"),
    )
    bind.exec_driver_sql(f"PRAGMA schema_version={int(version) + 1}")
    bind.exec_driver_sql("PRAGMA writable_schema=OFF")
