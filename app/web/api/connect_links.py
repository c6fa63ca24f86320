"""Connect links: an embedding app asks for a link, sends its user there, and gets them
back on `return_to` with `status=connected|refused|error` and the account id."""

from __future__ import annotations

from typing import Literal

from flask import current_app
from pydantic import BaseModel, Field, StrictInt, StrictStr

from app import db
from app.db import MAX_INTEGER
from app.models import ConnectLink
from app.services import connect_links
from app.services.context import MemberContext
from app.web.api.base import api_blueprint, integration_of
from app.web.openapi import Answer, Body, reply, spec
from app.web.security import require_member

bp = api_blueprint("api_connect_links")
TAGS = ("connect links",)


class LinkCreate(Body):
    """For whom (default: the caller; others need an admin), which integration, and where
    the user's browser goes afterwards (an allowed origin)."""

    integration: StrictStr
    # "master": the facility's master account, signed in by the admin who makes the link.
    owner: Literal["user", "master"] = "user"
    user_id: StrictInt | None = Field(default=None, ge=-MAX_INTEGER, le=MAX_INTEGER)
    label: StrictStr = ""
    return_to: StrictStr | None = None


class LinkOut(BaseModel):
    """The link to send the user to: single use, valid until `expires_at`."""

    id: int
    url: str
    user_id: int
    owner: str
    integration: str
    label: str = Field(
        description="The label of the account it connects, as stored (trimmed); empty: the "
        "unlabelled one"
    )
    expires_at: str


def link_out(link: ConnectLink, token: str, integration_key: str) -> LinkOut:
    """The API shape of a new link (the only time its token is shown)."""
    return LinkOut(
        id=link.id,
        url=connect_links.url_of(str(current_app.config["PUBLIC_URL"]), token),
        user_id=link.user_id,
        owner=link.owner,
        integration=integration_key,
        label=link.label,
        expires_at=link.expires_at.isoformat(),
    )


def new_link(
    member: MemberContext,
    key: str,
    *,
    user_id: int | None,
    label: str,
    return_to: str | None,
    owner: str = "user",
) -> LinkOut:
    """Create a link (flushed, not committed) and its API shape."""
    integration = integration_of(member, key)
    link, token = connect_links.create_link(
        db.session(),
        member=member,
        integration=integration,
        user_id=user_id,
        label=label,
        return_to=return_to,
        allowed_return_origins=current_app.config["ALLOWED_RETURN_ORIGINS"],
        owner=owner,
    )
    return link_out(link, token, integration.key)


@bp.post("/f/<slug>/connect-links")
@spec.validate(resp=reply(HTTP_201=LinkOut), tags=TAGS)
def create_link(slug: str, json: LinkCreate) -> Answer:
    """A short-lived, single-use link that runs a user's sign-in in any browser."""
    member = require_member(slug)
    answer = new_link(
        member,
        json.integration,
        user_id=json.user_id,
        label=json.label,
        return_to=json.return_to,
        owner=json.owner,
    )
    db.session.commit()
    return answer, 201
