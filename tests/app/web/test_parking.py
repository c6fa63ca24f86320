"""Durable pauses (DESIGN §4): a paused run parks (journal stored encrypted, worker and
thread released) and resumes by replay when its prompt ends, in every way it can end."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app import db, extensions
from app.models import Grant, Role, Run
from app.testing import LiveServer, WebClient
from sandbox import Journal
from tests.app.web.conftest import API_KEY
from tests.conftest import (
    add_member,
    create_facility,
    create_integration,
    create_user,
    make_app,
    stored,
)

TWO_PROMPTS = """
import random, time
started = time.time()
lucky = random.random()
print("asking", started, lucky)
names = [i["key"] for i in integrations.available()]
first = integrations.get("keyed", "/echo").status
print("first done")
second = integrations.get("other", "/echo").status
result = {"started": started, "lucky": lucky, "names": names, "statuses": [first, second]}
"""
CATCHES_REFUSAL = """
print("asking")
try:
    integrations.get("keyed", "/echo")
    result = {"connected": True}
except integrations.NoIntegrationGrant as refused:
    result = {"connected": False, "reason": refused.reason}
"""
NEEDS_KEY = 'print("asking")\nresult = integrations.get("keyed", "/echo").status\n'


class World:
    """A served facility with a scripter, two API-key integrations and an open page."""

    def __init__(self, tmp_path: Path, keyapi: str, **config: Any) -> None:
        settings = {"PARK_AFTER_S": 0, "HEARTBEAT_S": 0.2, **config}
        self.app = make_app(tmp_path, **settings)
        self.live = LiveServer(self.app)
        with self.app.app_context():
            session = db.session()
            lab = create_facility(session, slug="lab")
            user = create_user(session, email="sam@example.com")
            add_member(session, user=user, facility=lab, role=Role.scripter)
            for key in ("keyed", "other"):
                create_integration(session, facility=lab, key=key, base_url=keyapi)
            session.commit()
            self.client = WebClient(self.app, self.live.url, user.id)
        self.page = self.client.websocket("lab")
        self.page.wait_for("hello")

    def start(self, source: str) -> str:
        response = self.client.api(
            "POST", "/api/f/lab/runs", json={"source": source, "interactive": True}
        )
        assert response.status_code == 201, response.text
        run_id: str = response.json()["id"]
        return run_id

    def parked(self, run_id: str) -> dict[str, Any]:
        """Wait until the run parks; its prompt."""
        prompt = self.page.wait_for("grant.required", run_id=run_id)
        self.page.wait_for("run.status", run_id=run_id, status="parked")
        return prompt

    def run_row(self, run_id: str) -> Run:
        return stored(self.app, Run, run_id)

    def close(self) -> None:
        self.page.close()
        self.live.close()
        self.app.extensions["heartbeat"].stop()
        executor = self.app.extensions.get("sandbox")
        if executor is not None:
            executor.close()


@pytest.fixture
def world(tmp_path: Path, keyapi: str) -> Iterator[World]:
    built = World(tmp_path, keyapi)
    yield built
    built.close()


def thread_ends(name: str) -> bool:
    """Wait (up to 10 s) until no thread drives the run: run threads are named `run-<id>`
    while they drive it, then wait for another run under another name (or end)."""
    deadline = time.monotonic() + 10
    while any(t.name == name for t in threading.enumerate()):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_a_parked_run_holds_no_worker_or_thread_and_resumes_after_sign_in(
    world: World,
) -> None:
    run_id = world.start(TWO_PROMPTS)
    first = world.parked(run_id)
    parked = world.run_row(run_id)
    assert parked.status == "parked" and parked.driver is None
    assert parked.journal is not None and b"keyed" not in parked.journal  # encrypted
    opened = Journal.from_bytes(
        extensions.vault(world.app).decrypt(parked.journal.decode()).encode()
    )
    assert len(opened) == 1  # available() is journalled; the parked call is not
    assert thread_ends(f"run-{run_id[:8]}")
    assert world.page.wait_for("run.output", run_id=run_id)["data"].startswith("asking")

    world.client.post_form(first["sign_in_url"], {"api_key": API_KEY})
    second = world.parked(run_id)  # resumed by replay, then parked again on the next prompt
    assert second["integration"]["key"] == "other"
    assert world.page.wait_for("run.output", run_id=run_id)["data"] == "first done\n"
    world.client.post_form(second["sign_in_url"], {"api_key": API_KEY})
    finished = world.page.wait_for("run.finished", run_id=run_id)["run"]
    assert finished["status"] == "succeeded", finished
    result = finished["result"]
    assert result["statuses"] == [200, 200]
    assert result["names"] == ["keyed", "other"]
    # Clock readings and random numbers were replayed: the first delivery saw the same.
    assert finished["output"].splitlines()[0] == f"asking {result['started']} {result['lucky']}"
    # Output already delivered is not delivered twice.
    assert [m for m in world.page.seen if m.get("type") == "run.output"] == []
    assert world.run_row(run_id).journal is None  # deleted when the run ended


def test_refusal_after_parking_reaches_the_scripts_except_branch(world: World) -> None:
    run_id = world.start(CATCHES_REFUSAL)
    prompt = world.parked(run_id)
    world.page.send({"type": "grant.refuse", "grant_id": prompt["grant_id"]})
    finished = world.page.wait_for("run.finished", run_id=run_id)["run"]
    assert finished["result"] == {"connected": False, "reason": "refused"}
    assert finished["output"] == "asking\n"


def test_a_parked_prompt_expires_by_the_sweep(tmp_path: Path, keyapi: str) -> None:
    world = World(tmp_path, keyapi, GRANT_TIMEOUT_S=0.5)
    try:
        run_id = world.start(NEEDS_KEY)
        prompt = world.parked(run_id)
        resolved = world.page.wait_for("grant.resolved", grant_id=prompt["grant_id"])
        assert resolved["state"] == "expired"
        finished = world.page.wait_for("run.finished", run_id=run_id)["run"]
        assert finished["status"] == "failed"
        assert finished["error"]["code"] == "no_integration_grant"
        assert finished["error"]["line"] == 2
    finally:
        world.close()


def test_cancel_a_parked_run(world: World) -> None:
    run_id = world.start(NEEDS_KEY)
    prompt = world.parked(run_id)
    sealed = world.run_row(run_id).journal
    assert sealed is not None
    used_s = Journal.from_bytes(
        extensions.vault(world.app).decrypt(sealed.decode()).encode()
    ).wall_s
    # While parked it has no duration yet (pages show its live time so far instead).
    assert world.client.api("GET", f"/api/f/lab/runs/{run_id}").json()["duration_ms"] is None
    answer = world.client.api("POST", f"/api/f/lab/runs/{run_id}/cancel").json()
    assert answer == {"id": run_id, "cancelling": True, "status": "cancelled"}
    ended = world.page.wait_for("run.finished", run_id=run_id)["run"]
    assert ended["status"] == "cancelled"
    # It ended with the time it ran before it parked (the journal's, kept in the clear).
    assert used_s > 0 and ended["duration_ms"] == pytest.approx(used_s * 1000, abs=0.001)
    assert world.client.api("GET", f"/api/f/lab/runs/{run_id}").json()["duration_ms"] == (
        ended["duration_ms"]
    )
    assert world.page.wait_for("grant.resolved", grant_id=prompt["grant_id"])["state"] == (
        "cancelled"
    )
    assert world.run_row(run_id).journal is None
    with world.app.app_context():
        assert db.session.get(Grant, prompt["grant_id"]).state == "cancelled"


def test_past_max_live_paused_runs_park_at_once(tmp_path: Path, keyapi: str) -> None:
    world = World(tmp_path, keyapi, PARK_AFTER_S=60, MAX_LIVE_PAUSED=1)
    try:
        live = world.start(NEEDS_KEY)
        prompt = world.page.wait_for("grant.required", run_id=live)
        world.page.wait_for("run.status", run_id=live, status="waiting_for_grant")
        crowded = world.start(NEEDS_KEY)  # shares the prompt, but no live pause is left
        world.page.wait_for("run.status", run_id=crowded, status="parked")
        assert world.run_row(live).status == "waiting_for_grant"
        world.client.post_form(prompt["sign_in_url"], {"api_key": API_KEY})
        for run_id in (live, crowded):
            finished = world.page.wait_for("run.finished", run_id=run_id)["run"]
            assert finished["status"] == "succeeded" and finished["result"] == 200
    finally:
        world.close()


def test_shutdown_parks_live_pauses_and_lets_the_server_go(tmp_path: Path, keyapi: str) -> None:
    world = World(tmp_path, keyapi, PARK_AFTER_S=600)
    try:
        run_id = world.start(NEEDS_KEY)
        world.page.wait_for("run.status", run_id=run_id, status="waiting_for_grant")
        extensions.run_queue(world.app).shutdown(timeout=30)
        world.page.wait_for("run.status", run_id=run_id, status="parked")
        assert thread_ends(f"run-{run_id[:8]}")
        parked = world.run_row(run_id)
        assert parked.status == "parked" and parked.journal is not None
    finally:
        world.close()


RESUMES_AND_SPINS = """
print("asking")
integrations.get("keyed", "/echo")
print("resumed")
while True:
    pass
"""


def test_resumed_runs_stay_within_the_users_cap(tmp_path: Path, keyapi: str) -> None:
    world = World(tmp_path, keyapi, MAX_RUNS_PER_USER=1)
    try:
        runs = [world.start(RESUMES_AND_SPINS) for _ in range(3)]
        prompt = world.parked(runs[0])
        for run_id in runs[1:]:  # each starts once the one before parked, and parks too
            world.page.wait_for("run.status", run_id=run_id, status="parked")
        world.client.post_form(prompt["sign_in_url"], {"api_key": API_KEY})
        world.page.wait_for("run.output", run_id=runs[0], data="resumed\n")
        statuses = [world.run_row(run_id).status for run_id in runs]
        assert statuses == ["running", "parked", "parked"]  # one live run for this user
        for n, run_id in enumerate(runs):
            if n:  # resumed only now that the one before ended
                world.page.wait_for("run.output", run_id=run_id, data="resumed\n")
            world.client.api("POST", f"/api/f/lab/runs/{run_id}/cancel")
            finished = world.page.wait_for("run.finished", run_id=run_id)["run"]
            assert finished["status"] == "cancelled"
    finally:
        world.close()
