"""The webhook sender (issue 12.3): what a queue's worker runs to send one delivery.

`attempt` claims a due delivery, posts it signed (app/services/webhooks.py says how) through
the guarded transport, and records the attempt's outcome; a failure is retried after the
`RetryPolicy`'s backoff until its attempts run out. `due` lists what a sweep should send.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

import requests
from sqlalchemy import Select, select, update
from sqlalchemy.orm import Session

from app.integrations.deadlines import Deadline
from app.integrations.transport import PrivateAddress
from app.integrations.vault import Vault
from app.models import WebhookDelivery, WebhookEndpoint
from app.models._types import utcnow
from app.models.webhooks import WebhookAttempt
from app.services.webhooks import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    sign,
)

# How long one attempt may take in all (connect, send, status and headers: a receiver that
# trickles them is cut off), and how long a claimed attempt keeps others off it.
SEND_TIMEOUT_S = 10.0
_LEASE = timedelta(seconds=60)


@dataclass(frozen=True)
class RetryPolicy:
    """Attempts in all, and the wait before the n-th retry: base * 2**(n-1), capped."""

    max_attempts: int = 8
    base_s: float = 30.0
    cap_s: float = 6 * 3600.0

    def delay(self, attempts: int) -> timedelta:
        """The wait after `attempts` failed attempts."""
        return timedelta(seconds=min(self.base_s * 2 ** max(attempts - 1, 0), self.cap_s))


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
