"""Schedules of a script: cron expressions in a time zone that start its published version."""

from __future__ import annotations

from typing import Annotated, Any

from flask import current_app, request
from pydantic import BaseModel, Field, StrictBool, StrictInt, StrictStr, WithJsonSchema

from app import db
from app.errors import ValidationError
from app.models import Role, User
from app.models._types import iso
from app.services import schedule_list, schedule_retries
from app.services import schedules as schedules_service
from app.services import scripts as scripts_service
from app.web.api import paging
from app.web.api.base import api_blueprint, location
from app.web.api.run_models import HandlerError
from app.web.openapi import Body, spec
from app.web.openapi_answers import LOCATION_HEADER, Answer, ErrorBody, list_of, reply
from app.web.security import require_member
from app.web.wording import skip_in_words

bp = api_blueprint("api_schedules")
TAGS = ("schedules",)
_CRON_HELP = (
    "Five fields: minute hour day-of-month month day-of-week, e.g. `0 9 * * 1-5` (09:00 on"
    " weekdays) or `*/15 * * * *` (every 15 minutes). Names (`mon-fri`, `jan`) are allowed."
)
_ZONE_HELP = (
    "`UTC` (the default) or an IANA region name (`Europe/Berlin`, `America/New_York`);"
    " legacy names such as `EST` (UTC-5 all year) and fixed offsets are refused, naming"
    " the region to use"
)
_RETRIES_HELP = (
    f"0 to {schedule_retries.MAX_RETRIES}: how many times a run of the schedule that failed"
    " is started again (a new run, same input, trigger `schedule`, `retry_of` the failed"
    " run); any failure but a cancel and those the same run meets again until a person acts"
    " (`no_integration_grant`, `compile_error`, limits, the quota: docs/schedules.md)."
    " A due time coming first wins; changing, pausing or resuming the schedule drops a"
    " pending retry"
)
_HANDLER_HELP = (
    "A published script of the facility started once, as the schedule's member, for each"
    " run of the schedule that ends `failed` or `timed_out` with no retry of it to come"
    " (not a cancel): trigger `on_failure`, `handles_run_id` the failed run, input {run_id,"
    " status, error_code, error, attempt, script_id, script_name, schedule_id,"
    " webhook_trigger_id (null), started_at, finished_at, url}. Its own failure starts"
    " nothing. Null for none"
)
_DELAY_HELP = (
    f"{schedule_retries.MIN_DELAY_S} to {schedule_retries.MAX_DELAY_S}: seconds from a"
    " failed run's end to its first retry, doubled for each retry after it"
)


class ScheduleUser(BaseModel):
    """The member a schedule runs as (who created it): their id and name."""

    id: int
    name: str


class ScheduleRun(BaseModel):
    """The run the schedule's last due time started."""

    id: str
    status: str
    created_at: str | None
    finished_at: str | None


class ScheduleSkip(BaseModel):
    """Why the last due time started no run: `owner_removed`, `owner_demoted`,
    `script_unpublished`, `script_deleted`, `run_refused`, `previous_run_waiting` (its last
    run is still queued; `last_run` is that run), `too_many_queued` (its member has as many
    runs queued as the server allows), `start_failed` (a server error, logged) or
    `script_changed` (a version another scripter published since its member approved one),
    and words saying what to do."""

    reason: str
    words: str = Field(
        description="The reason in a few words, as the Schedules page says it (\"its member"
        " was removed\")"
    )
    message: str | None


