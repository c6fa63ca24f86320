"""Two web processes and two Celery workers on PostgreSQL and Redis (DESIGN §7, issue 10).

The page listens on web A, the run executes on a worker, the sign-in arrives on web B;
pages on both web processes hear the run. Faults: a worker SIGKILLed mid-run, a web
process SIGKILLed while pages are open.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from flask import Flask
from simple_websocket import ConnectionClosed
from sqlalchemy.orm import Session

from app.devprovider import ProviderConfig, create_provider_app, serve_in_thread
from app.models import Role, Run
from app.testing import Socket, WebClient
from tests.conftest import (
    add_member,
    create_facility,
    create_integration,
    create_user,
    stored,
)
from tests.distributed.cluster import Cluster, Process, await_tasks, seeded_cluster
from tests.distributed.conftest import OwnRedis

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(300)]
API_KEY = "cluster-key"
SECRET_KEY = "cluster-test-session-key"
Seen = TypeVar("Seen")

NEEDS_KEY = """
print("before the call")
resp = integrations.get("keyed", "/echo", params={"q": "1"})
print("after the call")
# The key arrived (the API checks it: 200) and what came back holds it only as [redacted].
echoed = resp.json()["headers"].get("x-api-key")
hidden = echoed == "[redacted]" and input["key"] not in resp.text
result = {"status": resp.status, "saw_key": hidden}
"""


@pytest.fixture(scope="module")
def keyapi() -> Iterator[str]:
    """A real API-key protected API on loopback, called by the workers."""
    provider = create_provider_app(ProviderConfig(api_keys={API_KEY: None}))
    with serve_in_thread(provider) as server:
        yield f"{server.url}/keyapi"


@pytest.fixture
def world(tmp_path: Path, postgres_url: str, redis_prefix: str, keyapi: str) -> Iterator[
        dict[str, Any]]:
    """A migrated PostgreSQL database with a scripter and an unconnected API-key integration,
    and a cluster configured on it (no process started yet)."""
    with seeded_cluster(tmp_path, postgres_url, redis_prefix, SECRET_KEY,
                        scripter_and_keyed_api(keyapi)) as (app, user_id, cluster):
        yield {"app": app, "user_id": user_id, "cluster": cluster}


def scripter_and_keyed_api(keyapi: str) -> Callable[[Session], int]:
    """Seeds facility lab with a scripter (its id is the answer) and an unconnected
    API-key integration `keyed` to `keyapi`."""

    def seed(session: Session) -> int:
        facility = create_facility(session, slug="lab")
        user = create_user(session, email="sam@example.com")
        add_member(session, user=user, facility=facility, role=Role.scripter)
        create_integration(session, facility=facility, key="keyed", name="Keyed API",
                           base_url=keyapi)
        return user.id

    return seed


def client(world: dict[str, Any], url: str) -> WebClient:
    """The scripter's browser against one web process."""
    app: Flask = world["app"]
    return WebClient(app, url, world["user_id"])


def start_run(browser: WebClient, source: str, run_input: Any = None) -> str:
    response = browser.api("POST", "/api/f/lab/runs",
                           json={"source": source, "input": run_input, "interactive": True})
    assert response.status_code in (200, 201), response.text
    run_id: str = response.json()["id"]
    return run_id


def run_row(world: dict[str, Any], run_id: str) -> Run:
    return stored(world["app"], Run, run_id)


def driven_by(world: dict[str, Any], run_id: str, workers: list[Process]) -> Process:
    """The worker whose process drove the run (its driver id names the pid)."""
    driver = run_row(world, run_id).driver or ""
    for worker in workers:
        if any(f"-{pid}-" in driver for pid in worker.pids()):
            return worker
    raise AssertionError(f"run {run_id} driven by {driver!r}, not by a worker")


