"""integrations: the foreign key of current_client_id on PostgreSQL

The first migration declared it with `use_alter` inside `create_table`, which leaves it
out of CREATE TABLE and never adds it afterwards: PostgreSQL databases had no such key,
so deleting an OAuth client left integrations pointing at it instead of clearing the
reference. SQLite databases have it. References to clients that are gone are cleared
first, as the key would have done.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03 08:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

NAME = "fk_integrations_current_client_id_oauth_clients"


def _missing() -> bool:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return False
    keys = sa.inspect(bind).get_foreign_keys("integrations")
    return not any(key["name"] == NAME for key in keys)


def upgrade() -> None:
    if not _missing():
        return
    op.execute(
        "UPDATE integrations SET current_client_id = NULL WHERE current_client_id IS NOT NULL"
        " AND current_client_id NOT IN (SELECT id FROM oauth_clients)"
    )
    op.create_foreign_key(
        NAME, "integrations", "oauth_clients", ["current_client_id"], ["id"], ondelete="SET NULL"
    )


def downgrade() -> None:
    # The key stays: without it the schema is the faulty one this revision repaired.
    pass
