"""grants and idempotency keys: an index on run_id, for pruning old runs

Finished runs older than SCRIPTBOX_RETENTION_DAYS are deleted in batches
(app.services.retention); their prompts and idempotency keys go with them through the
foreign keys' ON DELETE CASCADE, which looks each one up by run_id. Without an index,
every deleted run scanned both tables.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-06 02:00:00
"""

from __future__ import annotations

from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("grants") as batch_op:
        batch_op.create_index(batch_op.f("ix_grants_run_id"), ["run_id"], unique=False)
    with op.batch_alter_table("idempotency_keys") as batch_op:
        batch_op.create_index(batch_op.f("ix_idempotency_keys_run_id"), ["run_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("idempotency_keys") as batch_op:
        batch_op.drop_index(batch_op.f("ix_idempotency_keys_run_id"))
    with op.batch_alter_table("grants") as batch_op:
        batch_op.drop_index(batch_op.f("ix_grants_run_id"))
