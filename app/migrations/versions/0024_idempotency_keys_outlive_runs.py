"""idempotency keys: kept when their run is deleted (run_id goes null), pruned by age

A key went with its run (ON DELETE CASCADE), so a retry under the key of a run its member
had deleted started a new run: the retry a client sends after a timeout ran the job twice.
The key now stays (its run_id set null) and the retry is a 410 saying the run was deleted
(app.services.idempotency); keys are deleted when they are older than the retention
(app.services.retention), as their runs are, on an index on created_at.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-06 19:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None

FK = "fk_idempotency_keys_run_id_runs"


def upgrade() -> None:
    with op.batch_alter_table("idempotency_keys") as batch_op:
        batch_op.drop_constraint(FK, type_="foreignkey")
        batch_op.alter_column("run_id", existing_type=sa.String(length=32), nullable=True)
        batch_op.create_foreign_key(FK, "runs", ["run_id"], ["id"], ondelete="SET NULL")
        batch_op.create_index(
            batch_op.f("ix_idempotency_keys_created_at"), ["created_at"], unique=False
        )


def downgrade() -> None:
    op.execute("DELETE FROM idempotency_keys WHERE run_id IS NULL")
    with op.batch_alter_table("idempotency_keys") as batch_op:
        batch_op.drop_index(batch_op.f("ix_idempotency_keys_created_at"))
        batch_op.drop_constraint(FK, type_="foreignkey")
        batch_op.alter_column("run_id", existing_type=sa.String(length=32), nullable=False)
        batch_op.create_foreign_key(FK, "runs", ["run_id"], ["id"], ondelete="CASCADE")
