"""A wait for a person to sign in is the call's wait, never the run's own time (DESIGN §2, §4):
the call log and the run page show each call's own time and its wait apart, whether the run
waited with its worker alive or parked and resumed; the run's duration is its own time, the
part before a park counted once."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from app import db
from app.models import CallLog
from tests.app.web.conftest import API_KEY
from tests.app.web.test_parking import World

SIGN_IN_TAKES_S = 1.5
# Half a second of the run's own time (a journalled sleep: not slept again on the replay),
# then a call that needs the person to sign in.
SLEEPS_THEN_ASKS = (
    "import time\n"
    "time.sleep(0.5)\n"
    'print("asking")\n'
    'result = integrations.get("keyed", "/echo").status\n'
)


def calls_of(world: World, run_id: str) -> list[CallLog]:
    with world.app.app_context():
        rows = db.session.scalars(select(CallLog).where(CallLog.run_id == run_id)).all()
        db.session.expunge_all()
        return list(rows)


def signs_in_after_a_while(world: World, run_id: str, *, parks: bool) -> dict[str, object]:
    """Start the script, let the person take SIGN_IN_TAKES_S to sign in; the ended run."""
    prompt = world.page.wait_for("grant.required", run_id=run_id)
    if parks:
        world.page.wait_for("run.status", run_id=run_id, status="parked")
    time.sleep(SIGN_IN_TAKES_S)  # the person reading the prompt: no event to wait for
    world.client.post_form(prompt["sign_in_url"], {"api_key": API_KEY})
    finished: dict[str, object] = world.page.wait_for("run.finished", run_id=run_id)["run"]
    assert finished["status"] == "succeeded", finished
    return finished


@pytest.fixture(params=["parked", "live"])
def world(request: pytest.FixtureRequest, tmp_path: Path, keyapi: str) -> Iterator[World]:
    park_after_s = 0 if request.param == "parked" else 60
    built = World(tmp_path, keyapi, PARK_AFTER_S=park_after_s)
    yield built
    built.close()


def test_a_sign_in_wait_is_the_calls_not_the_runs(world: World) -> None:
    parks = world.app.config["PARK_AFTER_S"] == 0
    began = time.monotonic()
    run_id = world.start(SLEEPS_THEN_ASKS)
    finished = signs_in_after_a_while(world, run_id, parks=parks)
    elapsed_ms = (time.monotonic() - began) * 1000

    (call,) = calls_of(world, run_id)
    assert call.status == 200
    # From the pause to the answer: the parked part too, not only the resumed call's instant.
    assert call.wait_ms is not None and call.wait_ms >= SIGN_IN_TAKES_S * 1000
    # Neither the call's own time nor the run's holds the wait: each fits in what the whole
    # took, the wait taken out (a bound from this test's own clock, not a fixed one: on a
    # busy machine the run's own part takes seconds too).
    assert call.duration_ms is not None and call.duration_ms + call.wait_ms <= elapsed_ms
    duration = finished["duration_ms"]
    assert isinstance(duration, float)
    # The run's own time: the sleep before the pause (once), not the wait for the person.
    assert duration >= 500 and duration + call.wait_ms <= elapsed_ms

    page = world.client.http.get(f"{world.live.url}/f/lab/runs/{run_id}").text
    assert "Sign-in wait ms" in page
    assert f'class="wait-ms">{call.wait_ms:.0f}</td>' in page
    assert "waiting for a sign-in" in page
