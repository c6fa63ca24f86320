"""Issue 12.3: outbound webhooks. A real loopback HTTP listener receives them and checks
the HMAC signature; a 500 is retried with backoff; a private address is refused by the
guarded transport (a canary listens there); only admins register; ids stay per facility.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from datetime import timedelta
from typing import Any

import pytest
import requests
from sqlalchemy import select

from app import db, extensions
from app.models import (
    Account,
    Facility,
    Integration,
    Script,
    WebhookDelivery,
    WebhookEndpoint,
)
from app.models._types import utcnow
from app.models.webhooks import SHOWN_STATES
from app.services import webhooks
from app.testing import LiveServer, WebClient
from tests.listener import Answer, Listener
from tests.webhook_world import WAIT_S, webhook_world
from tests.webhook_world import call as _call
from tests.webhook_world import register as _register

KEYED_CALL = """
try:
    integrations.get("keyed", "/me")
    result = "answered"
except integrations.NoIntegrationGrant as refused:
    result = refused.reason
except integrations.IntegrationError as failed:
    result = failed.code
"""


@pytest.fixture
def world(live: LiveServer) -> dict[str, Any]:
    """Facility lab (admin Ada, member Mia, both with API tokens) and facility other."""
    live.app.config["WEBHOOK_RETRY_BASE_S"] = 0.2
    return webhook_world(live, keyed=True)


def _run(world: dict[str, Any]) -> dict[str, Any]:
    answer = _call(
        world,
        "ada",
        "POST",
        "/api/f/lab/runs",
        json={"script_id": world["ids"]["script"], "wait": 30},
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_run_finished_arrives_signed(world: dict[str, Any], listener: Listener) -> None:
    endpoint = _register(world, listener.url, ["run.finished"])
    assert endpoint["secret"].startswith("whsec_")
    run = _run(world)
    got = listener.next()
    headers, body = got.headers, got.body
    assert headers["Scriptbox-Event"] == "run.finished"
    assert webhooks.verify(
        endpoint["secret"], headers["Scriptbox-Timestamp"], body, headers["Scriptbox-Signature"]
    )
    # Another secret, a changed body or an old timestamp do not verify.
    assert not webhooks.verify(
        "whsec_other", headers["Scriptbox-Timestamp"], body, headers["Scriptbox-Signature"]
    )
    assert not webhooks.verify(
        endpoint["secret"],
        headers["Scriptbox-Timestamp"],
        body + b" ",
        headers["Scriptbox-Signature"],
    )
    old = int(headers["Scriptbox-Timestamp"]) + 3600
    assert not webhooks.verify(
        endpoint["secret"],
        headers["Scriptbox-Timestamp"],
        body,
        headers["Scriptbox-Signature"],
        now=old,
    )
    payload = json.loads(body)
    assert payload["event"] == "run.finished"
    assert payload["data"]["run"]["id"] == run["id"]
    assert payload["data"]["run"]["result"] == 42
    assert payload["id"] == headers["Scriptbox-Delivery"]
    # The secret is never shown again.
    listed = _call(world, "ada", "GET", "/api/f/lab/webhooks").json()
    assert [e["id"] for e in listed] == [endpoint["id"]] and "secret" not in listed[0]


def test_a_500_is_retried_with_backoff_and_logged(
    world: dict[str, Any], listener: Listener
) -> None:
    # The second answer is held back while the test reads the log between attempts.
    release = threading.Event()
    listener.answers.extend([Answer(500), Answer(500, release=release)])
    endpoint = _register(world, listener.url, ["run.finished"])
    _run(world)
    first, second = listener.next(), listener.next()
    try:
        # After a failure the log says it is being retried, not "pending" as if untried.
        [between] = _call(
            world, "ada", "GET", f"/api/f/lab/webhooks/{endpoint['id']}/deliveries"
        ).json()
    finally:
        release.set()
    third = listener.next()
    assert [first.status, second.status, third.status] == [500, 500, 200]
    assert (between["status"], between["attempts"], between["max_attempts"]) == (
        "retrying", 1, world["live"].app.config["WEBHOOK_MAX_ATTEMPTS"])
    assert (between["response_code"], between["last_error"]) == (500, "answered HTTP 500")
    # Read while the second attempt is held in flight: no "next attempt" (it used to show
    # the sender's claim lease there), but since when the one in flight is being sent.
    assert between["next_attempt_at"] is None and between["delivered_at"] is None
    assert between["sending_since"] is not None
    # The same delivery each time, signed anew.
    delivery = {got.headers["Scriptbox-Delivery"] for got in (first, second, third)}
    assert delivery == {between["id"]}
    log = _wait_for_log(world, endpoint["id"], lambda d: d["status"] == "delivered")
    assert log["attempts"] == 3 and log["response_code"] == 200
    assert log["next_attempt_at"] is None and log["last_error"] is None
    # The Management page shows the endpoint and the delivery log.
    row = _page_row(world, log["id"])
    assert "delivered" in row and "on attempt 3 (HTTP 200)" in row


def _page_row(world: dict[str, Any], delivery_id: str) -> str:
    """The delivery's row on the lab's Management page."""
    page = WebClient(world["live"].app, world["live"].url, world["ids"]["ada"]).http.get(
        f"{world['live'].url}/f/lab/manage", timeout=WAIT_S
    )
    assert page.status_code == 200
    section = page.text.split('id="webhooks"', 1)[1]
    assert f'data-delivery-id="{delivery_id}"' in section, section
    return section.split(f'data-delivery-id="{delivery_id}"', 1)[1].split("</tr>", 1)[0]


def test_a_delivery_out_of_attempts_is_failed(world: dict[str, Any], listener: Listener) -> None:
    world["live"].app.config["WEBHOOK_MAX_ATTEMPTS"] = 2
    listener.answer_with(503, 503)
    endpoint = _register(world, listener.url, ["run.finished"])
    _run(world)
    assert [listener.next().status, listener.next().status] == [503, 503]
    log = _wait_for_log(world, endpoint["id"], lambda d: d["status"] == "failed")
    assert (log["attempts"], log["max_attempts"], log["response_code"]) == (2, 2, 503)
    assert log["last_error"] == "answered HTTP 503"
    assert log["next_attempt_at"] is None and log["delivered_at"] is None
    row = _page_row(world, log["id"])
    assert '<span class="badge bad">failed</span>' in row
    assert "after 2 attempts (HTTP 503)" in row and "next-try-in" not in row
    assert listener.received.empty()  # no third attempt


def test_the_deliveries_api_says_each_state_and_only_the_facilitys_own(
    world: dict[str, Any],
) -> None:
    now = utcnow()
    with world["live"].app.app_context():
        endpoints: dict[str, int] = {}
        ids: dict[str, str] = {}
        for slug in ("lab", "other"):
            facility = db.session.scalar(select(Facility).where(Facility.slug == slug))
            assert facility is not None
            endpoint = WebhookEndpoint(
                facility_id=facility.id,
                url=f"https://hooks.example.com/{slug}",
                events=["run.finished"],
                secret_enc=extensions.vault(world["live"].app).encrypt("whsec_never_shown"),
                active=True,
            )
            db.session.add(endpoint)
            db.session.flush()
            endpoints[slug] = endpoint.id
            rows = {
                "untried": WebhookDelivery(status="pending", attempts=0, next_attempt_at=now),
                "retrying": WebhookDelivery(
                    status="pending",
                    attempts=3,
                    response_code=503,
                    last_error="answered HTTP 503",
                    next_attempt_at=now + timedelta(minutes=2),
                ),
            }
            for name, delivery in rows.items():
                delivery.endpoint_id, delivery.facility_id = endpoint.id, facility.id
                delivery.event, delivery.payload = "run.finished", {"slug": slug}
                delivery.created_at = now - timedelta(seconds=len(name))  # a stable order
                db.session.add(delivery)
            db.session.flush()
            ids.update({f"{slug}-{name}": d.id for name, d in rows.items()})
        db.session.commit()
        db.session.remove()
    answer = _call(world, "ada", "GET", f"/api/f/lab/webhooks/{endpoints['lab']}/deliveries")
    assert answer.status_code == 200, answer.text
    listed = {d["id"]: d for d in answer.json()}
    # Ada is an admin of both: the other facility's deliveries are never among the lab's.
    assert set(listed) == {ids["lab-untried"], ids["lab-retrying"]}
    retrying = listed[ids["lab-retrying"]]
    assert set(retrying) == {
        "id", "endpoint_id", "event", "status", "attempts", "max_attempts", "response_code",
        "last_error", "next_attempt_at", "sending_since", "created_at", "delivered_at",
        "redelivery_of",
    }
    assert (retrying["status"], retrying["attempts"], retrying["max_attempts"]) == (
        "retrying", 3, 8)
    assert (retrying["response_code"], retrying["last_error"]) == (503, "answered HTTP 503")
    assert retrying["next_attempt_at"] == (now + timedelta(minutes=2)).isoformat()
    untried = listed[ids["lab-untried"]]
    assert (untried["status"], untried["attempts"], untried["response_code"]) == (
        "pending", 0, None)
    assert "whsec_never_shown" not in answer.text
    # The other facility's endpoint is not found under the lab, and its own lists its own.
    assert _call(
        world, "ada", "GET", f"/api/f/lab/webhooks/{endpoints['other']}/deliveries"
    ).status_code == 404
    theirs = _call(world, "ada", "GET", f"/api/f/other/webhooks/{endpoints['other']}/deliveries")
    assert {d["id"] for d in theirs.json()} == {ids["other-untried"], ids["other-retrying"]}
    # A member of the lab reads no delivery log at all.
    refused = _call(world, "mia", "GET", f"/api/f/lab/webhooks/{endpoints['lab']}/deliveries")
    assert refused.status_code == 403
    # The page says it in words, and when the next attempt is due; not the other's.
    row = _page_row(world, ids["lab-retrying"])
    assert '<span class="badge warn">retrying</span>' in row
    assert "failed 3 times (HTTP 503); attempt 4 of 8" in row
    assert f'data-at="{(now + timedelta(minutes=2)).isoformat()}">next<' in row
    assert "not tried yet" in _page_row(world, ids["lab-untried"])
    page = WebClient(world["live"].app, world["live"].url, world["ids"]["ada"]).http.get(
        f"{world['live'].url}/f/lab/manage", timeout=WAIT_S
    )
    assert ids["other-retrying"] not in page.text and ids["other-untried"] not in page.text


def test_the_openapi_document_declares_the_delivery_states(world: dict[str, Any]) -> None:
    document = requests.get(f"{world['live'].url}/api/openapi.json", timeout=WAIT_S).json()
    operation = document["paths"]["/api/f/{slug}/webhooks/{endpoint_id}/deliveries"]["get"]
    listed = operation["responses"]["200"]["content"]["application/json"]["schema"]
    listed = document["components"]["schemas"][listed["$ref"].rsplit("/", 1)[1]]
    schema = document["components"]["schemas"][listed["items"]["$ref"].rsplit("/", 1)[1]]
    assert schema["properties"]["status"]["enum"] == list(SHOWN_STATES) == [
        "pending", "retrying", "delivered", "failed"]
    for field in ("status", "attempts", "max_attempts", "response_code", "last_error",
                  "next_attempt_at"):
        assert schema["properties"][field].get("description"), field
    assert set(schema["required"]) >= {"status", "attempts", "max_attempts", "next_attempt_at"}


def _wait_for_log(world: dict[str, Any], endpoint_id: int, done: Any) -> dict[str, Any]:
    path = f"/api/f/lab/webhooks/{endpoint_id}/deliveries"
    ended = threading.Event()
    found: dict[str, Any] = {}
    for _ in range(600):
        rows = _call(world, "ada", "GET", path).json()
        if rows and done(rows[0]):
            found = rows[0]
            break
        ended.wait(0.1)
    assert found, rows
    return found


@pytest.mark.parametrize(
    ("url", "words"),
    [
        # Loopback other than the tests' allowed 127.0.0.1, by IP and in other spellings.
        ("https://127.0.0.2/in", "url: 127.0.0.2 is a private or loopback address"),
        ("http://127.0.0.2:8080/in", "url: 127.0.0.2 is a private or loopback address"),
        ("https://2130706434/in", "url: 2130706434 is 127.0.0.2, a private or loopback"),
        ("https://10.0.0.7/hooks", "url: 10.0.0.7 is a private or loopback address"),
        ("https://[::1]/in", "url: ::1 is a private or loopback address"),
        # Special-purpose addresses, not global whatever Python's ipaddress tables say.
        ("https://192.0.0.8/in", "url: 192.0.0.8 is a private or loopback address"),
        ("https://[fec0::1]/in", "url: fec0::1 is a private or loopback address"),
        ("https://198.18.0.1/in", "url: 198.18.0.1 is a private or loopback address"),
        ("https://240.0.0.1/in", "url: 240.0.0.1 is a private or loopback address"),
        ("https://169.254.169.254/latest", "url: 169.254.169.254 is a link-local or cloud"),
        ("https://metadata.google.internal/x", "url: metadata.google.internal is a cloud"),
    ],
)
def test_an_endpoint_the_outbound_guard_refuses_is_refused_when_added(
    world: dict[str, Any], url: str, words: str
) -> None:
    # It used to be accepted, and every delivery was then refused by the guard.
    answer = _call(
        world, "ada", "POST", "/api/f/lab/webhooks", json={"url": url, "events": ["run.finished"]}
    )
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["field"] == "url" and error["message"].startswith(words), error
    if "link-local" in words or "metadata" in words:
        assert "never" in error["message"]
    else:
        assert error["message"].endswith(
            "use the receiver's public https address, or ask the server's operator to allow "
            "that network in SCRIPTBOX_PRIVATE_NETWORK_ALLOW"
        )
    assert _call(world, "ada", "GET", "/api/f/lab/webhooks").json() == []


def test_plain_http_is_only_for_a_receiver_on_a_private_address(
    world: dict[str, Any], listener: Listener
) -> None:
    # As for integrations' URLs: https, or plain http to localhost or a private IP address.
    answer = _call(
        world,
        "ada",
        "POST",
        "/api/f/lab/webhooks",
        json={"url": "http://hooks.example.com/in", "events": ["run.finished"]},
    )
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["field"] == "url" and error["message"] == (
        "url must start with https:// (plain http only for a receiver on localhost or a "
        "private IP address): the events, connect links among them, would otherwise cross "
        "the network unencrypted"
    )
    # The tests' loopback receiver is plain http on 127.0.0.1, which the operator allows here.
    assert listener.url.startswith("http://127.0.0.1:")
    _register(world, listener.url, ["run.finished"])
    # A name that does not resolve (yet) is kept: each delivery checks again and says why.
    _register(world, "https://hooks.scriptbox-test.invalid/in", ["run.finished"])


def test_a_private_address_is_still_refused_on_delivery(world: dict[str, Any]) -> None:
    # An endpoint stored before the check on adding it (or a name that resolved elsewhere
    # then): the guard still refuses each delivery. 127.0.0.2 is loopback, but the tests
    # allow only 127.0.0.1.
    canary = Listener(host="127.0.0.2").start()
    try:
        with world["live"].app.app_context():
            lab = db.session.scalar(select(Facility).where(Facility.slug == "lab"))
            assert lab is not None
            endpoint = WebhookEndpoint(
                facility_id=lab.id,
                url=canary.url,
                events=["run.finished"],
                secret_enc=extensions.vault(world["live"].app).encrypt("whsec_x"),
                active=True,
            )
            db.session.add(endpoint)
            db.session.commit()
            endpoint_id = endpoint.id
            webhooks.forget(db.session(), lab.id)
            db.session.remove()
        _run(world)
        log = _wait_for_log(world, endpoint_id, lambda d: d["attempts"] >= 1)
        assert log["status"] in ("retrying", "failed") and log["response_code"] is None
        assert "refused" in (log["last_error"] or ""), log
        assert canary.received.empty()
    finally:
        canary.close()


def _closed_port() -> int:
    with socket.socket() as probe:  # bound, never listening: a connection is refused
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_a_failed_delivery_says_why_in_words_beside_its_endpoint_url(
    world: dict[str, Any],
) -> None:
    # The log used to show the transport's exception ("ConnectionError: GuardedHTTPSPool(
    # host=..., port=443): Max retries exceeded ...") beside the endpoint's bare id.
    unknown = _register(world, "https://hooks.scriptbox-test.invalid/in", ["run.finished"])
    closed = _register(world, f"http://127.0.0.1:{_closed_port()}/in", ["run.finished"])
    _run(world)
    words = {
        endpoint["id"]: _wait_for_log(world, endpoint["id"], lambda d: d["attempts"] >= 1)
        for endpoint in (unknown, closed)
    }
    assert words[unknown["id"]]["last_error"] == (
        "could not find the host hooks.scriptbox-test.invalid: check the endpoint's URL"
    )
    assert words[closed["id"]]["last_error"] == (
        "could not connect to 127.0.0.1: check that the receiver is running"
    )
    page = WebClient(world["live"].app, world["live"].url, world["ids"]["ada"]).http.get(
        f"{world['live'].url}/f/lab/manage", timeout=WAIT_S
    )
    deliveries = page.text.split('id="webhook-deliveries"', 1)[1]
    row = deliveries.split(f'data-delivery-id="{words[closed["id"]]["id"]}"', 1)[1]
    assert f"<code>{closed['url']}</code>" in row.split("</tr>", 1)[0]


def test_only_admins_register_and_ids_stay_in_their_facility(
    world: dict[str, Any], listener: Listener
) -> None:
    refused = _call(
        world,
        "mia",
        "POST",
        "/api/f/lab/webhooks",
        json={"url": listener.url, "events": ["run.finished"]},
    )
    assert refused.status_code == 403
    assert _call(world, "mia", "GET", "/api/f/lab/webhooks").status_code == 403
    endpoint = _register(world, listener.url, ["run.finished"])
    # Ada is an admin of "other" too: the lab's endpoint id is unknown there.
    for method, path in (
        ("GET", f"/api/f/other/webhooks/{endpoint['id']}/deliveries"),
        ("DELETE", f"/api/f/other/webhooks/{endpoint['id']}"),
    ):
        answer = _call(world, "ada", method, path)
        assert answer.status_code == 404, answer.text
        assert answer.json()["error"]["code"] == "not_found"
    assert _call(world, "ada", "GET", "/api/f/other/webhooks").json() == []
    assert _call(world, "ada", "DELETE", f"/api/f/lab/webhooks/{endpoint['id']}").status_code == 204


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "ftp://example.com/x", "events": ["run.finished"]}, "url"),
        ({"url": "https://example.com/x", "events": ["run.started"]}, "events"),
        ({"url": "https://example.com/x", "events": []}, "events"),
        ({"events": ["run.finished"]}, "url"),
    ],
)
def test_bad_registrations_name_the_field(
    world: dict[str, Any], body: dict[str, Any], field: str
) -> None:
    answer = _call(world, "ada", "POST", "/api/f/lab/webhooks", json=body)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["field"] == field


def test_grant_required_carries_a_connect_link_that_works(
    world: dict[str, Any], listener: Listener
) -> None:
    _register(world, listener.url, ["grant.required"])
    with world["live"].app.app_context():
        script = db.session.get(Script, world["ids"]["script"])
        assert script is not None
        script.source = KEYED_CALL
        db.session.commit()
    # An API run with no page to ask waits (parked) for the embedding app's prompt.
    answer = _call(
        world, "ada", "POST", "/api/f/lab/runs", json={"script_id": world["ids"]["script"]}
    )
    assert answer.status_code == 201, answer.text
    run = answer.json()
    got = listener.next()
    payload = json.loads(got.body)
    assert payload["event"] == "grant.required"
    data = payload["data"]
    assert data["run_id"] == run["id"] and data["integration"] == "keyed"
    assert data["user_id"] == world["ids"]["ada"] and data["owner"] == "user"
    path = data["connect_url"].split("://", 1)[1].split("/", 1)[1]
    assert path.startswith("connect/sbc_")
    # Any browser, no Scriptbox session: the key form connects Ada's own account.
    browser = requests.Session()
    form = browser.get(f"{world['live'].url}/{path}", timeout=WAIT_S)
    assert form.status_code == 200 and 'name="api_key"' in form.text
    csrf = form.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    done = browser.post(
        f"{world['live'].url}/{path}",
        data={"csrf_token": csrf, "api_key": "k-123"},
        timeout=WAIT_S,
    )
    assert done.status_code == 200 and "connected" in done.text, done.text
    with world["live"].app.app_context():
        accounts = db.session.scalars(select(Account)).all()
        assert [(a.integration_id, a.owner_kind, a.user_id) for a in accounts] == [
            (data_integration_id(world), "user", world["ids"]["ada"])
        ]
    # The run resumes with the key and makes the call (nothing listens at the integration's
    # address: getting past the grant to a refused connection is what shows it resumed).
    deadline = time.monotonic() + WAIT_S
    while run["status"] not in ("succeeded", "failed") and time.monotonic() < deadline:
        time.sleep(0.1)  # polling a condition
        run = _call(world, "ada", "GET", f"/api/f/lab/runs/{run['id']}").json()
    assert run["status"] == "succeeded" and run["result"] == "integration_unavailable", run


def data_integration_id(world: dict[str, Any]) -> int:
    with world["live"].app.app_context():
        found = db.session.scalar(select(Integration.id).where(Integration.key == "keyed"))
        assert found is not None
        return found
