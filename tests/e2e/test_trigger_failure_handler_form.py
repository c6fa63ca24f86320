"""The editor's Triggers panel in Chromium: a scripter picks the script a failed run of a
new trigger starts ("When a run fails, run:", nothing by default), as in the Schedules
panel, and changes it in the trigger's row; the trigger keeps it."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from app import db
from app.models import User, WebhookTrigger
from app.testing import LiveServer, WebClient
from tests.e2e.people import add_script
from tests.e2e.test_triggers_panel import live_lab, open_panel

pytestmark = pytest.mark.browser
__all__ = ["live_lab"]  # the fixture, shared with the panel's tests


def saved_handler(live: LiveServer) -> int | None:
    with live.app.app_context():
        db.session.expire_all()
        return db.session.scalars(select(WebhookTrigger)).one().on_failure_script_id


def test_a_scripter_chooses_the_script_a_failed_run_of_a_trigger_starts(
    browser: Any, live_lab: tuple[LiveServer, int, int]
) -> None:
    live, script_id, _ = live_lab
    alert = add_script(live, name="Alert", source="result = input\n", published=True)
    add_script(live, name="Unpublished", source="result = 1\n")
    page, panel = open_panel(browser, live, script_id)
    choice = panel.get_by_label("When a run fails, run:")
    assert choice.input_value() == ""  # nothing by default
    assert choice.locator("option").all_inner_texts() == ["nothing", "Alert", "Report"]
    panel.locator("#trigger-name").fill("Signup form")
    choice.select_option(label="Alert")
    panel.locator("#add-trigger").click()
    row = panel.locator("#triggers-table tbody tr")
    row.wait_for()
    assert saved_handler(live) == alert
    assert choice.input_value() == ""  # the form is ready for the next one
    in_row = row.get_by_label('When a run of "Signup form" fails, run')
    assert in_row.input_value() == str(alert)

    in_row.select_option(label="nothing")
    page.wait_for_function(
        "() => document.activeElement?.className === 'trigger-on-failure-select'"
        " && document.activeElement.value === ''")
    assert saved_handler(live) is None


def test_the_maker_approves_a_handler_version_another_scripter_published(
    browser: Any, live_lab: tuple[LiveServer, int, int]
) -> None:
    live, script_id, sue_id = live_lab
    alert = add_script(live, name="Alert", source="result = input\n", published=True)
    with live.app.app_context():
        sam_id = db.session.scalar(select(User.id).where(User.email == "sam@example.com"))
    sam = WebClient(live.app, live.url, sam_id)
    triggers = f"/api/f/lab/scripts/{script_id}/triggers"
    made = sam.api("POST", triggers, json={"name": "CI", "on_failure_script_id": alert})
    assert made.status_code == 201, made.text
    sue = WebClient(live.app, live.url, sue_id)
    published = sue.api("PATCH", f"/api/f/lab/scripts/{alert}",
                        json={"source": "result = 'v2'", "published": True})
    assert published.status_code == 200, published.text

    _page, panel = open_panel(browser, live, script_id)
    row = panel.locator("#triggers-table tbody tr")
    row.wait_for()
    assert row.locator(".trigger-pending").count() == 0  # the trigger's own script waits not
    assert "must approve v1 of the script a failed run starts" in row.locator(
        ".trigger-handler-pending").inner_text()
    row.get_by_role("button", name="Approve on-failure v1").click()
    row.locator(".trigger-handler-pending").wait_for(state="detached")
    assert sam.api("GET", triggers).json()[0]["on_failure_version_to_approve"] is None
