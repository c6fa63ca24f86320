"""The Schedules page in Debian's Chromium: a scripter reaches it from the top bar by
keyboard and reads the facility's schedules in a table (script linked to its editor's
Schedules panel, owner, the cron in words, zone, next time, state with a skip's reason in
words, a link to its runs), filters by state; a member has no such link; a facility with
none says how to make one; it fits a phone and axe-core finds nothing serious in it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from app import db
from app.models import Role, Schedule, Script, ScriptVersion, User
from app.models._types import utcnow
from app.services import cron_times
from app.testing import LiveServer
from tests.conftest import add_member, close_live, create_facility, create_user, make_app
from tests.e2e.people import fits, signed_in
from tests.e2e.test_accessibility import axe_violations

pytestmark = pytest.mark.browser


@pytest.fixture
def live_lab(tmp_path: Path) -> Iterator[tuple[LiveServer, dict[str, int]]]:
    """Facility `lab`: scripter Sam, member Mia, published script "Report" with three
    schedules of Sam's (active, skipping, paused); facility `empty`, where Sam is a
    scripter too, without any."""
    app = make_app(tmp_path)
    live = LiveServer(app)
    with app.app_context():
        session = db.session()
        lab = create_facility(session, slug="lab")
        empty = create_facility(session, slug="empty", name="Empty")
        sam = create_user(session, email="sam@example.com", name="Sam")
        mia = create_user(session, email="mia@example.com", name="Mia")
        add_member(session, user=sam, facility=lab, role=Role.scripter)
        add_member(session, user=sam, facility=empty, role=Role.scripter)
        add_member(session, user=mia, facility=lab, role=Role.member)
        script = Script(facility_id=lab.id, name="Report", source="result = input\n",
                        published=True)
        session.add(script)
        session.flush()
        ids = {"script": script.id}
        # The hourly one first: at 08:xx Berlin on a weekday both next times are 09:00,
        # and a tie is ordered by id.
        for key, cron, more in (
            ("hourly", "0 * * * *", {"last_skip": "run_refused",
                                     "last_skip_message": "Change the schedule's input."}),
            ("weekdays", "0 9 * * 1-5", {}),
            ("paused", "30 6 1 * *", {"enabled": False}),
        ):
            enabled = more.get("enabled", True)
            schedule = Schedule(
                facility_id=lab.id, script_id=script.id, created_by=sam.id, cron=cron,
                timezone="Europe/Berlin", **more,
                next_run_at=cron_times.next_time(cron, "Europe/Berlin", after=utcnow())
                if enabled else None,
            )
            session.add(schedule)
            session.flush()
            ids[key] = schedule.id
        session.commit()
    yield live, ids
    close_live(live)


def test_a_scripter_reads_the_facilitys_schedules(
    browser: Any, live_lab: tuple[LiveServer, dict[str, int]]
) -> None:
    live, ids = live_lab
    page = signed_in(browser, live, "sam@example.com", bypass_csp=True)
    page.goto(f"{live.url}/f/lab/scripts")
    link = page.get_by_role("link", name="Schedules", exact=True)
    link.focus()
    page.keyboard.press("Enter")
    page.wait_for_url(f"{live.url}/f/lab/schedules")
    table = page.get_by_role("table", name="Schedules of The Lab")
    headers = table.locator("thead th").all_inner_texts()
    assert headers == ["Script", "Runs as", "When", "Zone", "Next time", "State", "On failure",
                       "Runs"]
    rows = table.locator("tbody tr")
    # Soonest first (the hourly one), the paused one last.
    assert [int(r) for r in rows.evaluate_all("rs => rs.map(r => r.dataset.scheduleId)")] == [
        ids["hourly"], ids["weekdays"], ids["paused"]]
    hourly, weekdays, paused = (rows.nth(i) for i in range(3))
    assert weekdays.locator(".schedule-description").inner_text() == (
        "At 09:00 on Monday through Friday")
    assert weekdays.locator(".schedule-owner").inner_text() == "Sam"
    assert weekdays.locator(".schedule-zone").inner_text() == "Europe/Berlin"
    assert "09:00 Europe/Berlin" in weekdays.locator(".schedule-next").inner_text()
    assert weekdays.locator(".schedule-state").inner_text() == "active"
    assert hourly.locator(".schedule-state").inner_text().startswith(
        "skipping its input was refused")
    assert hourly.locator(".schedule-skip-message").inner_text() == (
        "Change the schedule's input.")
    assert paused.locator(".schedule-state").inner_text() == "paused"
    assert paused.locator(".schedule-next").inner_text() == "none while paused"
    said = "Runs of Report, At 06:30 on the first day of every month"
    runs = paused.get_by_role("link", name=said)
    assert runs.get_attribute("href") == f"/f/lab/runs?schedule_id={ids['paused']}"
    assert axe_violations(page) == []
    page.set_viewport_size({"width": 375, "height": 800})
    fits(page, "schedules-page-375")

    page.get_by_label("State").select_option("paused")
    page.get_by_role("button", name="Filter").click()
    # Only the fields set: the address once carried `&script_id=&user_id=` too.
    page.wait_for_url(f"{live.url}/f/lab/schedules?state=paused")
    assert rows.count() == 1 and rows.first.get_attribute("data-schedule-id") == str(
        ids["paused"])

    rows.first.locator(".schedule-script").click()  # to the script's Schedules panel, open
    page.wait_for_url(f"**/f/lab/editor/{ids['script']}#schedules-panel")
    panel = page.locator("#schedules-panel")
    panel.locator("#schedules-table tbody tr").first.wait_for()
    assert panel.evaluate("node => node.open")

    page.goto(f"{live.url}/f/empty/schedules")
    empty = page.locator("#no-schedules")
    assert "No schedules yet" in empty.inner_text()
    assert "Schedules panel" in empty.inner_text()
    assert empty.get_by_role("link", name="editor").get_attribute("href") == "/f/empty/editor"


def test_a_member_has_no_schedules_page(
    browser: Any, live_lab: tuple[LiveServer, dict[str, int]]
) -> None:
    live, _ids = live_lab
    page = signed_in(browser, live, "mia@example.com")
    page.goto(f"{live.url}/f/lab/runs")
    assert page.get_by_role("link", name="Schedules", exact=True).count() == 0
    answer = page.goto(f"{live.url}/f/lab/schedules")
    assert answer is not None and answer.status == 403


def test_a_phone_reads_each_cell_as_one_block(
    browser: Any, live_lab: tuple[LiveServer, dict[str, int]]
) -> None:
    """At 390 px the table stacks its cells (label left, value right, a flex row): a cell
    of several parts must be one block beside its label, or the parts are squeezed into
    columns side by side and the next time wraps one character a line."""
    live, ids = live_lab
    with live.app.app_context():  # a zone longer than the card's value column is wide
        hourly = db.session.get(Schedule, ids["hourly"])
        assert hourly is not None
        hourly.timezone = "America/Argentina/ComodRivadavia"
        db.session.commit()
    page = signed_in(browser, live, "sam@example.com", width=390, height=844)
    page.goto(f"{live.url}/f/lab/schedules")
    row = page.locator(f'tr[data-schedule-id="{ids["hourly"]}"]')
    for part in (".schedule-next time", ".schedule-description", ".schedule-skip-message"):
        box = row.locator(part).bounding_box()
        assert box is not None and box["width"] > 150, (part, box)
    # The time in the zone sits under the UTC one, not beside it, and inside the card.
    utc, local = row.locator(".schedule-next time"), row.locator(".schedule-next .muted")
    assert local.bounding_box()["y"] > utc.bounding_box()["y"]
    card = row.bounding_box()
    for cell in row.locator("td > *").all():
        box = cell.bounding_box()
        assert box["x"] + box["width"] <= card["x"] + card["width"], cell.inner_text()
    fits(page, "schedules-page-390")


def test_the_filter_offers_the_schedules_scripts_and_members(
    browser: Any, live_lab: tuple[LiveServer, dict[str, int]]
) -> None:
    """The page filters by script and by whom a schedule runs as, from the ones the
    facility's schedules have (the API took script_id and user_id; the page only kept them
    when a link gave them)."""
    live, ids = live_lab
    page = signed_in(browser, live, "sam@example.com")
    page.goto(f"{live.url}/f/lab/schedules")
    script, owner = page.get_by_label("Script"), page.get_by_label("Runs as")
    assert script.locator("option").all_inner_texts() == ["any", "Report"]
    assert owner.locator("option").all_inner_texts() == ["anyone", "Sam"]
    script.select_option(label="Report")
    owner.select_option(label="Sam")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(f"**/f/lab/schedules?script_id={ids['script']}&user_id=*")
    assert page.locator("#schedules-list tbody tr").count() == 3
    assert script.input_value() == str(ids["script"])
    assert page.get_by_label("Runs as").locator("option:checked").inner_text() == "Sam"


def test_an_active_schedule_of_an_unpublished_script_says_it_will_skip(
    browser: Any, live_lab: tuple[LiveServer, dict[str, int]]
) -> None:
    """Until its next due time records the skip, a schedule whose script was unpublished is
    still active: the page says now that that time will start no run, and what to do."""
    live, ids = live_lab
    page = signed_in(browser, live, "sam@example.com")
    page.goto(f"{live.url}/f/lab/schedules")
    assert page.locator(".schedule-will-skip").count() == 0
    with live.app.app_context():
        script = db.session.get(Script, ids["script"])
        assert script is not None
        script.published = False
        db.session.commit()
    page.reload()
    weekdays = page.locator(f'tr[data-schedule-id="{ids["weekdays"]}"]')
    said = weekdays.locator(".schedule-will-skip").inner_text()
    assert "not published" in said and "Publish it" in said
    paused = page.locator(f'tr[data-schedule-id="{ids["paused"]}"]')
    assert paused.locator(".schedule-will-skip").count() == 0  # it skips nothing


def test_a_zone_reads_on_one_line_on_a_desktop(
    browser: Any, live_lab: tuple[LiveServer, dict[str, int]]
) -> None:
    """Tables let a cell's text break anywhere (an id or a URL must not widen them), which
    cut a zone mid-word on a laptop's screen ("Europe/Berli" above "n"); a zone is short
    and reads whole."""
    live, ids = live_lab
    with live.app.app_context():
        hourly = db.session.get(Schedule, ids["hourly"])
        assert hourly is not None
        hourly.timezone = "America/Argentina/ComodRivadavia"
        db.session.commit()
    page = signed_in(browser, live, "sam@example.com", width=1024, height=800)
    page.goto(f"{live.url}/f/lab/schedules")
    lines = "td => { const r = document.createRange(); r.selectNodeContents(td);" \
            " return new Set([...r.getClientRects()].map(b => Math.round(b.top))).size; }"
    for row in page.locator("#schedules-list tbody tr").all():
        zone = row.locator(".schedule-zone")
        assert zone.evaluate(lines) == 1, zone.inner_text()
    fits(page, "schedules-page-1024")


def test_each_schedule_says_its_on_failure_script_and_a_version_to_approve(
    browser: Any, live_lab: tuple[LiveServer, dict[str, int]]
) -> None:
    """The page said nothing of the script a failed run starts, which the script's panel
    shows: its name, linked to its editor, and a version of it another scripter published
    that waits for the schedule's member; a deleted one is said so."""
    live, ids = live_lab
    with live.app.app_context():
        session = db.session()
        alert = Script(facility_id=session.get(Schedule, ids["weekdays"]).facility_id,
                       name="Alert", source="result = 2", published=True, published_version=2)
        session.add(alert)
        session.flush()
        sam, mia = (session.get(Schedule, ids["weekdays"]).created_by,
                    session.scalar(select(User.id).where(User.name == "Mia")))
        session.add_all([
            ScriptVersion(script_id=alert.id, number=1, source="result = 1", created_by=sam),
            ScriptVersion(script_id=alert.id, number=2, source="result = 2", created_by=mia),
        ])
        for key, handler, seen in (("weekdays", alert.id, 1), ("paused", alert.id, 2),
                                   ("hourly", alert.id + 1000, None)):
            schedule = session.get(Schedule, ids[key])
            schedule.on_failure_script_id, schedule.on_failure_version = handler, seen
        session.commit()
        alert_id = alert.id
    page = signed_in(browser, live, "sam@example.com", bypass_csp=True)
    page.goto(f"{live.url}/f/lab/schedules")
    row = {key: page.locator(f'tr[data-schedule-id="{ids[key]}"] .schedule-on-failure')
           for key in ("weekdays", "paused", "hourly")}
    for key in ("weekdays", "paused"):
        link = row[key].get_by_role("link", name="Alert")
        assert link.get_attribute("href") == f"/f/lab/editor/{alert_id}"
    # Sam approved v1; Mia published v2 since: it runs as Sam once Sam says so.
    assert row["weekdays"].locator(".schedule-handler-pending").inner_text() == (
        "Sam must change, or pause and resume, this schedule before v2 of the script a"
        " failed run starts, published by another scripter, runs as them.")
    assert row["paused"].locator(".schedule-handler-pending").count() == 0  # v2 approved
    assert row["hourly"].inner_text() == f"a deleted script (#{alert_id + 1000})"
    assert axe_violations(page) == []
    page.set_viewport_size({"width": 375, "height": 800})
    fits(page, "schedules-page-on-failure-375")
    row["weekdays"].get_by_role("link", name="Alert").click()
    page.wait_for_url(f"**/f/lab/editor/{alert_id}")
