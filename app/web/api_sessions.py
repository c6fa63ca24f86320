"""The REST API's session endpoints: change the password, sign a member out everywhere.

Routes on the API blueprint (its sign-in and CSRF checks apply), kept apart by noun.
"""

from __future__ import annotations

from flask import jsonify
from flask.typing import ResponseReturnValue

from app import db
from app.errors import NotFound
from app.models import Role
from app.services import passwords, people, sessions
from app.web import inputs
from app.web.api import bp
from app.web.security import require_member, require_user, session_secret


@bp.post("/me/password")
def change_password() -> ResponseReturnValue:
    """Change the password (needs the current one); the user's other sessions end."""
    user = require_user()
    body = inputs.body()
    ended = passwords.change_password(
        db.session(),
        user=user,
        current_password=inputs.text(body, "current_password"),
        new_password=inputs.text(body, "new_password"),
        keep_session=session_secret(),
    )
    db.session.commit()
    return jsonify({"sessions_ended": ended})


@bp.post("/f/<slug>/members/<int:user_id>/sign-out")
def sign_out_member(slug: str, user_id: int) -> ResponseReturnValue:
    """End every session of a member, e.g. after a lost laptop (admins)."""
    member = require_member(slug, Role.admin)
    if people.membership_of(db.session(), user_id, member.facility.id) is None:
        raise NotFound("no such member")
    ended = sessions.end_sessions(db.session(), user_id=user_id)
    db.session.commit()
    return jsonify({"sessions_ended": ended})
