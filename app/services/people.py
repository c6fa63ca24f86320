"""Users, facilities and memberships."""

from __future__ import annotations

import re

from sqlalchemy import select, update
from sqlalchemy.orm import Session
from werkzeug.security import generate_password_hash

from app.errors import Conflict, NotFound, ValidationError
from app.models import Facility, Membership, Role, User

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
MAX_FACILITY_NAME = 120  # the column's width
MIN_PASSWORD = 8
# Werkzeug's default (scrypt). The test suite swaps in a cheap method: hashing is not
# what it tests, and scrypt costs ~0.1 s a user.
PASSWORD_HASH_METHOD = "scrypt"


def normalized_email(email: str) -> str:
    """The address as stored (trimmed, lowercase), or ValidationError if it is not one."""
    email = email.strip().lower()
    if len(email) > 254 or not _EMAIL.match(email):
        raise ValidationError("enter a valid email address", field="email")
    return email


def create_user(session: Session, *, email: str, name: str, password: str) -> User:
    """Create a user with a hashed password."""
    email = normalized_email(email)
    if len(password) < MIN_PASSWORD:
        raise ValidationError(
            f"the password needs at least {MIN_PASSWORD} characters", field="password"
        )
    if session.scalar(select(User).where(User.email == email)):
        raise Conflict(f"a user with email {email} already exists", field="email")
    user = User(
        email=email,
        name=name.strip() or email,
        password_hash=generate_password_hash(password, method=PASSWORD_HASH_METHOD),
    )
    session.add(user)
    session.flush()
    return user


def create_facility(session: Session, *, name: str, slug: str) -> Facility:
    """Create a facility (tenant)."""
    slug = slug.strip().lower()
    if not _SLUG.match(slug):
        raise ValidationError(
            "the slug may hold lowercase letters, digits and dashes", field="slug"
        )
    if session.scalar(select(Facility).where(Facility.slug == slug)):
        raise Conflict(f"a facility with slug {slug} already exists", field="slug")
    facility = Facility(name=name.strip() or slug, slug=slug)
    session.add(facility)
    session.flush()
    return facility


def rename_facility(facility: Facility, name: str) -> Facility:
    """Give the facility another name (its slug, in every address, stays)."""
    name = name.strip()
    if not name:
        raise ValidationError("give the facility a name", field="name")
    if len(name) > MAX_FACILITY_NAME:
        raise ValidationError(
            f"the facility's name may be at most {MAX_FACILITY_NAME} characters", field="name"
        )
    facility.name = name
    return facility


def hold_facility(session: Session, facility_id: int) -> None:
    """Hold the facility's row until the transaction ends, before counting against a cap
    (schedules, webhook endpoints): two creates at once then count one after the other,
    so neither goes past it. A write to a column no key uses: on PostgreSQL it locks the
    row FOR NO KEY UPDATE, which leaves runs' inserts (their foreign keys' KEY SHARE)
    alone; on SQLite it is the transaction's first write, which takes the write lock
    before the count's snapshot is read."""
    session.execute(
        update(Facility).where(Facility.id == facility_id).values(name=Facility.name)
    )


def parse_role(role: Role | str) -> Role:
    """The role named `role`, or ValidationError."""
    try:
        return Role(role)
    except ValueError:
        raise ValidationError("role must be admin, scripter or member", field="role") from None


def set_membership(
    session: Session, *, user: User, facility: Facility, role: Role | str
) -> Membership:
    """Add the user to the facility with `role`, or change their role there."""
    role = parse_role(role)
    membership = session.scalar(
        select(Membership).where(
            Membership.user_id == user.id, Membership.facility_id == facility.id
        )
    )
    if membership is None:
        membership = Membership(user_id=user.id, facility_id=facility.id, role=role)
        session.add(membership)
    else:
        if role is not Role.admin:
            _keep_an_admin(session, membership, facility=facility, doing="demoted")
        membership.role = role
    session.flush()
    return membership


def remove_membership(session: Session, *, user_id: int, facility: Facility) -> User:
    """Take the user out of the facility (never its last admin); their own accounts stay theirs."""
    membership = membership_of(session, user_id, facility.id)
    if membership is None:
        raise NotFound("no such member")
    _keep_an_admin(session, membership, facility=facility, doing="removed")
    user = membership.user
    session.delete(membership)
    session.flush()
    return user


def _keep_an_admin(
    session: Session, membership: Membership, *, facility: Facility, doing: str
) -> None:
    # The one owner of the last-admin rule: a facility without an admin can never be
    # managed again. The admins' rows are locked (PostgreSQL) so that two admins demoting
    # each other at once cannot both pass the check.
    if membership.role is not Role.admin:
        return
    admins = session.scalars(
        select(Membership.id)
        .where(Membership.facility_id == facility.id, Membership.role == Role.admin)
        .with_for_update()
    ).all()
    if len(admins) <= 1:
        raise Conflict(
            f"{membership.user.name} is the last admin of {facility.name} and cannot be {doing}:"
            " make another member admin first",
            field="role",
        )


def members_of(session: Session, *, facility: Facility) -> list[tuple[User, Role]]:
    """The facility's members with their roles, by name."""
    rows = session.execute(
        select(User, Membership.role)
        .join(Membership, Membership.user_id == User.id)
        .where(Membership.facility_id == facility.id)
        .order_by(User.name)
    ).all()
    return [(user, role) for user, role in rows]


def user_by_email(session: Session, email: str) -> User:
    """The user with this email, or NotFound."""
    user = session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None:
        raise NotFound(f"no user with email {email}")
    return user


def facility_by_slug(session: Session, slug: str) -> Facility:
    """The facility with this slug, or NotFound."""
    facility = session.scalar(select(Facility).where(Facility.slug == slug.strip().lower()))
    if facility is None:
        raise NotFound(f"no facility with slug {slug}")
    return facility


def membership_of(session: Session, user_id: int, facility_id: int) -> Membership | None:
    """The user's membership in the facility, if any."""
    return session.scalar(
        select(Membership).where(
            Membership.user_id == user_id, Membership.facility_id == facility_id
        )
    )
