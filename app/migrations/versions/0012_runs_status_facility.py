"""runs: an index on (status, facility_id) for the facility cap's count of live runs

The claim counts the facility's live runs in its UPDATE; without this index that count
read every run the facility ever had, so claims grew slower with history.

Revision ID: 0012
Revises: 0010
Create Date: 2026-12-02 14:40:00
"""

from __future__ import annotations

from alembic import op

revision = "0012"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch_op:
        batch_op.create_index("ix_runs_status_facility", ["status", "facility_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch_op:
        batch_op.drop_index("ix_runs_status_facility")
