"""Outbound webhooks (issue 12.3): admins register endpoints per facility
(app/services/webhook_endpoints.py); events become deliveries here, which the run queue's
sender (app/services/webhook_sending.py) sends, signed, and retries with exponential backoff.

Signing (how a receiver verifies, also in the README): the body is sent as is with

    Scriptbox-Timestamp: <unix seconds>
    Scriptbox-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>." + body)>

The receiver recomputes the HMAC over the timestamp, a dot and the raw body with the
endpoint's secret, compares in constant time, and refuses a timestamp older than a few
minutes (a replayed request carries an old timestamp, and changing it breaks the MAC).
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import ColumnElement, exists, select
from sqlalchemy.orm import Session

from app.models import Account, Facility, Integration, WebhookDelivery, WebhookEndpoint
from app.models._types import utcnow
from app.models.webhooks import WEBHOOK_EVENTS, ShownStatus
from app.services.signed_times import MAX_AGE_S, recent

TIMESTAMP_HEADER = "Scriptbox-Timestamp"
SIGNATURE_HEADER = "Scriptbox-Signature"
EVENT_HEADER = "Scriptbox-Event"
DELIVERY_HEADER = "Scriptbox-Delivery"
# Whether a facility has an active endpoint, cached so that the end of every run costs no
# query where nobody listens. Registering or removing here forgets it at once; another
# process (a Celery worker) sees a new endpoint within this long.
WANTED_TTL_S = 30.0
_wanted: dict[tuple[str, int], tuple[bool, float]] = {}
_wanted_lock = threading.Lock()
# Why an account went (`account.disconnected`'s `reason`): someone disconnected it, or an
# admin deleted its integration, which takes every account of it along.
DisconnectReason = Literal["disconnected", "integration_deleted"]


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The Scriptbox-Signature value for a body sent at `timestamp`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"v1={mac.hexdigest()}"


def verify(
    secret: str,
    timestamp: str,
    body: bytes,
    signature: str,
    *,
    tolerance_s: int = MAX_AGE_S,
    now: float | None = None,
) -> bool:
    """What a receiver does: the signature matches and the timestamp is recent."""
    sent = recent(timestamp, now=time.time() if now is None else now, max_age_s=tolerance_s)
    return sent is not None and hmac.compare_digest(sign(secret, sent, body), signature)


def facility_wants(session: Session, facility_id: int) -> bool:
    """True when the facility has an active endpoint (cached for WANTED_TTL_S)."""
    now = time.monotonic()
    key = _key(session, facility_id)
    with _wanted_lock:
        known = _wanted.get(key)
    if known is not None and now - known[1] < WANTED_TTL_S:
        return known[0]
    found = bool(
        session.scalar(
            select(
                exists().where(
                    WebhookEndpoint.facility_id == facility_id,
                    WebhookEndpoint.active.is_(True),
                )
            )
        )
    )
    with _wanted_lock:
        _wanted[key] = (found, now)
    return found


def subscribed(session: Session, facility_id: int, event: str) -> bool:
    """True when an active endpoint of the facility subscribed to `event`."""
    if not facility_wants(session, facility_id):
        return False
    return any(
        event in events
        for events in session.scalars(
            select(WebhookEndpoint.events).where(
                WebhookEndpoint.facility_id == facility_id, WebhookEndpoint.active.is_(True)
            )
        )
    )


def _key(session: Session, facility_id: int) -> tuple[str, int]:
    # Per database: one process may serve several (the tests do).
    return str(session.get_bind().engine.url), facility_id


def forget(session: Session, facility_id: int) -> None:
    """The facility's endpoints changed: ask the database next time."""
    with _wanted_lock:
        _wanted.pop(_key(session, facility_id), None)


