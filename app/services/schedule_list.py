"""The facility's schedules in one list: which scripts run on their own, as whom, when next,
and which are paused or skipping (flush nothing: a read).

Who sees them is the per-script list's rule (schedules.list_schedules): scripters and
admins, every schedule of the facility (they see every script); members none. One page is
one query: each schedule with its script's name, its member's name, its last run, and its
on-failure script's name and published version (whether one waits for approval).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, get_args

from sqlalchemy import ColumnElement, and_, case, func, not_, or_, select
from sqlalchemy.orm import Session, aliased, load_only

from app.db import MAX_INTEGER
from app.errors import ValidationError
from app.lifecycle import RunStatus
from app.models import Run, Schedule, Script, ScriptVersion, User
from app.services import failure_handler_choice, schedules
from app.services.context import MemberContext
from app.services.schedules import ScheduleView

# A schedule's state as the list says and filters it: paused (its member or an admin paused
# it), skipping (its last due time started no run, for a reason that still holds: the
# ScheduleSkip of its answer), else active.
State = Literal["active", "paused", "skipping"]
STATES: tuple[State, ...] = get_args(State)

# schedules._skip_still_said, said to the database: a recorded skip still holds unless the
# script was published again (script_unpublished) or the run it waited behind is no longer
# queued (previous_run_waiting). NULL-safe: `active` is its negation.
SKIP_STILL_HOLDS: ColumnElement[bool] = and_(
    Schedule.last_skip.is_not(None),
    or_(Schedule.last_skip != "script_unpublished", Script.published.is_(False)),
    or_(
        Schedule.last_skip != "previous_run_waiting",
        func.coalesce(Run.status, "") == RunStatus.QUEUED.value,
    ),
)
_STATE_WHERE: dict[State, ColumnElement[bool]] = {
    "paused": Schedule.enabled.is_(False),
    "skipping": and_(Schedule.enabled.is_(True), SKIP_STILL_HOLDS),
    "active": and_(Schedule.enabled.is_(True), not_(SKIP_STILL_HOLDS)),
}
# Schedules with no next due time (paused ones) come after those with one.
_UNTIMED = case((Schedule.next_run_at.is_(None), 1), else_=0)
# A schedule's on-failure script (one of its facility's: failure_handler_choice) and the
# version of it that runs (its published one, none while unpublished).
_Handler = aliased(Script, name="handler")
_HandlerVersion = aliased(ScriptVersion, name="handler_version")


@dataclass(frozen=True)
class ScheduleFilters:
    """Which schedules to list: of one script, of one member (whom they run as), in one
    state; None is any."""

    script_id: int | None = None
    user_id: int | None = None
    state: State | None = None

    @classmethod
    def parse(cls, args: Mapping[str, str]) -> ScheduleFilters:
        """The filters of a query string (the API's and the page's); an empty value is
        none, a wrong one a 400 naming it and saying what it takes."""
        state = args.get("state") or None
        if state is not None and state not in STATES:
            raise ValidationError(
                "state must be active (runs at its next due time), paused, or skipping (its"
                " last due time started no run); leave it out for every schedule",
                field="state",
            )
        return cls(
            script_id=_id_of(
                args.get("script_id"),
                "script_id",
                whose="a script",
                every="every script's schedules",
            ),
            user_id=_id_of(
                args.get("user_id"),
                "user_id",
                whose="the member a schedule runs as",
                every="everyone's schedules",
            ),
            state=state,
        )


def _id_of(value: str | None, field: str, *, whose: str, every: str) -> int | None:
    if not value:
        return None
    if value.isascii() and value.isdigit() and 0 < int(value) <= MAX_INTEGER:
        return int(value)
    raise ValidationError(
        f"{field} must be the id of {whose}, a whole number such as 7; leave it out for {every}",
        field=field,
    )


@dataclass(frozen=True)
class Position:
    """Where a page ends, in the list's order: untimed (0: has a next due time, 1: none),
    that time, and the schedule's id."""

    untimed: int
    next_run_at: datetime | None
    schedule_id: int

    @classmethod
    def after(cls, schedule: Schedule) -> Position:
        """The position just past `schedule`."""
        untimed = 1 if schedule.next_run_at is None else 0
        return cls(untimed, schedule.next_run_at, schedule.id)


