"""Users, facilities and memberships."""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.security import generate_password_hash

from app.errors import Conflict, NotFound, ValidationError
from app.models import Facility, Membership, Role, User

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
MIN_PASSWORD = 8
# Werkzeug's default (scrypt). The test suite swaps in a cheap method: hashing is not
# what it tests, and scrypt costs ~0.1 s a user.
PASSWORD_HASH_METHOD = "scrypt"


def create_user(session: Session, *, email: str, name: str, password: str) -> User:
    """Create a user with a hashed password."""
    email = email.strip().lower()
    if not _EMAIL.match(email):
        raise ValidationError("enter a valid email address", field="email")
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


def set_membership(
    session: Session, *, user: User, facility: Facility, role: Role | str
) -> Membership:
    """Add the user to the facility with `role`, or change their role there."""
    try:
        role = Role(role)
    except ValueError:
        raise ValidationError("role must be admin, scripter or member", field="role") from None
    membership = session.scalar(
        select(Membership).where(
            Membership.user_id == user.id, Membership.facility_id == facility.id
        )
    )
    if membership is None:
        membership = Membership(user_id=user.id, facility_id=facility.id, role=role)
        session.add(membership)
    else:
        membership.role = role
    session.flush()
    return membership


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