class ScheduleOut(BaseModel):
    """A schedule: its cron, zone, input, state, coming due times and how its last one went."""

    id: int
    script_id: int
    cron: str
    timezone: str
    description: str = Field(description="The cron expression in words")
    input: Any
    enabled: bool = Field(description="False while paused")
    next_run_at: str | None = Field(description="The next due time (UTC); null while paused")
    next_times: list[str] = Field(description="The next 3 due times (UTC), none while paused")
    runs_as: ScheduleUser | None = Field(
        description="Who its runs run as (null once that user was deleted)"
    )
    approved_version: int | None = Field(
        description="The published version its member approved (set it up, changed or resumed"
        " it with); another scripter's later version is skipped as script_changed until then"
    )
    last_due_at: str | None = Field(description="The last due time it fired for")
    last_run: ScheduleRun | None
    last_run_deleted: bool = Field(
        description="True when its last due time started a run that is no longer kept"
        " (deleted by a member, or after SCRIPTBOX_RETENTION_DAYS)"
    )
    last_skip: ScheduleSkip | None
    retries: int = Field(description=_RETRIES_HELP)
    retry_delay_s: int = Field(description=_DELAY_HELP)
    retries_description: str = Field(
        description="The retries in words (\"retries a failed run up to 2 times, after 1 min,"
        " 2 min\"); empty for none"
    )
    retry_at: str | None = Field(
        description="When the retry of its failed last run (`last_run`) is due (UTC); null"
        " when none is pending"
    )
    on_failure_script_id: int | None = Field(description=_HANDLER_HELP)
    on_failure_version_to_approve: int | None = Field(
        description="A version of its on-failure script another scripter published since"
        " its member chose it or last set up, changed or resumed the schedule: a failure"
        " starts no run of it until they change, or pause and resume, the schedule; null"
        " when there is none"
    )
    on_failure_error: HandlerError | None = Field(
        description="Why the last on-failure run could not start (its script deleted,"
        " unpublished, or its inputs refused the failure), until one starts or the"
        " on-failure script is chosen again; null when none failed"
    )
    created_at: str | None
    updated_at: str | None


class ScheduleCreate(Body):
    """A new schedule; it runs as the member who creates it."""

    # Required, but checked by the view after the script is found: another facility's
    # script is a 404 whatever the body says.
    cron: StrictStr | None = Field(default=None, description=f"Required. {_CRON_HELP}")
    timezone: StrictStr = Field(default="UTC", description=_ZONE_HELP)
    input: Any = Field(default=None, description="The JSON input each run gets")
    enabled: StrictBool = True
    retries: StrictInt = Field(default=0, description=_RETRIES_HELP)
    retry_delay_s: StrictInt = Field(
        default=schedule_retries.DEFAULT_DELAY_S, description=_DELAY_HELP
    )
    on_failure_script_id: StrictInt | None = Field(default=None, description=_HANDLER_HELP)


class ScheduleUpdate(Body):
    """The fields to change; absent keeps the old value (`input: null` sets null)."""

    cron: StrictStr | None = Field(default=None, description=_CRON_HELP)
    timezone: StrictStr | None = Field(default=None, description=_ZONE_HELP)
    input: Any = None
    enabled: StrictBool | None = Field(default=None, description="false pauses, true resumes")
    retries: StrictInt | None = Field(default=None, description=_RETRIES_HELP)
    retry_delay_s: StrictInt | None = Field(default=None, description=_DELAY_HELP)
    on_failure_script_id: StrictInt | None = Field(
        default=None, description=f"{_HANDLER_HELP} (`null` sets none)"
    )


class ListedSchedule(ScheduleOut):
    """A schedule in the facility's list: its answer, with its script's name and its state
    (`runs_as` is its owner: the member who made it, whom its runs run as)."""

    script_name: str
    state: schedule_list.State = Field(
        description="paused; skipping: its last due time started no run, for the reason in"
        " `last_skip`, which still holds; else active"
    )


# Documented as what they take; ScheduleFilters.parse refuses the rest in its own words.
_Id = Annotated[StrictStr, WithJsonSchema({"type": "integer", "minimum": 1})]


class ScheduleList(paging.Page):
    """Filters, page size and cursor of the facility's schedules."""

    script_id: _Id | None = Field(default=None, description="Only this script's schedules")
    user_id: _Id | None = Field(
        default=None, description="Only the schedules that run as this member (their owner)"
    )
    state: Annotated[
        StrictStr, WithJsonSchema({"type": "string", "enum": list(schedule_list.STATES)})
    ] | None = Field(default=None, description="Only active, paused or skipping schedules")


