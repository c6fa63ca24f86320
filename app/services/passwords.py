"""Changing a password, which ends every other session of its user."""

from __future__ import annotations

from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from app.errors import ValidationError
from app.models import User
from app.services import people, sessions


def change_password(
    session: Session,
    *,
    user: User,
    current_password: str,
    new_password: str,
    keep_session: str | None,
) -> int:
    """Set a new password after checking the current one; ends the user's other sessions.

    `keep_session` is the secret of the session asking (None ends them all); returns
    how many sessions ended.
    """
    if not check_password_hash(user.password_hash, current_password):
        raise ValidationError(
            "that is not your current password; type it again", field="current_password"
        )
    if len(new_password) < people.MIN_PASSWORD:
        raise ValidationError(
            f"the new password needs at least {people.MIN_PASSWORD} characters",
            field="new_password",
        )
    user.password_hash = generate_password_hash(
        new_password, method=people.PASSWORD_HASH_METHOD
    )
    session.flush()
    return sessions.end_sessions(session, user_id=user.id, keep_secret=keep_session)
