"""On-failure runs: a schedule's run that fails for good starts the schedule's on-failure
script once, so a failure at 03:00 tells somebody (n8n's error workflow, Windmill's
schedule error handler).

`FailureHandlers.on_end` is a lifecycle end hook (app.lifecycle.Lifecycle.on_end), called
in whichever process wrote the run's final state: the embedded server's driver thread, a
Celery worker, or the heartbeat's sweep of an interrupted run. A run that ended `failed`
or `timed_out` with no retry of it still to come (app.services.schedule_retries) starts
one run of the on-failure script, as the schedule's member, with trigger `on_failure`,
`handles_run_id` the failed run and an input describing the failure (`failure_input`).
The column is unique: a redelivered end, or two processes seeing one, start it once.

An on-failure run is no schedule's run (its `schedule_id` is null), so its own failure
starts nothing: handlers never chain, even when a schedule names its own script. A handler
that cannot start (deleted, unpublished, its inputs refuse the failure, its member gone,
a version its member did not see) is said on the schedule (`on_failure_error`), where its
member sees it; the hook never raises into the run engine.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.errors import AppError, TooManyQueuedRuns
from app.lifecycle import RunStatus
from app.models import Facility, Run, Schedule, Script
from app.models._types import iso, utcnow
from app.services import schedule_retries
from app.services.queued_runs import DEFAULT_MAX_QUEUED
from app.services.schedule_firing import Skipped, check_approved, queue_full, runs_as
from app.services.scripts import create_run

log = logging.getLogger(__name__)

# The ends that are failures (a cancel is somebody's choice, not a failure).
FAILED = frozenset({str(RunStatus.FAILED), str(RunStatus.TIMED_OUT)})
START_FAILED = (
    "the server failed to start the on-failure run (the error is in its log); if it keeps"
    " happening, tell the server's operator"
)


class NotStarted(Exception):
    """The on-failure script could not start, and why (said on the schedule)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class FailureHandlers:
    """Starts a schedule's on-failure script when a run of it fails for good."""

    def __init__(
        self,
        *,
        session_factory: Callable[[], Session],
        submit: Callable[[str], None],
        public_url: Callable[[], str],
        max_queued: int = DEFAULT_MAX_QUEUED,
    ) -> None:
        """`submit(run_id)` hands the on-failure run to the run queue once committed;
        `public_url()` is the server's base URL, for the failed run's page."""
        self._session_factory = session_factory
        self._submit = submit
        self._public_url = public_url
        self._max_queued = max_queued

    def on_end(self, run_id: str, run: dict[str, Any]) -> None:
        """The lifecycle's end hook: start the on-failure run of a scheduled run that
        failed for good. Never raises: the run's end must reach its pages whatever this does."""
        if run.get("trigger") != "schedule" or run.get("status") not in FAILED:
            return
        schedule_id = run.get("schedule_id")
        if schedule_id is None:
            return
        try:
            started = self.handle(run_id)
        except Exception:  # said on the schedule: never lost in a log alone
            log.exception("schedule %s: the on-failure run of run %s failed", schedule_id, run_id)
            self._record(schedule_id, START_FAILED)
            return
        if started is None:
            return
        try:
            self._submit(started)
        except Exception:  # committed queued: the heartbeat's dispatch of queued runs takes it
            log.exception("schedule %s: could not hand on-failure run %s to the queue",
                          schedule_id, started)

    def handle(self, run_id: str) -> str | None:
        """Start the on-failure run of the ended run `run_id` if it is due: the new run's
        id, or None (no handler, a retry still to come, started already, or it could not
        start: the schedule then says why)."""
        try:
            with self._session_factory() as session, session.begin():
                return self._handle(session, run_id)
        except IntegrityError:  # another process started it first (handles_run_id)
            return None

    def _handle(self, session: Session, run_id: str) -> str | None:
        failed = session.get(Run, run_id)
        if failed is None or failed.schedule_id is None or failed.status not in FAILED:
            return None
        schedule = session.get(Schedule, failed.schedule_id)
        if schedule is None or schedule.on_failure_script_id is None:
            return None
        if schedule_retries.retry_at(schedule, failed) is not None:
            return None  # its retry will tell, if it fails too
        if session.scalar(select(Run.id).where(Run.handles_run_id == run_id)) is not None:
            return None  # seen before (a redelivered end)
        try:
            started = self._start(session, schedule, failed)
        except NotStarted as refused:
            schedule.on_failure_error, schedule.on_failure_error_at = refused.message, utcnow()
            log.info("schedule %s: no on-failure run: %s", schedule.id, refused.message)
            return None
        schedule.on_failure_error = schedule.on_failure_error_at = None
        return started

    def _start(self, session: Session, schedule: Schedule, failed: Run) -> str:
        handler_id = schedule.on_failure_script_id
        handler = session.get(Script, handler_id) if handler_id is not None else None
        if handler is None or handler.facility_id != schedule.facility_id:
            raise NotStarted(
                f"its on-failure script (id {handler_id}) was deleted: choose another one,"
                f" or none, for run {failed.id} and the next failures to be handled"
            )
        if not handler.published:
            raise NotStarted(
                f"its on-failure script {handler.name} is not published: publish it, or"
                " choose another, for the next failures to be handled"
            )
        try:
            member = runs_as(session, schedule)
            check_approved(
                session, schedule, handler, member, approved=schedule.on_failure_version
            )
        except Skipped as skipped:
            raise NotStarted(
                f"its on-failure script {handler.name} did not run: {skipped}"
            ) from None
        try:
            run = create_run(
                session,
                member,
                script_id=handler.id,
                source=None,
                run_input=self.failure_input(session, schedule, failed),
                interactive=False,  # nobody can answer a sign-in prompt
                max_queued=self._max_queued,
                handles_run_id=failed.id,
            )
        except TooManyQueuedRuns as full:
            raise NotStarted(queue_full(member, full)) from None
        except AppError as refused:
            raise NotStarted(
                f"its on-failure script {handler.name} refused the failure of run"
                f" {failed.id}: {refused.message}"
            ) from None
        return run.id

    def failure_input(self, session: Session, schedule: Schedule, failed: Run) -> dict[str, Any]:
        """What the on-failure run gets as its input: the failed run, its script and
        schedule, and the failed run's page."""
        script_name = session.scalar(select(Script.name).where(Script.id == failed.script_id))
        slug = session.scalar(select(Facility.slug).where(Facility.id == failed.facility_id))
        return {
            "run_id": failed.id,
            "status": failed.status,
            "error_code": failed.error_code,
            "error": failed.error_message,
            "attempt": failed.attempt,
            "script_id": failed.script_id,
            "script_name": script_name,
            "schedule_id": schedule.id,
            "started_at": iso(failed.started_at),
            "finished_at": iso(failed.finished_at),
            "url": f"{self._public_url().rstrip('/')}/f/{slug}/runs/{failed.id}",
        }

    def _record(self, schedule_id: int, message: str) -> None:
        try:
            with self._session_factory() as session, session.begin():
                schedule = session.get(Schedule, schedule_id)
                if schedule is not None:
                    schedule.on_failure_error, schedule.on_failure_error_at = message, utcnow()
        except Exception:  # the database itself is away
            log.exception("schedule %s: could not record its on-failure error", schedule_id)
