"""Where webhook events come from and how deliveries reach the run queue.

`WebhookBus` wraps the event bus: a `run.finished` published for pages also becomes a
delivery. `WebhookEvents` is the grant coordinator's remote prompt: a run that needs an
account and has no page to ask (an API run) waits (and parks) while the embedding app
gets `grant.required` with a connect link to show its own prompt. The token manager
tells it when an account becomes `needs_reauth` (`account.needs_reauth`, with a link).
`WebhookSender` is what a queue's worker calls to send one delivery.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import requests
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.integrations.call_context import GrantRequest
from app.integrations.vault import Vault
from app.models import Account, Grant, Integration, Membership, Role, Script
from app.seams import EventBus, Message, Subscription
from app.services import connect_links, run_prompts, webhook_sending, webhooks

log = logging.getLogger(__name__)


class WebhookSender:
    """Sends one delivery through the guarded transport; lists the ones due for a retry."""

    def __init__(
        self,
        *,
        session_factory: Callable[[], Session],
        vault: Vault,
        http: Callable[[], requests.Session],
        policy: Callable[[], webhook_sending.RetryPolicy],
    ) -> None:
        self._session_factory = session_factory
        self._vault = vault
        self._http = http
        self._policy = policy

    def send(self, delivery_id: str) -> str | None:
        """One attempt, if due; the delivery's status afterwards."""
        return webhook_sending.attempt(
            self._session_factory,
            delivery_id,
            vault=self._vault,
            http=self._http(),
            policy=self._policy(),
        )

    def due(self) -> list[str]:
        """Deliveries whose (next) attempt is due."""
        with self._session_factory() as session:
            return webhook_sending.due(session)


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

    def emit(
        self,
        facility_id: int,
        event: str,
        data: dict[str, Any] | Callable[[Session], dict[str, Any]],
    ) -> list[str]:
        """Record `event` for the facility's subscribed endpoints and start sending it.
        `data` may be a function of the session, read only when an endpoint wants it."""
        with self._session_factory() as session:
            if not webhooks.facility_wants(session, facility_id):
                return []
            if callable(data):
                data = data(session)
            ids = webhooks.enqueue(session, facility_id=facility_id, event=event, data=data)
            session.commit()
        for delivery_id in ids:
            self._deliver(delivery_id)
        return ids

    def finished(self, facility_id: int, user_id: int, message: Message) -> list[str]:
        """`run.finished` for a run that ended (the bus message's run), with its script's
        id and name as they are now (null for a run of a file from the terminal)."""
        run = message.get("run") or {}

        def data(session: Session) -> dict[str, Any]:
            script = None
            if run.get("script_id") is not None:
                name = session.scalar(select(Script.name).where(Script.id == run["script_id"]))
                if name is not None:
                    script = {"id": run["script_id"], "name": name}
            return {"user_id": user_id, "script": script, "run": run}

        return self.emit(facility_id, "run.finished", data)

    def can_prompt(self, req: GrantRequest) -> bool:
        """True when a run's call that no page can answer may wait for the embedding app:
        the facility listens to `grant.required` and the user can connect the account.
        Only a manual run (a page's or the API's) waits: a scheduled run's or a terminal's
        member is not there to answer, and its call raises `not_interactive` at once as
        docs/schedules.md and `scriptbox run` promise (a scheduled run parked for the
        prompt's lifetime, one more run each due time). The run's trigger comes with the
        request (read when the run was claimed)."""
        if req.user_id is None or req.run_id is None or req.trigger != "manual":
            return False
        with self._session_factory() as session:
            integration = session.get(Integration, req.integration_id)
            return (
                integration is not None
                and integration.auth_mode in connect_links.USER_AUTH_MODES
                and webhooks.subscribed(session, req.facility_id, "grant.required")
            )

    def prompt(self, req: GrantRequest, grant: Grant) -> None:
        """`grant.required` for a prompt a run now waits for, with the user's connect link;
        completing (or refusing) the link answers the prompt."""
        assert req.user_id is not None
        with self._session_factory() as session:
            # The prompt as the API's run shows it (its `prompt`), with whose run it is.
            integration = session.get(Integration, req.integration_id)
            if integration is None:
                return  # removed meanwhile: its prompts went with it (ON DELETE CASCADE)
            data: dict[str, Any] = {
                **run_prompts.prompt_data(session, grant, integration),
                "run_id": req.run_id,
                "user_id": req.user_id,
                **self._link(
                    session, req.facility_id, req.user_id, req.integration_id, "user", req.label
                ),
            }
            ids = webhooks.enqueue(
                session, facility_id=req.facility_id, event="grant.required", data=data
            )
            session.commit()
        for delivery_id in ids:
            self._deliver(delivery_id)

    def account_needs_reauth(self, account_id: int) -> None:
        """`account.needs_reauth` for an account that just became so, with a connect link
        that signs it in again (a master account's link is for an admin of the facility)."""
        with self._session_factory() as session:
            account = session.get(Account, account_id)
            if account is None or not webhooks.subscribed(
                session, account.facility_id, "account.needs_reauth"
            ):
                return
            integration = session.get(Integration, account.integration_id)
            assert integration is not None
            master = account.owner_kind == "master"
            signer = _first_admin(session, account.facility_id) if master else account.user_id
            data: dict[str, Any] = {
                **webhooks.account_data(account, integration),
                "connect_url": None,
                "connect_expires_at": None,
                "connect_user_id": signer,
            }
            if signer is not None:
                data.update(
                    self._link(
                        session,
                        account.facility_id,
                        signer,
                        integration.id,
                        account.owner_kind,
                        account.label,
                    )
                )
            ids = webhooks.enqueue(
                session, facility_id=account.facility_id, event="account.needs_reauth", data=data
            )
            session.commit()
        for delivery_id in ids:
            self._deliver(delivery_id)

    def _link(
        self,
        session: Session,
        facility_id: int,
        user_id: int,
        integration_id: int,
        owner: str,
        label: str,
    ) -> dict[str, Any]:
        """A connect link (made by the server, no return_to) for the payload, if the
        integration connects accounts in a browser."""
        integration = session.get(Integration, integration_id)
        if integration is None or integration.auth_mode not in connect_links.USER_AUTH_MODES:
            return {"connect_url": None, "connect_expires_at": None}
        link, token = connect_links.issue(
            session,
            facility_id=facility_id,
            user_id=user_id,
            integration=integration,
            created_by=None,
            label=label,
            return_to=None,
            owner=owner,
        )
        return {
            "connect_url": connect_links.url_of(self._public_url(), token),
            "connect_expires_at": link.expires_at.isoformat(),
        }


def _first_admin(session: Session, facility_id: int) -> int | None:
    """The admin a master account's connect link is for (the longest-standing one); the
    link is refused when they are no admin any more by the time it is opened."""
    return session.scalar(
        select(Membership.user_id)
        .where(Membership.facility_id == facility_id, Membership.role == Role.admin)
        .order_by(Membership.created_at, Membership.id)
        .limit(1)
    )


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
