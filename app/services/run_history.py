"""The runs a member may see, filtered and paged, with script and user names (read only)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Select, and_, func, or_, select
from sqlalchemy.orm import Session

from app.db import MAX_INTEGER
from app.errors import ValidationError
from app.lifecycle import RunStatus
from app.models import (
    CallLog,
    Grant,
    Integration,
    Run,
    Schedule,
    Script,
    User,
    WebhookTrigger,
)
from app.models._types import iso, utcnow
from app.models.facilities import Role
from app.models.scripts import RunTrigger
from app.services.context import MemberContext
from app.services.grant_messages import asking_script
from app.services.scripts import MAX_PAGE as MAX_ROWS

PER_PAGE = 25
MAX_PAGE = 10_000
# IANA names are short ("America/Argentina/ComodRivadavia" is among the longest).
MAX_ZONE_LENGTH = 64
# What started a run, as the filters take it (the one list: app.models.scripts.RunTrigger).
TRIGGERS: tuple[str, ...] = get_args(RunTrigger)


@dataclass(frozen=True)
class RunFilters:
    """What the runs page narrows by; None means any. `since` and `until` are days in
    `zone` (the browser's time zone, which the list shows its times in), UTC by default.
    `schedule_id` narrows to the runs one schedule started (of this facility: the runs
    are the facility's, so another facility's schedule id matches none); so does
    `webhook_trigger_id` to the runs one webhook trigger started."""

    status: RunStatus | None = None
    script_id: int | None = None
    user_id: int | None = None
    trigger: str | None = None
    schedule_id: int | None = None
    webhook_trigger_id: int | None = None
    since: date | None = None
    until: date | None = None
    zone: ZoneInfo | None = None

    @classmethod
    def parse(cls, args: Any) -> RunFilters:
        """Filters from query arguments, a ValidationError naming the argument that is wrong."""
        status = args.get("status") or None
        if status is not None and status not in set(RunStatus):
            raise ValidationError(
                f"status must be one of {', '.join(RunStatus)}", field="status"
            )
        trigger = args.get("trigger") or None
        if trigger is not None and trigger not in TRIGGERS:
            raise ValidationError(
                f"trigger must be one of {', '.join(TRIGGERS)} (what started the run)",
                field="trigger",
            )
        return cls(
            status=RunStatus(status) if status else None,
            script_id=parse_int(args.get("script_id"), "script_id"),
            user_id=parse_int(args.get("user_id"), "user_id"),
            trigger=trigger,
            schedule_id=parse_int(args.get("schedule_id"), "schedule_id"),
            webhook_trigger_id=parse_int(args.get("webhook_trigger_id"), "webhook_trigger_id"),
            since=_date(args.get("since"), "since"),
            until=_date(args.get("until"), "until"),
            zone=_zone(args.get("tz"), "tz"),
        )

    def problem(self) -> str | None:
        """Why no run can match, in words, where the filters contradict themselves."""
        if self.since is not None and self.until is not None and self.since > self.until:
            return (f"The first day ({self.since.isoformat()}) is after the last"
                    f" ({self.until.isoformat()}): swap them.")
        return None

    def as_args(self) -> dict[str, str]:
        """The filters as query arguments (for links that keep them)."""
        values = {
            "status": self.status,
            "script_id": self.script_id,
            "user_id": self.user_id,
            "trigger": self.trigger,
            "schedule_id": self.schedule_id,
            "webhook_trigger_id": self.webhook_trigger_id,
            "since": iso(self.since),
            "until": iso(self.until),
            # The zone only says what the days mean: without a day it filters nothing.
            "tz": self.zone.key if self.zone and (self.since or self.until) else None,
        }
        return {k: str(v) for k, v in values.items() if v is not None}


@dataclass(frozen=True)
class RunRow:
    """A run with the names the list shows."""

    run: Run
    script_name: str | None
    user_name: str


@dataclass(frozen=True)
class RunPage:
    """One page of runs, newest first."""

    rows: list[RunRow]
    total: int
    page: int
    pages: int


def parse_int(value: Any, field: str) -> int | None:
    """A whole number from a query argument that the database can compare with, None when
    it is empty."""
    if value in (None, ""):
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValidationError(f"{field} must be a number", field=field) from None
    if abs(number) > MAX_INTEGER:
        raise ValidationError(
            f"{field} must be a number from {-MAX_INTEGER:,} to {MAX_INTEGER:,}", field=field
        )
    return number


def _date(value: Any, field: str) -> date | None:
    if value in (None, ""):
        return None
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise ValidationError(f"{field} must be a date like 2026-01-31", field=field) from None


def _zone(value: Any, field: str) -> ZoneInfo | None:
    if value in (None, ""):
        return None
    name = str(value)
    problem = f"{field} must be a time zone like Europe/Paris"
    if len(name) > MAX_ZONE_LENGTH:
        raise ValidationError(problem, field=field)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        # Not found, or not a zone's name at all ("../x", "zone.tab", a directory).
        raise ValidationError(problem, field=field) from None


def _day_start(day: date, zone: ZoneInfo | None, *, later: int = 0) -> datetime:
    """The first instant of `day` (+ `later` days) in `zone` (UTC when None), in UTC.

    Adding days to an aware datetime moves its wall clock, and zoneinfo gives each wall
    time the offset of its own date: a day on either side of a DST change starts when it
    should. The calendar's first and last days may fall outside what datetime can hold
    in UTC; they stand for the earliest and latest instants.
    """
    try:
        start = datetime.combine(day, time(), zone or UTC) + timedelta(days=later)
        return start.astimezone(UTC)
    except OverflowError:
        edge = datetime.max if day.year > 1 else datetime.min
        return edge.replace(tzinfo=UTC)


def visible_runs(member: MemberContext, filters: RunFilters) -> Select[Any]:
    """The runs the member may see (admins everyone's, others their own) that match."""
    query = select(Run).where(Run.facility_id == member.facility.id)
    if not member.can(Role.admin):
        query = query.where(Run.user_id == member.user.id)  # scripters see their own runs
    elif filters.user_id is not None:
        query = query.where(Run.user_id == filters.user_id)
    if filters.status is not None:
        query = query.where(Run.status == str(filters.status))
    if filters.script_id is not None:
        query = query.where(Run.script_id == filters.script_id)
    if filters.trigger is not None:
        query = query.where(Run.trigger == filters.trigger)
    if filters.schedule_id is not None:
        query = query.where(Run.schedule_id == filters.schedule_id)
    if filters.webhook_trigger_id is not None:
        query = query.where(Run.webhook_trigger_id == filters.webhook_trigger_id)
    if filters.since is not None:
        query = query.where(Run.created_at >= _day_start(filters.since, filters.zone))
    if filters.until is not None:
        query = query.where(Run.created_at < _day_start(filters.until, filters.zone, later=1))
    return query


def find_runs(
    session: Session,
    member: MemberContext,
    *,
    filters: RunFilters,
    page: int = 1,
    per_page: int = PER_PAGE,
) -> RunPage:
    """The page `page` (from 1) of the runs the member may see that match `filters`."""
    query = visible_runs(member, filters)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    pages = max(1, -(-total // per_page))
    page = min(max(page, 1), pages, MAX_PAGE)
    rows = session.execute(
        query.add_columns(Script.name, User.name)
        .outerjoin(Script, Script.id == Run.script_id)
        .join(User, User.id == Run.user_id)
        .order_by(Run.created_at.desc(), Run.id)
        .offset((page - 1) * per_page)
        .limit(per_page)
    ).all()
    return RunPage(
        rows=[RunRow(run, script_name, user_name) for run, script_name, user_name in rows],
        total=total,
        page=page,
        pages=pages,
    )


def list_runs(
    session: Session,
    member: MemberContext,
    *,
    filters: RunFilters,
    limit: int = 50,
    after: tuple[datetime, str] | None = None,
) -> list[Run]:
    """Runs the member may see that match `filters`, newest first, for the API's cursor
    pages: `after` (created_at, id) continues from a page's last row."""
    query = visible_runs(member, filters)
    if after is not None:
        created, run_id = after
        query = query.where(
            or_(Run.created_at < created, and_(Run.created_at == created, Run.id < run_id))
        )
    # Clamped at both ends: SQLite reads LIMIT -1 as no limit at all; a page asks for one
    # row more than it shows, to know whether another page follows.
    limit = max(1, min(limit, MAX_ROWS + 1))
    return list(session.scalars(query.order_by(Run.created_at.desc(), Run.id.desc()).limit(limit)))


@dataclass(frozen=True)
class ScheduleShown:
    """The schedule a runs list is narrowed to, as the page names it."""

    id: int
    cron: str
    timezone: str
    script: str


def schedule_shown(
    session: Session, member: MemberContext, schedule_id: int | None
) -> ScheduleShown | None:
    """The facility's schedule `schedule_id` (None: no such schedule here, deleted or
    another facility's, whose runs the list holds none of)."""
    if schedule_id is None:
        return None
    row = session.execute(
        select(Schedule.cron, Schedule.timezone, Script.name)
        .join(Script, Script.id == Schedule.script_id)
        .where(Schedule.id == schedule_id, Schedule.facility_id == member.facility.id)
    ).first()
    return ScheduleShown(schedule_id, *row) if row else None


@dataclass(frozen=True)
class TriggerShown:
    """The webhook trigger a runs list is narrowed to, or a run names, as pages say it."""

    id: int
    name: str
    script: str


def trigger_shown(
    session: Session, member: MemberContext, trigger_id: int | None
) -> TriggerShown | None:
    """The facility's webhook trigger `trigger_id` (None: no such trigger here, revoked or
    another facility's, whose runs the list holds none of)."""
    if trigger_id is None:
        return None
    row = session.execute(
        select(WebhookTrigger.name, Script.name)
        .join(Script, Script.id == WebhookTrigger.script_id)
        .where(WebhookTrigger.id == trigger_id, WebhookTrigger.facility_id == member.facility.id)
    ).first()
    return TriggerShown(trigger_id, *row) if row else None


def runner_names(
    session: Session, member: MemberContext, user_ids: Iterable[int] = ()
) -> dict[int, str]:
    """The names of who started runs the member may see, by user id: one query for them
    all, none when every run is the member's own (their name came with the request).

    The ids come from runs of the member's facility only, so no one else's user is named;
    a runner who has since left the facility keeps their name, as on the runs page.
    """
    names = {member.user.id: member.user.name}
    others = set(user_ids) - names.keys()
    if others:
        rows = session.execute(select(User.id, User.name).where(User.id.in_(others)))
        names.update((user_id, name) for user_id, name in rows)
    return names


def run_calls(session: Session, *, run: Run) -> list[CallLog]:
    """The integration calls a run made, in order."""
    return list(
        session.scalars(
            select(CallLog)
            .where(CallLog.run_id == run.id, CallLog.facility_id == run.facility_id)
            .order_by(CallLog.id)
        )
    )


def failing_service(session: Session, *, run: Run) -> str | None:
    """The name of the integration whose call ended the run with its error, if one did."""
    calls = run_calls(session, run=run)
    failing = next((c for c in reversed(calls) if c.error_code == run.error_code), None)
    if failing is None:
        return None
    if failing.integration_id is not None:
        integration = session.get(Integration, failing.integration_id)
    else:  # refused before the call knew it (switched off): by its key in the facility
        integration = session.scalar(select(Integration).where(
            Integration.facility_id == run.facility_id, Integration.key == failing.integration_key
        ))
    return integration.name if integration else failing.integration_key


@dataclass(frozen=True)
class WaitingRun:
    """A run of the user's that waits for them to sign in to an integration."""

    run_id: str
    script: str
    label: str  # the account label the prompt asks for ("" for the default account)
    grant_id: str  # the prompt it waits for: the page drops the note once it is answered


def waiting_for_sign_in(
    session: Session, *, user_id: int, facility_id: int
) -> dict[int, list[WaitingRun]]:
    """The user's runs in the facility that wait (live or parked) for their pending,
    unexpired sign-in prompt, by integration id, oldest first."""
    rows = session.execute(
        select(Grant.integration_id, Grant.label, Grant.id, Run.id, Run.script_id, Script.name)
        .join(Run, Run.waiting_grant_id == Grant.id)
        .outerjoin(Script, Script.id == Run.script_id)
        .where(
            Grant.user_id == user_id,
            Grant.facility_id == facility_id,
            Grant.state == "pending",
            Grant.expires_at > utcnow(),
            Run.status.in_([str(RunStatus.WAITING), str(RunStatus.PARKED)]),
        )
        .order_by(Run.created_at, Run.id)
    )
    waiting: dict[int, list[WaitingRun]] = {}
    for integration_id, label, grant_id, run_id, script_id, name in rows:
        script = asking_script(script_id, name)  # as the prompt names it
        waiting.setdefault(integration_id, []).append(
            WaitingRun(run_id, script, label or "", grant_id)
        )
    return waiting
