"""durable runs: driver heartbeat, the prompt a paused run waits for, cancel requests, journal

Revision ID: 0006
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0004"  # brief: "0001"; re-chained onto main's head (0001-0003-0002-0004)
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("driver", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("waiting_grant_id", sa.String(length=32), nullable=True))
        batch_op.add_column(
            sa.Column(
                "cancel_requested", sa.Boolean(), nullable=False, server_default=sa.false()
            )
        )
        batch_op.add_column(sa.Column("journal", sa.LargeBinary(), nullable=True))
        batch_op.create_index("ix_runs_status_user", ["status", "user_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_runs_waiting_grant_id"), ["waiting_grant_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_runs_waiting_grant_id"))
        batch_op.drop_index("ix_runs_status_user")
        batch_op.drop_column("journal")
        batch_op.drop_column("cancel_requested")
        batch_op.drop_column("waiting_grant_id")
        batch_op.drop_column("heartbeat_at")
        batch_op.drop_column("driver")
