"""connect links: revoked_at, when the embedding app withdrew a link

DELETE /api/f/<slug>/connect-links/<id> revokes a link made for the wrong user or no
longer wanted: opening it (or finishing a sign-in started from it) then says it was
withdrawn and connects nothing. Existing links were never revoked.

Revision ID: 0033
Revises: 0032
Create Date: 2026-12-07 13:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0033"
down_revision = "0032"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("connect_links", schema=None) as batch_op:
        batch_op.add_column(sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("connect_links", schema=None) as batch_op:
        batch_op.drop_column("revoked_at")
