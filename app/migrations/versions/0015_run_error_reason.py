"""runs: error_reason, why an integration error happened

`no_integration_grant` has several causes a member acts on differently: their own sign-in
(refused, expired, not asked) or the facility's master account that only an admin can
connect. The run kept only the code and the words, so pages advised connecting one's own
account in every case.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04 21:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch_op:
        batch_op.add_column(sa.Column("error_reason", sa.String(length=40), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch_op:
        batch_op.drop_column("error_reason")
