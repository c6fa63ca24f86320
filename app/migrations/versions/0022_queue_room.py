"""runs: scriptbox_queue_room(), the cap on a user's queued runs counted in the run's INSERT

A new run is inserted only while its user has fewer runs waiting `queued` than
SCRIPTBOX_MAX_QUEUED_RUNS_PER_USER (app.services.queued_runs): the INSERT ... SELECT's
WHERE counts them, so the cap costs the run no statement of its own. On PostgreSQL two
web processes inserting at once would each count without the other's uncommitted run;
this function first takes a transaction-scoped advisory lock on the user (held until the
inserting transaction commits), then counts. It is VOLATILE, so its count sees runs
committed while it waited (a statement's own subquery would not). An advisory lock, not
the user's row: the claims lock that row (0013), and a web process adding a run must not
wait for the workers' claims, nor they for it. SQLite needs none: its writers queue on
one lock, and the INSERT counts under it.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-06 18:30:00
"""

from __future__ import annotations

from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None

# The advisory lock's first key: "sbqu" in ASCII, Scriptbox's queue (the second is the user).
QUEUE_ROOM = """
CREATE OR REPLACE FUNCTION scriptbox_queue_room(run_user integer, per_user integer)
RETURNS boolean LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(1935831413, run_user);
    RETURN (SELECT count(*) FROM runs WHERE user_id = run_user AND status = 'queued')
               < per_user;
END
$$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(QUEUE_ROOM)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS scriptbox_queue_room(integer, integer)")
