"""The REST API for people: a facility's members and invitations, and the user's own invitations.

Admins invite by exact email and never learn whether the address has an account here;
the invited person joins by accepting. Role changes and removals keep the last admin.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue

from app import db
from app.errors import NotFound
from app.models import Invitation, Role, User
from app.services import invitations, people, sessions
from app.web import inputs
from app.web.security import check_csrf, require_member, require_user

bp = Blueprint("members_api", __name__, url_prefix="/api")


@bp.before_request
def _authenticate() -> None:
    require_user()
    check_csrf()


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
def list_members(slug: str) -> ResponseReturnValue:
    """Members and roles (admins)."""
    member = require_member(slug, Role.admin)
    rows = people.members_of(db.session(), facility=member.facility)
    return jsonify([_member_dict(user, role) for user, role in rows])


@bp.post("/f/<slug>/members")
def invite_member(slug: str) -> ResponseReturnValue:
    """Invite an exact email address with a role (admins); the same answer for any address."""
    member = require_member(slug, Role.admin)
    body = inputs.body()
    invitation = invitations.invite(
        db.session(),
        facility=member.facility,
        email=inputs.text(body, "email"),
        role=inputs.text(body, "role", default="member"),
        invited_by=member.user,
    )
    db.session.commit()
    answer = _invitation_dict(invitation)
    answer["message"] = (
        f"Invited {invitation.email} as {invitation.role.value}. They join"
        f" {member.facility.name} when they accept the invitation after signing in."
    )
    return jsonify(answer), 202


@bp.patch("/f/<slug>/members/<int:user_id>")
def change_role(slug: str, user_id: int) -> ResponseReturnValue:
    """Change a member's role (admins); the last admin cannot be demoted."""
    member = require_member(slug, Role.admin)
    role = inputs.text(inputs.body(), "role")
    membership = people.membership_of(db.session(), user_id, member.facility.id)
    if membership is None:
        raise NotFound("no such member")
    people.set_membership(db.session(), user=membership.user, facility=member.facility, role=role)
    db.session.commit()
    return jsonify(_member_dict(membership.user, membership.role))


@bp.delete("/f/<slug>/members/<int:user_id>")
def remove_member(slug: str, user_id: int) -> ResponseReturnValue:
    """Remove a member from the facility (admins); the last admin cannot be removed."""
    member = require_member(slug, Role.admin)
    people.remove_membership(db.session(), user_id=user_id, facility=member.facility)
    # Sessions end on removal (DESIGN §6); the removed person's open pages close too.
    sessions.end_sessions(db.session(), user_id=user_id)
    db.session.commit()
    return "", 204


@bp.get("/f/<slug>/invitations")
def list_invitations(slug: str) -> ResponseReturnValue:
    """Invitations not answered yet (admins)."""
    member = require_member(slug, Role.admin)
    rows = invitations.pending_in(db.session(), facility=member.facility)
    return jsonify([_invitation_dict(row) for row in rows])


@bp.delete("/f/<slug>/invitations/<int:invitation_id>")
def withdraw_invitation(slug: str, invitation_id: int) -> ResponseReturnValue:
    """Take back an invitation (admins)."""
    member = require_member(slug, Role.admin)
    invitations.withdraw(db.session(), facility=member.facility, invitation_id=invitation_id)
    db.session.commit()
    return "", 204


@bp.get("/invitations")
def my_invitations() -> ResponseReturnValue:
    """Invitations addressed to the signed-in user."""
    user = require_user()
    return jsonify(
        [_invitation_dict(row) for row in invitations.pending_for(db.session(), user=user)]
    )


@bp.post("/invitations/<int:invitation_id>/accept")
def accept_invitation(invitation_id: int) -> ResponseReturnValue:
    """Join the facility that invited the signed-in user."""
    user = require_user()
    membership = invitations.accept(db.session(), user=user, invitation_id=invitation_id)
    db.session.commit()
    facility = membership.facility
    return jsonify(
        {"facility": {"slug": facility.slug, "name": facility.name}, "role": membership.role.value}
    )


@bp.post("/invitations/<int:invitation_id>/decline")
def decline_invitation(invitation_id: int) -> ResponseReturnValue:
    """Say no to an invitation."""
    user = require_user()
    invitations.decline(db.session(), user=user, invitation_id=invitation_id)
    db.session.commit()
    return "", 204
