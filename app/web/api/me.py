"""The signed-in user: who they are, their password, their API tokens."""

from __future__ import annotations

from pydantic import BaseModel, Field, StrictStr

from app import db
from app.errors import NotFound
from app.models import ApiToken
from app.web.api.base import api_blueprint
from app.web.auth import change_own_password
from app.web.openapi import Body, spec
from app.web.openapi_answers import Answer, reply
from app.web.security import (
    hash_token,
    memberships_of,
    new_api_token,
    require_browser_session,
    require_user,
)

bp = api_blueprint("api_me")
TAGS = ("me",)

# What an API token is told when it asks to make a token: a leaked token must not mint
# copies of itself that outlive its revocation (changing the password: auth.py).
TOKEN_BY_TOKEN = (
    "an API token cannot create API tokens; create one under Settings → API tokens "
    "while signed in"
)


class FacilityRole(BaseModel):
    """A facility the user belongs to, with their role there."""

    slug: str
    name: str
    role: str


class Me(BaseModel):
    """The signed-in user."""

    id: int
    email: str
    name: str
    facilities: list[FacilityRole]


class PasswordChange(Body):
    """The current password and the new one."""

    current_password: StrictStr = ""
    new_password: StrictStr = ""


class SessionsEnded(BaseModel):
    """How many other sessions a password change ended."""

    sessions_ended: int


TOKEN_NAME_LENGTH = 120


class TokenCreate(Body):
    """A name for the new token (what it is for; "API token" when left out)."""

    name: StrictStr = Field("", max_length=TOKEN_NAME_LENGTH)


class TokenCreated(BaseModel):
    """The new token: shown in this answer only (`prefix` names it in lists afterwards)."""

    id: int
    name: str
    prefix: str
    token: str


@bp.get("/me")
@spec.validate(resp=reply(HTTP_200=Me), tags=TAGS)
def me() -> Answer:
    """The signed-in user and their facilities."""
    user = require_user()
    facilities = [
        FacilityRole(slug=f.slug, name=f.name, role=role.value) for f, role in memberships_of(user)
    ]
    return Me(id=user.id, email=user.email, name=user.name, facilities=facilities)


@bp.post("/me/password")
@spec.validate(resp=reply(HTTP_200=SessionsEnded), tags=TAGS)
def change_password(json: PasswordChange) -> Answer:
    """Change the password (from a signed-in browser session only; needs the current one,
    wrong ones count on the sign-in throttle, 429 past it); the user's other sessions end
    (API tokens stay until revoked)."""
    ended = change_own_password(
        current_password=json.current_password, new_password=json.new_password
    )
    db.session.commit()
    return SessionsEnded(sessions_ended=ended)


@bp.post("/tokens")
@spec.validate(resp=reply(HTTP_201=TokenCreated), tags=TAGS)
def create_token(json: TokenCreate) -> Answer:
    """Create an API token (from a signed-in browser session only: a token cannot copy
    itself); the token is in this answer only."""
    user = require_browser_session(TOKEN_BY_TOKEN)
    name = json.name.strip() or "API token"
    token = new_api_token()
    row = ApiToken(user_id=user.id, name=name, token_hash=hash_token(token), prefix=token[:8])
    db.session.add(row)
    db.session.commit()
    return TokenCreated(id=row.id, name=name, prefix=row.prefix, token=token), 201


@bp.delete("/tokens/<int:token_id>")
@spec.validate(resp=reply("HTTP_204"), tags=TAGS)
def delete_token(token_id: int) -> Answer:
    """Revoke one of the user's API tokens."""
    user = require_user()
    row = db.session.get(ApiToken, token_id)
    if row is None or row.user_id != user.id:
        raise NotFound("no such token")
    db.session.delete(row)
    db.session.commit()
    return "", 204
