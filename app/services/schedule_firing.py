"""Firing due schedules: exactly once per due time, across any number of processes.

Every process's heartbeat tick (the embedded server's, each gunicorn worker's, each
Celery worker process's; in a cluster one process per beat: app.distributed.sweep_turns)
calls `ScheduleFirer.fire_due`. A due schedule is *claimed* with one conditional UPDATE
that moves `next_run_at` from the value read to the next due time: on PostgreSQL a
second claimer of the same row waits for the first one's commit, then finds the value
moved and updates nothing; SQLite runs one writer at a time. The claim, the checks and
the run's row are one transaction, so a due time either starts its run or records why
not, never both and never twice.

The next due time is the first one after *now*, not after the claimed one: a server that
was down across several due times fires once when it is back, then keeps to the calendar.
The run is queued like any other (the caps apply) and is not interactive: a call that
would need a sign-in raises `no_integration_grant` with reason `not_interactive`.

Queued runs do not pile up: while a schedule's last run still waits `queued` (its member
or facility is at its cap of live runs), a due time starts no other and is recorded as
skipped (`previous_run_waiting`), so a schedule has at most one run waiting whatever its
cron says. While its member has as many runs queued as the server keeps for one person
(SCRIPTBOX_MAX_QUEUED_RUNS_PER_USER, their API runs too), a due time is skipped
(`too_many_queued`), saying so. There is no quota of runs: the facility's monthly *call*
quota is its calls', so a run starts whatever it says, and its calls past the quota fail
`quota_exceeded` in the run, as any run's do. A due time the server fails to start (an
unexpected error) is recorded as skipped (`start_failed`) and the schedule moves on to
its next due time: it is not tried again every tick.

A run of a schedule that failed is started again, after a delay, up to the schedule's
`retries` (app.services.schedule_retries): after the due times, each tick claims the due
retries with one conditional UPDATE each (the schedule's `retried_run_id` moves to the
failed run's id) and starts them with a due time's checks, so two processes never start
the same retry and a retry never runs what a due time would refuse. A pending retry that
will never start (skipped, failed to start, or a due time came first) leaves its failed
run failed for good: the firer says so (`retry_dropped`), and the schedule's on-failure
script starts for it (app.services.failure_handlers).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Update, or_, select, update
from sqlalchemy.orm import Session

from app.errors import AppError, TooManyQueuedRuns
from app.lifecycle import RunStatus
from app.models import Run, Schedule, Script
from app.models._types import utcnow
from app.services import cron_times, schedule_retries
from app.services.queued_runs import DEFAULT_MAX_QUEUED
from app.services.schedule_checks import Skipped, Waiting, check_approved, queue_full, runs_as
from app.services.scripts import create_run

log = logging.getLogger(__name__)
_BATCH = 100


START_FAILED = (
    "the server failed to start this run (the error is in its log); the schedule goes on"
    " at its next due time. If it keeps happening, tell the server's operator"
)


class ScheduleFirer:
    """Finds due schedules and starts their runs (a heartbeat tick listener)."""

    def __init__(
        self,
        *,
        session_factory: Callable[[], Session],
        submit: Callable[[str], None],
        clock: Callable[[], datetime] = utcnow,
        max_queued: int = DEFAULT_MAX_QUEUED,
        retry_dropped: Callable[[str, int], None] | None = None,
    ) -> None:
        """`submit(run_id)` hands a queued run to the run queue once its row is committed;
        `max_queued` is SCRIPTBOX_MAX_QUEUED_RUNS_PER_USER; `retry_dropped(run_id,
        schedule_id)` hears, once committed, of a failed run whose pending retry will
        never start."""
        self._session_factory = session_factory
        self._submit = submit
        self._clock = clock
        self._max_queued = max_queued
        self._retry_dropped = retry_dropped

    def fire_due(self) -> int:
        """Fire every schedule due now (once each); how many runs started."""
        now = self._clock()
        with self._session_factory() as session:
            due = session.execute(
                select(Schedule.id, Schedule.next_run_at, Schedule.cron, Schedule.timezone)
                .where(Schedule.next_run_at <= now)
                .order_by(Schedule.next_run_at)
                .limit(_BATCH)
            ).all()
        started = 0
        for row in due:
            try:
                run_id = self.fire(
                    row.id, due_at=row.next_run_at, cron=row.cron, zone=row.timezone, now=now
                )
            except Exception:  # one schedule's failure must not hold back the others
                log.exception("schedule %s could not fire", row.id)
                self._record_failure(
                    row.id, due_at=row.next_run_at, cron=row.cron, zone=row.timezone, now=now
                )
                continue
            if run_id is not None:
                self._submit(run_id)
                started += 1
        # After the due times: one that fired made its run the schedule's last, which
        # drops the retry of the run before (the due time wins).
        return started + self.fire_retries(now)

    def fire_retries(self, now: datetime) -> int:
        """Start every retry of a failed scheduled run due at `now` (once each); how many."""
        with self._session_factory() as session:
            due = [
                row for row in schedule_retries.pending(session)
                if schedule_retries.due_at(row) <= now
            ][:_BATCH]
        started = 0
        for row in due:
            try:
                run_id = self.retry(row.id, failed=row.run_id, attempt=row.attempt + 1)
            except Exception:  # one schedule's failure must not hold back the others
                log.exception("schedule %s could not retry run %s", row.id, row.run_id)
                if self._record_retry_failure(row.id, failed=row.run_id):
                    self._dropped(row.run_id, row.id)
                continue
            if run_id is not None:
                self._submit(run_id)
                started += 1
        return started

    def retry(self, schedule_id: int, *, failed: str, attempt: int) -> str | None:
        """Claim the retry of the schedule's failed last run `failed` and start it as
        attempt `attempt` with that run's input; the new run's id, or None when another
        process claimed it first, a due time came first, or it was skipped (the schedule
        then says why, in a due time's words)."""
        with self._session_factory() as session, session.begin():
            claimed = session.execute(
                _retry_pending(schedule_id, failed=failed)
                .values(retried_run_id=failed)
                .execution_options(synchronize_session=False)
            ).rowcount  # type: ignore[attr-defined]
            if claimed != 1:
                return None
            schedule = session.get(Schedule, schedule_id, populate_existing=True)
            assert schedule is not None  # claimed in this transaction, so it is there
            found = session.execute(select(Run.input).where(Run.id == failed)).first()
            if found is None:  # deleted since it was read (by a member): nothing to retry
                return None
            run_id = self._started(
                session, schedule, run_input=found.input, retry_of=failed, attempt=attempt
            )
            skipped = run_id is None and schedule.last_run_id is None  # not waiting
        if skipped:
            self._dropped(failed, schedule_id)
        return run_id

    def _record_retry_failure(self, schedule_id: int, *, failed: str) -> bool:
        """Settle a retry that failed to start, saying so, as a due time's is: it would
        otherwise fail again every tick. Whether this process settled it."""
        return self._record_start_failed(
            schedule_id,
            "retry",
            lambda: _retry_pending(schedule_id, failed=failed).values(retried_run_id=failed),
        )

    def fire(
        self, schedule_id: int, *, due_at: datetime, cron: str, zone: str, now: datetime
    ) -> str | None:
        """Claim the due time `due_at` of a schedule read with `cron` and `zone`, and start
        its run; the run's id, or None when another process claimed it first or the due
        time was skipped (the schedule then says why)."""
        following = cron_times.next_time(cron, zone, after=max(now, due_at))
        with self._session_factory() as session, session.begin():
            claimed = session.execute(
                _still_due(schedule_id, due_at=due_at, cron=cron, zone=zone)
                .values(next_run_at=following, last_due_at=due_at)
                .execution_options(synchronize_session=False)
            ).rowcount  # type: ignore[attr-defined]
            if claimed != 1:
                return None
            schedule = session.get(Schedule, schedule_id, populate_existing=True)
            assert schedule is not None  # claimed in this transaction, so it is there
            dropped = _retry_to_come(session, schedule)
            run_id = self._started(session, schedule, run_input=schedule.input)
        if dropped is not None:  # this due time took its place (or was skipped)
            self._dropped(dropped, schedule_id)
        return run_id

    def _dropped(self, run_id: str, schedule_id: int) -> None:
        """Tell of the failed run `run_id` whose pending retry will never start."""
        if self._retry_dropped is None:
            return
        try:
            self._retry_dropped(run_id, schedule_id)
        except Exception:  # the tick goes on: the other schedules are not held back
            log.exception("schedule %s: could not tell of run %s's dropped retry",
                          schedule_id, run_id)

    def _started(self, session: Session, schedule: Schedule, **run: Any) -> str | None:
        """Start a claimed run of the schedule (a due time's or a retry's) and record it as
        its last run, or record why it was skipped (None)."""
        try:
            run_id = self._start(session, schedule, **run)
        except Skipped as skipped:
            # A waiting run stays the schedule's last run (the one that has not started).
            schedule.last_run_id = skipped.run_id if isinstance(skipped, Waiting) else None
            schedule.last_skip, schedule.last_skip_message = skipped.reason, skipped.message
            log.info("schedule %s skipped a run: %s", schedule.id, skipped.message)
            return None
        schedule.last_run_id = run_id
        schedule.last_skip = schedule.last_skip_message = None
        return run_id

    def _record_failure(
        self, schedule_id: int, *, due_at: datetime, cron: str, zone: str, now: datetime
    ) -> None:
        """Move a schedule whose due time failed to start past it, saying so: its claim was
        rolled back with the failure, and it would otherwise fail again every tick."""
        self._record_start_failed(
            schedule_id,
            "due time",
            lambda: _still_due(schedule_id, due_at=due_at, cron=cron, zone=zone).values(
                next_run_at=cron_times.next_time(cron, zone, after=max(now, due_at)),
                last_due_at=due_at,
                last_run_id=None,
            ),
        )

    def _record_start_failed(
        self, schedule_id: int, what: str, claim: Callable[[], Update]
    ) -> bool:
        """Record on the schedule that its `what` (a due time, a retry) failed to start,
        with the UPDATE `claim()` makes (built inside the try: working out the next due
        time may fail too), which matches only while nobody settled it first. Whether
        it matched."""
        try:
            with self._session_factory() as session, session.begin():
                settled = session.execute(
                    claim()
                    .values(last_skip="start_failed", last_skip_message=START_FAILED)
                    .execution_options(synchronize_session=False)
                ).rowcount  # type: ignore[attr-defined]
        except Exception:  # the database itself is away: the next tick tries again
            log.exception("schedule %s: could not record its failed %s", schedule_id, what)
            return False
        return bool(settled == 1)

    def _start(
        self,
        session: Session,
        schedule: Schedule,
        *,
        run_input: Any,
        retry_of: str | None = None,
        attempt: int = 1,
    ) -> str:
        member = runs_as(session, schedule)
        script = session.get(Script, schedule.script_id)
        if script is None:
            raise Skipped("script_deleted", "the script was deleted")
        if not script.published:
            raise Skipped(
                "script_unpublished", f"{script.name} is not published: publish it to resume"
            )
        check_approved(session, schedule, script, member, approved=schedule.approved_version)
        waiting = session.scalar(
            select(Run.id)
            .where(
                # (status, facility_id) is indexed: a facility's queued runs are few.
                Run.status == str(RunStatus.QUEUED),
                Run.facility_id == schedule.facility_id,
                Run.schedule_id == schedule.id,
            )
            .limit(1)
        )
        if waiting is not None:
            raise Waiting(waiting)
        try:
            run = create_run(
                session,
                member,
                script_id=script.id,
                source=None,
                run_input=run_input,
                interactive=False,  # nobody can answer a sign-in prompt
                schedule_id=schedule.id,
                max_queued=self._max_queued,
                retry_of=retry_of,
                attempt=attempt,
            )
        except TooManyQueuedRuns as full:
            raise Skipped("too_many_queued", queue_full(member, full)) from None
        except AppError as refused:
            raise Skipped("run_refused", f"the run was refused: {refused.message}") from None
        return run.id


def _retry_to_come(session: Session, schedule: Schedule) -> str | None:
    """The schedule's failed last run whose retry is still to come, if the schedule has an
    on-failure script to tell when that retry is dropped; else None."""
    if schedule.on_failure_script_id is None or schedule.retries == 0:
        return None
    if schedule.last_run_id is None or schedule.retried_run_id == schedule.last_run_id:
        return None
    last = session.get(Run, schedule.last_run_id)
    if last is None or schedule_retries.retry_at(schedule, last) is None:
        return None
    return last.id


def _still_due(schedule_id: int, *, due_at: datetime, cron: str, zone: str) -> Update:
    """An UPDATE of the schedule that matches only while it is as it was read: due at
    `due_at`, with `cron` and `zone` (changed meanwhile, its next time was counted from
    what it is now), so one claimer of a due time updates it and any other nothing."""
    return update(Schedule).where(
        Schedule.id == schedule_id,
        Schedule.next_run_at == due_at,
        Schedule.cron == cron,
        Schedule.timezone == zone,
    )


def _retry_pending(schedule_id: int, *, failed: str) -> Update:
    """An UPDATE of the schedule that matches only while the retry of `failed` is pending:
    it is still the schedule's last run (no due time came first) and nobody claimed its
    retry, so one claimer starts it and any other updates nothing."""
    return update(Schedule).where(
        Schedule.id == schedule_id,
        Schedule.enabled.is_(True),
        Schedule.last_run_id == failed,
        or_(Schedule.retried_run_id.is_(None), Schedule.retried_run_id != failed),
    )
