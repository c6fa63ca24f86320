"""Schedules of a script: list, create, change, pause, delete (flush, never commit).

Scripters and admins manage them. A schedule runs as the member who created it, so only
they or an admin may change or delete it; it starts the script's published version, so
the script must be published when a schedule is made.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.config import DEFAULTS
from app.errors import Conflict, Forbidden
from app.lifecycle import RunStatus
from app.models import Role, Run, Schedule, Script
from app.models._types import utcnow
from app.services import (
    cron_times,
    failure_handler_choice,
    inputs,
    people,
    schedule_retries,
    script_parts,
    versions,
)
from app.services.context import MemberContext
from app.services.scripts import check_input_size


@dataclass(frozen=True)
class ScheduleCaps:
    """How many schedules a script and a facility may have (SCRIPTBOX_MAX_SCHEDULES_*)."""

    per_script: int = int(DEFAULTS["MAX_SCHEDULES_PER_SCRIPT"])
    per_facility: int = int(DEFAULTS["MAX_SCHEDULES_PER_FACILITY"])

    @classmethod
    def of(cls, config: Mapping[str, Any]) -> ScheduleCaps:
        """The caps an app's configuration sets."""
        return cls(
            per_script=int(config["MAX_SCHEDULES_PER_SCRIPT"]),
            per_facility=int(config["MAX_SCHEDULES_PER_FACILITY"]),
        )


# How many coming due times a schedule shows.
SHOWN_TIMES = 3
# "Keep the old value" for a PATCH field whose null is a value of its own (the input).
KEEP: Any = object()


@dataclass(frozen=True)
class ScheduleView:
    """A schedule with what is said about it: its words, coming times and last run."""

    schedule: Schedule
    description: str
    next_times: list[datetime]
    last_run: Run | None
    # Why its last due time started no run, as (reason, message), while that still holds.
    last_skip: tuple[str, str | None] | None
    # Its retries in words ("" for none), and when the retry of its failed last run is due.
    retries_description: str = ""
    retry_at: datetime | None = None
    # A version of its on-failure script another scripter published since its member
    # chose it or last set up the schedule: no failure starts it until they approve it.
    handler_to_approve: int | None = None


def require_scripter(member: MemberContext) -> None:
    """Forbidden unless the member is a scripter or an admin (who manage and see schedules)."""
    if not member.can(Role.scripter):
        raise Forbidden("managing schedules needs the scripter role")


def _require_owner_or_admin(member: MemberContext, schedule: Schedule) -> None:
    if schedule.created_by != member.user.id and not member.can(Role.admin):
        raise Forbidden(
            "this schedule runs as the member who created it: only they or an admin may"
            " change or delete it"
        )


def list_schedules(session: Session, member: MemberContext, script: Script) -> list[Schedule]:
    """The script's schedules, oldest first (scripters and admins)."""
    require_scripter(member)
    return script_parts.parts_of(session, Schedule, member, script)


def get_schedule(
    session: Session, member: MemberContext, script: Script, schedule_id: int
) -> Schedule:
    """One schedule of the script (NotFound for another script's or facility's)."""
    require_scripter(member)
    return script_parts.part_of(
        session, Schedule, member, script, schedule_id, missing="no such schedule"
    )


def create_schedule(
    session: Session,
    member: MemberContext,
    script: Script,
    *,
    cron: str,
    timezone: str = "UTC",
    run_input: Any = None,
    enabled: bool = True,
    retries: int = 0,
    retry_delay_s: int = schedule_retries.DEFAULT_DELAY_S,
    on_failure_script_id: int | None = None,
    now: datetime | None = None,
    caps: ScheduleCaps = ScheduleCaps(),
) -> Schedule:
    """A new schedule of a published script that runs as `member`, within `caps` (a 409
    past either: a paused schedule counts, as it may be resumed)."""
    require_scripter(member)
    if not script.published:
        raise Conflict(
            "publish the script first: a schedule runs its published version", field="script_id"
        )
    people.hold_facility(session, member.facility.id)
    on_script, in_facility = session.execute(
        select(
            func.count().filter(Schedule.script_id == script.id),
            func.count(),
        ).where(Schedule.facility_id == member.facility.id)
    ).one()
    if on_script >= caps.per_script:
        raise Conflict(
            f"a script has at most {caps.per_script} schedules: delete one it no longer needs"
            " (paused ones count too), or put what they share in one cron expression"
        )
    if in_facility >= caps.per_facility:
        raise Conflict(
            f"a facility has at most {caps.per_facility} schedules: delete ones it no longer"
            " needs (paused ones count too), or ask the server's operator to raise"
            " SCRIPTBOX_MAX_SCHEDULES_PER_FACILITY"
        )
    cron = cron_times.check_cron(cron)
    cron_times.check_zone(timezone)
    schedule = Schedule(
        retries=schedule_retries.check_retries(retries),
        retry_delay_s=schedule_retries.check_delay(retry_delay_s),
        facility_id=member.facility.id,
        script_id=script.id,
        created_by=member.user.id,
        cron=cron,
        timezone=timezone,
        input=_checked_input(session, script, run_input),
        enabled=enabled,
        approved_version=script.published_version,  # what its member sees now
    )
    failure_handler_choice.choose(session, member, schedule, on_failure_script_id)
    _set_next(schedule, now or utcnow())
    session.add(schedule)
    session.flush()
    return schedule


