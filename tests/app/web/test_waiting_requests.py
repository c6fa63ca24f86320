"""A request blocked in a run's `wait` holds one of the server's threads: one user (and
everyone) may hold only so many at once, so a client that sends many slow runs with long
waits cannot leave every other request unanswered. A request past the caps is answered at
once (201, its run going on), as without `wait`; bad `wait` values are a 400."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from app import serving
from app.config import ConfigError
from app.testing import LiveServer
from app.web.limits import waiting_requests
from tests.conftest import make_app
from tests.webhook_world import call, webhook_world

SLOW = "import time\ntime.sleep(2)\nresult = 'slept'"


@pytest.fixture
def world(live: LiveServer) -> dict[str, Any]:
    """Lab (admin Ada, member Mia, API tokens) and a published script that sleeps 2 s."""
    live.app.config.update(MAX_WAITING_REQUESTS_PER_USER=2, MAX_WAITING_REQUESTS=3)
    world = webhook_world(live)
    made = call(world, "ada", "POST", "/api/f/lab/scripts",
                json={"name": "Slow", "source": SLOW, "published": True})
    assert made.status_code == 201, made.text
    world["slow"] = made.json()["id"]
    return world


def _wait_in_background(world: dict[str, Any], who: str, count: int) -> list[requests.Response]:
    """`count` runs of the slow script by `who`, each waiting 30 s, sent on threads; returns
    the list their answers land in, once all of them wait in the server."""
    answers: list[requests.Response] = []
    held = waiting_requests(world["live"].app).held()

    def send() -> None:
        answers.append(call(world, who, "POST", "/api/f/lab/runs",
                            json={"script_id": world["slow"], "wait": 30}))

    for _ in range(count):
        threading.Thread(target=send, daemon=True).start()
    deadline = time.monotonic() + 10
    while waiting_requests(world["live"].app).held() < held + count:
        assert time.monotonic() < deadline, "the requests never waited"
        time.sleep(0.02)
    return answers


def _answered(answers: list[requests.Response], count: int) -> None:
    deadline = time.monotonic() + 15
    while len(answers) < count:
        assert time.monotonic() < deadline, "the waiting requests were never answered"
        time.sleep(0.05)


def _run_now(world: dict[str, Any], who: str) -> requests.Response:
    return call(world, who, "POST", "/api/f/lab/runs", json={"script_id": world["slow"],
                                                             "wait": 30})


def test_a_user_past_their_waiting_requests_is_answered_at_once(
    world: dict[str, Any],
) -> None:
    waiting = _wait_in_background(world, "mia", 2)
    third = _run_now(world, "mia")
    # Not held: answered with the run going on, long before it could have ended.
    assert third.status_code == 201, third.text
    assert third.json()["status"] in ("queued", "running")
    # Another user still waits for their run, and gets its result.
    other = _run_now(world, "ada")
    assert other.status_code == 200 and other.json()["result"] == "slept", other.text
    _answered(waiting, 2)
    assert [answer.status_code for answer in waiting] == [200, 200]
    # Once they are answered, Mia may wait again.
    again = _run_now(world, "mia")
    assert again.status_code == 200 and again.json()["result"] == "slept", again.text
    assert waiting_requests(world["live"].app).held() == 0


def test_the_process_total_is_a_cap_too(world: dict[str, Any]) -> None:
    mias = _wait_in_background(world, "mia", 2)
    adas = _wait_in_background(world, "ada", 1)  # three in all: the total
    past_total = _run_now(world, "ada")
    assert past_total.status_code == 201, past_total.text
    _answered(mias, 2)
    _answered(adas, 1)
    assert [answer.status_code for answer in mias + adas] == [200, 200, 200]


@pytest.mark.parametrize("wait", [-5, 300.5, 10**6])
def test_a_wait_out_of_range_is_a_400_naming_it(world: dict[str, Any], wait: float) -> None:
    answer = call(world, "mia", "POST", "/api/f/lab/runs",
                  json={"script_id": world["slow"], "wait": wait})
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["field"] == "wait"


def test_a_member_sending_source_with_a_script_id_is_refused(world: dict[str, Any]) -> None:
    """The source used to be dropped without a word and the published script run."""
    answer = call(world, "mia", "POST", "/api/f/lab/runs",
                  json={"script_id": world["slow"], "source": "result = 1"})
    assert answer.status_code == 403, answer.text
    assert "scripter" in answer.json()["error"]["message"]
    # An admin (a scripter) runs the draft source against the script, as the editor does.
    draft = call(world, "ada", "POST", "/api/f/lab/runs",
                 json={"script_id": world["slow"], "source": "result = 1", "wait": 10})
    assert draft.status_code == 200 and draft.json()["result"] == 1, draft.text


def test_serve_gives_waiting_requests_half_its_threads_unless_told(live: LiveServer) -> None:
    app = live.app
    assert app.config["MAX_WAITING_REQUESTS"] is None  # no total outside serve (--debug)
    assert serving.fit_waiting(app, threads=32) == 16
    app.config["MAX_WAITING_REQUESTS"] = None
    assert serving.fit_waiting(app, threads=3) == 1
    app.config["MAX_WAITING_REQUESTS"] = 100  # the operator's own choice stands
    assert serving.fit_waiting(app, threads=8) == 100


@pytest.mark.parametrize("total", [0, -3, "many", 2.5, True])
def test_the_total_is_checked_at_start(tmp_path: Path, total: object) -> None:
    with pytest.raises(ConfigError, match="MAX_WAITING_REQUESTS must be a positive whole"):
        make_app(tmp_path, MAX_WAITING_REQUESTS=total)
