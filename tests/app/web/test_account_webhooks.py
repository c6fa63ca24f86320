"""`account.connected` and `account.disconnected`: an embedding app hears when a member or
an admin connects, reconnects or disconnects an account (never its credentials), and when
an admin deletes an integration, of each account that went with it; a connection or a
deletion that fails sends nothing; an endpoint that did not subscribe gets nothing."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import select, text

from app import db, extensions
from app.models import Account, Integration, WebhookDelivery
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
        "label": "", "reason": "disconnected",
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


def _connect_both(world: dict[str, Any]) -> dict[str, int]:
    """Mia's own account and the facility's master account (Ada's), each with the canary."""
    mine = _connect(world, "mia", "accounts")
    master = _connect(world, "ada", "master")
    assert mine.status_code in (200, 201), mine.text
    assert master.status_code in (200, 201), master.text
    return {"mia": mine.json()["id"], "master": master.json()["id"]}


def _kept(world: dict[str, Any]) -> tuple[int, list[int], list[str]]:
    """The integrations, the accounts and the deliveries' events the database holds."""
    with world["live"].app.app_context():
        session = db.session()
        integrations = len(session.scalars(select(Integration.id)).all())
        accounts = sorted(session.scalars(select(Account.id)))
        events = list(session.scalars(select(WebhookDelivery.event)))
        db.session.remove()
    return integrations, accounts, events


def test_deleting_an_integration_announces_each_of_its_accounts(
    world: dict[str, Any], listener: Listener
) -> None:
    endpoint = register(world, listener.url, ["account.disconnected"])
    ids = _connect_both(world)
    assert _kept(world)[2] == []  # only account.disconnected is subscribed to

    gone = call(world, "ada", "DELETE", "/api/f/lab/integrations/keyed")
    assert gone.status_code == 204, gone.text
    # Enqueued with the deletion: both wait for the sender, and the accounts are gone.
    assert _kept(world) == (0, [], ["account.disconnected", "account.disconnected"])

    first = _received(world, listener, endpoint["secret"])
    second = _received(world, listener, endpoint["secret"])
    assert {first["event"], second["event"]} == {"account.disconnected"}
    assert first["facility"] == second["facility"] == "lab"
    announced = sorted([first["data"], second["data"]], key=lambda d: d["account_id"])
    assert announced == sorted([
        {"account_id": ids["mia"], "integration": "keyed", "owner": "user",
         "user_id": world["ids"]["mia"], "label": "", "reason": "integration_deleted"},
        {"account_id": ids["master"], "integration": "keyed", "owner": "master",
         "user_id": None, "label": "", "reason": "integration_deleted"},
    ], key=lambda d: d["account_id"])
    assert listener.received.empty()  # one event per account, no more


def test_moving_an_integrations_origin_announces_each_account_as_needs_reauth(
    world: dict[str, Any], listener: Listener
) -> None:
    endpoint = register(world, listener.url, ["account.needs_reauth"])
    ids = _connect_both(world)
    path_only = call(world, "ada", "PATCH", "/api/f/lab/integrations/keyed",
                     json={"base_url": "http://127.0.0.1:1/api/v2"})
    assert path_only.json()["accounts_to_reconnect"] == 0, path_only.text
    moved = call(world, "ada", "PATCH", "/api/f/lab/integrations/keyed",
                 json={"base_url": "http://127.0.0.1:2/api"})
    assert moved.json()["accounts_to_reconnect"] == 2, moved.text

    first = _received(world, listener, endpoint["secret"])
    second = _received(world, listener, endpoint["secret"])
    announced = sorted([first["data"], second["data"]], key=lambda d: d["account_id"])
    assert [(d["account_id"], d["owner"], d["user_id"]) for d in announced] == sorted([
        (ids["mia"], "user", world["ids"]["mia"]), (ids["master"], "master", None),
    ])
    assert {first["event"], second["event"]} == {"account.needs_reauth"}
    assert listener.received.empty()  # one event per account; none for the path change


def test_a_deletion_that_fails_or_is_refused_announces_nothing(
    world: dict[str, Any], listener: Listener
) -> None:
    register(world, listener.url, ["account.disconnected"])
    ids = _connect_both(world)
    app = world["live"].app
    # The database refuses to delete the integration (as an integrity error, on both): the
    # statement fails after the accounts went and were announced in the same transaction,
    # which is rolled back.
    with app.app_context():
        dialect = db.session().get_bind().dialect.name
        for statement in _KEEP_INTEGRATIONS[dialect]:
            db.session.execute(text(statement))
        db.session.commit()
        db.session.remove()

    refused = call(world, "mia", "DELETE", "/api/f/lab/integrations/keyed")
    assert refused.status_code == 403  # members never delete one
    failed = call(world, "ada", "DELETE", "/api/f/lab/integrations/keyed")
    assert failed.status_code == 409, failed.text  # the app's answer to an integrity error

    assert _kept(world) == (1, sorted(ids.values()), [])
    extensions.run_queue(app).deliver_due()
    assert listener.received.empty()

    # The same deletion, once the database allows it, is announced: the refusal above is
    # what kept the events back.
    with app.app_context():
        db.session.execute(text("DROP TRIGGER keep_integrations" + _ON[dialect]))
        db.session.commit()
        db.session.remove()
    assert call(world, "ada", "DELETE", "/api/f/lab/integrations/keyed").status_code == 204
    assert _kept(world) == (0, [], ["account.disconnected", "account.disconnected"])


_KEEP_INTEGRATIONS = {
    "sqlite": [
        "CREATE TRIGGER keep_integrations BEFORE DELETE ON integrations"
        " BEGIN SELECT RAISE(ABORT, 'integrations are kept'); END",
    ],
    "postgresql": [
        "CREATE FUNCTION keep_integrations() RETURNS trigger LANGUAGE plpgsql"
        " AS $$ BEGIN RAISE EXCEPTION 'integrations are kept'"
        " USING ERRCODE = 'integrity_constraint_violation'; END $$",
        "CREATE TRIGGER keep_integrations BEFORE DELETE ON integrations"
        " FOR EACH ROW EXECUTE FUNCTION keep_integrations()",
    ],
}
_ON = {"sqlite": "", "postgresql": " ON integrations"}
