"""Cancel in every state (API and CLI), and the caps on live runs and open prompts (§6)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app import db
from app.models import Grant, Role, Run
from app.testing import LiveServer, WebClient
from tests.conftest import add_member, create_facility, create_integration, create_user, make_app

SPINS = "print('spinning')\nwhile True:\n    pass\n"
NEEDS_KEY = 'resp = integrations.get("keyed", "/echo")\nresult = resp.status\n'
NEEDS_OTHER = """
try:
    integrations.get("other", "/echo")
    result = "connected"
except integrations.NoIntegrationGrant as refused:
    result = refused.reason
"""


def build_world(tmp_path: Path, keyapi: str, **config: Any) -> dict[str, Any]:
    app = make_app(tmp_path, HEARTBEAT_S=0.2, **config)
    live = LiveServer(app)
    with app.app_context():
        session = db.session()
        lab = create_facility(session, slug="lab")
        ids = {}
        for email in ("sam@example.com", "sue@example.com"):
            user = create_user(session, email=email)
            add_member(session, user=user, facility=lab, role=Role.scripter)
            ids[email] = user.id
        for key in ("keyed", "other"):
            create_integration(session, facility=lab, key=key, base_url=keyapi)
        session.commit()
    return {
        "live": live,
        "sam": WebClient(app, live.url, ids["sam@example.com"]),
        "sue": WebClient(app, live.url, ids["sue@example.com"]),
    }


@pytest.fixture
def world(tmp_path: Path, keyapi: str) -> Iterator[dict[str, Any]]:
    """A served facility with two scripters and two API-key integrations nobody connected."""
    built = build_world(tmp_path, keyapi, MAX_RUNS_PER_USER=2, MAX_PENDING_GRANTS_PER_USER=1)
    yield built
    close(built)


def close(world: dict[str, Any]) -> None:
    live: LiveServer = world["live"]
    live.close()
    live.app.extensions["heartbeat"].stop()
    executor = live.app.extensions.get("sandbox")
    if executor is not None:
        executor.close()


def start(client: WebClient, source: str) -> str:
    response = client.api("POST", "/api/f/lab/runs", json={"source": source, "interactive": True})
    assert response.status_code == 201, response.text
    run_id: str = response.json()["id"]
    return run_id


def status(client: WebClient, run_id: str) -> str:
    state: str = client.api("GET", f"/api/f/lab/runs/{run_id}").json()["status"]
    return state


def test_cancel_a_running_run_from_the_api(world: dict[str, Any]) -> None:
    page = world["sam"].websocket("lab")
    page.wait_for("hello")
    run_id = start(world["sam"], SPINS)
    page.wait_for("run.output", run_id=run_id)
    answer = world["sam"].api("POST", f"/api/f/lab/runs/{run_id}/cancel").json()
    assert answer["cancelling"] is True
    finished = page.wait_for("run.finished", run_id=run_id)["run"]
    assert finished["status"] == "cancelled"
    assert finished["error"]["code"] == "cancelled"
    again = world["sam"].api("POST", f"/api/f/lab/runs/{run_id}/cancel").json()
    assert again == {"id": run_id, "cancelling": False, "status": "cancelled"}


def test_cancel_a_waiting_run_cancels_its_prompt(world: dict[str, Any]) -> None:
    page = world["sam"].websocket("lab")
    page.wait_for("hello")
    run_id = start(world["sam"], NEEDS_KEY)
    prompt = page.wait_for("grant.required")
    page.wait_for("run.status", run_id=run_id, status="waiting_for_grant")
    assert world["sam"].api("POST", f"/api/f/lab/runs/{run_id}/cancel").json()["cancelling"]
    assert page.wait_for("run.finished", run_id=run_id)["run"]["status"] == "cancelled"
    resolved = page.wait_for("grant.resolved", grant_id=prompt["grant_id"])
    assert resolved["state"] == "cancelled"
    again = world["sam"].websocket("lab")
    again.wait_for("hello")
    again.send({"type": "ping"})
    again.wait_for("pong")
    assert not [m for m in again.seen if m["type"] == "grant.required"]  # not shown again


def test_over_the_users_cap_runs_wait_queued_and_cancel_while_queued(
    world: dict[str, Any],
) -> None:
    page = world["sam"].websocket("lab")
    page.wait_for("hello")
    first, second = start(world["sam"], SPINS), start(world["sam"], SPINS)
    for run_id in (first, second):
        page.wait_for("run.output", run_id=run_id)
    third, fourth = start(world["sam"], SPINS), start(world["sam"], SPINS)
    assert status(world["sam"], third) == "queued"
    assert status(world["sam"], fourth) == "queued"
    # Another user is not held up by Sam's cap.
    theirs = start(world["sue"], "result = 'not queued'")
    sue_page = world["sue"].websocket("lab")
    sue_page.wait_for("hello")
    assert world["sue"].api("GET", f"/api/f/lab/runs/{theirs}").json()["status"] in (
        "running",
        "succeeded",
    )

    cancelled = world["sam"].api("POST", f"/api/f/lab/runs/{fourth}/cancel").json()
    assert cancelled == {"id": fourth, "cancelling": True, "status": "cancelled"}
    world["sam"].api("POST", f"/api/f/lab/runs/{first}/cancel")
    page.wait_for("run.finished", run_id=first)
    page.wait_for("run.output", run_id=third)  # the freed slot went to the oldest queued run
    assert status(world["sam"], fourth) == "cancelled"
    for run_id in (second, third):
        world["sam"].api("POST", f"/api/f/lab/runs/{run_id}/cancel")
        assert page.wait_for("run.finished", run_id=run_id)["run"]["status"] == "cancelled"


def test_past_the_prompt_cap_a_call_ends_in_too_many_prompts(world: dict[str, Any]) -> None:
    page = world["sam"].websocket("lab")
    page.wait_for("hello")
    waiting = start(world["sam"], NEEDS_KEY)
    page.wait_for("grant.required")
    page.wait_for("run.status", run_id=waiting, status="waiting_for_grant")
    refused = start(world["sam"], NEEDS_OTHER)
    finished = page.wait_for("run.finished", run_id=refused)["run"]
    assert finished["result"] == "too_many_prompts"
    with world["live"].app.app_context():
        assert db.session.query(Grant).count() == 1
    world["sam"].api("POST", f"/api/f/lab/runs/{waiting}/cancel")
    page.wait_for("run.finished", run_id=waiting)


def test_the_facility_cap_holds_across_users(tmp_path: Path, keyapi: str) -> None:
    world = build_world(tmp_path, keyapi, MAX_RUNS_PER_FACILITY=1)
    try:
        page = world["sam"].websocket("lab")
        page.wait_for("hello")
        mine = start(world["sam"], SPINS)
        page.wait_for("run.output", run_id=mine)
        theirs = start(world["sue"], "result = 1")
        assert status(world["sue"], theirs) == "queued"
        world["sam"].api("POST", f"/api/f/lab/runs/{mine}/cancel")
        page.wait_for("run.finished", run_id=mine)
        sue_page = world["sue"].websocket("lab")
        sue_page.wait_for("hello")
        assert world["live"].app.extensions["run_queue"].wait(theirs, 30)
        assert status(world["sue"], theirs) == "succeeded"
    finally:
        close(world)


def cli(app_config: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "SCRIPTBOX_DATABASE_URL": app_config["DATABASE_URL"],
        "SCRIPTBOX_SECRET_KEY": app_config["SECRET_KEY"],
        "SCRIPTBOX_SECRET_KEYS": ",".join(app_config["SECRET_KEYS"]),
    }
    return subprocess.run(
        [sys.executable, "-c", "from app.cli import main; main()", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        cwd=Path(__file__).resolve().parents[3],
    )


def test_scriptbox_cancel_stops_a_run_the_server_drives(world: dict[str, Any]) -> None:
    page = world["sam"].websocket("lab")
    page.wait_for("hello")
    run_id = start(world["sam"], SPINS)
    page.wait_for("run.output", run_id=run_id)
    done = cli(world["live"].app.config, "cancel", run_id)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"run {run_id}: cancelling"
    assert page.wait_for("run.finished", run_id=run_id)["run"]["status"] == "cancelled"
    again = cli(world["live"].app.config, "cancel", run_id)
    assert again.returncode == 1 and "already ended (cancelled)" in again.stderr
    with world["live"].app.app_context():
        assert db.session.get(Run, run_id).error_code == "cancelled"
