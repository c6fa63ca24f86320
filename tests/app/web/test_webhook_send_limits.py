"""Hardening of the webhook controls: test events and redeliveries are limited per endpoint
and per facility (429 with Retry-After and when to try again, counted in memory or shared
through Redis by every web process), a facility's endpoints are capped (409), and a
receiver cannot make the server download a body.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from sqlalchemy import func, select

from app import db
from app.models import Role, WebhookDelivery
from app.services import webhook_endpoints
from app.testing import LiveServer, WebClient
from tests.conftest import add_member, close_live, create_facility, create_user, make_app
from tests.listener import Listener
from tests.webhook_world import attempt, pending_delivery

REDIS_URL = os.environ.get("SCRIPTBOX_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
WAIT_S = 60.0
LIMITS = {"WEBHOOK_SENDS_PER_ENDPOINT": "3 per hour", "WEBHOOK_SENDS_PER_FACILITY": "5 per hour"}


def _people(app: Flask) -> dict[str, int]:
    """Facility lab (admin Ada, member Mia) and facility other (Ada is its admin too)."""
    with app.app_context():
        session = db.session()
        lab = create_facility(session, slug="lab")
        other = create_facility(session, slug="other", name="Other")
        ada = create_user(session, email="ada@example.com")
        mia = create_user(session, email="mia@example.com")
        add_member(session, user=ada, facility=lab, role=Role.admin)
        add_member(session, user=ada, facility=other, role=Role.admin)
        add_member(session, user=mia, facility=lab, role=Role.member)
        session.commit()
        return {"ada": ada.id, "mia": mia.id}


class Admin:
    """API calls of one user through one live server (a bearer token)."""

    def __init__(self, live: LiveServer, user_id: int) -> None:
        self.live = live
        token = WebClient(live.app, live.url, user_id).api(
            "POST", "/api/tokens", json={"name": "t"}
        )
        self.token = token.json()["token"]

    def call(self, method: str, path: str, **kw: Any) -> requests.Response:
        return requests.request(
            method,
            f"{self.live.url}{path}",
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=WAIT_S,
            **kw,
        )

    def register(self, url: str, slug: str = "lab") -> int:
        answer = self.call(
            "POST", f"/api/f/{slug}/webhooks", json={"url": url, "events": ["run.finished"]}
        )
        assert answer.status_code == 201, answer.text
        endpoint_id: int = answer.json()["id"]
        return endpoint_id

    def test(self, endpoint_id: int, slug: str = "lab") -> requests.Response:
        return self.call("POST", f"/api/f/{slug}/webhooks/{endpoint_id}/test")


def assert_throttled(answer: requests.Response, scope: str) -> None:
    assert answer.status_code == 429, answer.text
    seconds = int(answer.headers["Retry-After"])
    assert 0 < seconds <= 3600
    error = answer.json()["error"]
    assert error["code"] == "too_many_attempts"
    assert error["retry_after"] == seconds
    assert re.fullmatch(
        rf"Too many test and redelivery sends {scope} \(at most \d+ per 1 hour\)\. "
        rf"Try again in {seconds} s\.",
        error["message"],
    ), error["message"]


@pytest.fixture
def limited(tmp_path: Path) -> Iterator[tuple[LiveServer, dict[str, int]]]:
    """A live server with low send limits (3 per endpoint, 5 per facility, an hour)."""
    live = LiveServer(make_app(tmp_path, **LIMITS))
    try:
        yield live, _people(live.app)
    finally:
        close_live(live)
        db.session.remove()


def _deliveries(app: Flask, endpoint_id: int) -> int:
    with app.app_context():
        found = db.session().scalar(
            select(func.count())
            .select_from(WebhookDelivery)
            .where(WebhookDelivery.endpoint_id == endpoint_id)
        )
        return int(found or 0)


def test_tests_and_redeliveries_are_limited_per_endpoint_then_per_facility(
    limited: tuple[LiveServer, dict[str, int]], listener: Listener
) -> None:
    live, ids = limited
    ada, mia = Admin(live, ids["ada"]), Admin(live, ids["mia"])
    first, second = ada.register(listener.url), ada.register(listener.url)
    sent = [ada.test(first) for _ in range(3)]
    assert [a.status_code for a in sent] == [202] * 3
    assert_throttled(ada.test(first), "to this endpoint")
    # A redelivery is a send like a test: the endpoint's count refuses it too.
    redelivery = ada.call(
        "POST", f"/api/f/lab/webhooks/{first}/deliveries/{sent[0].json()['id']}/redeliver"
    )
    assert_throttled(redelivery, "to this endpoint")
    # Another endpoint of the facility has its own count, under the facility's.
    assert [ada.test(second).status_code for _ in range(2)] == [202, 202]
    assert_throttled(ada.test(second), "from this facility")
    # Refused sends made no delivery: only the five accepted ones exist.
    assert _deliveries(live.app, first) == 3
    assert _deliveries(live.app, second) == 2
    # Another facility's count is its own.
    elsewhere = ada.register(listener.url, slug="other")
    assert ada.test(elsewhere, slug="other").status_code == 202
    # Refusals before the limit is reached stay what they were: 403 for a member, 404 for
    # another facility's id, 409 for a paused endpoint.
    assert mia.test(first).status_code == 403
    assert ada.test(elsewhere).status_code == 404
    paused = ada.register(listener.url, slug="other")
    assert ada.call("PATCH", f"/api/f/other/webhooks/{paused}", json={"active": False}).ok
    assert ada.test(paused, slug="other").status_code == 409
    # The sends that were accepted all reached the receiver.
    got = [listener.received.get(timeout=WAIT_S) for _ in range(6)]
    assert {g.headers["Scriptbox-Event"] for g in got} == {"ping"}


def test_a_facility_has_at_most_so_many_endpoints(
    limited: tuple[LiveServer, dict[str, int]], listener: Listener
) -> None:
    live, ids = limited
    ada = Admin(live, ids["ada"])
    for _ in range(webhook_endpoints.MAX_ENDPOINTS):
        ada.register(listener.url)
    answer = ada.call(
        "POST", "/api/f/lab/webhooks", json={"url": listener.url, "events": ["run.finished"]}
    )
    assert answer.status_code == 409
    assert answer.json()["error"]["message"] == (
        f"a facility has at most {webhook_endpoints.MAX_ENDPOINTS} webhook endpoints: remove "
        "one it no longer needs before adding another (a paused one counts too)"
    )
    # Another facility is not held back by this one's endpoints.
    ada.register(listener.url, slug="other")


@pytest.fixture
def shared_redis(tmp_path: Path) -> Iterator[tuple[Admin, Admin, int]]:
    """Two web processes' worth of apps on one database and one Redis test database."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.skip("no Redis on 127.0.0.1:6379")
    prefix = f"sbtest-{secrets.token_hex(6)}"
    settings = {**LIMITS, "REDIS_URL": REDIS_URL, "REDIS_PREFIX": prefix}
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    one = LiveServer(make_app(tmp_path / "one", **settings))
    two = LiveServer(
        make_app(
            tmp_path / "two",
            DATABASE_URL=one.app.config["DATABASE_URL"],
            SECRET_KEYS=one.app.config["SECRET_KEYS"],
            **settings,
        )
    )
    try:
        ids = _people(one.app)
        yield Admin(one, ids["ada"]), Admin(two, ids["ada"]), ids["ada"]
    finally:
        close_live(two)
        close_live(one)
        db.session.remove()
        for key in client.scan_iter(match=f"{prefix}*"):
            client.delete(key)
        client.close()


