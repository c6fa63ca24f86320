"""Outbound webhooks of a facility (admins): register endpoints, change, pause or remove
them, rotate their signing secret (shown once, as when made), send a test event, and read
their delivery log, each delivery with its attempts, redelivering one that ended."""

from __future__ import annotations

from datetime import datetime

from flask import current_app
from pydantic import BaseModel, Field, StrictBool, StrictStr

from app import db, extensions
from app.errors import ValidationError
from app.models import Role, WebhookDelivery, WebhookEndpoint
from app.models._types import iso
from app.models.webhooks import (
    PING_EVENT,
    WEBHOOK_EVENTS,
    ShownStatus,
    WebhookAttempt,
    WebhookEvent,
)
from app.services import webhook_deliveries, webhook_endpoints, webhook_sending, webhooks
from app.web.api import paging
from app.web.api.base import api_blueprint, location
from app.web.openapi import Body, spec
from app.web.openapi_answers import LOCATION_HEADER, Answer, list_of, reply
from app.web.security import require_member
from app.web.throttle import send_throttle

bp = api_blueprint("api_webhooks")
TAGS = ("webhooks",)


class EndpointCreate(Body):
    """Where to send (https; plain http only to localhost or a private IP address the
    server may reach) and which events."""

    url: StrictStr = Field(max_length=1000)
    events: list[WebhookEvent] = Field(min_length=1, max_length=len(WEBHOOK_EVENTS))


class EndpointUpdate(Body):
    """The fields to change; absent or null keeps the old value. `active: false` pauses the
    endpoint: no new deliveries are made for it, and its pending ones wait (their attempts
    unspent) until `active: true` resumes it."""

    url: StrictStr | None = Field(default=None, max_length=1000)
    events: list[WebhookEvent] | None = Field(
        default=None, min_length=1, max_length=len(WEBHOOK_EVENTS)
    )
    active: StrictBool | None = None


class DeliveryList(paging.Page):
    """Filters, page size and cursor of an endpoint's delivery log."""

    status: ShownStatus | None = Field(
        default=None, description="Only deliveries in this status (e.g. failed, retrying)"
    )
    event: StrictStr | None = Field(
        default=None,
        max_length=40,
        description=f"Only deliveries of this event ({', '.join(WEBHOOK_EVENTS)} or {PING_EVENT})",
    )


class EndpointOut(BaseModel):
    """A registered endpoint."""

    id: int
    url: str
    events: list[str]
    active: bool = Field(description="false while paused: no new deliveries, pending ones wait")
    created_at: str


class NewEndpoint(EndpointOut):
    """A new endpoint and its signing secret: shown this once, keep it."""

    secret: str


class DeliveryOut(BaseModel):
    """One event sent (or being sent) to an endpoint, with the outcome of its last attempt."""

    id: str
    endpoint_id: int
    event: str = Field(description=f"One of the subscribed events, or {PING_EVENT} (a test)")
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
        description="When the next attempt is due; null while an attempt is in flight "
        "(see sending_since) and once delivered or failed. A paused endpoint's pending "
        "deliveries wait past it until the endpoint is resumed"
    )
    sending_since: str | None = Field(
        description="When the attempt now in flight began; null when none is"
    )
    created_at: str
    delivered_at: str | None
    redelivery_of: str | None = Field(
        description="The delivery this one sends again (a redelivery), else null"
    )


class AttemptOut(BaseModel):
    """One attempt of a delivery."""

    number: int = Field(description="1 for the first attempt")
    started_at: str
    duration_ms: int | None = Field(
        description="How long it took; null while in flight, or when its sender never reported"
    )
    response_code: int | None = Field(description="The HTTP status; null when no answer came")
    error: str | None = Field(
        description="Why it failed, in words (never a response body); null after a 2xx "
        "and while in flight"
    )


class DeliveryDetail(DeliveryOut):
    """A delivery with each of its attempts, first first."""

    attempt_log: list[AttemptOut]


def endpoint_out(endpoint: WebhookEndpoint) -> EndpointOut:
    """The API shape of an endpoint (never its secret)."""
    return EndpointOut(
        id=endpoint.id,
        url=endpoint.url,
        events=list(endpoint.events),
        active=endpoint.active,
        created_at=endpoint.created_at.isoformat(),
    )