def schedule_out(found: schedules_service.ScheduleView, owner: User | None) -> ScheduleOut:
    """The API shape of a schedule."""
    schedule, run = found.schedule, found.last_run
    return ScheduleOut(
        id=schedule.id,
        script_id=schedule.script_id,
        cron=schedule.cron,
        timezone=schedule.timezone,
        description=found.description,
        input=schedule.input,
        enabled=schedule.enabled,
        next_run_at=iso(schedule.next_run_at),
        next_times=[when.isoformat() for when in found.next_times],
        runs_as=ScheduleUser(id=owner.id, name=owner.name) if owner is not None else None,
        approved_version=schedule.approved_version,
        last_due_at=iso(schedule.last_due_at),
        last_run=None if run is None else ScheduleRun(
            id=run.id, status=run.status, created_at=iso(run.created_at),
            finished_at=iso(run.finished_at),
        ),
        last_run_deleted=run is None and schedule.last_run_id is not None,
        last_skip=None if found.last_skip is None else ScheduleSkip(
            reason=found.last_skip[0],
            words=skip_in_words(found.last_skip[0]),
            message=found.last_skip[1],
        ),
        retries=schedule.retries,
        retry_delay_s=schedule.retry_delay_s,
        retries_description=found.retries_description,
        retry_at=iso(found.retry_at),
        on_failure_script_id=schedule.on_failure_script_id,
        on_failure_version_to_approve=found.handler_to_approve,
        on_failure_error=HandlerError.of(schedule),
        created_at=iso(schedule.created_at),
        updated_at=iso(schedule.updated_at),
    )


def _shown(schedule: Any) -> ScheduleOut:
    session = db.session()
    owner = session.get(User, schedule.created_by) if schedule.created_by is not None else None
    return schedule_out(schedules_service.view(session, schedule), owner)


@bp.get("/f/<slug>/scripts/<int:script_id>/schedules")
@spec.validate(resp=reply(HTTP_200=list_of(ScheduleOut)), tags=TAGS)
def list_schedules(slug: str, script_id: int) -> Answer:
    """The script's schedules with their next due times, oldest first (scripters and
    admins). The one list of the API that is not paginated: a script has at most
    SCRIPTBOX_MAX_SCHEDULES_PER_SCRIPT schedules (10 by default), so it is always whole."""
    member = require_member(slug, Role.scripter)
    script = scripts_service.get_script(db.session(), member, script_id)
    found = schedules_service.list_schedules(db.session(), member, script)
    return [_shown(schedule).model_dump() for schedule in found]


@bp.get("/f/<slug>/schedules")
@spec.validate(query=ScheduleList, resp=reply(HTTP_200=list_of(ListedSchedule)), tags=TAGS)
def facility_schedules(slug: str, query: ScheduleList) -> Answer:
    """Every schedule of the facility (scripters and admins, as a script's list; members get
    403): by next due time, soonest first, then those with none (paused) by id. Filters:
    `script_id`, `user_id` (whom it runs as), `state` (`active`, `paused`, `skipping`); a
    value that is none of these is a 400 saying what it takes.

    Paginated: `limit` (1..200, default 50) rows per page; when more rows follow, the
    `Next-Cursor` header holds the value to send as `cursor` for the next page.
    """
    member = require_member(slug, Role.scripter)
    found, following = schedule_list.list_facility_schedules(
        db.session(),
        member,
        filters=schedule_list.ScheduleFilters.parse(request.args),
        after=position_of(query.cursor),
        limit=paging.page_limit(query.limit),
    )
    rows = [listed_out(listed).model_dump() for listed in found]
    return paging.with_next(rows, None if following is None else cursor_of(following))


def listed_out(listed: schedule_list.Listed) -> ListedSchedule:
    """The API shape of a schedule in the facility's list."""
    shown = schedule_out(listed.view, listed.owner)
    return ListedSchedule(
        **shown.model_dump(), script_name=listed.script_name, state=listed.state
    )


def cursor_of(position: schedule_list.Position) -> list[Any]:
    """What the next page's cursor holds: [next due time, or "" for none; id]."""
    return [iso(position.next_run_at) or "", position.schedule_id]


def position_of(cursor: str | None) -> schedule_list.Position | None:
    """The position a cursor of this list stands for (a 400 for any other)."""
    found = paging.decode(cursor, kinds=(str, int))
    if found is None:
        return None
    when, schedule_id = found
    if when == "":
        return schedule_list.Position(1, None, schedule_id)
    return schedule_list.Position(0, paging.instant(when), schedule_id)


