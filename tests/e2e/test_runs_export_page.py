"""The Runs page narrowed to one schedule (the link a schedule's runs are shown by), in
Debian's Chromium: it says which schedule, its Download CSV link downloads the runs it
shows, and clearing the schedule shows every run again."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest

from app import db
from app.models import Role, Run, Schedule, Script
from app.testing import LiveServer
from tests.conftest import add_member, create_facility, create_user
from tests.e2e.people import signed_in

pytestmark = pytest.mark.browser


@pytest.fixture
def nightly(live: LiveServer) -> int:
    """Ada, admin of lab; the schedule Nightly Report started two of her runs, she one."""
    with live.app.app_context():
        session = db.session()
        lab = create_facility(session, slug="lab")
        ada = create_user(session, email="ada@example.com", name="Ada")
        add_member(session, user=ada, facility=lab, role=Role.admin)
        script = Script(facility_id=lab.id, name="Report", source="result = 1", published=True)
        session.add(script)
        session.flush()
        schedule = Schedule(facility_id=lab.id, script_id=script.id, created_by=ada.id,
                            cron="0 6 * * 1", timezone="UTC", enabled=False)
        session.add(schedule)
        session.flush()
        for trigger, schedule_id in (("schedule", schedule.id), ("schedule", schedule.id),
                                     ("manual", None)):
            session.add(Run(facility_id=lab.id, user_id=ada.id, script_id=script.id,
                            source="result = 1", status="succeeded", trigger=trigger,
                            schedule_id=schedule_id, duration_ms=3.0))
        session.commit()
        return schedule.id


def test_a_schedules_runs_download_and_clear(
    browser: Any, live: LiveServer, nightly: int, tmp_path: Path
) -> None:
    page = signed_in(browser, live, "ada@example.com")
    try:
        page.goto(f"{live.url}/f/lab/runs?schedule_id={nightly}")
        notice = page.locator("#schedule-filter")
        assert "Only runs started by the schedule 0 6 * * 1 (UTC) of Report." in (
            " ".join(notice.inner_text().split())
        )
        assert page.locator("tr[data-run-id]").count() == 2
        with page.expect_download() as download:
            page.click("#download-runs")
        saved = tmp_path / download.value.suggested_filename
        download.value.save_as(saved)
        assert saved.name == "runs-lab.csv"
        rows = list(csv.DictReader(io.StringIO(saved.read_text())))
        assert [(r["trigger"], r["schedule_id"]) for r in rows] == [("schedule", str(nightly))] * 2
        # Filtering again keeps the schedule (the form carries it) and adds what is chosen.
        page.select_option("select[name=trigger]", "manual")
        page.click("#run-filters button[type=submit]")
        page.wait_for_selector(".card.empty")
        assert "No runs match these filters" in page.inner_text(".card.empty")
        assert f"schedule_id={nightly}" in page.url
        page.click("#clear-schedule")
        page.wait_for_url(lambda url: "schedule_id" not in url)
        assert page.locator("#schedule-filter").count() == 0
        assert page.locator("tr[data-run-id]").count() == 1  # the manual run
        page.select_option("select[name=trigger]", "")
        page.click("#run-filters button[type=submit]")
        page.wait_for_selector("tr[data-run-id] >> nth=2")
        assert page.locator("tr[data-run-id]").count() == 3
    finally:
        page.context.close()
