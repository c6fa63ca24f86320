"""The REST API for people: a facility's members and invitations, and the user's own invitations.

Admins invite by exact email and never learn whether the address has an account here;
the invited person joins by accepting. Role changes and removals keep the last admin.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, StrictStr
from sqlalchemy import select

from app import db, extensions
from app.errors import NotFound
from app.lifecycle import NOT_FINAL, statuses
from app.models import Invitation, Role, Run, User
from app.services import invitations, people, sessions
from app.web.api import paging
from app.web.api.base import api_blueprint
from app.web.openapi import Body, spec
from app.web.openapi_answers import Answer, list_of, reply
from app.web.security import require_member, require_user

bp = api_blueprint("members_api")
TAGS = ("members",)


class MemberOut(BaseModel):
    """A member of the facility and their role."""

    id: int
    email: str
    name: str
    role: str


class FacilityRef(BaseModel):
    """A facility by slug and name."""

    slug: str
    name: str


class InvitationOut(BaseModel):
    """An invitation not answered yet."""

    id: int
    email: str
    role: str
    facility: FacilityRef
    created_at: str
    message: str | None = None


class Invite(Body):
    """Whom to invite (exact email) and as what."""

    email: StrictStr = ""
    role: StrictStr = "member"


class RoleChange(Body):
    """The new role."""

    role: StrictStr = ""


class Joined(BaseModel):
    """The facility joined and the role there."""

    facility: FacilityRef
    role: str


def _member_dict(user: User, role: Role) -> dict[str, Any]:
    return {"id": user.id, "email": user.email, "name": user.name, "role": role.value}


def _invitation_dict(invitation: Invitation) -> dict[str, Any]:
    return {
        "id": invitation.id,
        "email": invitation.email,
        "role": invitation.role.value,
        "facility": {"slug": invitation.facility.slug, "name": invitation.facility.name},
        "created_at": invitation.created_at.isoformat(),
    }


@bp.get("/f/<slug>/members")
@spec.validate(query=paging.Page, resp=reply(HTTP_200=list_of(MemberOut)), tags=TAGS)
def list_members(slug: str, query: paging.Page) -> Answer:
    """Members and roles, by name (admins).

    Paginated: `limit`, `cursor` (see the `Next-Cursor` header).
    """
    member = require_member(slug, Role.admin)
    rows = people.members_of(db.session(), facility=member.facility)
    page, after = paging.page_of(rows, query, key=lambda r: [r[0].name, r[0].id], kinds=(str, int))
    return paging.with_next([_member_dict(user, role) for user, role in page], after)


@bp.post("/f/<slug>/members")
@spec.validate(resp=reply(HTTP_202=InvitationOut), tags=TAGS)
def invite_member(slug: str, json: Invite) -> Answer:
    """Invite an exact email address with a role (admins); the same answer for any address."""
    member = require_member(slug, Role.admin)
    invitation, before = invitations.invite(
        db.session(),
        facility=member.facility,
        email=json.email,
        role=json.role,
        invited_by=member.user,
    )
    db.session.commit()
    answer = _invitation_dict(invitation)
    role = invitation.role.value
    # An invitation already pending is in the admin's list: saying so reveals nothing.
    if before is None:
        said = f"Invited {invitation.email} as {role}."
    elif before == invitation.role:
        said = f"{invitation.email} was already invited as {role}; the invitation stands."
    else:
        said = f"The invitation to {invitation.email} now says {role} (it said {before.value})."
    answer["message"] = (
        f"{said} They join {member.facility.name} when they accept the invitation after"
        " signing in."
    )
    return answer, 202


@bp.patch("/f/<slug>/members/<int:user_id>")
@spec.validate(resp=reply(HTTP_200=MemberOut), tags=TAGS)
def change_role(slug: str, user_id: int, json: RoleChange) -> Answer:
    """Change a member's role (admins); the last admin cannot be demoted."""
    member = require_member(slug, Role.admin)
    membership = people.membership_of(db.session(), user_id, member.facility.id)
    if membership is None:
        raise NotFound("no such member")
    people.set_membership(
        db.session(),
        user=membership.user,
        facility=member.facility,
        role=json.role,
    )
    db.session.commit()
    return _member_dict(membership.user, membership.role)


