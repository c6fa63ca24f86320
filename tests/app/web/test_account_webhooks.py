"""`account.connected` and `account.disconnected`: an embedding app hears when a member or
an admin connects, reconnects or disconnects an account (never its credentials); a
connection that fails sends nothing; an endpoint that did not subscribe gets nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import select

from app import db, extensions
from app.models import WebhookDelivery
from app.services import webhooks
from app.testing import LiveServer
from tests.listener import Listener
from tests.webhook_world import call, register, webhook_world

SECRET_KEY_VALUE = "sk-canary-4d1f"


@pytest.fixture
def world(live: LiveServer) -> dict[str, Any]:
    """Lab (admin Ada, member Mia, tokens) with the API-key integration "keyed"."""
    return webhook_world(live, keyed=True)


def _received(world: dict[str, Any], listener: Listener, secret: str) -> dict[str, Any]:
    """Send what is due (the sweep's tick does it on a server) and read the next event."""
    extensions.run_queue(world["live"].app).deliver_due()
    got = listener.next()
    assert webhooks.verify(secret, got.headers["Scriptbox-Timestamp"], got.body,
                           got.headers["Scriptbox-Signature"])
    assert SECRET_KEY_VALUE.encode() not in got.body
    payload: dict[str, Any] = json.loads(got.body)
    assert payload["event"] == got.headers["Scriptbox-Event"]
    return payload


def _connect(world: dict[str, Any], who: str, path: str, key: str = SECRET_KEY_VALUE) -> Any:
    return call(world, who, "POST", f"/api/f/lab/integrations/keyed/{path}",
                json={"fields": {"api_key": key}, "label": ""})


def test_connecting_reconnecting_and_disconnecting_are_announced(
    world: dict[str, Any], listener: Listener
) -> None:
    endpoint = register(world, listener.url, ["account.connected", "account.disconnected"])
    runs_only = register(world, listener.url, ["run.finished"])
    mia = world["ids"]["mia"]

    connected = _connect(world, "mia", "accounts")
    assert connected.status_code in (200, 201), connected.text
    account_id = connected.json()["id"]
    event = _received(world, listener, endpoint["secret"])
    assert event["event"] == "account.connected"
    assert event["data"] == {
        "account_id": account_id, "integration": "keyed", "owner": "user", "user_id": mia,
        "label": "", "reconnected": False, "identity": None,
    }

    assert _connect(world, "mia", "accounts", key="sk-new-key").status_code in (200, 201)
    again = _received(world, listener, endpoint["secret"])
    assert (again["event"], again["data"]["account_id"], again["data"]["reconnected"]) == (
        "account.connected", account_id, True)

    refused = call(world, "mia", "POST", "/api/f/lab/integrations/keyed/accounts",
                   json={"fields": {"api_key": ""}, "label": "work"})
    assert refused.status_code == 400  # nothing connected: nothing announced

    gone = call(world, "mia", "DELETE", f"/api/f/lab/accounts/{account_id}")
    assert gone.status_code == 204, gone.text
    disconnected = _received(world, listener, endpoint["secret"])
    assert disconnected["event"] == "account.disconnected"
    assert disconnected["data"] == {
        "account_id": account_id, "integration": "keyed", "owner": "user", "user_id": mia,
        "label": "",
    }

    master = _connect(world, "ada", "master")
    assert master.status_code in (200, 201), master.text
    announced = _received(world, listener, endpoint["secret"])
    assert (announced["event"], announced["data"]["owner"], announced["data"]["user_id"]) == (
        "account.connected", "master", None)

    with world["live"].app.app_context():
        events = db.session.scalars(
            select(WebhookDelivery.event).order_by(WebhookDelivery.created_at)
        ).all()
        assert list(events) == ["account.connected", "account.connected",
                                "account.disconnected", "account.connected"]
        assert not db.session.scalars(
            select(WebhookDelivery).where(WebhookDelivery.endpoint_id == runs_only["id"])
        ).all()


def test_the_new_events_can_be_subscribed_to_and_are_declared(world: dict[str, Any]) -> None:
    spec = call(world, "ada", "GET", "/api/openapi.json").text
    assert "account.connected" in spec and "account.disconnected" in spec
    bad = call(world, "ada", "POST", "/api/f/lab/webhooks",
               json={"url": "https://example.com/h", "events": ["account.created"]})
    assert bad.status_code == 400
