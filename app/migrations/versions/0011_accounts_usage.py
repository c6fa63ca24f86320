"""accounts and usage: an account's external identity, an integration's who-am-I request and
how many accounts each person may connect

Revision ID: 0011
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("integrations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("whoami", sa.JSON(), nullable=True))
        batch_op.add_column(
            sa.Column(
                "accounts_per_user", sa.String(length=8), nullable=False,
                server_default="several",
            )
        )
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("identity", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_column("identity")
    with op.batch_alter_table("integrations", schema=None) as batch_op:
        batch_op.drop_column("accounts_per_user")
        batch_op.drop_column("whoami")
