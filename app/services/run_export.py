"""The runs a member may see as the rows of a file (GET .../runs/export): the runs list's
filters and permissions, newest first, at most MAX_EXPORT_ROWS, read a batch at a time so
a long history is never held whole (read only).

A row holds what the list says about a run, never its source, input, output or result:
those are unbounded (an output alone may be megabytes) and may hold what a script was
given; the run's own page and GET .../runs/<id> show them one run at a time.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func
from sqlalchemy.orm import Session

from app.models import Run, Script, User
from app.services.context import MemberContext
from app.services.run_filters import RunFilters
from app.services.run_history import visible_runs

# The most rows one export holds, the newest first; the answer says when more matched.
MAX_EXPORT_ROWS = 10_000
# Rows read from the database at a time.
BATCH = 500


@dataclass(frozen=True)
class ExportRow:
    """One run as a file's row: its fields and the names of its script and who ran it."""

    id: str
    script_id: int | None
    script: str
    version: int | None
    status: str
    trigger: str
    schedule_id: int | None
    webhook_trigger_id: int | None
    user_id: int
    user: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    duration_ms: float | None
    error_code: str | None
    error_reason: str | None


def count_runs(session: Session, member: MemberContext, *, filters: RunFilters) -> int:
    """How many runs the member may see match `filters` (what an export would hold uncut)."""
    query = visible_runs(member, filters).with_only_columns(func.count(Run.id))
    return session.scalar(query) or 0


def export_rows(
    session: Session,
    member: MemberContext,
    *,
    filters: RunFilters,
    limit: int = MAX_EXPORT_ROWS,
) -> Iterator[ExportRow]:
    """The runs the member may see that match `filters`, newest first, at most `limit`,
    read BATCH rows at a time (a server-side cursor on PostgreSQL)."""
    query = (
        visible_runs(member, filters)
        .with_only_columns(
            Run.id, Run.script_id, Script.name, Run.version, Run.status, Run.trigger,
            Run.schedule_id, Run.webhook_trigger_id, Run.user_id, User.name, Run.created_at,
            Run.started_at, Run.finished_at, Run.duration_ms, Run.error_code, Run.error_reason,
        )
        .outerjoin(Script, Script.id == Run.script_id)
        .join(User, User.id == Run.user_id)
        .order_by(Run.created_at.desc(), Run.id.desc())
        .limit(max(0, min(limit, MAX_EXPORT_ROWS)))
        .execution_options(yield_per=BATCH)
    )
    result = session.execute(query)
    try:
        for row in result:
            (run_id, script_id, script_name, version, status, trigger, schedule_id, hook_id,
             user_id, user_name, created, started, finished, duration, code, reason) = row
            yield ExportRow(
                id=run_id,
                script_id=script_id,
                # As the Runs page names them: a run with a version ran a saved script.
                script=script_name or ("Deleted script" if version else "Editor run"),
                version=version,
                status=status,
                trigger=trigger,
                schedule_id=schedule_id,
                webhook_trigger_id=hook_id,
                user_id=user_id,
                user=user_name,
                created_at=created,
                started_at=started,
                finished_at=finished,
                duration_ms=duration,
                error_code=code,
                error_reason=reason,
            )
    finally:
        result.close()  # a download stopped half way frees its cursor
