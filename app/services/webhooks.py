"""Outbound webhooks (issue 12.3): admins register endpoints per facility
(app/services/webhook_endpoints.py); events become deliveries that the run queue sends,
signed, and retries with exponential backoff.

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
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlsplit

import requests
from sqlalchemy import Select, exists, select, update
from sqlalchemy.orm import Session

from app.integrations.deadlines import Deadline
from app.integrations.transport import PrivateAddress
from app.integrations.vault import Vault
from app.models import Account, Facility, Integration, WebhookDelivery, WebhookEndpoint
from app.models._types import utcnow
from app.models.webhooks import WEBHOOK_EVENTS, WebhookAttempt

TIMESTAMP_HEADER = "Scriptbox-Timestamp"
SIGNATURE_HEADER = "Scriptbox-Signature"
EVENT_HEADER = "Scriptbox-Event"
DELIVERY_HEADER = "Scriptbox-Delivery"
# How long one attempt may take in all (connect, send, status and headers: a receiver that
# trickles them is cut off), and how long a claimed attempt keeps others off it.
SEND_TIMEOUT_S = 10.0
_LEASE = timedelta(seconds=60)
# Whether a facility has an active endpoint, cached so that the end of every run costs no
# query where nobody listens. Registering or removing here forgets it at once; another
# process (a Celery worker) sees a new endpoint within this long.
WANTED_TTL_S = 30.0
_wanted: dict[tuple[str, int], tuple[bool, float]] = {}
_wanted_lock = threading.Lock()
# Why an account went (`account.disconnected`'s `reason`): someone disconnected it, or an
# admin deleted its integration, which takes every account of it along.
DisconnectReason = Literal["disconnected", "integration_deleted"]


@dataclass(frozen=True)
class RetryPolicy:
    """Attempts in all, and the wait before the n-th retry: base * 2**(n-1), capped."""

    max_attempts: int = 8
    base_s: float = 30.0
    cap_s: float = 6 * 3600.0

    def delay(self, attempts: int) -> timedelta:
        """The wait after `attempts` failed attempts."""
        return timedelta(seconds=min(self.base_s * 2 ** max(attempts - 1, 0), self.cap_s))


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
    tolerance_s: int = 300,
    now: float | None = None,
) -> bool:
    """What a receiver does: the signature matches and the timestamp is recent."""
    try:
        sent = int(timestamp)
    except ValueError:
        return False
    if abs((time.time() if now is None else now) - sent) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, sent, body), signature)


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
    limit: int = 50,
    before: tuple[datetime, str] | None = None,
) -> list[WebhookDelivery]:
    """The facility's deliveries, newest first (after the cursor `before`, when given)."""
    query = select(WebhookDelivery).where(WebhookDelivery.facility_id == facility_id)
    if endpoint_id is not None:
        query = query.where(WebhookDelivery.endpoint_id == endpoint_id)
    if before is not None:
        created, delivery_id = before
        query = query.where(
            (WebhookDelivery.created_at < created)
            | ((WebhookDelivery.created_at == created) & (WebhookDelivery.id < delivery_id))
        )
    query = query.order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc())
    return list(session.scalars(query.limit(limit)))


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


def due(session: Session, *, endpoint_id: int | None = None, limit: int = 100) -> list[str]:
    """Pending deliveries whose next attempt is due, oldest first (of one endpoint, when
    given). A paused endpoint's wait: they are due again once it is resumed."""
    query = select(WebhookDelivery.id).where(
        WebhookDelivery.status == "pending",
        WebhookDelivery.next_attempt_at <= utcnow(),
        WebhookDelivery.endpoint_id.in_(_active_endpoints()),
    )
    if endpoint_id is not None:
        query = query.where(WebhookDelivery.endpoint_id == endpoint_id)
    return list(session.scalars(query.order_by(WebhookDelivery.next_attempt_at).limit(limit)))


def _active_endpoints() -> Select[int]:
    return select(WebhookEndpoint.id).where(WebhookEndpoint.active.is_(True))


# What an attempt whose sender never reported back is closed with, when the delivery is
# claimed again after the lease: it may or may not have reached the receiver.
UNREPORTED = "no report from the sender (it stopped during the attempt); tried again"


