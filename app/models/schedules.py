"""Schedules: a published script run by cron in a time zone, as the member who made it."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, get_args

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base
from app.models._types import UTCDateTime, utcnow

# Why a due time started no run (the schedule records it, the API and the page show it).
SkipReason = Literal[
    "owner_removed",  # its member left the facility, or the user is gone or disabled
    "owner_demoted",  # its member no longer has the scripter role
    "script_unpublished",
    "script_deleted",
    "run_refused",  # the run was refused (its input no longer fits the script's inputs)
    "previous_run_waiting",  # its last run is still queued (the caps): no pile of them
    "too_many_queued",  # its member has MAX_QUEUED_RUNS_PER_USER runs queued already
    "start_failed",  # the server failed starting it (logged); tried at the next due time
    "script_changed",  # a version its member did not see was published by someone else
]
SKIP_REASONS: tuple[SkipReason, ...] = get_args(SkipReason)


class Schedule(Base):
    """A cron expression in a time zone that starts runs of a published script.

    `next_run_at` is the next due time (UTC), null while paused. A process fires a due
    schedule by moving it, with one conditional UPDATE, from the value it read to the next
    one (app.services.schedule_firing): two processes never fire the same due time.
    """

    __tablename__ = "schedules"
    __table_args__ = (Index("ix_schedules_next_run_at", "next_run_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    facility_id: Mapped[int] = mapped_column(
        ForeignKey("facilities.id", ondelete="CASCADE"), index=True
    )
    # Deleting a script deletes its schedules: nothing is left to fire or to show.
    script_id: Mapped[int] = mapped_column(
        ForeignKey("scripts.id", ondelete="CASCADE"), index=True
    )
    # Whom its runs run as; a user deleted from the server leaves it null (it then skips).
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    cron: Mapped[str] = mapped_column(String(120))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    input: Mapped[Any] = mapped_column(JSON, nullable=True)
    enabled: Mapped[bool] = mapped_column(default=True)
    # The published version its member last saw (setting it up, changing or resuming it):
    # a version published since by someone else does not run as them until they do again.
    approved_version: Mapped[int | None]
    next_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The last due time claimed, and what came of it: a run, or why none started. The
    # run id is a plain value (runs point back here with their schedule_id).
    last_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_run_id: Mapped[str | None] = mapped_column(String(32))
    last_skip: Mapped[str | None] = mapped_column(String(40))
    last_skip_message: Mapped[str | None] = mapped_column(Text)
    # A failed run of its is started again up to `retries` times, `retry_delay_s` after it
    # ended (doubling each time): app.services.schedule_retries. `retried_run_id` is the last
    # run whose retry was dealt with (started, skipped, or dropped by a change of the
    # schedule): a retry is claimed by moving it to the failed run's id, once.
    retries: Mapped[int] = mapped_column(default=0, server_default="0")
    retry_delay_s: Mapped[int] = mapped_column(default=60, server_default="60")
    retried_run_id: Mapped[str | None] = mapped_column(String(32))
    # A script of the facility started once for each of its runs that fails for good (no
    # retry to come), as its member: app.services.failure_handlers. A plain number, not a
    # foreign key: a handler deleted since is said where its member sees it, not forgotten.
    # `on_failure_version` is the handler's published version its member saw (as
    # `approved_version` is the script's); `on_failure_error` why the last handler run
    # could not start, and when (cleared when one starts, or the handler is changed).
    on_failure_script_id: Mapped[int | None]
    on_failure_version: Mapped[int | None]
    on_failure_error: Mapped[str | None] = mapped_column(Text)
    on_failure_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    def approve(self, version: int | None) -> None:
        """Its member agreed to run `version` (the script's published one): a due time
        skipped because the member had not seen it says so no longer."""
        self.approved_version = version
        if self.last_skip == "script_changed":
            self.last_skip = self.last_skip_message = None
