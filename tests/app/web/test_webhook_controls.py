"""What an admin does with a webhook endpoint once registered (issue 12.3): change its URL
and events, pause and resume it, rotate its signing secret, send it a test `ping`, read a
delivery with its attempts, and redeliver one that ended. A real loopback listener is the
receiver and checks each signature; other facilities' ids are 404, members get 403, and
bad bodies are refused naming what to fix.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from app import db
from app.models import WebhookDelivery
from app.services import webhook_sending, webhooks
from app.testing import LiveServer
from tests.listener import Answer, Listener, Received
from tests.webhook_world import WAIT_S, attempt, webhook_world
from tests.webhook_world import call as _call
from tests.webhook_world import register as _register


@pytest.fixture
def world(live: LiveServer) -> dict[str, Any]:
    """Facility lab (admin Ada, member Mia) and facility other (Ada is its admin too)."""
    return webhook_world(live)


def _verified(secret: str, got: Received) -> bool:
    headers = got.headers
    return webhooks.verify(
        secret, headers["Scriptbox-Timestamp"], got.body, headers["Scriptbox-Signature"]
    )


def _detail(world: dict[str, Any], endpoint_id: int, delivery_id: str) -> dict[str, Any]:
    answer = _call(
        world, "ada", "GET", f"/api/f/lab/webhooks/{endpoint_id}/deliveries/{delivery_id}"
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def _ended(world: dict[str, Any], endpoint_id: int, delivery_id: str) -> dict[str, Any]:
    """The delivery once it is delivered or failed (read again each tenth of a second)."""
    pause = threading.Event()
    for _ in range(600):
        found = _detail(world, endpoint_id, delivery_id)
        if found["status"] in ("delivered", "failed"):
            return found
        pause.wait(0.1)
    raise AssertionError(found)


def test_a_test_event_arrives_signed_whatever_the_endpoint_subscribed_to(
    world: dict[str, Any], listener: Listener
) -> None:
    # Subscribed to grant.required only: ping is no event one subscribes to.
    endpoint = _register(world, listener.url, ["grant.required"])
    answer = _call(world, "ada", "POST", f"/api/f/lab/webhooks/{endpoint['id']}/test")
    assert answer.status_code == 202, answer.text
    ping = answer.json()
    assert (ping["event"], ping["status"], ping["attempts"]) == ("ping", "pending", 0)
    got = listener.next()
    assert _verified(endpoint["secret"], got)
    assert not _verified("whsec_other", got)
    assert got.headers["Scriptbox-Event"] == "ping"
    assert got.headers["Scriptbox-Delivery"] == ping["id"]
    payload = json.loads(got.body)
    assert (payload["id"], payload["event"]) == (ping["id"], "ping")
    assert payload["data"]["endpoint_id"] == endpoint["id"]
    # In the delivery log with its one attempt.
    done = _ended(world, endpoint["id"], ping["id"])
    assert (done["status"], done["attempts"], done["response_code"]) == ("delivered", 1, 200)
    [attempt] = done["attempt_log"]
    assert (attempt["number"], attempt["response_code"], attempt["error"]) == (1, 200, None)
    assert attempt["duration_ms"] >= 0 and attempt["started_at"]
    listed = _call(world, "ada", "GET", f"/api/f/lab/webhooks/{endpoint['id']}/deliveries")
    assert [d["id"] for d in listed.json()] == [ping["id"]]


def test_a_delivery_shows_each_attempt_and_none_as_next_while_one_is_in_flight(
    world: dict[str, Any], listener: Listener
) -> None:
    world["live"].app.config["WEBHOOK_RETRY_BASE_S"] = 0.2
    release = threading.Event()
    listener.answers.extend([Answer(500), Answer(200, release=release)])
    endpoint = _register(world, listener.url, ["run.finished"])
    ping = _call(world, "ada", "POST", f"/api/f/lab/webhooks/{endpoint['id']}/test").json()
    assert listener.next().status == 500
    assert listener.next().status == 200  # held: the second attempt is in flight
    try:
        between = _detail(world, endpoint["id"], ping["id"])
        # Not the claim's lease as a "next attempt", but since when one is being sent.
        assert between["next_attempt_at"] is None and between["sending_since"] is not None
        assert between["status"] == "retrying"
        first, second = between["attempt_log"]
        assert (first["number"], first["response_code"], first["error"]) == (
            1,
            500,
            "answered HTTP 500",
        )
        assert (second["number"], second["response_code"], second["error"]) == (2, None, None)
        assert second["duration_ms"] is None
        assert second["started_at"] == between["sending_since"]
    finally:
        release.set()
    done = _ended(world, endpoint["id"], ping["id"])
    assert [(a["number"], a["response_code"]) for a in done["attempt_log"]] == [(1, 500), (2, 200)]
    assert done["sending_since"] is None and done["next_attempt_at"] is None


def test_redelivery_is_a_new_delivery_of_the_same_event_and_a_pending_one_is_refused(
    world: dict[str, Any], listener: Listener
) -> None:
    release = threading.Event()
    listener.answers.append(Answer(503, release=release))
    world["live"].app.config["WEBHOOK_MAX_ATTEMPTS"] = 1
    endpoint = _register(world, listener.url, ["run.finished"])
    ping = _call(world, "ada", "POST", f"/api/f/lab/webhooks/{endpoint['id']}/test").json()
    first = listener.next()
    redeliver = f"/api/f/lab/webhooks/{endpoint['id']}/deliveries/{ping['id']}/redeliver"
    try:  # still being sent: refused, saying when it can be
        refused = _call(world, "ada", "POST", redeliver)
        assert refused.status_code == 409, refused.text
        assert refused.json()["error"]["message"] == (
            "the delivery is still pending (being sent, or waiting for its next attempt): "
            "redeliver it once it is delivered or failed"
        )
    finally:
        release.set()
    failed = _ended(world, endpoint["id"], ping["id"])
    assert failed["status"] == "failed"
    answer = _call(world, "ada", "POST", redeliver)
    assert answer.status_code == 202, answer.text
    again = answer.json()
    assert again["id"] != ping["id"] and again["redelivery_of"] == ping["id"]
    assert (again["event"], again["status"]) == ("ping", "pending")
    got = listener.next()
    assert got.status == 200 and _verified(endpoint["secret"], got)
    assert got.headers["Scriptbox-Delivery"] == again["id"]
    assert got.body == first.body  # the same event, its id too: a receiver can tell
    assert json.loads(got.body)["id"] == ping["id"]
    assert _ended(world, endpoint["id"], again["id"])["status"] == "delivered"
    # The original keeps its own log; a delivered one may be redelivered too.
    assert _detail(world, endpoint["id"], ping["id"])["status"] == "failed"
    once_more = _call(
        world,
        "ada",
        "POST",
        f"/api/f/lab/webhooks/{endpoint['id']}/deliveries/{again['id']}/redeliver",
    )
    assert once_more.status_code == 202 and once_more.json()["redelivery_of"] == again["id"]
    assert _verified(endpoint["secret"], listener.next())


def test_rotating_the_secret_shows_the_new_one_once_and_signs_with_it(
    world: dict[str, Any], listener: Listener
) -> None:
    endpoint = _register(world, listener.url, ["run.finished"])
    answer = _call(world, "ada", "POST", f"/api/f/lab/webhooks/{endpoint['id']}/rotate-secret")
    assert answer.status_code == 200, answer.text
    rotated = answer.json()
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != endpoint["secret"]
    assert rotated["id"] == endpoint["id"] and rotated["url"] == endpoint["url"]
    listed = _call(world, "ada", "GET", "/api/f/lab/webhooks").json()
    assert "secret" not in listed[0] and rotated["secret"] not in json.dumps(listed)
    _call(world, "ada", "POST", f"/api/f/lab/webhooks/{endpoint['id']}/test")
    got = listener.next()
    assert _verified(rotated["secret"], got)
    assert not _verified(endpoint["secret"], got)  # the old one stopped at once


def test_editing_an_endpoint_checks_it_as_when_registered(
    world: dict[str, Any], listener: Listener
) -> None:
    endpoint = _register(world, "https://hooks.example.com/in", ["run.finished"])
    path = f"/api/f/lab/webhooks/{endpoint['id']}"
    answer = _call(
        world,
        "ada",
        "PATCH",
        path,
        json={"url": listener.url, "events": ["grant.required", "run.finished"]},
    )
    assert answer.status_code == 200, answer.text
    changed = answer.json()
    assert changed["url"] == listener.url and changed["active"] is True
    assert changed["events"] == ["run.finished", "grant.required"]  # in the events' order
    assert "secret" not in changed
    # Absent or null keeps the old value.
    answer = _call(world, "ada", "PATCH", path, json={"events": ["grant.required"], "url": None})
    assert answer.status_code == 200, answer.text
    assert (answer.json()["url"], answer.json()["events"]) == (listener.url, ["grant.required"])
    # The guard's rules, as on registering.
    refused = _call(world, "ada", "PATCH", path, json={"url": "https://127.0.0.2/in"})
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert error["field"] == "url"
    assert error["message"].startswith("url: 127.0.0.2 is a private or loopback address")
    assert "SCRIPTBOX_PRIVATE_NETWORK_ALLOW" in error["message"]
    listed = _call(world, "ada", "GET", "/api/f/lab/webhooks").json()
    assert listed[0]["url"] == listener.url  # unchanged by the refusal


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({}, "body", "give url, events or active to change"),
        ({"url": None, "events": None}, "body", "give url, events or active to change"),
        ({"url": "ftp://example.com/x"}, "url", "url must be an http(s) URL"),
        ({"url": "http://hooks.example.com/in"}, "url", "url must start with https://"),
        ({"events": []}, "events", "events:"),
        ({"events": ["run.started"]}, "events", "events"),
        ({"events": ["ping"]}, "events", "events"),  # sent to all; no subscribing to it
        ({"active": "yes"}, "active", "active:"),
        ({"url": 7}, "url", "url:"),
    ],
)
def test_bad_edits_say_what_to_fix(
    world: dict[str, Any], body: dict[str, Any], field: str, words: str
) -> None:
    endpoint = _register(world, "https://hooks.example.com/in", ["run.finished"])
    answer = _call(world, "ada", "PATCH", f"/api/f/lab/webhooks/{endpoint['id']}", json=body)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["field"] == field and error["message"].startswith(words), error


def test_a_body_that_is_not_json_is_refused_in_words(world: dict[str, Any]) -> None:
    endpoint = _register(world, "https://hooks.example.com/in", ["run.finished"])
    answer = requests.patch(
        f"{world['live'].url}/api/f/lab/webhooks/{endpoint['id']}",
        data="active=false",
        headers={
            "Authorization": f"Bearer {world['tokens']['ada']}",
            "Content-Type": "application/json",
        },
        timeout=WAIT_S,
    )
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == {
        "code": "invalid_input",
        "field": "body",
        # Where the parser stopped, in its words.
        "message": "the body is not valid JSON: Expecting value: line 1 column 1 (char 0)",
    }


def test_a_paused_endpoint_gets_nothing_new_and_its_pending_deliveries_wait(
    world: dict[str, Any], listener: Listener
) -> None:
    world["live"].app.config["WEBHOOK_RETRY_BASE_S"] = 3600.0  # no retry comes by itself
    listener.answer_with(503)
    endpoint = _register(world, listener.url, ["run.finished"])
    path = f"/api/f/lab/webhooks/{endpoint['id']}"
    ping = _call(world, "ada", "POST", f"{path}/test").json()
    assert listener.next().status == 503
    retrying = _wait_for(world, endpoint["id"], ping["id"], lambda d: d["attempts"] == 1)
    assert retrying["status"] == "retrying"
    answer = _call(world, "ada", "PATCH", path, json={"active": False})
    assert answer.status_code == 200 and answer.json()["active"] is False
    # The Management page says it waits for the endpoint; it showed a next try as well.
    page = _call(world, "ada", "GET", "/f/lab/manage").text
    row = page.split(f'data-delivery-id="{ping["id"]}"')[1].split("</tr>")[0]
    assert "(waits: the endpoint is paused)" in row and "next-try" not in row
    # No new deliveries: a run's event, a test and a redelivery.
    run = _call(
        world,
        "ada",
        "POST",
        "/api/f/lab/runs",
        json={"script_id": world["ids"]["script"], "wait": 30},
    )
    assert run.status_code == 200 and run.json()["status"] == "succeeded", run.text
    refused = _call(world, "ada", "POST", f"{path}/test")
    assert refused.status_code == 409, refused.text
    assert refused.json()["error"]["message"] == (
        "the endpoint is paused: resume it to send it a test event"
    )
    log = _call(world, "ada", "GET", f"{path}/deliveries").json()
    assert [d["id"] for d in log] == [ping["id"]]
    # Its pending retry, come due, waits: no sweep lists it, no sender takes it.
    app = world["live"].app
    with app.app_context():
        delivery = db.session.get(WebhookDelivery, ping["id"])
        assert delivery is not None
        delivery.next_attempt_at = delivery.created_at
        db.session.commit()
        assert ping["id"] not in webhook_sending.due(db.session())
        db.session.remove()
    sent = attempt(app, ping["id"], webhook_sending.RetryPolicy())
    assert sent is None and listener.received.empty()
    assert _detail(world, endpoint["id"], ping["id"])["attempts"] == 1
    # Resumed, it goes out at once (not at some later tick) and is delivered.
    answer = _call(world, "ada", "PATCH", path, json={"active": True})
    assert answer.status_code == 200 and answer.json()["active"] is True
    got = listener.next()
    assert got.headers["Scriptbox-Delivery"] == ping["id"] and got.status == 200
    assert _ended(world, endpoint["id"], ping["id"])["attempts"] == 2
    assert listener.received.empty()  # the run that ended while paused made no delivery


def _wait_for(
    world: dict[str, Any], endpoint_id: int, delivery_id: str, done: Any
) -> dict[str, Any]:
    pause = threading.Event()
    for _ in range(600):
        found = _detail(world, endpoint_id, delivery_id)
        if done(found):
            return found
        pause.wait(0.1)
    raise AssertionError(found)


def test_a_paused_endpoint_refuses_a_redelivery(world: dict[str, Any], listener: Listener) -> None:
    endpoint = _register(world, listener.url, ["run.finished"])
    path = f"/api/f/lab/webhooks/{endpoint['id']}"
    ping = _call(world, "ada", "POST", f"{path}/test").json()
    listener.next()
    _ended(world, endpoint["id"], ping["id"])
    _call(world, "ada", "PATCH", path, json={"active": False})
    refused = _call(world, "ada", "POST", f"{path}/deliveries/{ping['id']}/redeliver")
    assert refused.status_code == 409
    assert refused.json()["error"]["message"] == (
        "the endpoint is paused: resume it to redeliver to it"
    )


def test_other_facilities_ids_are_unknown_and_members_are_refused(
    world: dict[str, Any], listener: Listener
) -> None:
    ours = _register(world, listener.url, ["run.finished"])
    theirs = _register(world, "https://hooks.example.com/other", ["run.finished"], slug="other")
    second = _register(world, "https://hooks.example.com/second", ["run.finished"])
    ping = _call(world, "ada", "POST", f"/api/f/lab/webhooks/{ours['id']}/test").json()
    listener.next()
    _ended(world, ours["id"], ping["id"])

    def routes(slug: str, endpoint_id: int, delivery_id: str) -> list[tuple[str, str, Any]]:
        base = f"/api/f/{slug}/webhooks/{endpoint_id}"
        return [
            ("PATCH", base, {"active": False}),
            ("POST", f"{base}/rotate-secret", None),
            ("POST", f"{base}/test", None),
            ("GET", f"{base}/deliveries/{delivery_id}", None),
            ("POST", f"{base}/deliveries/{delivery_id}/redeliver", None),
        ]

    # Ada is an admin of "other" too: the lab's endpoint is unknown there, and the
    # other's endpoint under the lab.
    for method, path, body in routes("other", ours["id"], ping["id"]) + routes(
        "lab", theirs["id"], ping["id"]
    ):
        answer = _call(world, "ada", method, path, json=body)
        assert answer.status_code == 404, (method, path, answer.text)
        assert answer.json()["error"]["code"] == "not_found"
    # A delivery is found only under its own endpoint.
    for method, path, _body in routes("lab", second["id"], ping["id"])[3:]:
        answer = _call(world, "ada", method, path)
        assert answer.status_code == 404, (method, path, answer.text)
        assert answer.json()["error"]["message"] == "no such delivery of this webhook endpoint"
    # A member of the lab does none of it.
    for method, path, body in routes("lab", ours["id"], ping["id"]):
        answer = _call(world, "mia", method, path, json=body)
        assert answer.status_code == 403, (method, path, answer.text)
    # Nothing changed: still active, the one delivery, the same secret.
    listed = _call(world, "ada", "GET", "/api/f/lab/webhooks").json()
    assert [e["active"] for e in listed] == [True, True]
    log = _call(world, "ada", "GET", f"/api/f/lab/webhooks/{ours['id']}/deliveries").json()
    assert [d["id"] for d in log] == [ping["id"]]
    assert listener.received.empty()


def test_an_endpoint_reads_alone_as_listed_without_its_secret(
    world: dict[str, Any], listener: Listener
) -> None:
    # An app that keeps an endpoint's id reads it back by that id (it was a 405).
    endpoint = _register(world, listener.url, ["run.finished", "grant.required"])
    theirs = _register(world, "https://hooks.example.com/other", ["run.finished"], slug="other")
    path = f"/api/f/lab/webhooks/{endpoint['id']}"
    answer = _call(world, "ada", "GET", path)
    assert answer.status_code == 200, answer.text
    one = answer.json()
    assert "secret" not in one and endpoint["secret"] not in answer.text
    assert one == _call(world, "ada", "GET", "/api/f/lab/webhooks").json()[0]
    assert one == {key: value for key, value in endpoint.items() if key != "secret"}
    _call(world, "ada", "PATCH", path, json={"active": False})
    assert _call(world, "ada", "GET", path).json()["active"] is False
    # Another facility's id is unknown, a member is refused.
    unknown = _call(world, "ada", "GET", f"/api/f/lab/webhooks/{theirs['id']}")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"
    assert _call(world, "mia", "GET", path).status_code == 403


def test_the_openapi_document_describes_the_new_operations(world: dict[str, Any]) -> None:
    document = requests.get(f"{world['live'].url}/api/openapi.json", timeout=WAIT_S).json()
    paths = document["paths"]
    base = "/api/f/{slug}/webhooks/{endpoint_id}"
    for path, method, status in (
        (base, "get", "200"),
        (base, "patch", "200"),
        (f"{base}/rotate-secret", "post", "200"),
        (f"{base}/test", "post", "202"),
        (f"{base}/deliveries/{{delivery_id}}", "get", "200"),
        (f"{base}/deliveries/{{delivery_id}}/redeliver", "post", "202"),
    ):
        operation = paths[path][method]
        assert operation.get("description") or operation.get("summary"), path
        assert status in operation["responses"] and "404" in operation["responses"], path
    schemas = document["components"]["schemas"]
    attempt = schemas["AttemptOut"]
    for field in ("duration_ms", "response_code", "error"):
        assert attempt["properties"][field].get("description"), field


def test_the_delivery_log_narrows_by_status_and_event(
    world: dict[str, Any], listener: Listener
) -> None:
    """?status= and ?event= narrow an endpoint's log (they were ignored: every delivery came
    back, delivered ones among those asked for as failed), the next page's Link keeps them,
    and a status or event that is none is a 400 naming it."""
    endpoint = _register(world, listener.url, ["run.finished"])
    later = datetime.now(UTC) + timedelta(days=1)  # never due while the test runs
    kinds = {
        "pending": ("pending", 0, "run.finished"),
        "retrying": ("pending", 2, "run.finished"),
        "delivered": ("delivered", 1, "run.finished"),
        "delivered ping": ("delivered", 1, "ping"),
        "failed": ("failed", 8, "ping"),
    }
    ids: dict[str, str] = {}
    with world["live"].app.app_context():
        session = db.session()
        for name, (status, attempts, event) in kinds.items():
            delivery = WebhookDelivery(
                endpoint_id=endpoint["id"],
                facility_id=world["ids"]["lab"],
                event=event,
                payload={},
                status=status,
                attempts=attempts,
                next_attempt_at=later if status == "pending" else None,
            )
            session.add(delivery)
            session.flush()
            ids[name] = delivery.id
        session.commit()
    log = f"/api/f/lab/webhooks/{endpoint['id']}/deliveries"

    def listed(query: str) -> set[str]:
        answer = _call(world, "ada", "GET", f"{log}?{query}")
        assert answer.status_code == 200, answer.text
        return {delivery["id"] for delivery in answer.json()}

    assert listed("status=failed") == {ids["failed"]}
    assert listed("status=retrying") == {ids["retrying"]}
    assert listed("status=pending") == {ids["pending"]}
    assert listed("status=delivered") == {ids["delivered"], ids["delivered ping"]}
    assert listed("event=ping") == {ids["delivered ping"], ids["failed"]}
    assert listed("status=delivered&event=run.finished") == {ids["delivered"]}
    first = _call(world, "ada", "GET", f"{log}?status=delivered&limit=1")
    assert "status=delivered" in first.headers["Link"]
    rest = _call(
        world, "ada", "GET", f"{log}?status=delivered&limit=1&cursor={first.headers['Next-Cursor']}"
    )
    assert {d["id"] for d in first.json() + rest.json()} == {
        ids["delivered"],
        ids["delivered ping"],
    }
    for query, field in (("status=lost", "status"), ("event=run.started", "event")):
        refused = _call(world, "ada", "GET", f"{log}?{query}")
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"]["field"] == field