@bp.delete("/f/<slug>/members/<int:user_id>")
@spec.validate(resp=reply("HTTP_204"), tags=TAGS)
def remove_member(slug: str, user_id: int) -> Answer:
    """Remove a member from the facility (admins); the last admin cannot be removed."""
    member = require_member(slug, Role.admin)
    people.remove_membership(db.session(), user_id=user_id, facility=member.facility)
    # Sessions end on removal (DESIGN §6); the removed person's open pages close too.
    sessions.end_sessions(db.session(), user_id=user_id)
    db.session.commit()
    # Their runs in the facility end too: a live one would go on, and a queued one start
    # later, calling with the facility's accounts for someone who left it.
    unfinished = db.session.scalars(
        select(Run.id).where(
            Run.facility_id == member.facility.id,
            Run.user_id == user_id,
            Run.status.in_(statuses(NOT_FINAL)),
        )
    ).all()
    for run_id in unfinished:
        extensions.run_queue().cancel(run_id)
    return "", 204


class MemberSignedOut(BaseModel):
    """How many sessions of the member ended."""

    sessions_ended: int


@bp.post("/f/<slug>/members/<int:user_id>/sign-out")
@spec.validate(resp=reply(HTTP_200=MemberSignedOut), tags=TAGS)
def sign_out_member(slug: str, user_id: int) -> Answer:
    """End every session of a member, e.g. after a lost laptop (admins)."""
    member = require_member(slug, Role.admin)
    if people.membership_of(db.session(), user_id, member.facility.id) is None:
        raise NotFound("no such member")
    ended = sessions.end_sessions(db.session(), user_id=user_id)
    db.session.commit()
    return MemberSignedOut(sessions_ended=ended)


@bp.get("/f/<slug>/invitations")
@spec.validate(query=paging.Page, resp=reply(HTTP_200=list_of(InvitationOut)), tags=TAGS)
def list_invitations(slug: str, query: paging.Page) -> Answer:
    """Invitations not answered yet, by email (admins).

    Paginated: `limit`, `cursor` (see the `Next-Cursor` header).
    """
    member = require_member(slug, Role.admin)
    rows = invitations.pending_in(db.session(), facility=member.facility)
    page, after = paging.page_of(rows, query, key=lambda i: [i.email, i.id], kinds=(str, int))
    return paging.with_next([_invitation_dict(row) for row in page], after)


@bp.delete("/f/<slug>/invitations/<int:invitation_id>")
@spec.validate(resp=reply("HTTP_204"), tags=TAGS)
def withdraw_invitation(slug: str, invitation_id: int) -> Answer:
    """Take back an invitation (admins)."""
    member = require_member(slug, Role.admin)
    invitations.withdraw(db.session(), facility=member.facility, invitation_id=invitation_id)
    db.session.commit()
    return "", 204


@bp.get("/invitations")
@spec.validate(query=paging.Page, resp=reply(HTTP_200=list_of(InvitationOut)), tags=TAGS)
def my_invitations(query: paging.Page) -> Answer:
    """Invitations addressed to the signed-in user, oldest first.

    Paginated: `limit`, `cursor` (see the `Next-Cursor` header).
    """
    user = require_user()
    rows = invitations.pending_for(db.session(), user=user)
    page, after = paging.page_of(rows, query, key=lambda i: [i.id], kinds=(int,))
    return paging.with_next([_invitation_dict(row) for row in page], after)


@bp.post("/invitations/<int:invitation_id>/accept")
@spec.validate(resp=reply(HTTP_200=Joined), tags=TAGS)
def accept_invitation(invitation_id: int) -> Answer:
    """Join the facility that invited the signed-in user."""
    user = require_user()
    membership = invitations.accept(db.session(), user=user, invitation_id=invitation_id)
    db.session.commit()
    facility = membership.facility
    return {
        "facility": {"slug": facility.slug, "name": facility.name},
        "role": membership.role.value,
    }


@bp.post("/invitations/<int:invitation_id>/decline")
@spec.validate(resp=reply("HTTP_204"), tags=TAGS)
def decline_invitation(invitation_id: int) -> Answer:
    """Say no to an invitation."""
    user = require_user()
    invitations.decline(db.session(), user=user, invitation_id=invitation_id)
    db.session.commit()
    return "", 204