def attempt(
    session_factory: Callable[[], Session],
    delivery_id: str,
    *,
    vault: Vault,
    http: requests.Session,
    policy: RetryPolicy,
) -> str | None:
    """Send one due delivery once; its status afterwards (None: not due, or taken).

    The claim is a conditional UPDATE that moves `next_attempt_at` past a lease, so two
    processes (or a tick and a submit) never send one attempt twice; the same transaction
    begins the attempt's row (webhook_attempts), which the outcome then ends. A paused
    endpoint's deliveries are not claimed.
    """
    now = utcnow()
    with session_factory() as session, session.begin():
        claimed = session.execute(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.id == delivery_id,
                WebhookDelivery.status == "pending",
                WebhookDelivery.next_attempt_at <= now,
                WebhookDelivery.endpoint_id.in_(_active_endpoints()),
            )
            .values(next_attempt_at=now + _LEASE)
            .execution_options(synchronize_session=False)
        ).rowcount  # type: ignore[attr-defined]
        if not claimed:
            return None
        delivery = session.get(WebhookDelivery, delivery_id)
        assert delivery is not None
        endpoint = session.get(WebhookEndpoint, delivery.endpoint_id)
        assert endpoint is not None  # the delivery cascades with its endpoint
        for unreported in session.scalars(
            select(WebhookAttempt).where(
                WebhookAttempt.delivery_id == delivery_id, WebhookAttempt.in_flight()
            )
        ):
            unreported.error = UNREPORTED  # its lease ran out: counted, as it may have been sent
            delivery.attempts += 1
        started = WebhookAttempt(
            delivery_id=delivery_id, number=delivery.attempts + 1, started_at=now
        )
        session.add(started)
        session.flush()
        attempt_id = started.id
        url, secret = endpoint.url, vault.decrypt(endpoint.secret_enc)
        body = json.dumps(delivery.payload, separators=(",", ":"), sort_keys=True).encode()
        event = delivery.event
    began = time.monotonic()
    code, error = _post(http, url, secret, body, event=event, delivery_id=delivery_id)
    duration_ms = round((time.monotonic() - began) * 1000)
    with session_factory() as session, session.begin():
        delivery = session.get(WebhookDelivery, delivery_id)
        ended = session.get(WebhookAttempt, attempt_id)
        if delivery is None or ended is None:
            return None  # its endpoint was removed meanwhile
        # Ended: every outcome has a code or an error (_post), so it no longer reads as open.
        ended.duration_ms, ended.response_code, ended.error = duration_ms, code, error
        delivery.attempts += 1
        delivery.response_code = code
        delivery.last_error = error
        if code is not None and 200 <= code < 300:
            delivery.status, delivery.delivered_at, delivery.next_attempt_at = (
                "delivered",
                utcnow(),
                None,
            )
        elif delivery.attempts >= policy.max_attempts:
            delivery.status, delivery.next_attempt_at = "failed", None
        else:
            delivery.next_attempt_at = utcnow() + policy.delay(delivery.attempts)
        return delivery.status


def _post(
    http: requests.Session, url: str, secret: str, body: bytes, *, event: str, delivery_id: str
) -> tuple[int | None, str | None]:
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Scriptbox-Webhooks/1",
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign(secret, timestamp, body),
        EVENT_HEADER: event,
        DELIVERY_HEADER: delivery_id,
    }
    try:
        # Through the guarded transport: private addresses only where the operator allows.
        # Streamed, and closed unread: only the status counts, and a receiver must not make
        # the server download (and hold in memory) a body as large or as slow as it likes.
        with Deadline(SEND_TIMEOUT_S):
            response = http.post(
                url,
                data=body,
                headers=headers,
                timeout=SEND_TIMEOUT_S,
                allow_redirects=False,
                stream=True,
            )
    except (requests.RequestException, OSError) as exc:
        return None, _error_words(exc, url)
    response.close()
    if 200 <= response.status_code < 300:
        return response.status_code, None
    return response.status_code, f"answered HTTP {response.status_code}"


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: BaseException | None = exc
    while seen is not None:  # requests wraps the transport's refusal in its own errors
        yield seen
        nested = [a for a in getattr(seen, "args", ()) if isinstance(a, BaseException)]
        reason = getattr(seen, "reason", None)
        seen = (
            seen.__cause__
            or seen.__context__
            or (nested[0] if nested else None)
            or (reason if isinstance(reason, BaseException) else None)
        )


def _error_words(exc: BaseException, url: str) -> str:
    """What went wrong, in words for the delivery log (the admin fixes the URL or the
    receiver), not the transport's exception text."""
    host = urlsplit(url).hostname or url
    causes = list(_causes(exc))
    for seen in causes:
        if isinstance(seen, PrivateAddress):
            return f"refused by the outbound guard: {seen}"[:300]
    if any(isinstance(seen, socket.gaierror) for seen in causes):
        return f"could not find the host {host}: check the endpoint's URL"[:300]
    if isinstance(exc, requests.Timeout):
        return f"{host} did not answer within {SEND_TIMEOUT_S:g} seconds"[:300]
    if isinstance(exc, requests.exceptions.SSLError):
        return f"the secure connection to {host} failed: check its TLS certificate"[:300]
    if isinstance(exc, requests.ConnectionError):
        return f"could not connect to {host}: check that the receiver is running"[:300]
    # Not the exception's text: requests puts the URL in it, query string (a receiver's
    # token, say) and all, and the delivery log is no place for that.
    return f"sending to {host} failed ({type(exc).__name__})"
