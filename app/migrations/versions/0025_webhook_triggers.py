"""webhook triggers: secret URLs (/hooks/<token>) that start a published script's runs as
the member who made them (the published version they approved); only each token's
SHA-256 is stored

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-06 22:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "webhook_triggers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("facility_id", sa.Integer(), nullable=False),
        sa.Column("script_id", sa.Integer(), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("approved_version", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["facility_id"],
            ["facilities.id"],
            name=op.f("fk_webhook_triggers_facility_id_facilities"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["users.id"],
            name=op.f("fk_webhook_triggers_owner_id_users"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["script_id"],
            ["scripts.id"],
            name=op.f("fk_webhook_triggers_script_id_scripts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_triggers")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_webhook_triggers_token_hash")),
    )
    with op.batch_alter_table("webhook_triggers", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_webhook_triggers_facility_id"), ["facility_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_webhook_triggers_owner_id"), ["owner_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_webhook_triggers_script_id"), ["script_id"], unique=False
        )


def downgrade() -> None:
    # Runs a trigger started keep their trigger value ('webhook'): a string column, so
    # older code shows it as it is.
    with op.batch_alter_table("webhook_triggers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_webhook_triggers_script_id"))
        batch_op.drop_index(batch_op.f("ix_webhook_triggers_owner_id"))
        batch_op.drop_index(batch_op.f("ix_webhook_triggers_facility_id"))
    op.drop_table("webhook_triggers")
