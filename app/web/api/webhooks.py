"""Outbound webhooks of a facility (admins): register endpoints, list them and their
deliveries, remove them. The signing secret is shown once, when the endpoint is made."""

from __future__ import annotations

from flask import current_app
from pydantic import BaseModel, Field, StrictStr

from app import db, extensions
from app.models import Role, WebhookDelivery, WebhookEndpoint
from app.models.webhooks import WEBHOOK_EVENTS, ShownStatus, WebhookEvent
from app.services import webhook_endpoints, webhooks
from app.web.api import paging
from app.web.api.base import api_blueprint
from app.web.openapi import Answer, Body, list_of, reply, spec
from app.web.security import require_member

bp = api_blueprint("api_webhooks")
TAGS = ("webhooks",)


class EndpointCreate(Body):
    """Where to send (https; plain http only to localhost or a private IP address the
    server may reach) and which events."""

    url: StrictStr = Field(max_length=1000)
    events: list[WebhookEvent] = Field(min_length=1, max_length=len(WEBHOOK_EVENTS))


class EndpointOut(BaseModel):
    """A registered endpoint."""

    id: int
    url: str
    events: list[str]
    active: bool
    created_at: str


class NewEndpoint(EndpointOut):
    """A new endpoint and its signing secret: shown this once, keep it."""

    secret: str


class DeliveryOut(BaseModel):
    """One event sent (or being sent) to an endpoint, with the outcome of its last attempt."""

    id: str
    endpoint_id: int
    event: str
    status: ShownStatus = Field(
        description="pending: not tried yet; retrying: tried and failed, another attempt "
        "is due at next_attempt_at; delivered: answered 2xx; failed: no attempts left"
    )
    attempts: int = Field(description="Attempts made so far")
    max_attempts: int = Field(
        description="Attempts it gets in all (the server's SCRIPTBOX_WEBHOOK_MAX_ATTEMPTS)"
    )
    response_code: int | None = Field(
        description="The HTTP status of the last attempt; null when it got no answer "
        "(or none was made)"
    )
    last_error: str | None = Field(
        description="Why the last attempt failed, in words (never the response body); "
        "null before the first attempt and after a 2xx"
    )
    next_attempt_at: str | None = Field(
        description="When the next attempt is due (while one is in flight: when it is "
        "tried again should that attempt never report back); null once delivered or failed"
    )
    created_at: str
    delivered_at: str | None


def endpoint_out(endpoint: WebhookEndpoint) -> EndpointOut:
    """The API shape of an endpoint (never its secret)."""
    return EndpointOut(
        id=endpoint.id,
        url=endpoint.url,
        events=list(endpoint.events),
        active=endpoint.active,
        created_at=endpoint.created_at.isoformat(),
    )


def delivery_out(delivery: WebhookDelivery, *, max_attempts: int) -> DeliveryOut:
    """The API shape of a delivery under the sender's limit `max_attempts`."""
    return DeliveryOut(
        id=delivery.id,
        endpoint_id=delivery.endpoint_id,
        event=delivery.event,
        status=delivery.shown_status,
        attempts=delivery.attempts,
        max_attempts=delivery.attempts_allowed(max_attempts),
        response_code=delivery.response_code,
        last_error=delivery.last_error,
        next_attempt_at=delivery.next_attempt_at.isoformat() if delivery.next_attempt_at else None,
        created_at=delivery.created_at.isoformat(),
        delivered_at=delivery.delivered_at.isoformat() if delivery.delivered_at else None,
    )


@bp.post("/f/<slug>/webhooks")
@spec.validate(resp=reply(HTTP_201=NewEndpoint), tags=TAGS)
def create_endpoint(slug: str, json: EndpointCreate) -> Answer:
    """Register an endpoint for the facility's events (admins). The answer carries the
    signing secret, once."""
    member = require_member(slug, Role.admin)
    endpoint, secret = webhook_endpoints.register(
        db.session(),
        facility_id=member.facility.id,
        url=json.url,
        events=list(json.events),
        created_by=member.user.id,
        vault=extensions.vault(),
        allow=current_app.config["PRIVATE_NETWORK_ALLOW"],
    )
    db.session.commit()
    return NewEndpoint(**endpoint_out(endpoint).model_dump(), secret=secret), 201


@bp.get("/f/<slug>/webhooks")
@spec.validate(query=paging.Page, resp=reply(HTTP_200=list_of(EndpointOut)), tags=TAGS)
def list_endpoints(slug: str, query: paging.Page) -> Answer:
    """The facility's endpoints, oldest first (admins). Paginated like every list: when
    more rows follow, `Next-Cursor` holds the `cursor` of the next page."""
    member = require_member(slug, Role.admin)
    position = paging.decode(query.cursor, kinds=(int,))
    limit = paging.page_limit(query.limit)
    rows = webhook_endpoints.list_endpoints(
        db.session(),
        facility_id=member.facility.id,
        after=position[0] if position else None,
        limit=limit + 1,
    )
    page = rows[:limit]
    next_position = [page[-1].id] if len(rows) > limit else None
    return paging.with_next([endpoint_out(e).model_dump() for e in page], next_position)


@bp.delete("/f/<slug>/webhooks/<int:endpoint_id>")
@spec.validate(resp=reply("HTTP_204"), tags=TAGS)
def delete_endpoint(slug: str, endpoint_id: int) -> Answer:
    """Remove an endpoint and its delivery log (admins)."""
    member = require_member(slug, Role.admin)
    endpoint = webhook_endpoints.endpoint_of(
        db.session(), facility_id=member.facility.id, endpoint_id=endpoint_id
    )
    webhook_endpoints.remove(db.session(), endpoint)
    db.session.commit()
    return "", 204


@bp.get("/f/<slug>/webhooks/<int:endpoint_id>/deliveries")
@spec.validate(query=paging.Page, resp=reply(HTTP_200=list_of(DeliveryOut)), tags=TAGS)
def list_deliveries(slug: str, endpoint_id: int, query: paging.Page) -> Answer:
    """The endpoint's delivery log, newest first (admins): status (pending, retrying,
    delivered, failed), attempts so far out of max_attempts, the last attempt's HTTP status
    or error in words, and when the next attempt is due. Paginated with `cursor` /
    `Next-Cursor`."""
    member = require_member(slug, Role.admin)
    webhook_endpoints.endpoint_of(
        db.session(), facility_id=member.facility.id, endpoint_id=endpoint_id
    )
    position = paging.decode(query.cursor, kinds=(str, str))
    before = (paging.instant(position[0]), position[1]) if position else None
    limit = paging.page_limit(query.limit)
    rows = webhooks.list_deliveries(
        db.session(),
        facility_id=member.facility.id,
        endpoint_id=endpoint_id,
        limit=limit + 1,
        before=before,
    )
    page = rows[:limit]
    last = page[-1] if len(rows) > limit else None
    next_position = [last.created_at.isoformat(), last.id] if last else None
    # The sender's retry policy is built from the same setting (app/extensions.py).
    max_attempts = int(current_app.config["WEBHOOK_MAX_ATTEMPTS"])
    return paging.with_next(
        [delivery_out(d, max_attempts=max_attempts).model_dump() for d in page], next_position
    )
