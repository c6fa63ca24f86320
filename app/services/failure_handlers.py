"""On-failure runs: a schedule's run that fails for good, or a run a webhook trigger's URL
started that fails, starts the schedule's or trigger's on-failure script once, so a failure
at 03:00 tells somebody (n8n's error workflow, Windmill's schedule error handler).

`FailureHandlers.on_end` is a lifecycle end hook (app.lifecycle.Lifecycle.on_end), called
in whichever process wrote the run's final state: the embedded server's driver thread, a
Celery worker, or the heartbeat's sweep of an interrupted run. A run that ended `failed`
or `timed_out` with no retry of it still to come (app.services.schedule_retries; a
trigger's runs are never retried), or whose pending retry the schedule firer dropped
(`retry_dropped`: skipped, failed to start, or a due time came first), starts one run of
the on-failure script, as the
schedule's (the trigger's) member, with trigger `on_failure`,
`handles_run_id` the failed run and an input describing the failure (`failure_input`).
The column is unique: a redelivered end, or two processes seeing one, start it once.

An on-failure run is no schedule's or trigger's run (its `schedule_id` and
`webhook_trigger_id` are null), so its own failure starts nothing: handlers never chain,
even when one names its own script. A handler that cannot start (deleted, unpublished, its
inputs refuse the failure, its member gone, a version its member did not see) is said on
the schedule or trigger (`on_failure_error`), where its member sees it; the hook never
raises into the run engine.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.errors import AppError, TooManyQueuedRuns, TriggerStopped
from app.lifecycle import RunStatus
from app.models import Facility, Run, Schedule, Script, WebhookTrigger
from app.models._types import iso, utcnow
from app.services import failure_handler_choice, schedule_checks, schedule_retries, triggers
from app.services.context import MemberContext
from app.services.failure_handler_choice import Holder
from app.services.queued_runs import DEFAULT_MAX_QUEUED
from app.services.schedule_checks import Skipped, check_approved, queue_full
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


# Where a run's on-failure script is named: its schedule's or its webhook trigger's row.
HolderKey = tuple[type[Schedule] | type[WebhookTrigger], int]


def holder_key(*, trigger: str | None, schedule_id: int | None,
               webhook_trigger_id: int | None) -> HolderKey | None:
    """The schedule or webhook trigger that started a run (by its `trigger` and ids), whose
    on-failure script its failure starts; None for the runs no failure of starts one (a
    person's, the terminal's, an on-failure run's own)."""
    if trigger == "schedule" and schedule_id is not None:
        return Schedule, schedule_id
    if trigger == "webhook" and webhook_trigger_id is not None:
        return WebhookTrigger, webhook_trigger_id
    return None


class FailureHandlers:
    """Starts a schedule's or webhook trigger's on-failure script when a run of it fails
    for good."""

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
        """The lifecycle's end hook: start the on-failure run of a scheduled or
        trigger-started run that failed for good. Never raises: the run's end must reach
        its pages whatever this does."""
        if run.get("status") not in FAILED:
            return
        key = holder_key(trigger=run.get("trigger"), schedule_id=run.get("schedule_id"),
                         webhook_trigger_id=run.get("webhook_trigger_id"))
        if key is not None:
            self._start_for(run_id, key)

    def retry_dropped(self, run_id: str, schedule_id: int) -> None:
        """The schedule firer's word that the pending retry of the failed run `run_id`
        will never start (skipped, failed to start, or a due time came first): that run
        failed for good, and it is told as a last retry's failure is. Never raises."""
        self._start_for(run_id, (Schedule, schedule_id))

    def _start_for(self, run_id: str, key: HolderKey) -> None:
        try:
            started = self.handle(run_id)
        except Exception:  # said on the schedule or trigger: never lost in a log alone
            log.exception("%s %s: the on-failure run of run %s failed",
                          key[0].__tablename__, key[1], run_id)
            self._record(key, START_FAILED)
            return
        if started is None:
            return
        try:
            self._submit(started)
        except Exception:  # committed queued: the heartbeat's dispatch of queued runs takes it
            log.exception("%s %s: could not hand on-failure run %s to the queue",
                          key[0].__tablename__, key[1], started)

    def handle(self, run_id: str) -> str | None:
        """Start the on-failure run of the ended run `run_id` if it is due: the new run's
        id, or None (no handler, a retry still to come, started already, or it could not
        start: the schedule or trigger then says why)."""
        try:
            with self._session_factory() as session, session.begin():
                return self._handle(session, run_id)
        except IntegrityError:  # another process started it first (handles_run_id)
            return None

    def _handle(self, session: Session, run_id: str) -> str | None:
        failed = session.get(Run, run_id)
        if failed is None or failed.status not in FAILED:
            return None
        key = holder_key(trigger=failed.trigger, schedule_id=failed.schedule_id,
                         webhook_trigger_id=failed.webhook_trigger_id)
        holder = _holder(session, key) if key is not None else None
        if holder is None or holder.on_failure_script_id is None:
            return None
        if isinstance(holder, Schedule) and schedule_retries.retry_at(holder, failed):
            return None  # its retry will tell, if it fails too (a trigger's has none)
        if session.scalar(select(Run.id).where(Run.handles_run_id == run_id)) is not None:
            return None  # seen before (a redelivered end)
        try:
            started = self._start(session, holder, failed)
        except NotStarted as refused:
            holder.on_failure_error, holder.on_failure_error_at = refused.message, utcnow()
            log.info("%s %s: no on-failure run: %s", holder.__tablename__, holder.id,
                     refused.message)
            return None
        holder.on_failure_error = holder.on_failure_error_at = None
        return started

    def _start(self, session: Session, holder: Holder, failed: Run) -> str:
        handler_id = holder.on_failure_script_id
        handler = session.get(Script, handler_id) if handler_id is not None else None
        if handler is None or handler.facility_id != holder.facility_id:
            raise NotStarted(
                f"its on-failure script (id {handler_id}) was deleted: choose another one,"
                f" or none, for run {failed.id} and the next failures to be handled"
            )
        if not handler.published:
            raise NotStarted(
                f"its on-failure script {handler.name} is not published: publish it, or"
                " choose another, for the next failures to be handled"
            )
        member = _runs_as(session, holder, handler)
        try:
            run = create_run(
                session,
                member,
                script_id=handler.id,
                source=None,
                run_input=self.failure_input(session, holder, failed),
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

    def failure_input(self, session: Session, holder: Holder, failed: Run) -> dict[str, Any]:
        """What the on-failure run gets as its input: the failed run, its script, the
        schedule or webhook trigger that started it (the other null), and its page."""
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
            "schedule_id": holder.id if isinstance(holder, Schedule) else None,
            "webhook_trigger_id": holder.id if isinstance(holder, WebhookTrigger) else None,
            "started_at": iso(failed.started_at),
            "finished_at": iso(failed.finished_at),
            "url": f"{self._public_url().rstrip('/')}/f/{slug}/runs/{failed.id}",
        }

    def _record(self, key: HolderKey, message: str) -> None:
        try:
            with self._session_factory() as session, session.begin():
                holder = _holder(session, key)
                if holder is not None:
                    holder.on_failure_error, holder.on_failure_error_at = message, utcnow()
        except Exception:  # the database itself is away
            log.exception("%s %s: could not record its on-failure error",
                          key[0].__tablename__, key[1])


def _holder(session: Session, key: HolderKey) -> Holder | None:
    model, holder_id = key
    if model is Schedule:
        return session.get(Schedule, holder_id)
    return session.get(WebhookTrigger, holder_id)


def _runs_as(session: Session, holder: Holder, handler: Script) -> MemberContext:
    """The member the on-failure run runs as, if they may run the handler's published
    version now, by the holder's own rule: a schedule's member saw it when they last set
    up, changed or resumed it; a trigger's when they named it or last approved the
    trigger. Else NotStarted, saying why."""
    if isinstance(holder, Schedule):
        try:
            member = schedule_checks.runs_as(session, holder)
            check_approved(session, holder, handler, member, approved=holder.on_failure_version)
        except Skipped as skipped:
            raise NotStarted(
                f"its on-failure script {handler.name} did not run: {skipped}"
            ) from None
        return member
    try:
        member = triggers.runs_as(session, holder)
    except TriggerStopped as stopped:
        raise NotStarted(
            f"its on-failure script {handler.name} did not run: {stopped.message}"
        ) from None
    number = failure_handler_choice.handler_to_approve(session, holder)
    if number is not None:
        raise NotStarted(
            f"its on-failure script {handler.name} did not run: its version {number} was"
            f" published by another scripter after {member.user.name} chose it or last"
            f" approved this trigger, and its runs run as them: {member.user.name} must"
            " approve the trigger in the script's Triggers panel"
        )
    return member
