"""The editor's Schedules panel in Chromium: a scripter picks the script a failed run
starts ("When a run fails, run:", nothing by default) when adding a schedule, and changes
it in place; the schedule keeps it; a version of it another scripter published says how
its member lets it run, until they pause and resume the schedule."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from app import db
from app.models import Role, Schedule, User
from app.testing import LiveServer, WebClient
from tests.e2e.people import add_lab_member, add_script, signed_in
from tests.e2e.test_schedules_panel import live_lab, open_panel

pytestmark = pytest.mark.browser
__all__ = ["live_lab"]  # the fixture, shared with the panel's tests


def saved_handler(live: LiveServer) -> int | None:
    with live.app.app_context():
        db.session.expire_all()
        return db.session.scalars(select(Schedule)).one().on_failure_script_id


def test_a_scripter_chooses_the_script_a_failed_run_starts(
    browser: Any, live_lab: tuple[LiveServer, int]
) -> None:
    live, script_id = live_lab
    alert = add_script(live, name="Alert", source="result = input\n", published=True)
    add_script(live, name="Unpublished", source="result = 1\n")
    page = signed_in(browser, live, "sam@example.com", timezone="UTC")
    panel = open_panel(page, live, script_id)
    choice = panel.get_by_label("When a run fails, run:")
    assert choice.input_value() == ""  # nothing by default
    # The facility's published scripts (a run of it runs its published version).
    assert choice.locator("option").all_inner_texts() == ["nothing", "Alert", "Report"]
    panel.locator("#schedule-cron").fill("0 9 * * *")
    choice.select_option(label="Alert")
    panel.locator("#add-schedule").click()
    row = panel.locator("#schedules-table tbody tr")
    row.wait_for()
    assert saved_handler(live) == alert
    in_row = row.get_by_label('When a run of "At 09:00 every day" fails, run')
    assert in_row.input_value() == str(alert)

    in_row.select_option(label="nothing")
    page.wait_for_function(
        "() => document.activeElement?.className === 'schedule-on-failure-select'"
        " && document.activeElement.value === ''")
    assert saved_handler(live) is None


def test_a_handler_version_another_scripter_published_waits_for_the_member(
    browser: Any, live_lab: tuple[LiveServer, int]
) -> None:
    live, script_id = live_lab
    alert = add_script(live, name="Alert", source="result = input\n", published=True)
    sue_id = add_lab_member(live, email="sue@example.com", name="Sue", role=Role.scripter)
    with live.app.app_context():
        sam_id = db.session.scalar(select(User.id).where(User.email == "sam@example.com"))
    sam = WebClient(live.app, live.url, sam_id)
    schedules = f"/api/f/lab/scripts/{script_id}/schedules"
    made = sam.api("POST", schedules, json={"cron": "0 9 * * *", "on_failure_script_id": alert})
    assert made.status_code == 201, made.text
    published = WebClient(live.app, live.url, sue_id).api(
        "PATCH", f"/api/f/lab/scripts/{alert}", json={"source": "result = 'v2'",
                                                      "published": True})
    assert published.status_code == 200, published.text

    page = signed_in(browser, live, "sam@example.com", timezone="UTC")
    panel = open_panel(page, live, script_id)
    row = panel.locator("#schedules-table tbody tr")
    note = row.locator(".schedule-handler-pending")
    assert note.inner_text() == (
        "Sam must change, or pause and resume, this schedule before v1 of the script a"
        " failed run starts, published by another scripter, runs as them.")
    row.get_by_role("button", name="Pause").click()
    row.get_by_role("button", name="Resume").click()
    note.wait_for(state="detached")
    assert sam.api("GET", schedules).json()[0]["on_failure_version_to_approve"] is None
