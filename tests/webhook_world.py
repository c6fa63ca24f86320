"""What the webhook API tests share: facility lab (admin Ada, member Mia, both with API
tokens, a published script S) and facility other (Ada is its admin too), and their calls
through the live server with a bearer token; and, for the sender's own tests, a delivery
to a URL, one attempt of it, and the delivery read back afterwards."""

from __future__ import annotations

from typing import Any

import requests
from flask import Flask
from sqlalchemy.orm import Session

from app import db, extensions
from app.models import Role, Script, WebhookDelivery, WebhookEndpoint
from app.services import webhook_sending, webhooks
from app.testing import LiveServer, WebClient
from tests.conftest import add_member, create_facility, create_integration, create_user, stored

WAIT_S = 60.0


def webhook_world(live: LiveServer, *, keyed: bool = False) -> dict[str, Any]:
    """The people and their tokens (`keyed`: lab also has an API-key integration "keyed")."""
    with live.app.app_context():
        session = db.session()
        lab = create_facility(session, slug="lab")
        other = create_facility(session, slug="other", name="Other")
        ada = create_user(session, email="ada@example.com")
        mia = create_user(session, email="mia@example.com")
        add_member(session, user=ada, facility=lab, role=Role.admin)
        add_member(session, user=ada, facility=other, role=Role.admin)
        add_member(session, user=mia, facility=lab, role=Role.member)
        if keyed:
            create_integration(session, facility=lab, key="keyed")
        script = Script(facility_id=lab.id, name="S", source="result = 6 * 7", published=True)
        session.add(script)
        session.commit()
        ids = {"ada": ada.id, "mia": mia.id, "script": script.id, "lab": lab.id}
    tokens = {
        name: WebClient(live.app, live.url, ids[name])
        .api("POST", "/api/tokens", json={"name": "t"})
        .json()["token"]
        for name in ("ada", "mia")
    }
    return {"live": live, "ids": ids, "tokens": tokens}


def call(world: dict[str, Any], who: str, method: str, path: str, **kw: Any) -> requests.Response:
    """`method path` on the world's live server as `who` ("ada" or "mia")."""
    return requests.request(
        method,
        f"{world['live'].url}{path}",
        headers={"Authorization": f"Bearer {world['tokens'][who]}"},
        timeout=WAIT_S,
        **kw,
    )


def register(
    world: dict[str, Any], url: str, events: list[str], slug: str = "lab"
) -> dict[str, Any]:
    """Ada registers an endpoint of `slug` for `events`; the answer (with its secret)."""
    answer = call(world, "ada", "POST", f"/api/f/{slug}/webhooks",
                  json={"url": url, "events": events})
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    return body


def pending_delivery(app: Flask, session: Session, url: str, *, slug: str = "lab") -> str:
    """Facility `slug` with an active endpoint at `url` for run.finished, and one delivery
    to it, not tried yet (committed): the delivery's id."""
    facility = create_facility(session, slug=slug)
    session.add(
        WebhookEndpoint(
            facility_id=facility.id,
            url=url,
            events=["run.finished"],
            secret_enc=extensions.vault(app).encrypt("whsec_test"),
            active=True,
        )
    )
    session.flush()
    [delivery_id] = webhooks.enqueue(
        session, facility_id=facility.id, event="run.finished", data={"n": 1}
    )
    session.commit()
    return delivery_id


RETRY_LATER = webhook_sending.RetryPolicy(max_attempts=3, base_s=30.0)


def attempt(
    app: Flask, delivery_id: str, policy: webhook_sending.RetryPolicy = RETRY_LATER
) -> str | None:
    """One attempt of the delivery, as the sender makes it: its status after it."""
    return webhook_sending.attempt(
        db.session_factory(app),
        delivery_id,
        vault=extensions.vault(app),
        http=extensions.outbound(app),
        policy=policy,
    )


def read_delivery(app: Flask, delivery_id: str) -> WebhookDelivery:
    """The delivery as stored now (detached)."""
    return stored(app, WebhookDelivery, delivery_id)
