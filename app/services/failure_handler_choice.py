"""Naming the on-failure script of a schedule or a webhook trigger (one rule for both:
app.services.failure_handlers starts it), and the version of it their member approved."""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.errors import Conflict, NotFound
from app.models import Schedule, Script, WebhookTrigger
from app.services import versions
from app.services.context import MemberContext

# What may name an on-failure script: both hold the same on_failure_* columns.
Holder = Schedule | WebhookTrigger
FIELD = "on_failure_script_id"


def owner_of(holder: Holder) -> int | None:
    """The member whose runs these are (and the on-failure run's): who made it."""
    return holder.created_by if isinstance(holder, Schedule) else holder.owner_id


def choose(
    session: Session, member: MemberContext, holder: Holder, script_id: int | None
) -> None:
    """Name the on-failure script (None: none): a published script of the facility, whose
    published version its member approves by naming it (an admin's choice approves
    nothing: the runs run as the member). A new choice forgets why the last one could not
    start. Another facility's or an unknown script is a 404, an unpublished one a 409,
    both naming the field."""
    holder.on_failure_error = holder.on_failure_error_at = None
    if script_id is None:
        holder.on_failure_script_id = holder.on_failure_version = None
        return
    handler = session.get(Script, script_id)
    if handler is None or handler.facility_id != member.facility.id:
        raise NotFound(
            f"{FIELD}: this facility has no script {script_id}; give the id of one of its"
            " published scripts, or null for none",
            field=FIELD,
        )
    if not handler.published:
        raise Conflict(
            f"{FIELD}: {handler.name} is not published: publish it first, an on-failure"
            " run runs its published version",
            field=FIELD,
        )
    by_owner = owner_of(holder) == member.user.id
    if holder.on_failure_script_id != script_id or by_owner:
        holder.on_failure_version = handler.published_version if by_owner else None
    holder.on_failure_script_id = script_id


def handler_to_approve(session: Session, holder: Holder) -> int | None:
    """The published version of the on-failure script that waits for its member's
    approval before it runs as them (one another scripter published since they chose it
    or last approved); None when there is none, or no handler that could run."""
    if holder.on_failure_script_id is None:
        return None
    handler = session.get(Script, holder.on_failure_script_id)
    if handler is None or handler.facility_id != holder.facility_id:
        return None
    version = versions.unapproved(
        session, handler, approved=holder.on_failure_version, owner_id=owner_of(holder)
    )
    return version.number if version is not None else None


def handler_to_approve_of(holder: Holder, *, number: int | None, author: int | None) -> int | None:
    """handler_to_approve from its on-failure script's published version read already:
    its `number` (None: not published, or no handler that could run) and `author`. The
    facility's list of schedules reads it with each schedule (schedule_list), where
    handler_to_approve would ask for each."""
    if number is None or not versions.waits_for(
        number, author, approved=holder.on_failure_version, owner_id=owner_of(holder)
    ):
        return None
    return number


def approve_current(session: Session, holder: Holder) -> None:
    """Its member approves the on-failure script's published version as it is now (when
    they approve, or change, the holder's own script's)."""
    if holder.on_failure_script_id is None:
        return
    handler = session.get(Script, holder.on_failure_script_id)
    holder.on_failure_version = handler.published_version if handler else None
