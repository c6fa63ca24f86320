"""A script's parts kept in rows of their own (its schedules, its webhook triggers): listed,
and found by id, only within the member's facility and that script (read only).

One helper for both: the same rule written twice could drift, and a part found under
another script or facility must be a NotFound, never that part.
"""

from __future__ import annotations

from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import NotFound
from app.models import Schedule, Script, WebhookTrigger
from app.services.context import MemberContext

# The models whose rows belong to one script of one facility (id, facility_id, script_id).
# A TypeVar of them, not a Protocol: mypy reads a model's Mapped[int] columns as int on an
# instance and as a column on the class, which no Protocol member says at once.
Part = TypeVar("Part", Schedule, WebhookTrigger)


def parts_of(
    session: Session, model: type[Part], member: MemberContext, script: Script
) -> list[Part]:
    """The script's parts of this kind, oldest first (the caller checks the role)."""
    return list(
        session.scalars(
            select(model)
            .where(model.script_id == script.id, model.facility_id == member.facility.id)
            .order_by(model.id)
        )
    )


def part_of(
    session: Session,
    model: type[Part],
    member: MemberContext,
    script: Script,
    part_id: int,
    *,
    missing: str,
) -> Part:
    """One part of the script by id; NotFound(`missing`) for none, or another script's or
    facility's (the caller checks the role)."""
    part = session.get(model, part_id)
    if part is None or part.facility_id != member.facility.id or part.script_id != script.id:
        raise NotFound(missing)
    return part
