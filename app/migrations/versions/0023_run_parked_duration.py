"""runs: parked_duration_ms, the time a parked run had used, kept in the clear

A parked run's time so far was only inside its encrypted journal, so a parked run that
was cancelled (or failed without being resumed) ended with no duration. Parking now keeps
it beside the journal (it is not secret); an end that does not report a duration of its
own takes it (app.lifecycle). Runs parked before this revision have none to give.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-06 18:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch_op:
        batch_op.add_column(sa.Column("parked_duration_ms", sa.Double(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch_op:
        batch_op.drop_column("parked_duration_ms")
