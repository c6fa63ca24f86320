"""Connect links: an embedding app asks for a link, sends its user there, and gets them
back on `return_to` with `status=connected|refused|error` and the account id (or, from
the page of a link that opens no more, a button back with `status=expired|used|revoked`)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from flask import current_app
from pydantic import BaseModel, Field, StrictInt, StrictStr

from app import db
from app.db import MAX_INTEGER
from app.models import ConnectLink, Integration
from app.services import connect_links
from app.services.context import MemberContext
from app.web.api.base import api_blueprint, integration_of
from app.web.openapi import Body, spec
from app.web.openapi_answers import Answer, ErrorBody, reply
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
    return_to: StrictStr | None = Field(
        default=None,
        description="An absolute URL on an allowed origin. The sign-in ends there with "
        "status=connected (and account_id), refused or error in its query; a link that "
        "opens no more (expired, used or revoked) shows why on its page, with a button "
        "back here carrying status=expired, used or revoked. Null: the link's own page "
        "says how it went",
    )


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


class LinkState(BaseModel):
    """A link as the app that made it may follow it (never its token or URL)."""

    id: int
    state: connect_links.LinkStateName = Field(
        description="open: not yet opened; opened: a browser pressed its button, the "
        "sign-in may finish until 15 minutes after opened_at; used: finished (outcome says "
        "how); expired: not opened, or not finished, in time; revoked: withdrawn by DELETE"
    )
    outcome: str | None = Field(
        description="How a used link ended (connected, refused or error); null until then"
    )
    account_id: int | None = Field(
        description="The account a link that ended connected connected (null once removed)"
    )
    user_id: int
    owner: str
    integration: str
    label: str
    created_at: str
    expires_at: str = Field(description="Until when the link may be opened")
    opened_at: str | None
    finished_at: str | None
    revoked_at: str | None


def _when(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def state_out(link: ConnectLink) -> LinkState:
    """The API shape of a link's state."""
    integration = db.session.get(Integration, link.integration_id)
    assert integration is not None  # deleting an integration deletes its links
    return LinkState(
        id=link.id,
        state=connect_links.state_of(link),
        outcome=link.outcome,
        account_id=link.account_id,
        user_id=link.user_id,
        owner=link.owner,
        integration=integration.key,
        label=link.label,
        created_at=link.created_at.isoformat(),
        expires_at=link.expires_at.isoformat(),
        opened_at=_when(link.opened_at),
        finished_at=_when(link.finished_at),
        revoked_at=_when(link.revoked_at),
    )


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


@bp.get("/f/<slug>/connect-links/<int:link_id>")
@spec.validate(resp=reply(HTTP_200=LinkState), tags=TAGS)
def link_state(slug: str, link_id: int) -> Answer:
    """A link's state: open, opened, used (and how: `outcome`, `account_id`), expired or
    revoked. Its own user and the facility's admins see it; anyone else's is a 404."""
    member = require_member(slug)
    link = connect_links.link_of_member(db.session(), member=member, link_id=link_id)
    return state_out(link).model_dump()


@bp.delete("/f/<slug>/connect-links/<int:link_id>")
@spec.validate(
    resp=reply(
        "HTTP_204",
        HTTP_409=(ErrorBody, "The link was already used: revoking it would undo nothing"),
    ),
    tags=TAGS,
)
def revoke_link(slug: str, link_id: int) -> Answer:
    """Revoke a link not yet used: opening it then says it was withdrawn, and a sign-in
    started from it connects nothing. Revoking a revoked or expired link is a 204 too; a
    used one is a 409 (disconnect the account it connected instead)."""
    member = require_member(slug)
    link = connect_links.link_of_member(db.session(), member=member, link_id=link_id)
    connect_links.revoke(db.session(), link)
    db.session.commit()
    return "", 204
