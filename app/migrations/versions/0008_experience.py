"""experience: script versions and the published one, a run's version and script traceback

Revision ID: 0008
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
# Re-chained onto main's head (0001-0003-0002-0004-0006-0005).
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "script_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("script_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("input_schema", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["script_id"], ["scripts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("script_id", "number", name="uq_script_versions_number"),
    )
    op.create_index(
        op.f("ix_script_versions_script_id"), "script_versions", ["script_id"], unique=False
    )
    with op.batch_alter_table("scripts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("published_version", sa.Integer(), nullable=True))
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("error_trace", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("version", sa.Integer(), nullable=True))
    with op.batch_alter_table("integrations", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("enabled", sa.Boolean(), nullable=False, server_default=sa.true())
        )
    # Scripts saved before versions existed start at version 1, published if they were.
    op.execute(
        "INSERT INTO script_versions (script_id, number, source, input_schema, created_by, "
        "created_at) SELECT id, 1, source, input_schema, created_by, updated_at FROM scripts"
    )
    op.execute("UPDATE scripts SET published_version = 1 WHERE published")


def downgrade() -> None:
    with op.batch_alter_table("integrations", schema=None) as batch_op:
        batch_op.drop_column("enabled")
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_column("version")
        batch_op.drop_column("error_trace")
    with op.batch_alter_table("scripts", schema=None) as batch_op:
        batch_op.drop_column("published_version")
    op.drop_index(op.f("ix_script_versions_script_id"), table_name="script_versions")
    op.drop_table("script_versions")