def delivery_out(
    delivery: WebhookDelivery, *, max_attempts: int, sending_since: datetime | None = None
) -> DeliveryOut:
    """The API shape of a delivery under the sender's limit `max_attempts`; `sending_since`
    when an attempt is in flight (its next_attempt_at is then the claim's lease, not shown)."""
    next_attempt = None if sending_since is not None else delivery.next_attempt_at
    return DeliveryOut(
        id=delivery.id,
        endpoint_id=delivery.endpoint_id,
        event=delivery.event,
        status=delivery.shown_status,
        attempts=delivery.attempts,
        max_attempts=delivery.attempts_allowed(max_attempts),
        response_code=delivery.response_code,
        last_error=delivery.last_error,
        next_attempt_at=iso(next_attempt),
        sending_since=iso(sending_since),
        created_at=delivery.created_at.isoformat(),
        delivered_at=iso(delivery.delivered_at),
        redelivery_of=delivery.redelivery_of,
    )


def attempt_out(attempt: WebhookAttempt) -> AttemptOut:
    """The API shape of one attempt."""
    return AttemptOut(
        number=attempt.number,
        started_at=attempt.started_at.isoformat(),
        duration_ms=attempt.duration_ms,
        response_code=attempt.response_code,
        error=attempt.error,
    )


def _max_attempts() -> int:
    # The sender's retry policy is built from the same setting (app/extensions.py).
    return int(current_app.config["WEBHOOK_MAX_ATTEMPTS"])


def _endpoint(slug: str, endpoint_id: int) -> WebhookEndpoint:
    """The facility's endpoint for an admin: 403 for others, 404 for another's id."""
    member = require_member(slug, Role.admin)
    return webhook_endpoints.endpoint_of(
        db.session(), facility_id=member.facility.id, endpoint_id=endpoint_id
    )


@bp.post("/f/<slug>/webhooks")
@spec.validate(resp=reply(HTTP_201=NewEndpoint, sends=(LOCATION_HEADER,)), tags=TAGS)
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
    shown_at = location("api_webhooks.get_endpoint", slug=slug, endpoint_id=endpoint.id)
    return NewEndpoint(**endpoint_out(endpoint).model_dump(), secret=secret), 201, shown_at


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


@bp.get("/f/<slug>/webhooks/<int:endpoint_id>")
@spec.validate(resp=reply(HTTP_200=EndpointOut), tags=TAGS)
def get_endpoint(slug: str, endpoint_id: int) -> Answer:
    """One endpoint (admins), as the list shows it: never its signing secret."""
    return endpoint_out(_endpoint(slug, endpoint_id))


@bp.delete("/f/<slug>/webhooks/<int:endpoint_id>")
@spec.validate(resp=reply("HTTP_204"), tags=TAGS)
def delete_endpoint(slug: str, endpoint_id: int) -> Answer:
    """Remove an endpoint and its delivery log (admins)."""
    endpoint = _endpoint(slug, endpoint_id)
    webhook_endpoints.remove(db.session(), endpoint)
    db.session.commit()
    return "", 204


@bp.get("/f/<slug>/webhooks/<int:endpoint_id>/deliveries")
@spec.validate(query=DeliveryList, resp=reply(HTTP_200=list_of(DeliveryOut)), tags=TAGS)
def list_deliveries(slug: str, endpoint_id: int, query: DeliveryList) -> Answer:
    """The endpoint's delivery log, newest first (admins): status (pending, retrying,
    delivered, failed), attempts so far out of max_attempts, the last attempt's HTTP status
    or error in words, and when the next attempt is due (or since when one is in flight).
    `status` and `event` narrow it (the next page's Link keeps them). Paginated with
    `cursor` / `Next-Cursor`."""
    if query.event is not None and query.event not in (*WEBHOOK_EVENTS, PING_EVENT):
        raise ValidationError(
            f"event: choose from {', '.join((*WEBHOOK_EVENTS, PING_EVENT))}", field="event"
        )
    endpoint = _endpoint(slug, endpoint_id)
    position = paging.decode(query.cursor, kinds=(str, str))
    before = (paging.instant(position[0]), position[1]) if position else None
    limit = paging.page_limit(query.limit)
    rows = webhooks.list_deliveries(
        db.session(),
        facility_id=endpoint.facility_id,
        endpoint_id=endpoint.id,
        status=query.status,
        event=query.event,
        limit=limit + 1,
        before=before,
    )
    page = rows[:limit]
    last = page[-1] if len(rows) > limit else None
    next_position = [last.created_at.isoformat(), last.id] if last else None
    sending = webhook_deliveries.in_flight(db.session(), page)
    max_attempts = _max_attempts()
    return paging.with_next(
        [
            delivery_out(d, max_attempts=max_attempts, sending_since=sending.get(d.id)).model_dump()
            for d in page
        ],
        next_position,
    )


