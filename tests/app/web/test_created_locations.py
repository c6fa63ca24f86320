"""A POST that makes something readable answers with its `Location`: the absolute URL that
GETs it, so an embedding app follows it instead of building the path itself (as it follows
the lists' `Link`). Both are under the configured PUBLIC_URL, never the request's Host."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask, Response, request, request_finished
from flask.testing import FlaskClient

from app.models import Role
from tests.conftest import signed_in_lab

CSRF = "csrf-token"


@pytest.fixture
def ada(app: Flask) -> FlaskClient:
    """Admin Ada of `lab`, signed in."""
    return signed_in_lab(app, roles=[Role.admin], csrf=CSRF)[Role.admin]


def _post(client: FlaskClient, path: str, body: dict[str, Any] | None = None,
          **headers: str) -> Any:
    return client.post(path, json=body or {}, headers={"X-CSRF-Token": CSRF, **headers})


def _followed(client: FlaskClient, answer: Any, status: int) -> dict[str, Any]:
    """What the answer's Location GETs: it is absolute, under the server's PUBLIC_URL."""
    assert answer.status_code == status, answer.get_data(as_text=True)
    where = urlsplit(answer.headers["Location"])
    assert (where.scheme, where.netloc) == ("http", "127.0.0.1:5000")  # tests' PUBLIC_URL
    found = client.get(where.path)
    assert found.status_code == 200, (where.path, found.get_data(as_text=True))
    body: dict[str, Any] = found.get_json()
    return body


def test_each_made_thing_says_where_to_read_it(ada: FlaskClient) -> None:
    made = _post(ada, "/api/f/lab/scripts", {"name": "Add", "source": "result = 1 + 1"})
    script = made.get_json()
    assert _followed(ada, made, 201) == script
    copy = _post(ada, f"/api/f/lab/scripts/{script['id']}/duplicate")
    assert _followed(ada, copy, 201)["id"] == copy.get_json()["id"] != script["id"]
    published = _post(ada, f"/api/f/lab/scripts/{script['id']}/versions/1/publish")
    assert published.status_code == 200, published.get_data(as_text=True)
    schedule = _post(ada, f"/api/f/lab/scripts/{script['id']}/schedules",
                     {"cron": "0 9 * * 1-5", "enabled": False})
    assert _followed(ada, schedule, 201)["id"] == schedule.get_json()["id"]
    endpoint = _post(ada, "/api/f/lab/webhooks",
                     {"url": "https://hooks.example.com/in", "events": ["run.finished"]})
    shown = _followed(ada, endpoint, 201)
    assert shown["id"] == endpoint.get_json()["id"] and "secret" not in shown
    integration = _post(ada, "/api/f/lab/integrations", {"catalog_key": "stripe"})
    assert _followed(ada, integration, 201)["key"] == "stripe"


def test_a_run_says_where_to_follow_it_however_it_was_answered(ada: FlaskClient) -> None:
    script = _post(ada, "/api/f/lab/scripts", {"name": "Wait", "source": "result = 42"})
    body = {"script_id": script.get_json()["id"]}
    # Without `wait` (201 while it goes on), with one it ended in (200), and repeated
    # with its Idempotency-Key (the same run): each time the run's own URL.
    started = _post(ada, "/api/f/lab/runs", body)
    assert _followed(ada, started, 201)["id"] == started.get_json()["id"]
    waited = _post(ada, "/api/f/lab/runs", {**body, "wait": 30}, **{"Idempotency-Key": "k"})
    assert waited.status_code == 200 and waited.get_json()["result"] == 42
    assert _followed(ada, waited, 200)["id"] == waited.get_json()["id"]
    again = _post(ada, "/api/f/lab/runs", {**body, "wait": 30}, **{"Idempotency-Key": "k"})
    assert again.headers["Location"] == waited.headers["Location"]
    rerun = _post(ada, f"/api/f/lab/runs/{waited.get_json()['id']}/rerun")
    assert rerun.status_code in (200, 201), rerun.get_data(as_text=True)
    assert _followed(ada, rerun, rerun.status_code)["id"] == rerun.get_json()["id"]
    assert rerun.get_json()["id"] != waited.get_json()["id"]


def test_the_document_declares_location_where_an_answer_sends_it(
    app: Flask, ada: FlaskClient
) -> None:
    # A generated client reads Location only where the document declares it: every
    # operation that answered with one above declares it on that answer, and no other does.
    sent: set[tuple[str, str, str]] = set()

    def record(_sender: Flask, response: Response, **_: Any) -> None:
        if "Location" in response.headers and request.url_rule is not None:
            path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", request.url_rule.rule)
            sent.add((request.method.lower(), path, str(response.status_code)))

    with request_finished.connected_to(record, app):
        test_each_made_thing_says_where_to_read_it(ada)
        test_a_run_says_where_to_follow_it_however_it_was_answered(ada)
    document = app.test_client().get("/api/openapi.json").get_json()
    declared = {
        (method, path, status)
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        for status, answer in operation["responses"].items()
        if "Location" in answer.get("headers", {})
    }
    assert sent <= declared
    assert {operation[:2] for operation in sent} == {operation[:2] for operation in declared}


def test_addresses_come_from_the_public_url_not_the_host_header(
    app: Flask, ada: FlaskClient
) -> None:
    # Behind a reverse proxy the Host the web process sees is the proxy's upstream (nginx
    # sends its own by default) or whatever a client wrote, and the scheme http: a client
    # following Location or Link with its API token sent it there. PUBLIC_URL is the
    # address people and clients use (as OAuth redirect URIs and connect links are).
    app.config["PUBLIC_URL"] = "https://scriptbox.example.org"
    token = _post(ada, "/api/tokens", {"name": "embedding app"}).get_json()["token"]
    # A client with its API token, and a Host of the attacker's choosing.
    spoofed = {"Authorization": f"Bearer {token}", "Host": "evil.example"}
    client = app.test_client()
    made = client.post("/api/f/lab/scripts", json={"name": "One", "source": "result = 1"},
                       headers=spoofed)
    assert made.status_code == 201, made.get_data(as_text=True)
    script_id = made.get_json()["id"]
    assert made.headers["Location"] == (
        f"https://scriptbox.example.org/api/f/lab/scripts/{script_id}"
    )
    _post(ada, "/api/f/lab/scripts", {"name": "Two", "source": "result = 2"})
    page = client.get("/api/f/lab/scripts?limit=1", headers=spoofed)
    assert page.status_code == 200, page.get_data(as_text=True)
    assert page.headers["Link"].startswith(
        "<https://scriptbox.example.org/api/f/lab/scripts?"
    ), page.headers["Link"]
    assert "evil.example" not in made.headers["Location"] + page.headers["Link"]
