"""statement-level reference checks for bills and ledger transactions (PostgreSQL)

Issue 17 (billrun): a bill run inserts a bill and a ledger transaction per account and
updates every bill when it posts; their foreign keys, checked row by row, were three
quarters of that work. They become the statement-level checks of migration 0005
(``billing_core/references.py``). SQLite keeps its foreign keys.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-03 08:40:00
"""

from alembic import op

from portal.billing_core import references

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite keeps its foreign keys
    for statement in references.install_sql(references.BILLS, references.FIRST + references.BILLS):
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for statement in references.uninstall_sql(references.BILLS, references.FIRST):
        op.execute(statement)