def test_page_on_web_a_sign_in_on_web_b_run_on_a_worker(world: dict[str, Any]) -> None:
    cluster: Cluster = world["cluster"]
    _web_b, url_b = cluster.web()  # the public URL: OAuth and sign-in land here
    _web_a, url_a = cluster.web(workers=2)  # and this one forks two gunicorn workers
    workers = [cluster.worker(), cluster.worker()]
    on_a, on_b = client(world, url_a), client(world, url_b)
    # Pages come from the public URL (a load balancer in front of the web processes).
    page_a, page_b = on_a.websocket("lab", origin=url_b), on_b.websocket("lab")
    page_a.wait_for("hello")
    page_b.wait_for("hello")

    run_id = start_run(on_a, NEEDS_KEY, {"key": API_KEY})
    prompt = page_a.wait_for("grant.required", timeout=60)
    assert prompt["run_id"] == run_id
    assert page_b.wait_for("grant.required")["grant_id"] == prompt["grant_id"]
    for page in (page_a, page_b):
        assert page.wait_for("run.output", run_id=run_id)["data"] == "before the call\n"
        page.wait_for("run.status", run_id=run_id, status="waiting_for_grant")
    driven_by(world, run_id, workers)  # paused inside a worker process, not a web one

    signed = on_b.post_form(prompt["sign_in_url"], {"api_key": API_KEY})
    assert signed.status_code == 200, signed.text

    for page in (page_a, page_b):
        assert page.wait_for("grant.resolved", grant_id=prompt["grant_id"])["state"] == "granted"
        assert page.wait_for("run.output", run_id=run_id)["data"] == "after the call\n"
        finished = page.wait_for("run.finished", run_id=run_id, timeout=60)["run"]
        assert finished["status"] == "succeeded", finished
        assert finished["result"] == {"status": 200, "saw_key": True}
    page_a.close()
    page_b.close()


def test_runs_spread_over_both_workers_and_wait_answers_from_any_web(
    world: dict[str, Any],
) -> None:
    cluster: Cluster = world["cluster"]
    # The paused runs must keep their worker process however slow the machine is.
    cluster.env["SCRIPTBOX_PARK_AFTER_S"] = "600"
    _web_b, url_b = cluster.web()
    _web_a, url_a = cluster.web()
    workers = [cluster.worker(), cluster.worker()]
    on_a = client(world, url_a)
    page = on_a.websocket("lab", origin=url_b)
    page.wait_for("hello")

    # The first run holds its worker's only process while it waits for a grant. Its
    # `wait` (the longest there is) answers at that pause, which the worker announces over
    # Redis, with the prompt; the client gives up long before the `wait` would run out.
    started = on_a.http.post(
        f"{url_a}/api/f/lab/runs",
        headers={"X-CSRF-Token": on_a.csrf},
        json={"source": NEEDS_KEY, "input": {"key": API_KEY}, "interactive": True, "wait": 300},
        timeout=120,
    )
    assert started.status_code == 201, started.text
    assert started.json()["status"] == "waiting_for_grant", started.json()
    assert started.json()["prompt"]["integration"] == "keyed", started.json()
    paused = started.json()["id"]
    page.wait_for("run.status", run_id=paused, status="waiting_for_grant", timeout=60)
    holder = driven_by(world, paused, workers)

    # ...so a second run can only execute on the other worker; `wait` on web B hears it end.
    response = client(world, url_b).api(
        "POST", "/api/f/lab/runs", json={"source": "result = 6 * 7", "wait": 60})
    assert response.status_code in (200, 201), response.text
    assert response.json()["status"] == "succeeded", response.json()
    assert response.json()["result"] == 42
    other = next(worker for worker in workers if worker is not holder)
    assert run_row(world, response.json()["id"]).status == "succeeded"
    assert other.popen.poll() is None

    cancelled = on_a.api("POST", f"/api/f/lab/runs/{paused}/cancel")
    assert cancelled.status_code in (200, 202), cancelled.text
    finished = page.wait_for("run.finished", run_id=paused, timeout=60)["run"]
    assert finished["status"] == "cancelled", finished
    page.close()


def test_a_parked_run_resumes_on_the_other_worker(world: dict[str, Any]) -> None:
    cluster: Cluster = world["cluster"]
    cluster.env["SCRIPTBOX_PARK_AFTER_S"] = "0.5"
    _web_b, url_b = cluster.web()
    _web_a, url_a = cluster.web()
    first = cluster.worker()
    on_a, on_b = client(world, url_a), client(world, url_b)
    page_a, page_b = on_a.websocket("lab", origin=url_b), on_b.websocket("lab")
    page_a.wait_for("hello")
    page_b.wait_for("hello")

    run_id = start_run(on_a, NEEDS_KEY, {"key": API_KEY})
    prompt = page_a.wait_for("grant.required", timeout=60)
    page_a.wait_for("run.status", run_id=run_id, status="parked", timeout=60)
    driver_before = run_row(world, run_id).driver
    assert driver_before is None  # parked: no process holds it
    # The worker that started it is gone for good; another takes over.
    first.kill()
    second = cluster.worker()

    assert on_b.post_form(prompt["sign_in_url"], {"api_key": API_KEY}).status_code == 200
    for page in (page_a, page_b):
        page.wait_for("run.status", run_id=run_id, status="running", timeout=60)
        finished = page.wait_for("run.finished", run_id=run_id, timeout=60)["run"]
        assert finished["status"] == "succeeded", finished
        assert finished["result"] == {"status": 200, "saw_key": True}
        assert finished["output"] == "before the call\nafter the call\n"
        outputs = [m["data"] for m in page.seen if m.get("type") == "run.output"]
        # Delivered once before parking, not again by the replay.
        assert outputs == ["before the call\n", "after the call\n"]
    assert second.popen.poll() is None
    page_a.close()
    page_b.close()


