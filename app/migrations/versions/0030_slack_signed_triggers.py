"""webhook triggers may check Slack's request signing: webhook_triggers.signature_scheme
("github", X-Hub-Signature-256 with the secret the server made; or "slack",
X-Slack-Signature with the Slack app's signing secret its maker pasted)

Existing signed triggers keep GitHub's scheme (the column's default).

Revision ID: 0030
Revises: 0029
Create Date: 2026-12-07 02:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0030"
down_revision = "0029"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("webhook_triggers", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "signature_scheme", sa.String(length=16), nullable=False,
                server_default="github",
            )
        )


def downgrade() -> None:
    # A Slack-signed trigger keeps its (Slack) secret: the older code checks it GitHub's
    # way, which no Slack request passes, so its URL answers 401 and starts nothing
    # rather than taking unsigned calls.
    with op.batch_alter_table("webhook_triggers", schema=None) as batch_op:
        batch_op.drop_column("signature_scheme")