@dataclass(frozen=True)
class Listed:
    """A schedule as the facility's list shows it."""

    view: ScheduleView
    script_name: str
    owner: User | None  # whom it runs as (None once that user was deleted)
    state: State
    # Whether its script is published now: an active schedule of one that is not skips its
    # next due time (script_unpublished), which the page says before it happens.
    published: bool = True
    # Its on-failure script's name; None with none, or once that script was deleted (the
    # schedule still names it: Schedule.on_failure_script_id).
    handler_name: str | None = None


def state_of(found: ScheduleView) -> State:
    """A schedule's state (see State)."""
    if not found.schedule.enabled:
        return "paused"
    return "skipping" if found.last_skip is not None else "active"


def list_facility_schedules(
    session: Session,
    member: MemberContext,
    *,
    filters: ScheduleFilters = ScheduleFilters(),
    after: Position | None = None,
    limit: int,
    now: datetime | None = None,
) -> tuple[list[Listed], Position | None]:
    """The facility's schedules by next due time, those with none (paused) last, then by
    id; at most `limit` after `after`, and the position after the last one when more
    follow (scripters and admins)."""
    schedules.require_scripter(member)
    query = (
        select(Schedule, Script.name, Script.published, User, Run, _Handler.name,
               _HandlerVersion.number, _HandlerVersion.created_by)
        .join(Script, Script.id == Schedule.script_id)
        .outerjoin(User, User.id == Schedule.created_by)
        .outerjoin(
            Run, and_(Run.id == Schedule.last_run_id, Run.facility_id == Schedule.facility_id)
        )
        .outerjoin(
            _Handler,
            and_(_Handler.id == Schedule.on_failure_script_id,
                 _Handler.facility_id == Schedule.facility_id),
        )
        .outerjoin(
            _HandlerVersion,
            and_(_HandlerVersion.script_id == _Handler.id,
                 _HandlerVersion.number == _Handler.published_version,
                 _Handler.published.is_(True)),
        )
        .where(Schedule.facility_id == member.facility.id)
        # What the answer says of them: not a run's source, output and result.
        .options(
            load_only(User.id, User.name),
            # What the answer says of it, and what says whether a retry of it is pending.
            load_only(Run.id, Run.status, Run.created_at, Run.finished_at, Run.attempt,
                      Run.error_code),
        )
    )
    if filters.script_id is not None:
        query = query.where(Schedule.script_id == filters.script_id)
    if filters.user_id is not None:
        query = query.where(Schedule.created_by == filters.user_id)
    if filters.state is not None:
        query = query.where(_STATE_WHERE[filters.state])
    if after is not None:
        query = query.where(_past(after))
    rows = session.execute(
        query.order_by(_UNTIMED, Schedule.next_run_at, Schedule.id).limit(limit + 1)
    ).all()
    page = []
    for (schedule, script_name, published, owner, last_run, handler_name, handler_version,
         handler_author) in rows[:limit]:
        found = schedules.view_of(
            schedule, last_run=last_run, published=published, now=now,
            handler_to_approve=failure_handler_choice.handler_to_approve_of(
                schedule, number=handler_version, author=handler_author
            ),
        )
        page.append(
            Listed(found, script_name, owner, state_of(found), published, handler_name)
        )
    more = len(rows) > limit
    return page, (Position.after(page[-1].view.schedule) if more else None)


def filter_choices(
    session: Session, member: MemberContext
) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """The (id, name) of the scripts, and of the members, that the facility's schedules
    have, by name: what the page's filters offer (scripters and admins)."""
    schedules.require_scripter(member)
    mine = Schedule.facility_id == member.facility.id
    scripts = session.execute(
        select(Script.id, Script.name)
        .join(Schedule, Schedule.script_id == Script.id)
        .where(mine)
        .distinct()
        .order_by(Script.name, Script.id)
    ).all()
    owners = session.execute(
        select(User.id, User.name)
        .join(Schedule, Schedule.created_by == User.id)
        .where(mine)
        .distinct()
        .order_by(User.name, User.id)
    ).all()
    return [(i, n) for i, n in scripts], [(i, n) for i, n in owners]


def _past(position: Position) -> ColumnElement[bool]:
    """The schedules after `position` in the list's order."""
    if position.untimed or position.next_run_at is None:
        return and_(Schedule.next_run_at.is_(None), Schedule.id > position.schedule_id)
    return or_(
        Schedule.next_run_at.is_(None),
        Schedule.next_run_at > position.next_run_at,
        and_(Schedule.next_run_at == position.next_run_at, Schedule.id > position.schedule_id),
    )
