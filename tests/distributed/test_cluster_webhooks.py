"""Outbound webhooks from a real cluster (issue 12.3, DESIGN §7): one web process and one
Celery worker on PostgreSQL and Redis.

The web process registers the endpoint and serves the delivery log; the run ends on the
worker, which records the delivery and sends it through the `scriptbox.webhook` task,
signed; a 500 is retried when the beat finds it due again, after the backoff the
environment set. The loopback listener notes which process sent each request (the
kernel's socket table names it), so a delivery sent from the web process would show.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy.orm import Session

from app.models import Role
from app.services import webhooks
from app.testing import WebClient
from tests.conftest import add_member, create_facility, create_user
from tests.distributed.cluster import Cluster, Process, await_tasks, seeded_cluster
from tests.listener import WAIT_S, Answer, Listener, Received

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(300)]
SECRET_KEY = "cluster-webhooks-session-key"
# Short enough for a test, long enough that a retry sent without waiting (the beat ticks
# every 0.5 s in the cluster) could not pass for one that waited.
RETRY_BASE_S = 1.0
WEBHOOK_TASK = "scriptbox.webhook["


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener(find_sender=True).start()
    yield server
    server.close()


@dataclass(frozen=True)
class World:
    """A migrated PostgreSQL database with an admin of facility lab, and a cluster
    configured on it (no process started yet)."""

    app: Flask
    admin_id: int
    cluster: Cluster


@pytest.fixture
def world(tmp_path: Path, postgres_url: str, redis_prefix: str) -> Iterator[World]:
    def seed(session: Session) -> int:
        facility = create_facility(session, slug="lab")
        ada = create_user(session, email="ada@example.com")
        add_member(session, user=ada, facility=facility, role=Role.admin)
        return ada.id

    with seeded_cluster(tmp_path, postgres_url, redis_prefix, SECRET_KEY, seed) as (
            app, admin_id, cluster):
        yield World(app=app, admin_id=admin_id, cluster=cluster)


def _register(browser: WebClient, url: str) -> dict[str, Any]:
    answer = browser.api("POST", "/api/f/lab/webhooks",
                         json={"url": url, "events": ["run.finished"]})
    assert answer.status_code == 201, answer.text
    endpoint: dict[str, Any] = answer.json()
    return endpoint


def _run(browser: WebClient) -> dict[str, Any]:
    """A run through the web process, waited for (it executes on the worker)."""
    answer = browser.api("POST", "/api/f/lab/runs", json={"source": "result = 6 * 7", "wait": 25})
    assert answer.status_code == 200, answer.text
    run: dict[str, Any] = answer.json()
    assert run["status"] == "succeeded" and run["result"] == 42, run
    return run


def _deliveries(browser: WebClient, endpoint_id: int) -> list[dict[str, Any]]:
    answer = browser.api("GET", f"/api/f/lab/webhooks/{endpoint_id}/deliveries")
    assert answer.status_code == 200, answer.text
    rows: list[dict[str, Any]] = answer.json()
    return rows


def _deliveries_when(
    browser: WebClient,
    endpoint_id: int,
    worker: Process,
    done: Callable[[list[dict[str, Any]]], bool],
) -> list[dict[str, Any]]:
    """The delivery log once `done(log)`; read again whenever the worker logs a line (a
    task ending), or every half second."""
    deadline = time.monotonic() + WAIT_S
    while not done(rows := _deliveries(browser, endpoint_id)):
        assert time.monotonic() < deadline, (rows, worker.output())
        worker.await_line(0.5)
    return rows


def _verified(secret: str, got: Received) -> bool:
    headers = got.headers
    return webhooks.verify(secret, headers["Scriptbox-Timestamp"], got.body,
                           headers["Scriptbox-Signature"])


def test_run_finished_is_sent_signed_by_the_worker_and_logged(
    world: World, listener: Listener
) -> None:
    web, url = world.cluster.web()
    worker = world.cluster.worker()
    browser = WebClient(world.app, url, world.admin_id)
    endpoint = _register(browser, listener.url)
    assert endpoint["secret"].startswith("whsec_")

    run = _run(browser)
    got = listener.next()
    assert got.sender in worker.pids(), (got.sender, worker.pids(), web.pids())
    assert got.headers["Scriptbox-Event"] == "run.finished"
    assert _verified(endpoint["secret"], got)
    # The check is real: the same headers do not verify another body.
    assert not _verified(endpoint["secret"], replace(got, body=got.body + b" "))
    payload = json.loads(got.body)
    assert payload["event"] == "run.finished"
    assert payload["id"] == got.headers["Scriptbox-Delivery"]
    assert payload["data"]["user_id"] == world.admin_id
    assert payload["data"]["run"]["id"] == run["id"]
    assert payload["data"]["run"]["result"] == 42

    # The task that sent it ended after it wrote the outcome: the log, read from the web
    # process, has it now.
    await_tasks([worker], WEBHOOK_TASK, count=1, timeout=WAIT_S)
    [logged] = _deliveries(browser, endpoint["id"])
    assert logged["id"] == payload["id"]
    assert logged["event"] == "run.finished"
    assert (logged["status"], logged["attempts"], logged["response_code"]) == (
        "delivered", 1, 200)
    assert logged["last_error"] is None and logged["next_attempt_at"] is None
    assert logged["delivered_at"] is not None
    assert listener.received.empty()  # sent once


def test_a_500_is_retried_by_the_beat_after_the_backoff_and_logged(
    world: World, listener: Listener
) -> None:
    world.cluster.env["SCRIPTBOX_WEBHOOK_RETRY_BASE_S"] = str(RETRY_BASE_S)
    _web, url = world.cluster.web()
    worker = world.cluster.worker()
    browser = WebClient(world.app, url, world.admin_id)
    # The second answer is held back while the test reads the log between attempts.
    release = threading.Event()
    listener.answers.extend([Answer(500), Answer(500, release=release)])
    endpoint = _register(browser, listener.url)

    _run(browser)
    first = listener.next()
    second = listener.next()
    # The first outcome is written before a retry can be claimed: the log shows it now.
    [between] = _deliveries(browser, endpoint["id"])
    released = time.monotonic()
    release.set()
    third = listener.next()

    assert [got.status for got in (first, second, third)] == [500, 500, 200]
    assert all(got.sender in worker.pids() for got in (first, second, third)), (
        [got.sender for got in (first, second, third)], worker.pids())
    # The same delivery each time, signed anew.
    assert {got.headers["Scriptbox-Delivery"] for got in (first, second, third)} == {
        between["id"]}
    assert all(_verified(endpoint["secret"], got) for got in (first, second, third))
    # Backoff from the environment: base, then twice the base (the default is 30 s).
    assert RETRY_BASE_S <= second.at - first.at < 10 * RETRY_BASE_S
    assert 2 * RETRY_BASE_S <= third.at - released < 10 * RETRY_BASE_S

    # Tried and failed once: "retrying" (it said "pending", as if nothing had been tried).
    assert (between["status"], between["attempts"], between["response_code"]) == (
        "retrying", 1, 500)
    # Read while the second attempt is held in flight: no "next attempt" (the claim's
    # lease used to show there), but since when it is being sent.
    assert between["next_attempt_at"] is None and between["sending_since"] is not None
    assert between["last_error"] == "answered HTTP 500"
    assert between["delivered_at"] is None
    [logged] = _deliveries_when(browser, endpoint["id"], worker,
                                lambda rows: rows[0]["status"] in ("delivered", "failed"))
    assert (logged["status"], logged["attempts"], logged["response_code"]) == (
        "delivered", 3, 200)
    assert logged["last_error"] is None and logged["next_attempt_at"] is None
    assert listener.received.empty()  # no attempt after the one that succeeded


def test_a_test_event_and_a_redelivery_are_sent_by_the_worker_with_their_attempts(
    world: World, listener: Listener
) -> None:
    _web, url = world.cluster.web()
    worker = world.cluster.worker()
    browser = WebClient(world.app, url, world.admin_id)
    endpoint = _register(browser, listener.url)

    answer = browser.api("POST", f"/api/f/lab/webhooks/{endpoint['id']}/test")
    assert answer.status_code == 202, answer.text
    ping = answer.json()
    got = listener.next()
    assert got.sender in worker.pids() and _verified(endpoint["secret"], got)
    assert got.headers["Scriptbox-Event"] == "ping"
    assert json.loads(got.body)["id"] == ping["id"] == got.headers["Scriptbox-Delivery"]
    await_tasks([worker], WEBHOOK_TASK, count=1, timeout=WAIT_S)

    answer = browser.api(
        "POST", f"/api/f/lab/webhooks/{endpoint['id']}/deliveries/{ping['id']}/redeliver"
    )
    assert answer.status_code == 202, answer.text
    again = answer.json()
    resent = listener.next()
    assert resent.sender in worker.pids() and _verified(endpoint["secret"], resent)
    assert resent.headers["Scriptbox-Delivery"] == again["id"] != ping["id"]
    assert resent.body == got.body  # the same event, its id too
    await_tasks([worker], WEBHOOK_TASK, count=2, timeout=WAIT_S)
    detail = browser.api(
        "GET", f"/api/f/lab/webhooks/{endpoint['id']}/deliveries/{again['id']}"
    ).json()
    assert (detail["status"], detail["redelivery_of"]) == ("delivered", ping["id"])
    [attempt] = detail["attempt_log"]
    assert (attempt["number"], attempt["response_code"], attempt["error"]) == (1, 200, None)
    assert attempt["duration_ms"] is not None
