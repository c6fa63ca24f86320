"""grants: takes_master, whether connecting the facility's master account answers it

A call with account=None takes the master account when one is connected (DESIGN §3), so
an admin connecting it (or signing it in again) should resume the runs waiting for such
a call's prompt; a prompt for account="user" (or a label) wants the user's own account
and must not be answered by it. The grant's label ("" for both) could not tell them
apart, so the prompt now says so; prompts open before this stay unanswered by the master.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-06 15:15:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("grants") as batch_op:
        batch_op.add_column(
            sa.Column("takes_master", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("grants") as batch_op:
        batch_op.drop_column("takes_master")