def test_a_worker_killed_mid_run_leaves_its_run_interrupted_and_others_untouched(
    world: dict[str, Any],
) -> None:
    cluster: Cluster = world["cluster"]
    # The paused runs must keep their worker process however slow the machine is.
    cluster.env["SCRIPTBOX_PARK_AFTER_S"] = "600"
    _web, url = cluster.web()
    workers = [cluster.worker(), cluster.worker()]
    browser = client(world, url)
    page = browser.websocket("lab")
    page.wait_for("hello")
    doomed = start_run(browser, NEEDS_KEY, {"key": API_KEY})
    page.wait_for("run.status", run_id=doomed, status="waiting_for_grant", timeout=60)
    survivor = start_run(browser, "print('going')\n" + NEEDS_KEY, {"key": API_KEY})
    page.wait_for("run.status", run_id=survivor, status="waiting_for_grant", timeout=60)
    victim = driven_by(world, doomed, workers)
    assert driven_by(world, survivor, workers) is not victim

    victim.kill()
    finished = page.wait_for("run.finished", run_id=doomed, timeout=30)["run"]
    assert finished["status"] == "failed"
    assert finished["error"]["code"] == "interrupted", finished
    assert run_row(world, survivor).status == "waiting_for_grant"

    prompt = next(m for m in page.seen if m.get("type") == "grant.required")
    assert browser.post_form(prompt["sign_in_url"], {"api_key": API_KEY}).status_code == 200
    done = page.wait_for("run.finished", run_id=survivor, timeout=60)["run"]
    assert done["status"] == "succeeded", done
    page.close()


@pytest.mark.parametrize("to_group", [True, False], ids=["its-group", "its-main-process"])
def test_a_worker_stopped_by_sigterm_parks_its_paused_run(
    world: dict[str, Any], to_group: bool
) -> None:
    """honcho and systemd's default stop signal a worker's whole group, forked processes
    included: the run in hand is not cut off (it would end interrupted). `docker stop` and
    `kill PID` signal Celery's main process alone, whose warm shutdown waits for the runs
    in hand. Either way a live pause parks at once and resumes on the other worker."""
    cluster: Cluster = world["cluster"]
    cluster.env["SCRIPTBOX_PARK_AFTER_S"] = "600"  # it parks because of the stop, not the clock
    _web, url = cluster.web()
    workers = [cluster.worker(), cluster.worker()]
    browser = client(world, url)
    page = browser.websocket("lab")
    page.wait_for("hello")
    run_id = start_run(browser, NEEDS_KEY, {"key": API_KEY})
    page.wait_for("run.status", run_id=run_id, status="waiting_for_grant", timeout=60)
    stopped = driven_by(world, run_id, workers)

    if to_group:
        os.killpg(stopped.popen.pid, signal.SIGTERM)
    else:
        os.kill(stopped.popen.pid, signal.SIGTERM)
    page.wait_for("run.status", run_id=run_id, status="parked", timeout=30)
    assert stopped.popen.wait(60) == 0, stopped.output()

    prompt = next(m for m in page.seen if m.get("type") == "grant.required")
    assert browser.post_form(prompt["sign_in_url"], {"api_key": API_KEY}).status_code == 200
    done = page.wait_for("run.finished", run_id=run_id, timeout=60)["run"]
    assert done["status"] == "succeeded", done
    assert done["result"] == {"status": 200, "saw_key": True}
    page.close()


def test_a_web_process_killed_its_pages_reconnect_to_the_other_and_no_run_is_lost(
    world: dict[str, Any],
) -> None:
    cluster: Cluster = world["cluster"]
    web_b, url_b = cluster.web()
    web_a, url_a = cluster.web()
    cluster.worker()
    on_a = client(world, url_a)
    page = on_a.websocket("lab", origin=url_b)
    page.wait_for("hello")
    run_id = start_run(on_a, NEEDS_KEY, {"key": API_KEY})
    prompt = page.wait_for("grant.required", timeout=60)

    web_a.kill()
    assert page.next(timeout=10) is None  # the socket closed with its process

    # The page reconnects to the other web process: the prompt is shown again there.
    on_b = client(world, url_b)
    again = on_b.websocket("lab")
    again.wait_for("hello")
    assert again.wait_for("grant.required")["grant_id"] == prompt["grant_id"]
    assert on_b.post_form(prompt["sign_in_url"], {"api_key": API_KEY}).status_code == 200
    finished = again.wait_for("run.finished", run_id=run_id, timeout=60)["run"]
    assert finished["status"] == "succeeded", finished
    assert web_b.popen.poll() is None
    again.close()


