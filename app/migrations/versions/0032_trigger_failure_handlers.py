"""trigger failure handlers: a webhook trigger's on-failure script
(webhook_triggers.on_failure_script_id, the version its member approved for it, and why
the last one could not start), as a schedule's (0031)

A run a trigger's URL started that ends failed or timed out starts one run of the
trigger's on-failure script (app.services.failure_handlers). Existing triggers have none.

Revision ID: 0032
Revises: 0031
Create Date: 2026-12-07 05:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0032"
down_revision = "0031"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("webhook_triggers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("on_failure_script_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("on_failure_version", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("on_failure_error", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column("on_failure_error_at", sa.DateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("webhook_triggers", schema=None) as batch_op:
        batch_op.drop_column("on_failure_error_at")
        batch_op.drop_column("on_failure_error")
        batch_op.drop_column("on_failure_version")
        batch_op.drop_column("on_failure_script_id")
