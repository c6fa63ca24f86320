"""Browser sessions the server can end: start, look up, end one, end all of a user's; and
revoking all of a user's API tokens, for the operator's sign-out everywhere."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import and_, bindparam, delete, select
from sqlalchemy.orm import Session

from app.models import ApiToken, Facility, Membership, Role, User, UserSession
from app.models._types import utcnow

# Asked on every signed-in request: built once, its values bound per call.
_SESSION_USER = (
    select(User)
    .join(UserSession, UserSession.user_id == User.id)
    .where(
        UserSession.id == bindparam("session_id"),
        UserSession.user_id == bindparam("user_id"),
        UserSession.expires_at > bindparam("now"),
        User.is_active.is_(True),
    )
)


# The same, with the user's membership in the facility of a /f/<slug> address (None
# where there is no such facility or the user is not in it): one query for both.
_SESSION_MEMBER = (
    _SESSION_USER.add_columns(Facility, Membership.role)
    .outerjoin(Facility, Facility.slug == bindparam("slug"))
    .outerjoin(
        Membership, and_(Membership.facility_id == Facility.id, Membership.user_id == User.id)
    )
)


def _session_id(secret: str) -> str:
    # Only a hash is stored: a copy of the database does not hold usable cookies.
    return hashlib.sha256(f"user-session:{secret}".encode()).hexdigest()


def start_session(session: Session, *, user: User, lifetime: timedelta) -> str:
    """Record a new session for user; returns the secret the cookie carries."""
    now = utcnow()
    session.execute(
        delete(UserSession).where(UserSession.user_id == user.id, UserSession.expires_at <= now)
    )
    secret = secrets.token_urlsafe(32)
    session.add(UserSession(id=_session_id(secret), user_id=user.id, expires_at=now + lifetime))
    session.flush()
    return secret


def session_user(session: Session, *, secret: str, user_id: int) -> User | None:
    """The active user of a live, unexpired session, or None."""
    if not secret:
        return None
    # One query per request: the session row and its user together.
    return session.scalar(
        _SESSION_USER,
        {"session_id": _session_id(secret), "user_id": user_id, "now": utcnow()},
    )


def session_member(
    session: Session, *, secret: str, user_id: int, slug: str
) -> tuple[User, tuple[Facility, Role] | None] | None:
    """`session_user`, and the user's facility and role there when they are a member of
    the facility `slug`."""
    if not secret:
        return None
    row = session.execute(
        _SESSION_MEMBER,
        {"session_id": _session_id(secret), "user_id": user_id, "now": utcnow(), "slug": slug},
    ).first()
    if row is None:
        return None
    user, facility, role = row
    return user, (facility, role) if role is not None else None


def end_session(session: Session, *, secret: str) -> None:
    """End one session (sign-out)."""
    session.execute(delete(UserSession).where(UserSession.id == _session_id(secret)))
    session.flush()


def end_sessions(session: Session, *, user_id: int, keep_secret: str | None = None) -> int:
    """End every session of user_id except the one holding keep_secret; how many ended."""
    query = delete(UserSession).where(UserSession.user_id == user_id)
    if keep_secret:
        query = query.where(UserSession.id != _session_id(keep_secret))
    ended = session.execute(query).rowcount  # type: ignore[attr-defined]
    session.flush()
    return int(ended or 0)


def revoke_api_tokens(session: Session, *, user_id: int) -> int:
    """Revoke every API token of user_id (they outlive sessions: a password change keeps
    them); how many were revoked."""
    query = delete(ApiToken).where(ApiToken.user_id == user_id)
    revoked = session.execute(query).rowcount  # type: ignore[attr-defined]
    session.flush()
    return int(revoked or 0)
