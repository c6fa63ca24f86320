"""Retries of failed scheduled runs: which failures are tried again, when, and in words.

A schedule with `retries` (0..3) starts a run of its that failed again, as a new run with
the same input, `retry_delay_s` after it ended, then twice that after a second failure, and
four times that after a third (60 s: 1, 2, 4 min), until a run succeeds or the retries are
spent. Like Windmill's retries this takes any failure, an uncaught exception in the script
too (the upstream's 502 often surfaces as one: `resp.json()` of an error page), but not one
that the same code and input meet again until a person acts (NOT_RETRIED), nor a cancel.

A retry is no timer of any process: it is due when the schedule's last run ended so, and
the schedule firer (every heartbeat tick, app.services.schedule_firing) finds it in the
database, claims it with one conditional UPDATE and starts it with a due time's checks. So
retries survive restarts and run on either executor, and a due time coming first wins:
its run becomes the schedule's last one, and the failed run is no longer retried. Changing,
pausing or resuming the schedule drops a pending retry (app.services.schedules).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from app.errors import InvalidSchedule
from app.lifecycle import RunStatus
from app.models import Run, Schedule

MAX_RETRIES = 3
MIN_DELAY_S = 30
MAX_DELAY_S = 3600
DEFAULT_DELAY_S = 60

# Failures the same code and input meet again until a person acts: retrying spends runs.
NOT_RETRIED = frozenset({
    "no_integration_grant",  # no usable account (not_interactive): someone must connect one
    "unknown_integration",  # the facility has no such integration
    "forbidden_destination",  # the URL leaves the integration's hosts
    "compile_error",
    "forbidden",  # the sandbox's policy refused it
    "quota_exceeded",  # the facility's monthly call quota: spent until next month
    "replay_diverged",
    # The same input uses as much again.
    "memory_limit",
    "cpu_limit",
    "output_limit",
    "call_limit",
})


def check_retries(value: int) -> int:
    """The number of retries, or InvalidSchedule saying what it takes."""
    if not 0 <= value <= MAX_RETRIES:
        raise InvalidSchedule(
            f"retries: {value} is not allowed; give 0 (a failed run waits for the next due"
            f" time) to {MAX_RETRIES} (a failed run is started again up to {MAX_RETRIES}"
            " times)",
            field="retries",
        )
    return value


def check_delay(value: int) -> int:
    """The delay before a first retry in seconds, or InvalidSchedule saying what it takes."""
    if not MIN_DELAY_S <= value <= MAX_DELAY_S:
        raise InvalidSchedule(
            f"retry_delay_s: {value} seconds is not allowed; give {MIN_DELAY_S} to"
            f" {MAX_DELAY_S} (an hour): the seconds between a failed run's end and its first"
            " retry, doubled for each retry after it",
            field="retry_delay_s",
        )
    return value


def delay(delay_s: int, attempt: int) -> timedelta:
    """How long after attempt `attempt` (1: the due time's own run) failed its retry waits."""
    return timedelta(seconds=delay_s * 2 ** (attempt - 1))


def retryable(status: str, error_code: str | None) -> bool:
    """Whether a run that ended so is tried again (attempts remaining)."""
    if status == RunStatus.TIMED_OUT:
        return True
    return status == RunStatus.FAILED and error_code not in NOT_RETRIED


def retry_at(schedule: Schedule, run: Run | None) -> datetime | None:
    """When the retry of the schedule's last run `run` is due; None when none is pending."""
    if (
        run is None
        or not schedule.enabled
        or run.id != schedule.last_run_id
        or run.id == schedule.retried_run_id
        or run.attempt > schedule.retries
        or not retryable(run.status, run.error_code)
    ):
        return None
    return (run.finished_at or run.created_at) + delay(schedule.retry_delay_s, run.attempt)


def describe(retries: int, delay_s: int) -> str:
    """The retries in words: "" for none, else e.g. "retries a failed run up to 3 times,
    after 1 min, 2 min, 4 min"."""
    if retries == 0:
        return ""
    waits = ", ".join(_duration(delay_s * 2**n) for n in range(retries))
    times = "once" if retries == 1 else f"up to {retries} times"
    return f"retries a failed run {times}, after {waits}"


def _duration(seconds: int) -> str:
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"


def pending(session: Session) -> list[Any]:
    """Schedules whose last run failed with retries left and no retry yet: (schedule id,
    its delay, the run's id, attempt, status, error code and times); the caller keeps the
    due ones. Not the run's input (up to 256 KiB, read every tick): a retry reads it."""
    found = session.execute(
        select(
            Schedule.id, Schedule.retry_delay_s, Run.id.label("run_id"), Run.attempt,
            Run.status, Run.error_code, Run.finished_at, Run.created_at,
        )
        .join(Run, Run.id == Schedule.last_run_id)
        .where(
            Schedule.enabled,
            Schedule.retries > 0,
            Run.attempt <= Schedule.retries,
            Run.status.in_([str(RunStatus.FAILED), str(RunStatus.TIMED_OUT)]),
            or_(Schedule.retried_run_id.is_(None), Schedule.retried_run_id != Run.id),
            or_(Run.error_code.is_(None), Run.error_code.not_in(sorted(NOT_RETRIED))),
        )
        .order_by(Schedule.id)
    ).all()
    return [row for row in found if retryable(row.status, row.error_code)]


def due_at(row: Any) -> datetime:
    """When the retry of a `pending` row is due."""
    ended: datetime = row.finished_at or row.created_at
    return ended + delay(row.retry_delay_s, row.attempt)
