"""The editor's Schedules panel in Debian's Chromium: a scripter adds a schedule (cron, time
zone, input) and reads it in words with its next three times, a bad cron is refused with
the server's words, the last run shows with its status and links to the run, pause and
resume, delete; the panel fits a phone, and axe-core finds nothing serious in it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from app import db, extensions
from app.models import Schedule, Script, User
from app.models._types import utcnow
from app.services import cron_times, people, schedules
from app.services.context import MemberContext
from app.testing import LiveServer
from tests.e2e.people import add_script, fits, scripter_lab, signed_in
from tests.e2e.test_accessibility import axe_violations

pytestmark = pytest.mark.browser
TOGGLE_SAYS = (
    "(words) => document.querySelector('#schedules-table .schedule-toggle')?.textContent"
    " === words"
)


@pytest.fixture
def live_lab(tmp_path: Path) -> Iterator[tuple[LiveServer, int]]:
    """Facility `lab`, its scripter sam@example.com and a published script "Report"."""
    with scripter_lab(tmp_path) as live:
        yield live, add_script(live, name="Report", source="result = input\n", published=True)


def open_panel(page: Any, live: LiveServer, script_id: int) -> Any:
    page.goto(f"{live.url}/f/lab/editor/{script_id}")
    panel = page.locator("#schedules-panel")
    panel.locator("summary").click()
    return panel


def test_a_scripter_schedules_a_script_and_follows_its_runs(
    browser: Any, live_lab: tuple[LiveServer, int]
) -> None:
    live, script_id = live_lab
    page = signed_in(browser, live, "sam@example.com", timezone="Europe/Berlin")
    panel = open_panel(page, live, script_id)
    assert panel.locator("#schedule-zone").input_value() == "Europe/Berlin"  # the browser's
    assert panel.locator("#schedules-table").is_hidden()

    panel.locator("#schedule-cron").fill("61 9 * * *")
    panel.locator("#add-schedule").click()
    error = panel.locator("#schedule-error")
    error.wait_for()
    assert "field 1, the minute, is out of range" in error.inner_text()

    panel.locator("#schedule-cron").fill("0 9 * * 1-5")
    panel.locator("#schedule-input").fill('{"to": "team"}')
    panel.locator("#add-schedule").click()
    row = panel.locator("#schedules-table tbody tr")
    row.wait_for()
    assert error.is_hidden()
    assert row.locator(".schedule-description").inner_text() == (
        "At 09:00 on Monday through Friday")
    assert "Europe/Berlin" in row.inner_text() and '{"to":"team"}' in row.inner_text()
    assert panel.locator("summary").inner_text() == "Schedules (1)"
    with live.app.app_context():
        schedule = db.session.scalars(select(Schedule)).one()
        schedule_id = schedule.id
    api_times = page.evaluate(
        f"fetch('/api/f/lab/scripts/{script_id}/schedules').then(r => r.json())"
        ".then(s => s[0].next_times)")
    times = row.locator(".schedule-next time")
    assert times.count() == 3
    assert [times.nth(i).get_attribute("datetime") for i in range(3)] == api_times
    assert row.locator(".schedule-last").inner_text() == "not yet"

    # Its due time comes: the app's firer (the heartbeat's tick) starts the run.
    with live.app.app_context():
        db.session.get(Schedule, schedule_id).next_run_at = (  # type: ignore[union-attr]
            utcnow() - timedelta(minutes=1))
        db.session.commit()
    assert extensions.schedule_firer(live.app).fire_due() == 1
    with live.app.app_context():
        run_id = db.session.get(Schedule, schedule_id).last_run_id  # type: ignore[union-attr]
    assert run_id is not None
    assert extensions.run_queue(live.app).wait(run_id, 60) is not None
    panel = open_panel(page, live, script_id)
    row = panel.locator(f"#schedules-table tr[data-schedule-id='{schedule_id}']")
    row.wait_for()
    assert row.locator(".schedule-last-status").inner_text() == "succeeded"
    # The editor's History says a schedule started it.
    page.locator("#run-history tbody tr").first.wait_for()
    assert "succeeded (schedule)" in page.locator("#run-history tbody").inner_text()
    fits(page, "editor-schedules-1280")

    # Pause: no times, a "paused" badge; Resume brings them back.
    row.locator(".schedule-toggle").click()
    page.wait_for_function(TOGGLE_SAYS, arg="Resume")
    assert row.locator(".schedule-next").inner_text() == "paused"
    with live.app.app_context():
        assert db.session.get(Schedule, schedule_id).next_run_at is None  # type: ignore[union-attr]
    row.locator(".schedule-toggle").click()
    page.wait_for_function(TOGGLE_SAYS, arg="Pause")
    assert row.locator(".schedule-next time").count() == 3

    # The last run links to the run's page, which names its trigger.
    row.locator(".schedule-last-run").click()
    page.wait_for_url(f"**/f/lab/runs/{run_id}")
    assert page.locator("#run-trigger").inner_text() == "Schedule"

    # Delete, after the browser's confirmation.
    panel = open_panel(page, live, script_id)
    panel.locator("#schedules-table tbody tr").wait_for()
    page.once("dialog", lambda dialog: dialog.accept())
    panel.locator(".schedule-delete").click()
    panel.locator("#schedules-table").wait_for(state="hidden")
    with live.app.app_context():
        assert db.session.scalars(select(Schedule)).all() == []
    page.context.close()


def test_the_schedules_panel_fits_a_phone(browser: Any, live_lab: tuple[LiveServer, int]) -> None:
    live, script_id = live_lab
    page = signed_in(browser, live, "sam@example.com", width=375, timezone="America/New_York",
                     bypass_csp=True)  # axe-core is added as an inline script
    panel = open_panel(page, live, script_id)
    panel.locator("#schedule-cron").fill("*/15 9-17 * * mon-fri")
    panel.locator("#schedule-input").fill('{"report": "a long value that must wrap on a phone"}')
    panel.locator("#add-schedule").click()
    panel.locator("#schedules-table tbody tr").wait_for()
    assert "America/New_York" in panel.inner_text()
    fits(page, "editor-schedules-375")
    assert axe_violations(page, include="#schedules-panel") == []
    page.context.close()


def test_a_schedule_whose_last_run_was_deleted_says_when_it_ran(
    browser: Any, live_lab: tuple[LiveServer, int]
) -> None:
    """Retention (or a member) deleted the last run: the panel says when the schedule last
    fired and that the run is gone, not "not yet"."""
    live, script_id = live_lab
    with live.app.app_context():
        session = db.session()
        script = session.get(Script, script_id)
        sam = session.scalars(select(User).where(User.email == "sam@example.com")).one()
        membership = people.membership_of(session, sam.id, script.facility_id)
        member = MemberContext(sam, membership.facility, membership.role)
        schedule = schedules.create_schedule(session, member, script, cron="0 9 * * *")
        schedule.last_due_at = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
        schedule.last_run_id = "0" * 32  # no such run any more
        session.commit()
    page = signed_in(browser, live, "sam@example.com", timezone="UTC")
    row = open_panel(page, live, script_id).locator("#schedules-table tbody tr")
    gone = row.locator(".schedule-run-gone")
    gone.wait_for()
    assert gone.inner_text().endswith("(run no longer kept)")
    assert "26" in gone.inner_text()  # the date it fired, in the page's short form
    assert "not yet" not in row.inner_text()
    # A due time that started no run (a skip since cleared by an approval) deleted nothing.
    with live.app.app_context():
        db.session.execute(update(Schedule).values(last_run_id=None))
        db.session.commit()
    row = open_panel(page, live, script_id).locator("#schedules-table tbody tr")
    row.locator(".schedule-last").filter(has_text="not yet").wait_for()
    assert row.locator(".schedule-run-gone").count() == 0
    page.context.close()


# The schedule whose row holds the focus, else the focused element's id.
FOCUSED = (
    "() => document.activeElement?.closest('tr')?.dataset.scheduleId"
    " ?? document.activeElement?.id"
)


def test_pause_resume_and_delete_keep_the_keyboard_in_the_panel(
    browser: Any, live_lab: tuple[LiveServer, int]
) -> None:
    """The rows are built anew after each: the focus stays on that schedule's Pause/Resume,
    goes to the next schedule after a delete, and to the cron field after the last one (it
    fell to the page's top, and a keyboard user started again from the top bar)."""
    live, script_id = live_lab
    with live.app.app_context():
        session = db.session()
        script = session.get(Script, script_id)
        sam = session.scalars(select(User).where(User.email == "sam@example.com")).one()
        membership = people.membership_of(session, sam.id, script.facility_id)
        member = MemberContext(sam, membership.facility, membership.role)
        first, second = (
            schedules.create_schedule(session, member, script, cron=cron).id
            for cron in ("0 9 * * *", "0 17 * * *")
        )
        session.commit()
    page = signed_in(browser, live, "sam@example.com", timezone="UTC")
    panel = open_panel(page, live, script_id)
    row = panel.locator(f"#schedules-table tr[data-schedule-id='{first}']")
    row.locator(".schedule-toggle").focus()
    page.keyboard.press("Enter")
    page.wait_for_function(TOGGLE_SAYS, arg="Resume")
    assert page.evaluate(FOCUSED) == str(first)
    assert page.evaluate("document.activeElement.textContent") == "Resume"
    page.keyboard.press("Enter")
    page.wait_for_function(TOGGLE_SAYS, arg="Pause")
    assert page.evaluate(FOCUSED) == str(first)

    page.on("dialog", lambda dialog: dialog.accept())
    row.locator(".schedule-delete").focus()
    page.keyboard.press("Enter")
    panel.locator(f"#schedules-table tr[data-schedule-id='{first}']").wait_for(state="detached")
    page.wait_for_function(f"() => ({FOCUSED})() === '{second}'")
    panel.locator(".schedule-delete").focus()
    page.keyboard.press("Enter")
    panel.locator("#schedules-table").wait_for(state="hidden")
    page.wait_for_function(f"() => ({FOCUSED})() === 'schedule-cron'")
    page.context.close()


def test_times_also_say_the_schedules_own_clock_when_the_browsers_differs(
    browser: Any, live_lab: tuple[LiveServer, int]
) -> None:
    """Seen from Berlin, a 09:00 in Asia/Kolkata is 04:30 or 05:30: each time is followed by
    09:00 on Kolkata's clock; a schedule on the browser's own zone needs no such note."""
    live, script_id = live_lab
    with live.app.app_context():
        session = db.session()
        script = session.get(Script, script_id)
        sam = session.scalars(select(User).where(User.email == "sam@example.com")).one()
        membership = people.membership_of(session, sam.id, script.facility_id)
        member = MemberContext(sam, membership.facility, membership.role)
        away, home = (
            schedules.create_schedule(session, member, script, cron="0 9 * * *", timezone=zone).id
            for zone in ("Asia/Kolkata", "Europe/Berlin")
        )
        session.commit()
    page = signed_in(browser, live, "sam@example.com", timezone="Europe/Berlin")
    panel = open_panel(page, live, script_id)
    notes = panel.locator(f"tr[data-schedule-id='{away}'] .schedule-next .schedule-zone-time")
    notes.first.wait_for()
    assert notes.count() == 3
    assert all(
        "09:00" in note and note.endswith(" Asia/Kolkata)") for note in notes.all_inner_texts()
    )
    times = panel.locator(f"tr[data-schedule-id='{away}'] .schedule-next time")
    assert all("09:00" not in shown for shown in times.all_inner_texts())  # Berlin's clock
    home_row = panel.locator(f"tr[data-schedule-id='{home}']")
    assert home_row.locator(".schedule-next time").count() == 3
    assert home_row.locator(".schedule-zone-time").count() == 0
    page.context.close()


@pytest.mark.parametrize("browser_zone", ["Europe/Berlin", "Etc/GMT+5"])
def test_the_zone_picker_offers_only_names_a_schedule_takes(
    browser: Any, live_lab: tuple[LiveServer, int], browser_zone: str
) -> None:
    """Legacy names (EST) and fixed offsets (Etc/GMT+5) are refused for new schedules:
    neither the list nor the field's first value may hold one. A browser whose own clock is
    a fixed offset starts the field at UTC."""
    live, script_id = live_lab
    page = signed_in(browser, live, "sam@example.com", timezone=browser_zone)
    panel = open_panel(page, live, script_id)
    offered = panel.locator("#time-zones option").evaluate_all("(os) => os.map((o) => o.value)")
    assert len(offered) > 300
    start = panel.locator("#schedule-zone").input_value()
    assert start == (browser_zone if browser_zone == "Europe/Berlin" else "UTC")
    for name in [start, *offered]:
        cron_times.check_zone(name)  # raises InvalidSchedule for a name it refuses
    page.context.close()
