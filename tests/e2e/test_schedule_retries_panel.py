"""The editor's Schedules panel in Chromium: a scripter sets a schedule's retries and the
delay before the first; a delay out of range is refused in the server's words; the
schedule then says its retries in words, as the facility's Schedules page does; its
retries change in place."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from app import db
from app.models import Schedule
from app.testing import LiveServer
from tests.e2e.people import signed_in
from tests.e2e.test_schedules_panel import live_lab, open_panel

pytestmark = pytest.mark.browser
__all__ = ["live_lab"]  # the fixture, shared with the panel's tests


def test_a_scripter_sets_a_schedules_retries(
    browser: Any, live_lab: tuple[LiveServer, int]
) -> None:
    live, script_id = live_lab
    page = signed_in(browser, live, "sam@example.com", timezone="UTC")
    panel = open_panel(page, live, script_id)
    assert panel.locator("#schedule-retries").input_value() == "0"  # today's behaviour
    panel.locator("#schedule-cron").fill("0 9 * * *")
    panel.get_by_label("Retries of a failed run").select_option("2")
    panel.get_by_label("First retry after (seconds, doubled each time)").fill("10")
    panel.locator("#add-schedule").click()
    error = panel.locator("#schedule-error")
    error.wait_for()
    assert "retry_delay_s: 10 seconds is not allowed; give 30 to 3600" in error.inner_text()

    panel.locator("#schedule-retry-delay").fill("90")
    panel.locator("#add-schedule").click()
    row = panel.locator("#schedules-table tbody tr")
    row.wait_for()
    assert error.is_hidden()
    assert row.locator(".schedule-retries").inner_text() == (
        "retries a failed run up to 2 times, after 90 s, 3 min")
    with live.app.app_context():
        schedule = db.session.scalars(select(Schedule)).one()
        assert (schedule.retries, schedule.retry_delay_s) == (2, 90)

    # Changed in place: the row's select, which keeps the keyboard after the reload.
    row.get_by_label('Retries of a failed run of "At 09:00 every day"').select_option("1")
    page.wait_for_function(
        "() => document.querySelector('#schedules-table .schedule-retries')?.textContent"
        " === 'retries a failed run once, after 90 s'")
    assert page.evaluate("document.activeElement.className") == "schedule-retries-select"
    with live.app.app_context():
        db.session.expire_all()
        schedule = db.session.scalars(select(Schedule)).one()
        assert (schedule.retries, schedule.retry_delay_s) == (1, 90)

    page.goto(f"{live.url}/f/lab/schedules")
    listed = page.locator("#schedules-list tbody tr .schedule-retries")
    assert listed.inner_text() == "retries a failed run once, after 90 s"
