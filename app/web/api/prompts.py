"""Sign-in prompts by API: refuse one (its waiting runs get NoIntegrationGrant)."""

from __future__ import annotations

from pydantic import BaseModel

from app import db, extensions
from app.errors import NotFound
from app.models import Grant
from app.web.api.base import api_blueprint
from app.web.openapi import Answer, reply, spec
from app.web.security import require_member

bp = api_blueprint("api_prompts")


class GrantRefused(BaseModel):
    """A prompt's state after refusing it."""

    grant_id: str
    state: str


@bp.post("/f/<slug>/grants/<grant_id>/refuse")
@spec.validate(resp=reply(HTTP_200=GrantRefused), tags=("prompts",))
def refuse_grant(slug: str, grant_id: str) -> Answer:
    """Refuse a sign-in prompt: waiting runs get NoIntegrationGrant."""
    member = require_member(slug)
    grant = db.session.get(Grant, grant_id)
    if grant is None or grant.user_id != member.user.id or grant.facility_id != member.facility.id:
        raise NotFound("no such prompt")
    changed = extensions.grants().resolve(grant.id, "refused")
    return GrantRefused(grant_id=grant.id, state="refused" if changed else grant.state)