@bp.patch("/f/<slug>/webhooks/<int:endpoint_id>")
@spec.validate(resp=reply(HTTP_200=EndpointOut), tags=TAGS)
def update_endpoint(slug: str, endpoint_id: int, json: EndpointUpdate) -> Answer:
    """Change an endpoint's url (checked as when registered), events, or `active` (admins).
    Pausing (`active: false`) stops new deliveries to it; its pending ones wait and are
    sent once it is resumed."""
    endpoint = _endpoint(slug, endpoint_id)
    if json.url is None and json.events is None and json.active is None:
        raise ValidationError("give url, events or active to change", field="body")
    resumed = json.active is True and not endpoint.active
    webhook_endpoints.update(
        db.session(),
        endpoint,
        url=json.url,
        events=list(json.events) if json.events is not None else None,
        active=json.active,
        allow=current_app.config["PRIVATE_NETWORK_ALLOW"],
    )
    db.session.commit()
    if resumed:  # what waited while it was paused goes out now, not at the next tick
        for delivery_id in webhook_sending.due(db.session(), endpoint_id=endpoint.id):
            extensions.run_queue().deliver(delivery_id)
    return endpoint_out(endpoint)


@bp.post("/f/<slug>/webhooks/<int:endpoint_id>/rotate-secret")
@spec.validate(resp=reply(HTTP_200=NewEndpoint), tags=TAGS)
def rotate_secret(slug: str, endpoint_id: int) -> Answer:
    """A new signing secret for the endpoint, in the answer once (admins). The old one
    stops at once: every attempt from now on, retries among them, is signed with the new."""
    endpoint = _endpoint(slug, endpoint_id)
    secret = webhook_endpoints.rotate_secret(endpoint, vault=extensions.vault())
    db.session.commit()
    return NewEndpoint(**endpoint_out(endpoint).model_dump(), secret=secret)


@bp.post("/f/<slug>/webhooks/<int:endpoint_id>/test")
@spec.validate(resp=reply(HTTP_202=DeliveryOut), tags=TAGS)
def send_test(slug: str, endpoint_id: int) -> Answer:
    """Send the endpoint a `ping` event, whatever it subscribed to (admins): a delivery
    like any other (signed, retried, in the delivery log). A paused endpoint is refused
    (409). Tests and redeliveries are limited per endpoint and per facility (the server's
    SCRIPTBOX_WEBHOOK_SENDS_PER_ENDPOINT and _PER_FACILITY): past either, a 429 whose
    Retry-After and message say in how many seconds to try again."""
    endpoint = _endpoint(slug, endpoint_id)
    delivery = webhook_deliveries.enqueue_ping(db.session(), endpoint)
    # Counted once the send is sure to be made (a refused one is not committed).
    send_throttle().attempt(facility_id=endpoint.facility_id, endpoint_id=endpoint.id)
    db.session.commit()
    extensions.run_queue().deliver(delivery.id)
    return delivery_out(delivery, max_attempts=_max_attempts()), 202


@bp.get("/f/<slug>/webhooks/<int:endpoint_id>/deliveries/<delivery_id>")
@spec.validate(resp=reply(HTTP_200=DeliveryDetail), tags=TAGS)
def get_delivery(slug: str, endpoint_id: int, delivery_id: str) -> Answer:
    """One delivery of the endpoint with each of its attempts (admins): when it began, how
    long it took, the HTTP status or the error in words."""
    endpoint = _endpoint(slug, endpoint_id)
    delivery = webhook_deliveries.delivery_of(
        db.session(), endpoint=endpoint, delivery_id=delivery_id
    )
    sending = webhook_deliveries.in_flight(db.session(), [delivery])
    shown = delivery_out(
        delivery, max_attempts=_max_attempts(), sending_since=sending.get(delivery.id)
    )
    attempts = webhook_deliveries.attempts_of(db.session(), delivery.id)
    return DeliveryDetail(**shown.model_dump(), attempt_log=[attempt_out(a) for a in attempts])


@bp.post("/f/<slug>/webhooks/<int:endpoint_id>/deliveries/<delivery_id>/redeliver")
@spec.validate(resp=reply(HTTP_202=DeliveryOut), tags=TAGS)
def redeliver(slug: str, endpoint_id: int, delivery_id: str) -> Answer:
    """Send a delivered or failed delivery again (admins): a new delivery with the same
    payload (its `id` too, so a receiver sees the same event) and `redelivery_of` naming
    the original, which keeps its own log. A pending one is refused (409): it is still
    being sent. So is a paused endpoint's. Limited with the tests (see the test event): past
    the limit, a 429 with Retry-After."""
    endpoint = _endpoint(slug, endpoint_id)
    original = webhook_deliveries.delivery_of(
        db.session(), endpoint=endpoint, delivery_id=delivery_id
    )
    again = webhook_deliveries.redeliver(db.session(), endpoint, original)
    send_throttle().attempt(facility_id=endpoint.facility_id, endpoint_id=endpoint.id)
    db.session.commit()
    extensions.run_queue().deliver(again.id)
    return delivery_out(again, max_attempts=_max_attempts()), 202
