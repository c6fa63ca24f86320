"""schedules: approved_version, the published version a schedule's member agreed to run

A schedule runs as its member, with their own accounts, and without them there. Another
scripter who published a new version of the script would have had their code run as that
member at the next due time. The schedule now keeps the version its member last saw
(setting it up, or changing it); a version published since by someone else is skipped
until the member changes or resumes the schedule.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-05 23:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("schedules") as batch_op:
        batch_op.add_column(sa.Column("approved_version", sa.Integer(), nullable=True))
    # Schedules made before it approve what is published now.
    op.execute(
        "UPDATE schedules SET approved_version = (SELECT scripts.published_version"
        " FROM scripts WHERE scripts.id = schedules.script_id)"
    )


def downgrade() -> None:
    with op.batch_alter_table("schedules") as batch_op:
        batch_op.drop_column("approved_version")
