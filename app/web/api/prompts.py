"""Sign-in prompts by API: refuse one (its waiting runs get NoIntegrationGrant), and the
`prompt` a paused run shows, with how to answer it here."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel

from app import db, extensions
from app.errors import NotFound
from app.models import Grant
from app.services import connect_links, run_prompts
from app.services.context import MemberContext
from app.web.api.base import address_of, api_blueprint
from app.web.openapi import spec
from app.web.openapi_answers import Answer, reply
from app.web.security import require_member

bp = api_blueprint("api_prompts")


def shown_prompts(
    member: MemberContext, runs: Sequence[Mapping[str, Any]]
) -> dict[str, dict[str, Any]]:
    """The `prompt` (RunPrompt) of each run of `runs` that waits for a sign-in, by run id,
    with the API calls by which `member` can answer it. No link is made here: a link is a
    bearer secret for the user's sign-in, and a read (a poll, a list) must not mint one
    per call; `connect_link` says how to make one."""
    waiting = run_prompts.waiting_prompts(db.session(), runs)
    if not waiting:  # asks nothing more: a POST answering its run in an outage reads nothing
        return {}
    owners = {run["id"]: run["user_id"] for run in runs}
    slug = member.facility.slug
    shown = {}
    for run_id, (prompt, auth_mode) in waiting.items():
        user_id = owners[run_id]
        connect = None
        if auth_mode in connect_links.USER_AUTH_MODES:  # else no account connects by link
            body = {
                "integration": prompt["integration"],
                "label": prompt["label"],
                "user_id": user_id,
            }
            url = address_of("api_connect_links.create_link", slug=slug)
            connect = {"method": "POST", "url": url, "body": body}
        refuse = None
        if user_id == member.user.id:  # the prompt asks them: nobody else may refuse it
            url = address_of("api_prompts.refuse_grant", slug=slug, grant_id=prompt["grant_id"])
            refuse = {"method": "POST", "url": url, "body": None}
        shown[run_id] = {**prompt, "answer": {"connect_link": connect, "refuse": refuse}}
    return shown


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
