"""What started runs, as pages name it: the schedule a runs list is narrowed to, the
webhook trigger a list is narrowed to or a run names, the on-failure run a failed run
started (read only)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Run, Schedule, Script, WebhookTrigger
from app.services.context import MemberContext
from app.services.failure_handlers import FAILED, holder_key


@dataclass(frozen=True)
class ScheduleShown:
    """The schedule a runs list is narrowed to, as the page names it."""

    id: int
    cron: str
    timezone: str
    script: str


@dataclass(frozen=True)
class TriggerShown:
    """The webhook trigger a runs list is narrowed to, or a run names, as pages say it."""

    id: int
    name: str
    script: str


_Shown = TypeVar("_Shown")
def on_failure_run(session: Session, run: Run) -> str | None:
    """The id of the on-failure run the schedule's or webhook trigger's failed run `run`
    started, if any."""
    if run.status not in FAILED or holder_key(
        trigger=run.trigger, schedule_id=run.schedule_id,
        webhook_trigger_id=run.webhook_trigger_id,
    ) is None:
        return None  # no query for the runs that start none
    return session.scalar(select(Run.id).where(Run.handles_run_id == run.id))


def schedule_shown(
    session: Session, member: MemberContext, schedule_id: int | None
) -> ScheduleShown | None:
    """The facility's schedule `schedule_id` (None: no such schedule here, deleted or
    another facility's, whose runs the list holds none of)."""
    return _shown(
        session, member, ScheduleShown, Schedule, schedule_id, Schedule.cron, Schedule.timezone
    )


def trigger_shown(
    session: Session, member: MemberContext, trigger_id: int | None
) -> TriggerShown | None:
    """The facility's webhook trigger `trigger_id` (None: no such trigger here, revoked or
    another facility's, whose runs the list holds none of)."""
    return _shown(session, member, TriggerShown, WebhookTrigger, trigger_id, WebhookTrigger.name)


def _shown(
    session: Session,
    member: MemberContext,
    shown: Callable[..., _Shown],
    starter: type[Schedule] | type[WebhookTrigger],
    starter_id: int | None,
    *columns: Any,
) -> _Shown | None:
    """`shown` made of the id, `columns` and script name of the facility's `starter` row
    `starter_id` (None when there is none: another facility's is not named)."""
    if starter_id is None:
        return None
    row = session.execute(
        select(*columns, Script.name)
        .join(Script, Script.id == starter.script_id)
        .where(starter.id == starter_id, starter.facility_id == member.facility.id)
    ).first()
    return shown(starter_id, *row) if row else None