def test_a_redis_restart_loses_no_run(
    tmp_path: Path, postgres_url: str, keyapi: str, own_redis: OwnRedis
) -> None:
    with seeded_cluster(tmp_path, postgres_url, "sb", SECRET_KEY, scripter_and_keyed_api(keyapi),
                        redis=own_redis.url) as (app, user_id, cluster):
        world = {"app": app, "user_id": user_id}
        _web, url = cluster.web()
        cluster.worker(concurrency=2)
        browser = client(world, url)
        page = browser.websocket("lab")
        page.wait_for("hello")
        paused = start_run(browser, NEEDS_KEY, {"key": API_KEY})
        prompt = page.wait_for("grant.required", timeout=60)
        page.wait_for("run.status", run_id=paused, status="waiting_for_grant")

        own_redis.stop()  # no persistence: queues, markers and subscriptions are gone
        queued = start_run(browser, "result = 'made it'")  # sent while Redis is down
        own_redis.start()

        # What was published meanwhile never reached the web process: its pages are told
        # to reconnect, and a page that connects reads afresh what it follows.
        assert closed_with(page, timeout=90) == 1012
        page = browser.websocket("lab")
        page.wait_for("hello")
        assert page.wait_for("grant.required", timeout=30)["grant_id"] == prompt["grant_id"]

        # The paused run still hears its grant, the page hears the run, and the run whose
        # message was lost is sent again and executes.
        assert browser.post_form(prompt["sign_in_url"], {"api_key": API_KEY}).status_code == 200
        finished = page.wait_for("run.finished", run_id=paused, timeout=90)["run"]
        assert finished["status"] == "succeeded", finished
        ended = wait_until(lambda: run_row(world, queued),
                           lambda run: run.status not in ("queued", "running"), timeout=90)
        assert (ended.status, ended.result) == ("succeeded", "made it")
        page.close()


def closed_with(page: Socket, *, timeout: float) -> int:
    """The close code of the page's websocket, once the server closes it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            page.ws.receive(timeout=1)
        except ConnectionClosed as closed:
            return int(closed.reason)
    raise AssertionError(f"the page's websocket stayed open for {timeout}s")


def wait_until(read: Callable[[], Seen], done: Callable[[Seen], bool], *, timeout: float) -> Seen:
    """read() again until done(it): the value that was done; AssertionError on timeout."""
    deadline = time.monotonic() + timeout
    while not done(value := read()):
        assert time.monotonic() < deadline, f"still {value!r} after {timeout}s"
        time.sleep(0.2)
    return value


def test_the_user_cap_holds_across_worker_processes(world: dict[str, Any]) -> None:
    cluster: Cluster = world["cluster"]
    # The paused runs must keep their worker process however slow the machine is.
    cluster.env["SCRIPTBOX_PARK_AFTER_S"] = "600"
    cluster.env["SCRIPTBOX_MAX_RUNS_PER_USER"] = "2"
    _web, url = cluster.web()
    workers = [cluster.worker(concurrency=2), cluster.worker(concurrency=2)]
    browser = client(world, url)
    page = browser.websocket("lab")
    page.wait_for("hello")

    # Six runs at once, four worker processes free to claim them: only two may go live.
    runs = [start_run(browser, NEEDS_KEY, {"key": API_KEY}) for _ in range(6)]
    # Two tasks hold their runs; the four others were declined by the claim and ended.
    await_tasks(workers, "scriptbox.run[", count=4)
    live = [r for r in runs if run_row(world, r).status in ("running", "waiting_for_grant")]
    queued = [r for r in runs if run_row(world, r).status == "queued"]
    assert len(live) == 2 and len(queued) == 4, [run_row(world, r).status for r in runs]

    # A slot opens when a live run ends: a queued one starts, still two at most.
    browser.api("POST", f"/api/f/lab/runs/{live[0]}/cancel")
    page.wait_for("run.finished", run_id=live[0], timeout=60)
    started = page.wait_for("run.status", status="running", timeout=60)
    while started["run_id"] not in queued:  # skip the first two runs' own announcements
        started = page.wait_for("run.status", status="running", timeout=60)
    statuses = [run_row(world, r).status for r in runs]
    assert statuses.count("running") + statuses.count("waiting_for_grant") <= 2, statuses
    page.close()
