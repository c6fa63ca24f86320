"""What `run.finished` tells a receiver without a second API call: the facility (its slug),
who ran it, its script's id and name, and the run as the API shows it: its version, what started it
(`manual`, or `schedule` with the schedule's id), its status and its error's code."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from app import db, extensions
from app.models import Schedule, WebhookDelivery
from app.models._types import utcnow
from app.services import webhooks
from app.services.webhook_events import WebhookEvents
from app.testing import LiveServer
from tests.conftest import stored
from tests.listener import Listener
from tests.webhook_world import call, register, webhook_world


@pytest.fixture
def world(live: LiveServer) -> dict[str, Any]:
    """Lab (admin Ada, member Mia, tokens)."""
    return webhook_world(live)


def _script(world: dict[str, Any], name: str, *sources: str) -> int:
    """A script Ada publishes in turn as each of `sources` (versions 1, 2, ...)."""
    made = call(world, "ada", "POST", "/api/f/lab/scripts",
                json={"name": name, "source": sources[0], "published": True})
    assert made.status_code == 201, made.text
    script_id: int = made.json()["id"]
    for source in sources[1:]:
        changed = call(world, "ada", "PATCH", f"/api/f/lab/scripts/{script_id}",
                       json={"source": source, "published": True})
        assert changed.status_code == 200, changed.text
    return script_id


def _received(listener: Listener, secret: str) -> dict[str, Any]:
    got = listener.next()
    assert webhooks.verify(secret, got.headers["Scriptbox-Timestamp"], got.body,
                           got.headers["Scriptbox-Signature"])
    payload: dict[str, Any] = json.loads(got.body)
    assert payload["event"] == got.headers["Scriptbox-Event"] == "run.finished"
    return payload


def test_a_manual_run_says_its_script_version_and_trigger(
    world: dict[str, Any], listener: Listener
) -> None:
    endpoint = register(world, listener.url, ["run.finished"])
    script_id = _script(world, "Twice", "result = 1", "result = 2")
    answer = call(world, "mia", "POST", "/api/f/lab/runs",
                  json={"script_id": script_id, "wait": 30})
    assert answer.status_code == 200, answer.text

    payload = _received(listener, endpoint["secret"])
    assert payload["facility"] == "lab"
    assert payload["data"]["user_id"] == world["ids"]["mia"]
    assert payload["data"]["script"] == {"id": script_id, "name": "Twice"}
    run = payload["data"]["run"]
    assert {key: run[key] for key in _SAID} == {
        "id": answer.json()["id"], "script_id": script_id, "version": 2, "user_id":
        world["ids"]["mia"], "trigger": "manual", "schedule_id": None, "status": "succeeded",
        "error": None, "result": 2,
    }


def test_a_scheduled_run_says_its_schedule_and_its_error_code(
    world: dict[str, Any], listener: Listener
) -> None:
    endpoint = register(world, listener.url, ["run.finished"])
    script_id = _script(world, "Fails", "raise ValueError('no')")
    live: LiveServer = world["live"]
    made = call(world, "ada", "POST", f"/api/f/lab/scripts/{script_id}/schedules",
                json={"cron": "0 3 * * *"})
    assert made.status_code == 201, made.text
    with live.app.app_context():
        schedule = db.session.get(Schedule, made.json()["id"])
        assert schedule is not None
        schedule.next_run_at = utcnow() - timedelta(minutes=1)  # due now
        db.session.commit()
        db.session.remove()
    assert extensions.schedule_firer(live.app).fire_due() == 1

    payload = _received(listener, endpoint["secret"])
    assert payload["facility"] == "lab"
    assert payload["data"]["user_id"] == world["ids"]["ada"]
    run = payload["data"]["run"]
    assert {key: run[key] for key in _SAID if key not in ("id", "error")} == {
        "script_id": script_id, "version": 1, "user_id": world["ids"]["ada"],
        "trigger": "schedule", "schedule_id": made.json()["id"], "status": "failed",
        "result": None,
    }
    assert (run["error"]["code"], run["error"]["message"]) == ("script_error", "ValueError: no")


_SAID = ("id", "script_id", "version", "user_id", "trigger", "schedule_id", "status", "error",
         "result")


def test_a_run_of_no_stored_script_names_none(world: dict[str, Any]) -> None:
    """A file run from the terminal has no script; a script deleted since has no name."""
    live: LiveServer = world["live"]
    register(world, "http://127.0.0.1:1/hook", ["run.finished"])
    sent: list[str] = []
    events = WebhookEvents(
        session_factory=db.session_factory(live.app), public_url=lambda: live.url,
        deliver=sent.append,
    )
    lab = world["ids"]["lab"]
    for script_id in (None, 10**9):
        [delivery_id] = events.finished(lab, world["ids"]["ada"],
                                        {"run": {"id": "r", "script_id": script_id}})
        data = stored(live.app, WebhookDelivery, delivery_id).payload["data"]
        assert data["script"] is None and data["run"]["script_id"] == script_id
    assert len(sent) == 2


def test_a_recursions_trace_reaches_the_receiver_folded_as_the_api_shows_it(
    world: dict[str, Any], listener: Listener
) -> None:
    """Repeats folded into `repeated`, the outermost call kept: the same frames as GET."""
    endpoint = register(world, listener.url, ["run.finished"])
    script_id = _script(world, "Walks", "def walk(n):\n    return walk(n + 1)\n\nwalk(0)\n")
    answer = call(world, "mia", "POST", "/api/f/lab/runs",
                  json={"script_id": script_id, "wait": 30})
    assert answer.status_code == 200, answer.text

    trace = _received(listener, endpoint["secret"])["data"]["run"]["error"]["trace"]
    assert trace == answer.json()["error"]["trace"]
    assert trace[0] == {"line": 4, "name": "<script>", "repeated": 0, "omitted_after": 0}
    assert (trace[1]["line"], trace[1]["name"], trace[1]["omitted_after"]) == (2, "walk", 0)
    assert trace[1]["repeated"] > 100 and len(trace) == 2
