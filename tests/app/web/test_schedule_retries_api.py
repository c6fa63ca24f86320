"""A schedule's retries in the API: `retries` and `retry_delay_s` set and refused in words,
shown in words with the pending retry's time; a retry's run says which run it retries and
which attempt it is (API and run page), run end to end on the embedded executor."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from app import db, extensions
from app.models import Schedule, Script
from app.models._types import utcnow
from app.services.schedule_firing import ScheduleFirer
from app.testing import LiveServer
from tests.app.web.test_schedules_api import call, schedules_of, world

__all__ = ["world"]  # the fixture, shared with the schedules API's tests


@pytest.mark.parametrize(
    ("body", "code", "field", "words"),
    [
        ({"retries": 4}, "invalid_schedule", "retries", "retries: 4 is not allowed; give 0"),
        ({"retries": -1}, "invalid_schedule", "retries", "to 3 (a failed run is started again"),
        ({"retry_delay_s": 10}, "invalid_schedule", "retry_delay_s",
         "retry_delay_s: 10 seconds is not allowed; give 30 to 3600"),
        ({"retry_delay_s": 7200}, "invalid_schedule", "retry_delay_s", "give 30 to 3600"),
        ({"retries": "2"}, "invalid_input", "retries", ""),
        ({"retries": True}, "invalid_input", "retries", ""),
        ({"retry_delay_s": 60.5}, "invalid_input", "retry_delay_s", ""),
    ],
)
def test_retries_out_of_range_or_of_a_wrong_type_are_400_in_words(
    world: dict[str, Any], body: dict[str, Any], code: str, field: str, words: str
) -> None:
    base = schedules_of(world, "report")
    made = call(world, "sam", "POST", base, json={"cron": "0 9 * * *", **body})
    assert made.status_code == 400, made.text
    error = made.json()["error"]
    assert (error["code"], error["field"]) == (code, field)
    assert words in error["message"]
    kept = call(world, "sam", "POST", base, json={"cron": "0 9 * * *"}).json()
    changed = call(world, "sam", "PATCH", f"{base}/{kept['id']}", json=body)
    assert changed.status_code == 400 and changed.json()["error"]["field"] == field


def test_retries_are_set_changed_and_said_in_words(world: dict[str, Any]) -> None:
    base = schedules_of(world, "report")
    made = call(world, "sam", "POST", base, json={"cron": "0 9 * * *"}).json()
    assert (made["retries"], made["retry_delay_s"], made["retries_description"],
            made["retry_at"]) == (0, 60, "", None)
    changed = call(world, "sam", "PATCH", f"{base}/{made['id']}",
                   json={"retries": 3, "retry_delay_s": 90})
    assert changed.status_code == 200, changed.text
    assert (changed.json()["retries"], changed.json()["retry_delay_s"]) == (3, 90)
    assert changed.json()["retries_description"] == (
        "retries a failed run up to 3 times, after 90 s, 3 min, 6 min")
    once = call(world, "sam", "POST", base,
                json={"cron": "0 9 * * *", "retries": 1, "retry_delay_s": 3600}).json()
    assert once["retries_description"] == "retries a failed run once, after 1 h"
    listed = call(world, "sam", "GET", "/api/f/lab/schedules").json()
    assert {s["id"]: s["retries"] for s in listed} == {made["id"]: 3, once["id"]: 1}


def test_a_failed_scheduled_run_is_retried_and_the_retry_says_so(world: dict[str, Any]) -> None:
    live: LiveServer = world["live"]
    base = schedules_of(world, "report")
    made = call(world, "sam", "POST", base, json={
        "cron": "0 9 * * *", "input": {"n": 7}, "retries": 1, "retry_delay_s": 30}).json()
    with live.app.app_context():
        # The published script (no saved versions: its source runs) fails as on a bad day.
        report = db.session.get(Script, world["ids"]["report"])
        assert report is not None
        report.source = "raise ValueError('upstream answered 502')"
        schedule = db.session.get(Schedule, made["id"])
        assert schedule is not None
        schedule.next_run_at = utcnow() - timedelta(minutes=1)
        db.session.commit()
    queue = extensions.run_queue(live.app)
    assert extensions.schedule_firer(live.app).fire_due() == 1
    first_id = call(world, "sam", "GET", f"{base}/{made['id']}").json()["last_run"]["id"]
    ended = queue.wait(first_id, 60)
    assert ended is not None and ended["status"] == "failed", ended
    assert ended["error"]["code"] == "script_error"
    pending = call(world, "sam", "GET", f"{base}/{made['id']}").json()
    assert pending["retry_at"] is not None
    # The tick 30 s later (a firer whose clock is there; nothing sleeps).
    later = ScheduleFirer(session_factory=db.session_factory(live.app), submit=queue.submit,
                          clock=lambda: utcnow() + timedelta(seconds=31))
    assert later.fire_due() == 1
    shown = call(world, "sam", "GET", f"{base}/{made['id']}").json()
    retry_id = shown["last_run"]["id"]
    assert retry_id != first_id
    assert queue.wait(retry_id, 60) is not None
    run = call(world, "sam", "GET", f"/api/f/lab/runs/{retry_id}").json()
    assert (run["trigger"], run["schedule_id"], run["retry_of"], run["attempt"],
            run["input"], run["status"]) == (
        "schedule", made["id"], first_id, 2, {"n": 7}, "failed")
    first = call(world, "sam", "GET", f"/api/f/lab/runs/{first_id}").json()
    assert (first["retry_of"], first["attempt"]) == (None, 1)
    # Its one retry spent: the schedule has none pending.
    assert call(world, "sam", "GET", f"{base}/{made['id']}").json()["retry_at"] is None
    assert later.fire_due() == 0
    page = world["clients"]["sam"].http.get(f"{live.url}/f/lab/runs/{retry_id}", timeout=30)
    assert f'href="/f/lab/runs/{first_id}" class="mono">{first_id}</a>' in page.text
    assert 'id="run-retry">attempt 2, retrying' in page.text
