"""schedule failure handlers: a schedule's on-failure script (schedules.on_failure_script_id,
the version its member approved for it, and why the last one could not start); a run's
handles_run_id (the failed run an on-failure run was started for: unique, so it starts once)

A run of a schedule that fails for good starts one run of the schedule's on-failure script
(app.services.failure_handlers). Existing schedules have none; existing runs handle none.

Revision ID: 0031
Revises: 0030
Create Date: 2026-12-07 05:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0031"
down_revision = "0030"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("schedules", schema=None) as batch_op:
        batch_op.add_column(sa.Column("on_failure_script_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("on_failure_version", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("on_failure_error", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column("on_failure_error_at", sa.DateTime(timezone=True), nullable=True)
        )
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("handles_run_id", sa.String(length=32), nullable=True))
        batch_op.create_index("ix_runs_handles_run_id", ["handles_run_id"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_index("ix_runs_handles_run_id")
        batch_op.drop_column("handles_run_id")
    with op.batch_alter_table("schedules", schema=None) as batch_op:
        batch_op.drop_column("on_failure_error_at")
        batch_op.drop_column("on_failure_error")
        batch_op.drop_column("on_failure_version")
        batch_op.drop_column("on_failure_script_id")
