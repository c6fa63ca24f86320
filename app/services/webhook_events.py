"""Where webhook events come from and how deliveries reach the run queue.

`WebhookBus` wraps the event bus: a `run.finished` published for pages also becomes a
delivery. `WebhookEvents.unanswered` is the grant coordinator's listener for a run that
needs an account and can ask nobody (an API run): the embedding app gets
`grant.required` (or `account.needs_reauth`) with a connect link to show its own prompt.
`WebhookSender` is what a queue's worker calls to send one delivery.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import requests
from sqlalchemy.orm import Session

from app.integrations.broker import GrantRequest
from app.integrations.resolution import MASTER_NEEDS_REAUTH, NEEDS_REAUTH
from app.integrations.vault import Vault
from app.models import Integration
from app.seams import EventBus, Message, Subscription
from app.services import connect_links, webhooks

log = logging.getLogger(__name__)


class WebhookSender:
    """Sends one delivery through the guarded transport; lists the ones due for a retry."""

    def __init__(
        self,
        *,
        session_factory: Callable[[], Session],
        vault: Vault,
        http: Callable[[], requests.Session],
        policy: Callable[[], webhooks.RetryPolicy],
    ) -> None:
        self._session_factory = session_factory
        self._vault = vault
        self._http = http
        self._policy = policy

    def send(self, delivery_id: str) -> str | None:
        """One attempt, if due; the delivery's status afterwards."""
        return webhooks.attempt(
            self._session_factory,
            delivery_id,
            vault=self._vault,
            http=self._http(),
            policy=self._policy(),
        )

    def due(self) -> list[str]:
        """Deliveries whose (next) attempt is due."""
        with self._session_factory() as session:
            return webhooks.due(session)


class WebhookEvents:
    """Turns events into deliveries (committed) and hands them to `deliver`."""

    def __init__(
        self,
        *,
        session_factory: Callable[[], Session],
        public_url: Callable[[], str],
        deliver: Callable[[str], None],
    ) -> None:
        self._session_factory = session_factory
        self._public_url = public_url
        self._deliver = deliver

    def emit(self, facility_id: int, event: str, data: dict[str, Any]) -> list[str]:
        """Record `event` for the facility's subscribed endpoints and start sending it."""
        with self._session_factory() as session:
            if not webhooks.facility_wants(session, facility_id):
                return []
            ids = webhooks.enqueue(session, facility_id=facility_id, event=event, data=data)
            session.commit()
        for delivery_id in ids:
            self._deliver(delivery_id)
        return ids

    def finished(self, facility_id: int, user_id: int, message: Message) -> None:
        """`run.finished` for a run that ended (the bus message's run)."""
        self.emit(facility_id, "run.finished", {"user_id": user_id, "run": message.get("run")})

    def unanswered(self, req: GrantRequest) -> None:
        """A run needs an account and nobody can be asked here: tell the embedding app,
        with a connect link for the user when the user can fix it themselves."""
        reauth = req.reason in (NEEDS_REAUTH, MASTER_NEEDS_REAUTH)
        event = "account.needs_reauth" if reauth else "grant.required"
        master = req.reason == MASTER_NEEDS_REAUTH or req.user_id is None
        with self._session_factory() as session:
            if not webhooks.facility_wants(session, req.facility_id):
                return
            data: dict[str, Any] = {
                "run_id": req.run_id,
                "user_id": req.user_id,
                "integration": req.integration_key,
                "owner": "master" if master else "user",
                "label": req.label,
                "reason": req.reason,
                "connect_url": None,
                "connect_expires_at": None,
            }
            integration = session.get(Integration, req.integration_id)
            if (
                not master
                and req.user_id is not None
                and integration is not None
                and integration.auth_mode in connect_links.USER_AUTH_MODES
            ):
                link, token = connect_links.issue(
                    session,
                    facility_id=req.facility_id,
                    user_id=req.user_id,
                    integration=integration,
                    created_by=None,
                    label=req.label,
                    return_to=None,
                )
                data["connect_url"] = connect_links.url_of(self._public_url(), token)
                data["connect_expires_at"] = link.expires_at.isoformat()
            ids = webhooks.enqueue(session, facility_id=req.facility_id, event=event, data=data)
            session.commit()
        for delivery_id in ids:
            self._deliver(delivery_id)


class WebhookBus:
    """An EventBus that also records `run.finished` as a webhook event."""

    def __init__(self, inner: EventBus, events: WebhookEvents) -> None:
        self._inner = inner
        self._events = events

    def publish(
        self, user_id: int, facility_id: int, message: Message, *, watchers: bool = False
    ) -> int:
        """Send to the user's (and watching) pages; a run that ended also goes to the
        webhooks."""
        reached = self._inner.publish(user_id, facility_id, message, watchers=watchers)
        if message.get("type") == "run.finished":
            try:
                self._events.finished(facility_id, user_id, message)
            except Exception:  # a webhook must never break how a run ends
                log.exception("could not record run.finished for the webhooks")
        return reached

    def subscribe(self, user_id: int, facility_id: int, *, watch: bool = False) -> Subscription:
        """Register an open page (`watch`: it hears the facility's watched messages too)."""
        return self._inner.subscribe(user_id, facility_id, watch=watch)

    def has_listeners(self, user_id: int, facility_id: int) -> bool:
        """True when the user has at least one open page in the facility."""
        return self._inner.has_listeners(user_id, facility_id)

    def close_all(self) -> None:
        """Tell every open page served here that the server is going away."""
        self._inner.close_all()
