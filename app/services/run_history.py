"""The runs a member may see, filtered and paged, with script and user names (read only).

What the lists narrow by is app.services.run_filters; what started a run, as pages name
it, app.services.run_origins."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, false, func, or_, select
from sqlalchemy.orm import Session

from app.lifecycle import RunStatus
from app.models import CallLog, Grant, Integration, Run, Script, User
from app.models._types import utcnow
from app.models.facilities import Role
from app.services.context import MemberContext
from app.services.grant_messages import asking_script
from app.services.run_filters import RunFilters, day_start
from app.services.scripts import MAX_PAGE as MAX_ROWS

PER_PAGE = 25
MAX_PAGE = 10_000


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


def script_deleted(run: Run) -> bool:
    """Whether the saved script the run ran was deleted since: deleting a script sets its
    runs' script_id to NULL and keeps their version (an editor run of unsaved source has
    none). Such a run cannot be run again."""
    return run.script_id is None and run.version is not None


def visible_runs(member: MemberContext, filters: RunFilters) -> Select[Any]:
    """The runs the member may see (admins everyone's, others their own) that match."""
    query = select(Run).where(Run.facility_id == member.facility.id)
    if filters.refused:  # a value the page could not read filters out every run, not none
        query = query.where(false())
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
        query = query.where(Run.created_at >= day_start(filters.since, filters.zone))
    if filters.until is not None:
        query = query.where(Run.created_at < day_start(filters.until, filters.zone, later=1))
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
