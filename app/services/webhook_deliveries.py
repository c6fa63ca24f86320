"""What an admin does with a webhook endpoint's deliveries (issue 12.3): read one with
its attempts, send a test event, redeliver one. The sender itself is
app/services/webhook_sending.py; these only make pending deliveries, which the run queue
then sends as any other."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import Conflict, NotFound
from app.models import Facility, WebhookDelivery, WebhookEndpoint
from app.models._types import utcnow
from app.models.webhooks import PING_EVENT, WebhookAttempt
from app.services import webhooks


def _new_delivery(
    session: Session, endpoint: WebhookEndpoint, event: str, payload: dict[str, Any]
) -> WebhookDelivery:
    delivery = WebhookDelivery(
        endpoint_id=endpoint.id,
        facility_id=endpoint.facility_id,
        event=event,
        payload=payload,
        status="pending",
        attempts=0,
        next_attempt_at=utcnow(),
    )
    session.add(delivery)
    session.flush()
    return delivery


def _require_active(endpoint: WebhookEndpoint, doing: str) -> None:
    if not endpoint.active:
        raise Conflict(f"the endpoint is paused: resume it to {doing}")


def enqueue_ping(session: Session, endpoint: WebhookEndpoint) -> WebhookDelivery:
    """A pending `ping` delivery for one (active) endpoint, whatever it subscribed to: the
    admin's test that the receiver answers and checks the signature."""
    _require_active(endpoint, "send it a test event")
    delivery = _new_delivery(session, endpoint, PING_EVENT, {})
    facility = session.get(Facility, endpoint.facility_id)
    assert facility is not None  # the endpoint cascades with its facility
    data = {"endpoint_id": endpoint.id, "message": "A test event from Scriptbox."}
    delivery.payload = {"id": delivery.id, **webhooks.envelope(PING_EVENT, facility.slug, data)}
    session.flush()
    return delivery


def redeliver(
    session: Session, endpoint: WebhookEndpoint, original: WebhookDelivery
) -> WebhookDelivery:
    """A new pending delivery of a delivered or failed one's payload, as it was (its `id`
    stays the event's, so a receiver that keeps ids sees the same event again), naming the
    original in `redelivery_of`. One still pending is refused: it is being sent."""
    if original.status == "pending":
        raise Conflict(
            "the delivery is still pending (being sent, or waiting for its next attempt): "
            "redeliver it once it is delivered or failed"
        )
    _require_active(endpoint, "redeliver to it")
    again = _new_delivery(session, endpoint, original.event, dict(original.payload))
    again.redelivery_of = original.id
    session.flush()
    return again


def delivery_of(
    session: Session, *, endpoint: WebhookEndpoint, delivery_id: str
) -> WebhookDelivery:
    """The endpoint's delivery, or 404 (another endpoint's or facility's id is unknown)."""
    delivery = session.get(WebhookDelivery, delivery_id)
    if delivery is None or delivery.endpoint_id != endpoint.id:
        raise NotFound("no such delivery of this webhook endpoint")
    return delivery


def attempts_of(session: Session, delivery_id: str) -> list[WebhookAttempt]:
    """A delivery's attempts, first first."""
    return list(
        session.scalars(
            select(WebhookAttempt)
            .where(WebhookAttempt.delivery_id == delivery_id)
            .order_by(WebhookAttempt.number)
        )
    )


def in_flight(session: Session, deliveries: Sequence[WebhookDelivery]) -> dict[str, datetime]:
    """When the attempt now being sent began, for those of `deliveries` being sent. While
    one is, its `next_attempt_at` is only the claim's lease (when another sender may take
    it should this attempt never report back), not a next attempt to show."""
    now = utcnow()
    leased = [
        d.id
        for d in deliveries
        if d.status == "pending" and d.next_attempt_at is not None and d.next_attempt_at > now
    ]
    if not leased:
        return {}
    return {
        delivery_id: started
        for delivery_id, started in session.execute(
            select(WebhookAttempt.delivery_id, WebhookAttempt.started_at).where(
                WebhookAttempt.delivery_id.in_(leased), WebhookAttempt.in_flight()
            )
        )
    }
