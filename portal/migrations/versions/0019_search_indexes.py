"""indexes for the audit trail viewer's searches and the read exceptions waiting

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-03 08:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

EXCEPTION = sa.text("status = 'exception'")


def upgrade() -> None:
    op.create_index("ix_audit_event_actor_time", "audit_event", ["actor_id", "occurred_at"])
    op.create_index("ix_audit_event_action_time", "audit_event", ["action", "occurred_at"])
    op.create_index(
        "ix_meter_read_exception", "meter_read", ["read_on"], postgresql_where=EXCEPTION, sqlite_where=EXCEPTION
    )


def downgrade() -> None:
    op.drop_index("ix_meter_read_exception", table_name="meter_read")
    op.drop_index("ix_audit_event_action_time", table_name="audit_event")
    op.drop_index("ix_audit_event_actor_time", table_name="audit_event")
