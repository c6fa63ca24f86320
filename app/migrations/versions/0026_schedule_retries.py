"""schedule retries: a schedule's retries and retry_delay_s, the run whose retry it dealt
with (retried_run_id); a run's retry_of and attempt

A scheduled run that fails for a reason worth trying again is started again after a delay,
up to the schedule's `retries` times (app.services.schedule_retries). Existing schedules get
0 retries (as before) and 60 s; existing runs are each their own first attempt.

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-06 22:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("schedules") as batch_op:
        batch_op.add_column(
            sa.Column("retries", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("retry_delay_s", sa.Integer(), nullable=False, server_default="60")
        )
        batch_op.add_column(sa.Column("retried_run_id", sa.String(length=32), nullable=True))
    with op.batch_alter_table("runs") as batch_op:
        batch_op.add_column(sa.Column("retry_of", sa.String(length=32), nullable=True))
        batch_op.add_column(
            sa.Column("attempt", sa.Integer(), nullable=False, server_default="1")
        )


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch_op:
        batch_op.drop_column("attempt")
        batch_op.drop_column("retry_of")
    with op.batch_alter_table("schedules") as batch_op:
        batch_op.drop_column("retried_run_id")
        batch_op.drop_column("retry_delay_s")
        batch_op.drop_column("retries")
