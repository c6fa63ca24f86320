"""webhook triggers may be paused (webhook_triggers.paused_at beside the existing
`enabled`, false while paused) and keep a trace of the last call their URL refused
(last_refused_at, last_refused_status, last_refused_code) and how many it refused
(refused_count)

Existing triggers stay enabled, with no refusal recorded.

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-07 01:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0028"
down_revision = "0027"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("webhook_triggers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("paused_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("last_refused_at", sa.DateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("last_refused_status", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("last_refused_code", sa.String(length=64), nullable=True)
        )
        batch_op.add_column(
            sa.Column("refused_count", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    # A paused trigger keeps enabled false: the older code answers 404 at its URL (it
    # looked up enabled triggers only), so it still starts nothing, as its maker wanted.
    with op.batch_alter_table("webhook_triggers", schema=None) as batch_op:
        batch_op.drop_column("refused_count")
        batch_op.drop_column("last_refused_code")
        batch_op.drop_column("last_refused_status")
        batch_op.drop_column("last_refused_at")
        batch_op.drop_column("paused_at")