def test_with_redis_every_process_shares_the_count(
    shared_redis: tuple[Admin, Admin, int], listener: Listener
) -> None:
    via_one, via_two, _ = shared_redis
    endpoint = via_one.register(listener.url)
    assert [via_one.test(endpoint).status_code for _ in range(2)] == [202, 202]
    assert via_two.test(endpoint).status_code == 202
    assert_throttled(via_two.test(endpoint), "to this endpoint")
    assert_throttled(via_one.test(endpoint), "to this endpoint")


def test_the_limits_are_checked_at_start(tmp_path: Path) -> None:
    from app.config import ConfigError

    with pytest.raises(ConfigError, match="SCRIPTBOX_WEBHOOK_SENDS_PER_FACILITY must read like"):
        make_app(tmp_path, WEBHOOK_SENDS_PER_FACILITY="often")


class EndlessBody:
    """A receiver that answers 200 with a body it says is a gigabyte, sends 64 KiB of it,
    and then waits for the sender to hang up (it never sends the rest)."""

    def __init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._server.getsockname()[1]}/hook"
        self.hung_up = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        connection, _ = self._server.accept()
        with connection:
            connection.settimeout(WAIT_S)
            request = b""
            while b"\r\n\r\n" not in request:
                request += connection.recv(65536)
            head, _, body = request.partition(b"\r\n\r\n")
            length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
            while len(body) < length:
                body += connection.recv(65536)
            connection.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                b"Content-Length: 1000000000\r\n\r\n" + b"x" * 65536
            )
            try:
                if connection.recv(1) == b"":
                    self.hung_up.set()
            except OSError:
                self.hung_up.set()

    def close(self) -> None:
        self._server.close()
        self._thread.join(WAIT_S)


def test_a_receiver_answering_with_an_endless_body_is_delivered_without_reading_it(
    app: Flask,
) -> None:
    receiver = EndlessBody()
    try:
        delivery_id = pending_delivery(app, db.session(), receiver.url)
        assert attempt(app, delivery_id) == "delivered"
        assert receiver.hung_up.wait(WAIT_S)
    finally:
        receiver.close()