def list_deliveries(
    session: Session,
    *,
    facility_id: int,
    endpoint_id: int | None = None,
    status: ShownStatus | None = None,
    event: str | None = None,
    limit: int = 50,
    before: tuple[datetime, str] | None = None,
) -> list[WebhookDelivery]:
    """The facility's deliveries, newest first (after the cursor `before`, when given),
    only those of `endpoint_id`, in the shown `status` and of `event` when given."""
    query = select(WebhookDelivery).where(WebhookDelivery.facility_id == facility_id)
    if endpoint_id is not None:
        query = query.where(WebhookDelivery.endpoint_id == endpoint_id)
    if status is not None:
        query = query.where(_shown_as(status))
    if event is not None:
        query = query.where(WebhookDelivery.event == event)
    if before is not None:
        created, delivery_id = before
        query = query.where(
            (WebhookDelivery.created_at < created)
            | ((WebhookDelivery.created_at == created) & (WebhookDelivery.id < delivery_id))
        )
    query = query.order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc())
    return list(session.scalars(query.limit(limit)))


def _shown_as(status: ShownStatus) -> ColumnElement[bool]:
    # WebhookDelivery.shown_status as SQL: a pending delivery tried before is retrying.
    stored, attempts = WebhookDelivery.status, WebhookDelivery.attempts
    if status == "pending":
        return (stored == "pending") & (attempts == 0)
    if status == "retrying":
        return (stored == "pending") & (attempts > 0)
    if status == "delivered":
        return stored == "delivered"
    return stored.not_in(("pending", "delivered"))


def enqueue(session: Session, *, facility_id: int, event: str, data: dict[str, Any]) -> list[str]:
    """A pending delivery of `event` for every active endpoint that subscribed to it. The
    body names the facility by its slug (what the API's paths take), read with the
    endpoints: the end of a run costs no query more for it."""
    assert event in WEBHOOK_EVENTS
    ids = []
    for endpoint, slug in session.execute(
        select(WebhookEndpoint, Facility.slug)
        .join(Facility, Facility.id == WebhookEndpoint.facility_id)
        .where(WebhookEndpoint.facility_id == facility_id, WebhookEndpoint.active.is_(True))
    ):
        if event not in endpoint.events:
            continue
        delivery = WebhookDelivery(
            endpoint_id=endpoint.id,
            facility_id=facility_id,
            event=event,
            payload=envelope(event, slug, data),
            status="pending",
            attempts=0,
            next_attempt_at=utcnow(),
        )
        session.add(delivery)
        session.flush()
        payload = dict(delivery.payload)
        payload["id"] = delivery.id
        delivery.payload = payload
        ids.append(delivery.id)
    session.flush()
    return ids


def envelope(event: str, facility_slug: str, data: dict[str, Any]) -> dict[str, Any]:
    """A delivery's body but its `id` (the delivery's, set once it has one)."""
    return {
        "event": event,
        "created_at": utcnow().isoformat(),
        "facility": facility_slug,
        "data": data,
    }


def account_data(account: Account, integration: Integration) -> dict[str, Any]:
    """What the account events say about an account (never its credentials)."""
    master = account.owner_kind == "master"
    return {
        "account_id": account.id,
        "integration": integration.key,
        "owner": "master" if master else "user",
        "user_id": None if master else account.user_id,
        "label": account.label,
    }


def announce_account(
    session: Session, account: Account, integration: Integration, event: str, **extra: Any
) -> None:
    """`account.connected` or `account.disconnected`, in the caller's transaction: it is
    sent if, and only if, the change commits (the next sweep sends what is due)."""
    data = {**account_data(account, integration), **extra}
    enqueue(session, facility_id=account.facility_id, event=event, data=data)


def announce_disconnected(
    session: Session, account: Account, integration: Integration, *, reason: DisconnectReason
) -> None:
    """`account.disconnected` for an account about to be deleted, saying why (as
    announce_account: sent if, and only if, the deletion commits)."""
    announce_account(session, account, integration, "account.disconnected", reason=reason)
