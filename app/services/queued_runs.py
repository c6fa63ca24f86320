"""The cap on a user's queued runs (SCRIPTBOX_MAX_QUEUED_RUNS_PER_USER): runs that have
not started yet, waiting behind the caps on live runs, each facility's oldest first.

Without it one member, API token or schedule could queue thousands of runs ahead of
everybody else's. A run is inserted only while its user has fewer queued runs than the
cap: the count is the WHERE of the run's own INSERT ... SELECT, so the cap costs a run no
statement or round trip. Across processes the count holds exactly: SQLite's writers queue
on one lock, and on PostgreSQL the count is migration 0022's function, which takes an
advisory lock on the user before counting. Only a refused run costs one more statement
(the count its words give).
"""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import Boolean, ColumnElement, Insert, bindparam, cast, func, insert, select
from sqlalchemy.orm import Session

from app.config import DEFAULTS
from app.errors import TooManyQueuedRuns
from app.lifecycle import RUNS, RunStatus

DEFAULT_MAX_QUEUED = int(DEFAULTS["MAX_QUEUED_RUNS_PER_USER"])
# What the refusal's Retry-After says: a queued run starts once one of the user's running
# runs ends, which no one can foretell; sooner than this, trying again is mostly refused.
RETRY_AFTER_S = 10


def insert_run(session: Session, values: dict[str, Any], *, max_queued: int) -> None:
    """Insert a queued run's row (`values`, every column create_run sets) unless its user
    has `max_queued` queued runs already: then TooManyQueuedRuns, and nothing inserted."""
    statement = _insert(tuple(sorted(values)), session.get_bind().dialect.name)
    inserted = session.execute(
        statement, {**values, "queue_user": values["user_id"], "max_queued": max_queued}
    ).first()
    if inserted is None:
        raise refusal(queued_count(session, values["user_id"]), max_queued=max_queued)


def queued_count(session: Session, user_id: int) -> int:
    """How many runs of the user wait `queued` now."""
    return int(
        session.scalar(
            select(func.count(RUNS.c.id)).where(
                RUNS.c.user_id == user_id, RUNS.c.status == str(RunStatus.QUEUED)
            )
        )
        or 0
    )


def refusal(queued: int, *, max_queued: int) -> TooManyQueuedRuns:
    """The error of a run refused by the cap, saying what to do."""
    return TooManyQueuedRuns(
        f"You have {runs_in_words(queued)} waiting to start (this server queues at most"
        f" {max_queued} per person); wait for them or cancel some on the Runs page, then"
        " start it again",
        queued=queued,
        limit=max_queued,
        retry_after=RETRY_AFTER_S,
    )


def runs_in_words(count: int) -> str:
    """A count of runs in words: 1 run, 2 runs."""
    return f"{count} run" if count == 1 else f"{count} runs"


@functools.cache
def _insert(keys: tuple[str, ...], dialect: str) -> Insert:
    """The run's INSERT ... SELECT <values> WHERE <room in the queue>, built once per shape.

    On PostgreSQL each value is cast to its column's type: a bare parameter in a SELECT
    list has none (a null would be taken for text, which an integer column refuses).
    SQLite's CAST would turn text into numbers (JSON, times): it stores values as given."""
    room: ColumnElement[bool]
    if dialect == "postgresql":
        room = func.scriptbox_queue_room(
            bindparam("queue_user"), bindparam("max_queued"), type_=Boolean
        )
    else:
        queued = (
            select(func.count(RUNS.c.id))
            .where(
                RUNS.c.user_id == bindparam("queue_user"),
                RUNS.c.status == str(RunStatus.QUEUED),
            )
            .scalar_subquery()
        )
        room = queued < bindparam("max_queued")
    values: list[ColumnElement[Any]] = [bindparam(key, type_=RUNS.c[key].type) for key in keys]
    if dialect == "postgresql":
        values = [cast(value, value.type) for value in values]
    row = select(*values).where(room)
    # RETURNING says whether it inserted (psycopg's rowcount of an INSERT ... SELECT is -1).
    return insert(RUNS).from_select(list(keys), row).returning(RUNS.c.id)
