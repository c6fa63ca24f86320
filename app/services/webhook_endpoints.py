"""Webhook endpoints (issue 12.3): an admin registers one per receiver, with the events it
wants and a signing secret shown once; a URL every delivery would be refused (the outbound
guard's rules) is refused when it is registered. Deliveries: app/services/webhooks.py."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from urllib.parse import urlsplit

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.config import NetworkAllow
from app.errors import Conflict, NotFound, ValidationError
from app.integrations import transport
from app.integrations.vault import Vault
from app.models import WebhookEndpoint
from app.models.webhooks import WEBHOOK_EVENTS
from app.services import people, url_addresses
from app.services.webhooks import forget

SECRET_PREFIX = "whsec_"
# Endpoints per facility: each event is sent to every one subscribed, so this also bounds
# what one event costs, and (with the send throttle) what a facility can make the server send.
MAX_ENDPOINTS = 20

# How long registering an endpoint waits on the resolver for its URL's name. A name not
# answered by then is taken as not resolvable yet: every delivery looks it up again.
URL_LOOKUP_S = 3.0


def remove(session: Session, endpoint: WebhookEndpoint) -> None:
    """Delete an endpoint and its delivery log."""
    facility_id = endpoint.facility_id
    session.delete(endpoint)
    session.flush()
    forget(session, facility_id)


def _check_url(url: str, allow: Sequence[NetworkAllow]) -> str:
    """The endpoint's URL, if deliveries could reach it: the integrations' rule for plain
    http, and the outbound guard's verdict on the addresses it resolves to now."""
    url = url.strip()
    try:
        parts = urlsplit(url)
        _port = parts.port  # read to check it: a port that is not a number raises
    except ValueError:
        raise ValidationError("url: is not a valid URL", field="url") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError("url must be an http(s) URL", field="url")
    if parts.username or parts.password:
        raise ValidationError("url must not carry a user or password", field="url")
    if not transport.secure_url(url):
        raise ValidationError(
            "url must start with https:// (plain http only for a receiver on localhost or a "
            "private IP address): the events, connect links among them, would otherwise "
            "cross the network unencrypted",
            field="url",
        )
    url_addresses.check_address(
        url, field="url", whose="the receiver's", allow=allow, lookup_s=URL_LOOKUP_S
    )
    return url


def _check_events(events: Sequence[str]) -> list[str]:
    unknown = sorted(set(events) - set(WEBHOOK_EVENTS))
    if unknown or not events:
        raise ValidationError(f"events: choose from {', '.join(WEBHOOK_EVENTS)}", field="events")
    return [e for e in WEBHOOK_EVENTS if e in events]


def register(
    session: Session,
    *,
    facility_id: int,
    url: str,
    events: Sequence[str],
    created_by: int | None,
    vault: Vault,
    allow: Sequence[NetworkAllow],
) -> tuple[WebhookEndpoint, str]:
    """A new endpoint and its signing secret (returned once, kept encrypted). `allow` is
    the operator's PRIVATE_NETWORK_ALLOW, the outbound guard's own list: an endpoint every
    delivery would be refused is refused here."""
    people.hold_facility(session, facility_id)
    count = session.scalar(
        select(func.count())
        .select_from(WebhookEndpoint)
        .where(WebhookEndpoint.facility_id == facility_id)
    )
    if (count or 0) >= MAX_ENDPOINTS:
        raise Conflict(
            f"a facility has at most {MAX_ENDPOINTS} webhook endpoints: remove one it no "
            "longer needs before adding another (a paused one counts too)"
        )
    secret = _new_secret()
    endpoint = WebhookEndpoint(
        facility_id=facility_id,
        url=_check_url(url, allow),
        events=_check_events(events),
        secret_enc=vault.encrypt(secret),
        created_by=created_by,
        active=True,
    )
    session.add(endpoint)
    session.flush()
    forget(session, facility_id)
    return endpoint, secret


def update(
    session: Session,
    endpoint: WebhookEndpoint,
    *,
    url: str | None = None,
    events: Sequence[str] | None = None,
    active: bool | None = None,
    allow: Sequence[NetworkAllow],
) -> None:
    """Change what is given: the URL (checked as when registered), the events, or whether
    it is active. A paused endpoint gets no new deliveries; its pending ones wait (they are
    not sent, their attempts not spent) and go out once it is resumed."""
    if url is not None:
        endpoint.url = _check_url(url, allow)
    if events is not None:
        endpoint.events = _check_events(events)
    if active is not None:
        endpoint.active = active
    session.flush()
    forget(session, endpoint.facility_id)  # whether the facility listens may have changed


def rotate_secret(endpoint: WebhookEndpoint, *, vault: Vault) -> str:
    """A new signing secret for the endpoint, returned once; the old one stops at once
    (every attempt from now, pending retries among them, is signed with the new one)."""
    secret = _new_secret()
    endpoint.secret_enc = vault.encrypt(secret)
    return secret


def _new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def endpoint_of(session: Session, *, facility_id: int, endpoint_id: int) -> WebhookEndpoint:
    """The facility's endpoint, or 404 (another facility's id is unknown here)."""
    endpoint = session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None or endpoint.facility_id != facility_id:
        raise NotFound("no such webhook endpoint")
    return endpoint


def list_endpoints(
    session: Session, *, facility_id: int, after: int | None = None, limit: int = 50
) -> list[WebhookEndpoint]:
    """The facility's endpoints, oldest first (those after id `after`, when given)."""
    query = select(WebhookEndpoint).where(WebhookEndpoint.facility_id == facility_id)
    if after is not None:
        query = query.where(WebhookEndpoint.id > after)
    return list(session.scalars(query.order_by(WebhookEndpoint.id).limit(limit)))
