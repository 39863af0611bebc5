"""statement-level reference checks for bill lines, usage and ledger entries (PostgreSQL)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22 23:55:00
"""
from alembic import op

from portal.billing_core import references

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite keeps its foreign keys
    # The tables this migration switched (issue 17's 0019 switched more).
    for statement in references.install_sql(references.FIRST, references.FIRST):
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for statement in references.uninstall_sql(references.FIRST, ()):
        op.execute(statement)
