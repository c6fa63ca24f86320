"""runs: paused_at, when a run began to wait for its current sign-in prompt

A call that waited for a sign-in and whose run then parked was logged, after the resume,
with no wait: the resumed call got the prompt's outcome at once and the time before (the
live wait and the parked one) was nowhere. The run now keeps when its pause began, so the
resumed call's wait runs from there to the prompt's answer.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-05 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch_op:
        batch_op.add_column(sa.Column("paused_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch_op:
        batch_op.drop_column("paused_at")
