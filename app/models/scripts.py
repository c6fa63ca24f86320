"""Scripts and their runs."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from sqlalchemy import JSON, ForeignKey, Index, LargeBinary, String, Text, false
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base
from app.models._types import UTCDateTime, iso, new_id, utcnow
from sandbox import trace_from_data

# What starts a run: a person on a page or an API call ("manual"), a schedule,
# `scriptbox run --facility` on the server ("terminal"), or a third party's POST to a
# webhook trigger's URL ("webhook"), or a schedule's run that failed, starting the
# schedule's on-failure script ("on_failure"). Only a manual run may wait for an embedding
# app to sign its member in (grant.required): nobody is there for the others.
RunTrigger = Literal["manual", "schedule", "terminal", "webhook", "on_failure"]


class Script(Base):
    """A facility's script; members may run it once it is published."""

    __tablename__ = "scripts"

    id: Mapped[int] = mapped_column(primary_key=True)
    facility_id: Mapped[int] = mapped_column(
        ForeignKey("facilities.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(120))
    description: Mapped[str] = mapped_column(Text, default="")
    source: Mapped[str] = mapped_column(Text, default="")
    published: Mapped[bool] = mapped_column(default=False)
    input_schema: Mapped[Any] = mapped_column(JSON, default=dict)
    # The version members run; the fields above are the scripters' draft. A plain number
    # (not a foreign key) so scripts and versions do not depend on each other to be created.
    published_version: Mapped[int | None]
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class Run(Base):
    """One execution of a script (or of unsaved source from the editor).

    Its `status` is written only by `app.lifecycle` (which also owns the list of states).
    """

    __tablename__ = "runs"
    __table_args__ = (
        Index("ix_runs_facility_created", "facility_id", "created_at"),
        # The caps count live runs per user and per facility (app.runner.threads).
        Index("ix_runs_status_user", "status", "user_id"),
        Index("ix_runs_status_facility", "status", "facility_id"),
        # One on-failure run per failed run, however many processes see it end.
        Index("ix_runs_handles_run_id", "handles_run_id", unique=True),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    facility_id: Mapped[int] = mapped_column(ForeignKey("facilities.id", ondelete="CASCADE"))
    script_id: Mapped[int | None] = mapped_column(
        ForeignKey("scripts.id", ondelete="SET NULL"), index=True
    )
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    source: Mapped[str] = mapped_column(Text)
    input: Mapped[Any] = mapped_column(JSON, nullable=True)
    interactive: Mapped[bool] = mapped_column(default=False)
    status: Mapped[str] = mapped_column(String(20), default="queued")
    result: Mapped[Any] = mapped_column(JSON, nullable=True)
    output: Mapped[str] = mapped_column(Text, default="")
    error_code: Mapped[str | None] = mapped_column(String(40))
    error_message: Mapped[str | None] = mapped_column(Text)
    error_line: Mapped[int | None]
    # Why an integration error happened ("no_master_account", "refused", ...): the words a
    # member reads, and what they can do next, depend on it.
    error_reason: Mapped[str | None] = mapped_column(String(40))
    # The script's own frames of an uncaught exception: [{"line", "name"}], outermost first.
    error_trace: Mapped[Any] = mapped_column(JSON, nullable=True)
    # Which saved version ran (None for unsaved source from the editor).
    version: Mapped[int | None]
    # What started it (RunTrigger): "manual" (a person or an API call), "schedule" (kept
    # when the schedule is deleted: its schedule_id then goes null), "terminal" or "webhook".
    trigger: Mapped[str] = mapped_column(String(16), default="manual", server_default="manual")
    schedule_id: Mapped[int | None] = mapped_column(
        ForeignKey("schedules.id", ondelete="SET NULL"), index=True
    )
    # The webhook trigger that started it (null once the trigger is revoked: `trigger`
    # still says webhook).
    webhook_trigger_id: Mapped[int | None] = mapped_column(
        ForeignKey("webhook_triggers.id", ondelete="SET NULL"), index=True
    )
    # A schedule's retry of a failed run (a plain id: the run it retries may be deleted
    # first), and which attempt of its due time this run is (1 for the due time's own).
    retry_of: Mapped[str | None] = mapped_column(String(32))
    attempt: Mapped[int] = mapped_column(default=1, server_default="1")
    # An on-failure run's failed run (trigger "on_failure"; a plain id: the failed run may
    # be deleted first). Unique: app.services.failure_handlers starts one per failed run.
    handles_run_id: Mapped[str | None] = mapped_column(String(32))
    calls: Mapped[int] = mapped_column(default=0)
    duration_ms: Mapped[float | None]
    # The time a parked run had used (also in its journal, encrypted; not secret): an end
    # without a duration of its own (a cancel while parked) takes it (app.lifecycle).
    parked_duration_ms: Mapped[float | None]
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Durable runs (DESIGN §4): who drives the run and when it last said so, the prompt a
    # paused run waits for, a cancel asked of another process, the vault-encrypted journal.
    driver: Mapped[str | None] = mapped_column(String(64))
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    waiting_grant_id: Mapped[str | None] = mapped_column(String(32), index=True)
    # When its pause for that prompt began (kept while parked): a resumed call's wait for
    # the sign-in runs from there to the prompt's answer.
    paused_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cancel_requested: Mapped[bool] = mapped_column(default=False, server_default=false())
    journal: Mapped[bytes | None] = mapped_column(LargeBinary)

    def to_dict(self) -> dict[str, Any]:
        """The API shape of a run."""
        return run_dict(self)


def trace_dicts(stored: Any) -> list[dict[str, Any]]:
    """A run's stored traceback in its API shape: frames stored before `repeated` and
    `omitted_after` were kept read with both 0, and their repeats folded."""
    return [frame.to_dict() for frame in trace_from_data(stored)]


def run_dict(run: Any) -> dict[str, Any]:
    """The API shape of a run, from a `Run` or from a row of the `runs` table (the run
    engine moves runs with Core statements and answers from the row they return)."""
    error = None
    if run.error_code:
        error = {
            "code": run.error_code,
            "message": run.error_message,
            "line": run.error_line,
            "trace": trace_dicts(run.error_trace),
            "reason": run.error_reason,
        }
    return {
        "id": run.id,
        "script_id": run.script_id,
        "version": run.version,
        "user_id": run.user_id,
        "trigger": run.trigger,
        "schedule_id": run.schedule_id,
        "webhook_trigger_id": run.webhook_trigger_id,
        "retry_of": run.retry_of,
        "attempt": run.attempt,
        "handles_run_id": run.handles_run_id,
        "status": run.status,
        "input": run.input,
        "result": run.result,
        "output": run.output,
        "error": error,
        "calls": run.calls,
        "duration_ms": run.duration_ms,
        "created_at": iso(run.created_at),
        "started_at": iso(run.started_at),
        "finished_at": iso(run.finished_at),
    }
