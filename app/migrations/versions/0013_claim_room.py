"""runs: scriptbox_claim_room(), a claim's row locks and cap counts in the claim's UPDATE

On PostgreSQL a worker's claim was a transaction of four round trips (BEGIN, the row locks
on the run's user and facility, the counting UPDATE, COMMIT) holding those locks across
them. This function takes the locks and counts the live runs inside the UPDATE, so the
claim is one statement. It is VOLATILE: its queries see runs that other claims committed
while it waited for the locks (a statement's own subqueries would not), so two workers
still never both take the last slot. SQLite has no such functions and needs none (its
writers queue on one lock).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 08:20:00
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

CLAIM_ROOM = """
CREATE OR REPLACE FUNCTION scriptbox_claim_room(
    run_user integer, run_facility integer, live text[], per_user integer,
    per_facility integer
) RETURNS boolean LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    -- NO KEY UPDATE: claims exclude each other; a web process inserting a run (its
    -- foreign keys take KEY SHARE on these rows) is not blocked.
    PERFORM 1 FROM users WHERE id = run_user FOR NO KEY UPDATE;
    PERFORM 1 FROM facilities WHERE id = run_facility FOR NO KEY UPDATE;
    RETURN (SELECT count(*) FROM runs WHERE user_id = run_user AND status = ANY(live))
               < per_user
       AND (SELECT count(*) FROM runs WHERE facility_id = run_facility AND status = ANY(live))
               < per_facility;
END
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(CLAIM_ROOM)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "DROP FUNCTION IF EXISTS scriptbox_claim_room(integer, integer, text[], integer, integer)"
        )
