"""The schedules API: scripters and admins manage a published script's schedules; members
get 403, another facility's ids 404, a bad cron expression or time zone 400 saying what is
wrong; a run a schedule started says so in the runs API."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import update

from app import db, extensions
from app.models import Role, Schedule, Script
from app.testing import LiveServer
from tests.app.web.conftest import call, two_facilities


@pytest.fixture
def world(live: LiveServer) -> dict[str, Any]:
    """lab: admin Ada, scripter Sam, member Mia, a published and a draft script; other:
    scripter Oz and his published script."""
    return two_facilities(
        live,
        lab_roles={"ada": Role.admin, "sam": Role.scripter, "mia": Role.member},
        scripts=lambda lab, other: {
            "report": Script(facility_id=lab.id, name="Report", source="result = input",
                             published=True),
            "draft": Script(facility_id=lab.id, name="Draft", source="result = 1"),
            "theirs": Script(facility_id=other.id, name="Theirs", source="result = 2",
                             published=True),
        },
    )


def schedules_of(world: dict[str, Any], script: str, slug: str = "lab") -> str:
    return f"/api/f/{slug}/scripts/{world['ids'][script]}/schedules"


def test_a_scripter_creates_lists_pauses_resumes_and_deletes(world: dict[str, Any]) -> None:
    base = schedules_of(world, "report")
    made = call(world, "sam", "POST", base, json={
        "cron": "0  9 * * 1-5", "timezone": "Europe/Berlin", "input": {"to": "team"}})
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["cron"] == "0 9 * * 1-5"  # fields separated by one space
    assert body["description"] == "At 09:00 on Monday through Friday"
    assert (body["timezone"], body["input"], body["enabled"]) == (
        "Europe/Berlin", {"to": "team"}, True)
    assert body["runs_as"] == {"id": world["ids"]["sam"], "name": "Sam"}
    assert len(body["next_times"]) == 3 and body["next_times"][0] == body["next_run_at"]
    assert body["last_run"] is None and body["last_skip"] is None
    listed = call(world, "ada", "GET", base)
    assert listed.status_code == 200 and [s["id"] for s in listed.json()] == [body["id"]]

    paused = call(world, "sam", "PATCH", f"{base}/{body['id']}", json={"enabled": False})
    assert paused.status_code == 200, paused.text
    assert (paused.json()["enabled"], paused.json()["next_run_at"],
            paused.json()["next_times"]) == (False, None, [])
    assert paused.json()["input"] == {"to": "team"}  # absent keeps the input
    resumed = call(world, "sam", "PATCH", f"{base}/{body['id']}",
                   json={"enabled": True, "cron": "*/15 * * * *", "timezone": "UTC",
                         "input": None})
    assert resumed.status_code == 200, resumed.text
    shown = resumed.json()
    assert (shown["enabled"], shown["cron"], shown["input"]) == (True, "*/15 * * * *", None)
    assert shown["description"] == "Every 15th minute of every hour"
    assert shown["next_run_at"] is not None

    assert call(world, "sam", "DELETE", f"{base}/{body['id']}").status_code == 204
    assert call(world, "sam", "GET", base).json() == []
    assert call(world, "sam", "GET", f"{base}/{body['id']}").status_code == 404


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"cron": "61 * * * *"}, "cron", "field 1, the minute"),
        ({"cron": "0 9 * *"}, "cron", "has 4 field(s); it needs five fields"),
        ({"cron": "* * * * * *"}, "cron", "has 6 field(s)"),
        ({"cron": "0 0 31 2 *"}, "cron",
         "field 3, the day of month, '31', comes in none of the months of field 4, '2'"),
        ({"cron": "0 0 32 * *"}, "cron", "field 3, the day of month, is out of range"),
        ({"cron": "@daily"}, "cron", "has 1 field(s)"),
        ({"cron": "0 9 * * *", "timezone": "Mars/Olympus"}, "timezone",
         "'Mars/Olympus' is not an IANA time zone name"),
        ({"cron": "0 9 * * *", "timezone": "../../etc/passwd"}, "timezone", "not an IANA"),
        ({"cron": "0 9 * * *", "timezone": "localtime"}, "timezone", "not an IANA"),
        ({"cron": "0 9 * * *", "timezone": "EST"}, "timezone",
         "'EST' is an old zone name, not a region, and need not follow the region's summer"
         " time; use the region's name, such as America/New_York"),
        ({"cron": "0 9 * * *", "timezone": "HST"}, "timezone", "such as Pacific/Honolulu"),
        ({"cron": "0 9 * * *", "timezone": "CET"}, "timezone", "such as Europe/Paris"),
        ({"cron": "0 9 * * *", "timezone": "EST5EDT"}, "timezone", "such as America/New_York"),
        ({"cron": "0 9 * * *", "timezone": "MST"}, "timezone", "such as America/Denver"),
        ({"cron": "0 9 * * *", "timezone": "GMT"}, "timezone", "'GMT' is UTC under an old name"),
        ({"cron": "0 9 * * *", "timezone": "Etc/GMT+5"}, "timezone",
         "is a fixed offset from UTC"),
        ({"cron": "0 9 * * *", "timezone": "GMT+5"}, "timezone", "not an IANA"),
        ({"cron": "0 9 * * *", "timezone": "Factory"}, "timezone", "not a region name"),
    ],
)
def test_a_bad_cron_or_time_zone_is_400_saying_what_is_wrong(
    world: dict[str, Any], body: dict[str, Any], field: str, words: str
) -> None:
    answer = call(world, "sam", "POST", schedules_of(world, "report"), json=body)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert (error["code"], error["field"]) == ("invalid_schedule", field)
    assert words in error["message"]
    made = call(world, "sam", "POST", schedules_of(world, "report"), json={"cron": "0 9 * * *"})
    changed = call(world, "sam", "PATCH", f"{schedules_of(world, 'report')}/{made.json()['id']}",
                   json=body)
    assert changed.status_code == 400 and changed.json()["error"]["field"] == field


def test_a_schedule_stored_with_a_legacy_zone_keeps_it_and_can_still_be_changed(
    world: dict[str, Any],
) -> None:
    # Saved before legacy names were refused: it keeps its zone and its due times, and an
    # edit that sends the zone back unchanged (a client sending the whole schedule) passes.
    base = schedules_of(world, "report")
    made = call(world, "sam", "POST", base, json={"cron": "0 9 * * *"}).json()
    with world["live"].app.app_context():
        db.session.execute(
            update(Schedule).where(Schedule.id == made["id"]).values(timezone="EST")
        )
        db.session.commit()
    changed = call(world, "sam", "PATCH", f"{base}/{made['id']}",
                   json={"cron": "30 9 * * *", "timezone": "EST"})
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert body["timezone"] == "EST"
    assert [at[11:16] for at in body["next_times"]] == ["14:30"] * 3  # EST is UTC-5 all year
    moved = call(world, "sam", "PATCH", f"{base}/{made['id']}", json={"timezone": "MST"})
    assert moved.status_code == 400 and "America/Denver" in moved.json()["error"]["message"]


def test_an_edit_that_changes_nothing_is_400_naming_what_may_change(
    world: dict[str, Any],
) -> None:
    # As for webhook endpoints and integrations; it answered 200 and counted the next
    # due time again.
    base = schedules_of(world, "report")
    made = call(world, "sam", "POST", base, json={"cron": "0 9 * * *", "input": 1}).json()
    for body in ({}, {"cron": None, "enabled": None}):
        answer = call(world, "sam", "PATCH", f"{base}/{made['id']}", json=body)
        assert answer.status_code == 400, answer.text
        error = answer.json()["error"]
        assert (error["field"], error["message"]) == (
            "body", "give cron, timezone, input, enabled, retries, retry_delay_s or"
            " on_failure_script_id to change")
    nulled = call(world, "sam", "PATCH", f"{base}/{made['id']}", json={"input": None})
    assert nulled.status_code == 200 and nulled.json()["input"] is None  # null is a change


def test_wrong_types_and_unpublished_scripts_are_refused(world: dict[str, Any]) -> None:
    base = schedules_of(world, "report")
    wrong = call(world, "sam", "POST", base, json={"cron": 5})
    assert wrong.status_code == 400 and wrong.json()["error"]["field"] == "cron"
    missing = call(world, "sam", "POST", base, json={})
    assert missing.status_code == 400 and "cron is required" in missing.json()["error"]["message"]
    draft = call(world, "sam", "POST", schedules_of(world, "draft"), json={"cron": "0 9 * * *"})
    assert draft.status_code == 409 and "publish the script first" in draft.text


def test_members_get_403_and_only_the_creator_or_an_admin_changes_it(
    world: dict[str, Any]
) -> None:
    base = schedules_of(world, "report")
    made = call(world, "sam", "POST", base, json={"cron": "0 9 * * *"}).json()
    one = f"{base}/{made['id']}"
    for method, path, body in (("GET", base, None), ("POST", base, {"cron": "0 9 * * *"}),
                               ("GET", one, None), ("PATCH", one, {"enabled": False}),
                               ("DELETE", one, None)):
        answer = call(world, "mia", method, path, json=body)
        assert answer.status_code == 403, (method, path, answer.text)
        assert "scripter role" in answer.json()["error"]["message"]
    # Another scripter may see it, not change what runs as Sam.
    call(world, "ada", "POST", base, json={"cron": "0 10 * * *"})
    ada_made = call(world, "ada", "GET", base).json()[1]
    sam_on_ada = call(world, "sam", "PATCH", f"{base}/{ada_made['id']}", json={"enabled": False})
    assert sam_on_ada.status_code == 403 and "only they or an admin" in sam_on_ada.text
    assert call(world, "sam", "DELETE", f"{base}/{ada_made['id']}").status_code == 403
    admin_on_sam = call(world, "ada", "PATCH", one, json={"enabled": False})
    assert admin_on_sam.status_code == 200
    assert admin_on_sam.json()["runs_as"]["name"] == "Sam"  # it still runs as its creator


def test_another_facilitys_ids_are_404(world: dict[str, Any]) -> None:
    theirs = call(world, "oz", "POST", schedules_of(world, "theirs", "other"),
                  json={"cron": "0 9 * * *"})
    assert theirs.status_code == 201
    their_id = theirs.json()["id"]
    # Their script through our facility, and their schedule under our script: not found.
    assert call(world, "ada", "GET", schedules_of(world, "theirs")).status_code == 404
    for method, body in (("GET", None), ("PATCH", {"enabled": False}), ("DELETE", None)):
        answer = call(world, "ada", method, f"{schedules_of(world, 'report')}/{their_id}",
                      json=body)
        assert answer.status_code == 404, answer.text
    # Their facility itself: Ada is no member.
    assert call(world, "ada", "GET", schedules_of(world, "theirs", "other")).status_code == 404
    assert call(world, "oz", "GET", schedules_of(world, "theirs", "other")).json()[0][
        "enabled"] is True


def test_a_scheduled_run_says_so_in_the_runs_api_and_the_schedule_links_it(
    world: dict[str, Any]
) -> None:
    live: LiveServer = world["live"]
    base = schedules_of(world, "report")
    made = call(world, "sam", "POST", base, json={"cron": "* * * * *", "input": {"n": 7}}).json()
    with live.app.app_context():
        from datetime import timedelta

        from app.models import Schedule
        from app.models._types import utcnow

        schedule = db.session.get(Schedule, made["id"])
        assert schedule is not None
        schedule.next_run_at = utcnow() - timedelta(minutes=1)
        db.session.commit()
    assert extensions.schedule_firer(live.app).fire_due() == 1
    shown = call(world, "sam", "GET", f"{base}/{made['id']}").json()
    run_id = shown["last_run"]["id"]
    ended = extensions.run_queue(live.app).wait(run_id, 60)
    assert ended is not None and ended["status"] == "succeeded"
    run = call(world, "sam", "GET", f"/api/f/lab/runs/{run_id}").json()
    assert (run["trigger"], run["schedule_id"], run["result"]) == ("schedule", made["id"],
                                                                   {"n": 7})
    assert run["user"]["name"] == "Sam"
    assert call(world, "sam", "GET", f"{base}/{made['id']}").json()["last_run"]["status"] == (
        "succeeded")
    page = world["clients"]["sam"].http.get(f"{live.url}/f/lab/runs/{run_id}", timeout=30)
    assert 'id="run-trigger">Schedule<' in page.text
    # Deleting the schedule keeps what started the run.
    assert call(world, "sam", "DELETE", f"{base}/{made['id']}").status_code == 204
    run = call(world, "sam", "GET", f"/api/f/lab/runs/{run_id}").json()
    assert (run["trigger"], run["schedule_id"]) == ("schedule", None)
    by_hand = call(world, "sam", "POST", "/api/f/lab/runs",
                   json={"script_id": world["ids"]["report"], "wait": 30}).json()
    assert (by_hand["trigger"], by_hand["schedule_id"]) == ("manual", None)


def test_a_script_published_again_no_longer_asks_to_publish_it(world: dict[str, Any]) -> None:
    """A due time skipped while the script was unpublished says so ('publish it to resume')
    until it is published again; then the next due time runs, and the skip is not shown
    (it was until the next due time, a day away for a daily schedule)."""
    from datetime import timedelta

    from app.models import Schedule
    from app.models._types import utcnow

    live: LiveServer = world["live"]
    base = schedules_of(world, "report")
    script = f"/api/f/lab/scripts/{world['ids']['report']}"
    made = call(world, "sam", "POST", base, json={"cron": "0 9 * * *"}).json()
    assert call(world, "sam", "PATCH", script, json={"published": False}).status_code == 200
    with live.app.app_context():
        schedule = db.session.get(Schedule, made["id"])
        assert schedule is not None
        schedule.next_run_at = utcnow() - timedelta(minutes=1)
        db.session.commit()
    assert extensions.schedule_firer(live.app).fire_due() == 0
    skipped = call(world, "sam", "GET", f"{base}/{made['id']}").json()
    assert skipped["last_skip"]["reason"] == "script_unpublished"
    # In the Schedules page's words, which the editor's panel shows (it had its own copy).
    assert skipped["last_skip"]["words"] == "the script is not published"
    assert call(world, "sam", "PATCH", script, json={"published": True}).status_code == 200
    shown = call(world, "sam", "GET", f"{base}/{made['id']}").json()
    assert shown["last_skip"] is None
    assert shown["last_due_at"] == skipped["last_due_at"] is not None
