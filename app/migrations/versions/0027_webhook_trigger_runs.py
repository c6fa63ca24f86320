"""webhook triggers, more: the trigger that started a run (runs.webhook_trigger_id), a
trigger's signing secret (vault-encrypted) and what its runs take as input, and the
delivery ids each trigger accepted (trigger_deliveries: a redelivery starts no second run)

Existing runs started by a trigger keep `trigger = 'webhook'` without naming which one;
existing triggers check no signature and take the body as input, as before.

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-06 22:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0027"
down_revision = "0026"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("webhook_triggers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("signing_secret_enc", sa.Text(), nullable=True))
        batch_op.add_column(
            sa.Column("input_mode", sa.String(length=16), nullable=False, server_default="body")
        )
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("webhook_trigger_id", sa.Integer(), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_runs_webhook_trigger_id"), ["webhook_trigger_id"], unique=False
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_runs_webhook_trigger_id_webhook_triggers"),
            "webhook_triggers",
            ["webhook_trigger_id"],
            ["id"],
            ondelete="SET NULL",
        )
    op.create_table(
        "trigger_deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("trigger_id", sa.Integer(), nullable=False),
        sa.Column("delivery_id", sa.String(length=200), nullable=False),
        sa.Column("run_id", sa.String(length=32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["trigger_id"],
            ["webhook_triggers.id"],
            name=op.f("fk_trigger_deliveries_trigger_id_webhook_triggers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["runs.id"],
            name=op.f("fk_trigger_deliveries_run_id_runs"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trigger_deliveries")),
        sa.UniqueConstraint(
            "trigger_id", "delivery_id", name=op.f("uq_trigger_deliveries_trigger_id")
        ),
    )
    with op.batch_alter_table("trigger_deliveries", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_trigger_deliveries_created_at"), ["created_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_trigger_deliveries_run_id"), ["run_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("trigger_deliveries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_trigger_deliveries_run_id"))
        batch_op.drop_index(batch_op.f("ix_trigger_deliveries_created_at"))
    op.drop_table("trigger_deliveries")
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_runs_webhook_trigger_id_webhook_triggers"), type_="foreignkey"
        )
        batch_op.drop_index(batch_op.f("ix_runs_webhook_trigger_id"))
        batch_op.drop_column("webhook_trigger_id")
    with op.batch_alter_table("webhook_triggers", schema=None) as batch_op:
        batch_op.drop_column("input_mode")
        batch_op.drop_column("signing_secret_enc")
