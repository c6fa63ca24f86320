"""What a schedule's due time checks before it starts a run, as the schedule's member:
that they are still a scripter of the facility (`runs_as`), that they saw the published
version that would run as them (`check_approved`; the on-failure script's too), and that
the schedule's last run is not still waiting (`Waiting`). A check that fails is `Skipped`,
with the reason and words the schedule records (app.services.schedule_firing) or an
on-failure run's refusal says (app.services.failure_handlers).
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import TooManyQueuedRuns
from app.models import Membership, Role, Schedule, Script, User
from app.models.schedules import SkipReason
from app.services import versions
from app.services.context import MemberContext
from app.services.queued_runs import runs_in_words


class Skipped(Exception):
    """A due time that starts no run, and why (recorded on the schedule)."""

    def __init__(self, reason: SkipReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class Waiting(Skipped):
    """The schedule's last run has not started yet: this due time starts no other."""

    def __init__(self, run_id: str) -> None:
        super().__init__(
            "previous_run_waiting",
            "the previous run has not started yet: it waits queued while its member or the"
            " facility has as many runs going as the server allows; this due time was"
            " skipped, not queued behind it. If it keeps happening, space the schedule out"
            " or cancel runs that hold the places",
        )
        self.run_id = run_id


def queue_full(member: MemberContext, full: TooManyQueuedRuns) -> str:
    """Why a due time was skipped while the schedule's member has a full queue."""
    return (
        f"{member.user.name} has {runs_in_words(full.queued)} waiting to start, as many as"
        f" the server queues for one person ({full.limit}): this due time was skipped, not"
        " queued behind them. Wait for them to start, or cancel some on the Runs page"
    )


def check_approved(
    session: Session,
    schedule: Schedule,
    script: Script,
    member: MemberContext,
    *,
    approved: int | None,
) -> None:
    """The published version of `script` (the schedule's, or its on-failure script) runs
    as the schedule's member, with their own accounts, only if they saw it: they saved it,
    or it was the published one (`approved`) when they last set up, changed or resumed the
    schedule. Otherwise any scripter could publish code that runs as them while they are
    not there."""
    version = versions.unapproved(
        session, script, approved=approved, owner_id=schedule.created_by
    )
    if version is None:
        return
    author = session.get(User, version.created_by) if version.created_by is not None else None
    saved_by = f", saved by {author.name}," if author is not None else ""
    owner = member.user.name
    raise Skipped(
        "script_changed",
        f"version {version.number} of {script.name}{saved_by} was published after {owner} last set"
        f" up this schedule, and its runs run as {owner}: {owner} must pause and resume it"
        " to run that version",
    )


def runs_as(session: Session, schedule: Schedule) -> MemberContext:
    """The schedule's member as they are now: still in the facility, still a scripter."""
    found = (
        session.execute(
            select(User, Membership)
            .join(Membership, Membership.user_id == User.id)
            .where(User.id == schedule.created_by, Membership.facility_id == schedule.facility_id)
        ).first()
        if schedule.created_by is not None
        else None
    )
    if found is None or not found[0].is_active:
        raise Skipped(
            "owner_removed",
            "the member it runs as is no longer in the facility: delete it, or make a new"
            " schedule as someone who is",
        )
    user, membership = found
    if not membership.role.at_least(Role.scripter):
        raise Skipped(
            "owner_demoted",
            f"{user.name} no longer has the scripter role: a scripter or admin must make"
            " a new schedule",
        )
    return MemberContext(user, membership.facility, membership.role)