def update_schedule(
    session: Session,
    member: MemberContext,
    schedule: Schedule,
    *,
    cron: str | None = None,
    timezone: str | None = None,
    run_input: Any = KEEP,
    enabled: bool | None = None,
    retries: int | None = None,
    retry_delay_s: int | None = None,
    on_failure_script_id: int | None = KEEP,
    now: datetime | None = None,
) -> Schedule:
    """Change a schedule's cron, time zone, input, retries, on-failure script (None: none),
    or pause/resume it (its creator or an admin). Its next due time is counted again from
    now, and a pending retry of its last run is dropped: the schedule is not what that run
    ran as any more. A change by its creator also approves the script's published version
    as it is now (`approved_version`), and its on-failure script's (`on_failure_version`);
    an admin's does not, since the runs run as the creator."""
    require_scripter(member)
    _require_owner_or_admin(member, schedule)
    script = session.get(Script, schedule.script_id)
    assert script is not None  # a schedule goes with its script (ON DELETE CASCADE)
    if schedule.created_by == member.user.id:
        schedule.approve(script.published_version)
        if on_failure_script_id is KEEP:
            # The on-failure script's version as it is now, as the script's own above.
            failure_handler_choice.approve_current(session, schedule)
    if on_failure_script_id is not KEEP:
        failure_handler_choice.choose(session, member, schedule, on_failure_script_id)
    if cron is not None:
        schedule.cron = cron_times.check_cron(cron)
    # A zone sent as it is stored is no change: a schedule kept from before legacy names
    # (EST) were refused can still have its cron or input changed by a client that sends
    # the whole schedule back.
    if timezone is not None and timezone != schedule.timezone:
        cron_times.check_zone(timezone)
        schedule.timezone = timezone
    if run_input is not KEEP:
        schedule.input = _checked_input(session, script, run_input)
        # It fits now: a due time refused for its input says so no longer (as approve()
        # does for script_changed); the panel kept asking to change the input until the
        # next due time, a day away for a daily schedule.
        if schedule.last_skip == "run_refused":
            schedule.last_skip = schedule.last_skip_message = None
    if enabled is not None:
        schedule.enabled = enabled
    if retries is not None:
        schedule.retries = schedule_retries.check_retries(retries)
    if retry_delay_s is not None:
        schedule.retry_delay_s = schedule_retries.check_delay(retry_delay_s)
    schedule.retried_run_id = schedule.last_run_id
    _set_next(schedule, now or utcnow())
    session.flush()
    return schedule


def delete_schedule(session: Session, member: MemberContext, schedule: Schedule) -> None:
    """Remove a schedule (its runs stay in history, no longer naming it)."""
    require_scripter(member)
    _require_owner_or_admin(member, schedule)
    session.delete(schedule)
    session.flush()


def view(session: Session, schedule: Schedule, *, now: datetime | None = None) -> ScheduleView:
    """What is said about a schedule: its words, next due times (none while paused), and
    the run its last due time started."""
    last_run = session.get(Run, schedule.last_run_id) if schedule.last_run_id else None
    published = schedule.last_skip == "script_unpublished" and _published(session, schedule)
    return view_of(
        schedule, last_run=last_run, published=published, now=now,
        handler_to_approve=failure_handler_choice.handler_to_approve(session, schedule),
    )


def view_of(
    schedule: Schedule,
    *,
    last_run: Run | None,
    published: bool,
    now: datetime | None = None,
    handler_to_approve: int | None = None,
) -> ScheduleView:
    """`view` from what was read already: its last run (None: none, or no longer kept),
    whether its script is published, and its on-failure script's version to approve. The
    facility's list reads the first two for a page of schedules in one query
    (schedule_list), where `view` would ask for each."""
    upcoming: list[datetime] = []
    if schedule.enabled:
        upcoming = cron_times.next_times(
            schedule.cron, schedule.timezone, after=now or utcnow(), count=SHOWN_TIMES
        )
    return ScheduleView(
        schedule=schedule,
        description=cron_times.describe(schedule.cron),
        next_times=upcoming,
        last_run=last_run,
        last_skip=_skip_still_said(schedule, last_run=last_run, published=published),
        retries_description=schedule_retries.describe(schedule.retries, schedule.retry_delay_s),
        retry_at=schedule_retries.retry_at(schedule, last_run),
        handler_to_approve=handler_to_approve,
    )


def _skip_still_said(
    schedule: Schedule, *, last_run: Run | None, published: bool
) -> tuple[str, str | None] | None:
    """Why its last due time started no run, while that still holds (SKIP_STILL_HOLDS in
    schedule_list says the same to the database)."""
    if schedule.last_skip is None:
        return None
    if schedule.last_skip == "script_unpublished" and published:
        # Published again since: the next due time runs, so "publish it" is no longer to
        # be asked (it was until then). Publishing happens in scripts and versions, which
        # know nothing of schedules, so this is said when the schedule is read.
        return None
    if schedule.last_skip == "previous_run_waiting" and (
        last_run is None or last_run.status != RunStatus.QUEUED
    ):
        # The run it waited behind has started (or is gone): the next due time starts
        # one. The panel said so already (it showed the skip only beside a queued run);
        # the API and the facility's list kept calling the schedule skipping.
        return None
    return (schedule.last_skip, schedule.last_skip_message)


def _published(session: Session, schedule: Schedule) -> bool:
    return bool(session.scalar(select(Script.published).where(Script.id == schedule.script_id)))


def _set_next(schedule: Schedule, now: datetime) -> None:
    # Paused: no due time, so no process finds it; resumed: the first one from now on.
    schedule.next_run_at = (
        cron_times.next_time(schedule.cron, schedule.timezone, after=now)
        if schedule.enabled
        else None
    )


def _checked_input(session: Session, script: Script, run_input: Any) -> Any:
    """The input as given, refused now if it would not fit the published inputs (the run
    would be refused at every due time)."""
    check_input_size(run_input)  # the limit a run's input has (POST /runs)
    chosen = versions.published(session, script=script)
    inputs.check_input(chosen.input_schema if chosen else script.input_schema, run_input)
    return run_input
