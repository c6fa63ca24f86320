"""Invitations: an admin invites an email address, its owner accepts or declines (flush only).

The admin's answer is the same whether or not the address has an account on this server,
so adding members cannot be used to list the server's users, and nobody is put into a
facility without their consent.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.errors import Conflict, NotFound
from app.models import Facility, Invitation, Membership, Role, User
from app.services import people

# Invitations nobody answers pile up; past this many a facility withdraws some first.
MAX_PENDING_INVITATIONS = 200


def invite(
    session: Session, *, facility: Facility, email: str, role: Role | str, invited_by: User
) -> tuple[Invitation, Role | None]:
    """Invite `email` to the facility with `role` (inviting again changes the role); the
    invitation, and the role it had before (None for a new one)."""
    email = people.normalized_email(email)
    role = people.parse_role(role)
    already = session.scalar(
        select(Membership.id)
        .join(User, User.id == Membership.user_id)
        .where(Membership.facility_id == facility.id, User.email == email)
    )
    if already is not None:
        # The admin sees the members list anyway: this reveals nothing new.
        raise Conflict(f"{email} is already a member; change their role in the list", field="email")
    invitation = session.scalar(
        select(Invitation).where(Invitation.facility_id == facility.id, Invitation.email == email)
    )
    if invitation is None:
        pending = session.scalar(
            select(func.count(Invitation.id)).where(Invitation.facility_id == facility.id)
        )
        if (pending or 0) >= MAX_PENDING_INVITATIONS:
            raise Conflict(
                f"{facility.name} has {MAX_PENDING_INVITATIONS} unanswered invitations:"
                " withdraw some before inviting more",
                field="email",
            )
        invitation = Invitation(facility_id=facility.id, email=email, role=role)
        session.add(invitation)
        before = None
    else:
        before = invitation.role
    invitation.role = role
    invitation.invited_by = invited_by.id
    session.flush()
    return invitation, before


def pending_in(session: Session, *, facility: Facility) -> list[Invitation]:
    """The facility's invitations nobody has answered yet."""
    return list(
        session.scalars(
            select(Invitation)
            .where(Invitation.facility_id == facility.id)
            .order_by(Invitation.email)
        )
    )


def withdraw(session: Session, *, facility: Facility, invitation_id: int) -> None:
    """Take back an invitation of the facility."""
    invitation = session.get(Invitation, invitation_id)
    if invitation is None or invitation.facility_id != facility.id:
        raise NotFound("no such invitation")
    session.delete(invitation)
    session.flush()


def pending_for(session: Session, *, user: User) -> list[Invitation]:
    """Invitations addressed to the user's email."""
    return list(
        session.scalars(
            select(Invitation).where(Invitation.email == user.email).order_by(Invitation.id)
        )
    )


def accept(session: Session, *, user: User, invitation_id: int) -> Membership:
    """Join the facility with the invited role."""
    invitation = _addressed_to(session, user=user, invitation_id=invitation_id)
    facility = invitation.facility
    membership = people.membership_of(session, user.id, facility.id)
    if membership is None:
        membership = people.set_membership(
            session, user=user, facility=facility, role=invitation.role
        )
    session.delete(invitation)
    session.flush()
    return membership


def decline(session: Session, *, user: User, invitation_id: int) -> None:
    """Say no to an invitation; the facility's admins see it disappear."""
    session.delete(_addressed_to(session, user=user, invitation_id=invitation_id))
    session.flush()


def _addressed_to(session: Session, *, user: User, invitation_id: int) -> Invitation:
    invitation = session.get(Invitation, invitation_id)
    if invitation is None or invitation.email != user.email:
        raise NotFound("no such invitation")
    return invitation
