"""integration journeys: length limits, credential verification, rejected OAuth clients,
sealed default headers and query values

Revision ID: 0002
Revises: 0003
Create Date: 2026-12-02 06:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0003"
branch_labels = None
depends_on = None

# (table, column, old length, new length, nullable): the limits of app.integrations.catalog,
# written out because a migration must not change when the code's constants do.
_WIDENED = (
    ("integrations", "key", 40, 64, False),
    ("integrations", "name", 120, 200, False),
    ("integrations", "catalog_key", 40, 64, True),
    ("accounts", "label", 60, 64, False),
    ("grants", "label", 60, 64, False),
    ("oauth_states", "label", 60, 64, False),
    ("call_log", "integration_key", 40, 64, False),
)


def upgrade() -> None:
    with op.batch_alter_table("integrations") as batch:
        batch.add_column(sa.Column("verify", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("defaults_enc", sa.Text(), nullable=True))
    with op.batch_alter_table("oauth_clients") as batch:
        batch.add_column(sa.Column("rejected_with", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("rejected_at", sa.DateTime(timezone=True), nullable=True))
    for table, column, old, new, nullable in _WIDENED:
        with op.batch_alter_table(table) as batch:
            batch.alter_column(
                column,
                existing_type=sa.String(length=old),
                type_=sa.String(length=new),
                existing_nullable=nullable,
            )


def downgrade() -> None:
    with op.batch_alter_table("integrations") as batch:
        batch.drop_column("defaults_enc")
        batch.drop_column("verify")
    with op.batch_alter_table("oauth_clients") as batch:
        batch.drop_column("rejected_at")
        batch.drop_column("rejected_with")
    for table, column, old, new, nullable in reversed(_WIDENED):
        with op.batch_alter_table(table) as batch:
            batch.alter_column(
                column,
                existing_type=sa.String(length=new),
                type_=sa.String(length=old),
                existing_nullable=nullable,
            )