@bp.post("/f/<slug>/scripts/<int:script_id>/schedules")
@spec.validate(
    resp=reply(HTTP_201=ScheduleOut, HTTP_400=ErrorBody, sends=(LOCATION_HEADER,)), tags=TAGS
)
def create_schedule(slug: str, script_id: int, json: ScheduleCreate) -> Answer:
    """Schedule a published script (scripters and admins); its runs run as the caller.

    Runs started by a schedule are not interactive: a call that needs a sign-in raises
    `no_integration_grant` with reason `not_interactive`. A bad cron expression or time
    zone, or `retries` / `retry_delay_s` out of range, is a 400 `invalid_schedule` that
    says what is wrong; an unpublished script a 409,
    and so is a script or facility at its cap of schedules (SCRIPTBOX_MAX_SCHEDULES_PER_SCRIPT,
    10, and _PER_FACILITY, 100). `input` has the limits of a run's: at most 256 KiB as JSON,
    and it must fit the published version's declared inputs (a 400 naming `input`).
    `on_failure_script_id` names a published script of the facility (another facility's
    or an unknown id is a 404, an unpublished one a 409, both naming the field).
    """
    member = require_member(slug, Role.scripter)
    script = scripts_service.get_script(db.session(), member, script_id)
    if json.cron is None:
        raise ValidationError(f"cron is required. {_CRON_HELP}", field="cron")
    schedule = schedules_service.create_schedule(
        db.session(),
        member,
        script,
        cron=json.cron,
        timezone=json.timezone,
        run_input=json.input,
        enabled=json.enabled,
        retries=json.retries,
        retry_delay_s=json.retry_delay_s,
        on_failure_script_id=json.on_failure_script_id,
        caps=schedules_service.ScheduleCaps.of(current_app.config),
    )
    db.session.commit()
    shown_at = location(
        "api_schedules.get_schedule", slug=slug, script_id=script.id, schedule_id=schedule.id
    )
    return _shown(schedule), 201, shown_at


@bp.get("/f/<slug>/scripts/<int:script_id>/schedules/<int:schedule_id>")
@spec.validate(resp=reply(HTTP_200=ScheduleOut), tags=TAGS)
def get_schedule(slug: str, script_id: int, schedule_id: int) -> Answer:
    """One schedule of the script."""
    member = require_member(slug, Role.scripter)
    script = scripts_service.get_script(db.session(), member, script_id)
    return _shown(schedules_service.get_schedule(db.session(), member, script, schedule_id))


@bp.patch("/f/<slug>/scripts/<int:script_id>/schedules/<int:schedule_id>")
@spec.validate(resp=reply(HTTP_200=ScheduleOut, HTTP_400=ErrorBody), tags=TAGS)
def update_schedule(slug: str, script_id: int, schedule_id: int, json: ScheduleUpdate) -> Answer:
    """Pause or resume a schedule, or change its cron, time zone, input, retries or
    on-failure script (its creator or an admin). The next due time is counted again from
    now, and a pending retry is dropped. An edit that names nothing to change is a 400."""
    member = require_member(slug, Role.scripter)
    script = scripts_service.get_script(db.session(), member, script_id)
    schedule = schedules_service.get_schedule(db.session(), member, script, schedule_id)
    nullable = ("input", "on_failure_script_id")  # their null is a value of its own
    if not any(name in nullable or getattr(json, name) is not None
               for name in json.model_fields_set):
        raise ValidationError(
            "give cron, timezone, input, enabled, retries, retry_delay_s or"
            " on_failure_script_id to change",
            field="body",
        )
    schedules_service.update_schedule(
        db.session(),
        member,
        schedule,
        cron=json.cron,
        timezone=json.timezone,
        run_input=json.input if "input" in json.model_fields_set else schedules_service.KEEP,
        enabled=json.enabled,
        retries=json.retries,
        retry_delay_s=json.retry_delay_s,
        on_failure_script_id=(
            json.on_failure_script_id if "on_failure_script_id" in json.model_fields_set
            else schedules_service.KEEP
        ),
    )
    db.session.commit()
    return _shown(schedule)


@bp.delete("/f/<slug>/scripts/<int:script_id>/schedules/<int:schedule_id>")
@spec.validate(resp=reply("HTTP_204"), tags=TAGS)
def delete_schedule(slug: str, script_id: int, schedule_id: int) -> Answer:
    """Delete a schedule (its creator or an admin); its runs stay in history."""
    member = require_member(slug, Role.scripter)
    script = scripts_service.get_script(db.session(), member, script_id)
    schedule = schedules_service.get_schedule(db.session(), member, script, schedule_id)
    schedules_service.delete_schedule(db.session(), member, schedule)
    db.session.commit()
    return "", 204
