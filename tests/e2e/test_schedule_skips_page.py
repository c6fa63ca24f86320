"""Why a schedule's due time started no run, in the editor's Schedules panel in Debian's
Chromium: the app's firer skips a due time for real (a version another scripter published,
a last run still queued under the caps), the panel says so in words with what to do, the
words fit at 1280 px, and once the member does it (resumes the schedule, cancels the run
that holds the place) the next run goes through and the words go."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from app import db, extensions
from app.models import Role, Run, Schedule, Script
from app.models._types import utcnow
from app.services import people
from app.services.context import MemberContext
from app.services.scripts import create_run, create_script, update_script
from app.testing import LiveServer
from tests.e2e.people import add_lab_member, fits, lands_on, scripter_lab, signed_in
from tests.e2e.test_schedules_panel import TOGGLE_SAYS, open_panel

pytestmark = pytest.mark.browser
# A run that holds Sam's one place until it is cancelled (well within the wall time).
HOLDER = "print('holding the place')\nimport time\ntime.sleep(500)\n"


@pytest.fixture
def live_lab(tmp_path: Path) -> Iterator[tuple[LiveServer, int]]:
    """Facility `lab`, scripters sam@example.com and bea@example.com, and Sam's published
    script "Report" (version 1). Sam may have one live run at a time; the heartbeat does
    not fire schedules while the test runs (the test fires them, as the heartbeat would)."""
    with scripter_lab(tmp_path, MAX_RUNS_PER_USER=1, HEARTBEAT_S=3600,
                      RUN_WALL_TIME_S=600) as live:
        add_lab_member(live, email="bea@example.com", name="Bea", role=Role.scripter)
        with live.app.app_context():
            session = db.session()
            script = create_script(session, _as(session, "sam@example.com"), name="Report",
                                   source="result = 'v1'\n", published=True)
            session.commit()
            script_id = script.id
        yield live, script_id


def _as(session: Any, email: str) -> MemberContext:
    """The member of `lab` with that email, as they are now."""
    user = people.user_by_email(session, email)
    membership = people.membership_of(session, user.id, people.facility_by_slug(session, "lab").id)
    assert membership is not None
    return MemberContext(membership.user, membership.facility, membership.role)


def _due_now(live: LiveServer) -> int:
    """Make the (one) schedule due a minute ago, fire what is due as the heartbeat's tick
    does, and say how many runs started."""
    with live.app.app_context():
        schedule = db.session.scalars(select(Schedule)).one()
        schedule.next_run_at = utcnow() - timedelta(minutes=1)
        db.session.commit()
    return extensions.schedule_firer(live.app).fire_due()


def _add_schedule(panel: Any) -> None:
    """Add a daily schedule in the panel, as its member."""
    panel.locator("#schedule-cron").fill("0 9 * * *")
    panel.locator("#add-schedule").click()
    panel.locator("#schedules-table tbody tr").wait_for()


# How many lines a node's text takes, and how many words it has.
LINES_AND_WORDS = """(node) => {
    const range = document.createRange();
    range.selectNodeContents(node);
    const tops = new Set([...range.getClientRects()].map((rect) => Math.round(rect.top)));
    return [tops.size, node.textContent.trim().split(/\\s+/).length];
}"""


def _skip_is_readable(page: Any, row: Any, name: str) -> None:
    """The skip's badge and words are shown whole at the page's width: nothing drawn over
    them, nothing cut off by the table's scroller or the cell; and beside them the badge
    and the row's buttons keep their words whole (a word is never broken over lines)."""
    fits(page, name)
    for selector in (".schedule-skip", ".schedule-skip-message"):
        node = row.locator(selector)
        node.scroll_into_view_if_needed()
        assert node.is_visible()
        assert lands_on(page, f"#schedules-table tbody tr {selector}"), selector
        clipped = node.evaluate("""(node) => {
            const box = node.getBoundingClientRect();
            const scroller = node.closest(".table-scroll").getBoundingClientRect();
            const cell = node.closest("td").getBoundingClientRect();
            return node.scrollWidth > node.clientWidth || box.left < scroller.left
                || box.right > scroller.right || box.right > cell.right + 0.5;
        }""")
        assert not clipped, f"{name}: {selector} is cut off"
    for node in [row.locator(".schedule-skip"), *row.locator("button").all()]:
        lines, words = node.evaluate(LINES_AND_WORDS)
        assert lines <= words, f"{name}: {node.inner_text()!r} is broken over {lines} lines"


def test_a_version_another_scripter_publishes_is_skipped_until_the_member_resumes(
    browser: Any, live_lab: tuple[LiveServer, int]
) -> None:
    live, script_id = live_lab
    page = signed_in(browser, live, "sam@example.com")
    _add_schedule(open_panel(page, live, script_id))
    with live.app.app_context():
        session = db.session()
        script = session.get(Script, script_id)
        assert script is not None
        update_script(session, _as(session, "bea@example.com"), script,
                      source="result = 'v2, by Bea'\n", published=True)
        session.commit()
    assert _due_now(live) == 0  # skipped: no run as Sam of code he never saw

    row = open_panel(page, live, script_id).locator("#schedules-table tbody tr")
    row.wait_for()
    skip = row.locator(".schedule-skip")
    # The Schedules page's words (app/web/wording.py), not the panel's own copy of them.
    assert skip.inner_text() == "a new version waits for its member's approval"
    assert row.locator(".badge.bad").inner_text() == "skipped"
    words = ("version 2 of Report, saved by Bea, was published after Sam last set up this"
             " schedule, and its runs run as Sam: Sam must pause and resume it to run that"
             " version")
    assert row.locator(".schedule-skip-message").inner_text() == words
    assert skip.get_attribute("title") == words
    assert row.locator(".schedule-last-run").count() == 0
    _skip_is_readable(page, row, "editor-schedule-skipped-1280")

    # Sam reads it, then pauses and resumes it: that approves version 2, which runs next.
    row.locator(".schedule-toggle").click()
    page.wait_for_function(TOGGLE_SAYS, arg="Resume")
    row.locator(".schedule-toggle").click()
    page.wait_for_function(TOGGLE_SAYS, arg="Pause")
    # Approved: the panel stops asking him at once, not only after the next due time.
    row.locator(".schedule-skip").wait_for(state="detached")
    assert "must pause and resume" not in row.inner_text()
    assert _due_now(live) == 1
    with live.app.app_context():
        run_id = db.session.scalars(select(Schedule)).one().last_run_id
    assert run_id is not None
    ended = extensions.run_queue(live.app).wait(run_id, 60)
    assert ended is not None and ended["result"] == "v2, by Bea"

    row = open_panel(page, live, script_id).locator("#schedules-table tbody tr")
    row.locator(".schedule-last-status").filter(has_text="succeeded").wait_for()
    assert row.locator(".schedule-skip").count() == 0
    assert "version 2" not in row.inner_text()
    page.context.close()


def test_a_due_time_while_the_last_run_waits_is_skipped_until_the_place_frees(
    browser: Any, live_lab: tuple[LiveServer, int]
) -> None:
    live, script_id = live_lab
    page = signed_in(browser, live, "sam@example.com")
    _add_schedule(open_panel(page, live, script_id))
    # Sam's one place is taken by a run of his that goes on.
    with live.app.app_context():
        session = db.session()
        holder = create_run(session, _as(session, "sam@example.com"), script_id=None,
                            source=HOLDER, run_input=None, interactive=True)
        session.commit()
        holder_id = holder.id
    extensions.run_queue(live.app).submit(holder_id)
    page.goto(f"{live.url}/f/lab/runs/{holder_id}")
    page.locator("#run-status").filter(has_text="running").wait_for()

    assert _due_now(live) == 1  # its run waits queued behind the holder
    with live.app.app_context():
        waiting_id = db.session.scalars(select(Schedule)).one().last_run_id
        assert waiting_id is not None
        assert db.session.get(Run, waiting_id).status == "queued"  # type: ignore[union-attr]
    assert _due_now(live) == 0  # the next due time starts no second one

    row = open_panel(page, live, script_id).locator("#schedules-table tbody tr")
    row.wait_for()
    assert row.locator(".schedule-last-status").inner_text() == "queued"
    assert row.locator(".schedule-last-run").get_attribute("href") == (
        f"/f/lab/runs/{waiting_id}")
    assert row.locator(".schedule-skip").inner_text() == "its last run is still queued"
    assert row.locator(".schedule-skip-message").inner_text() == (
        "the previous run has not started yet: it waits queued while its member or the"
        " facility has as many runs going as the server allows; this due time was skipped,"
        " not queued behind it. If it keeps happening, space the schedule out or cancel"
        " runs that hold the places")
    _skip_is_readable(page, row, "editor-schedule-waiting-1280")

    # Sam cancels the run that holds the place: the waiting run starts and ends.
    page.goto(f"{live.url}/f/lab/runs/{holder_id}")
    page.locator("#stop-run").click()
    page.locator("#run-status").filter(has_text="cancelled").wait_for()
    ended = extensions.run_queue(live.app).wait(waiting_id, 60)
    assert ended is not None and ended["status"] == "succeeded"

    row = open_panel(page, live, script_id).locator("#schedules-table tbody tr")
    row.locator(".schedule-last-status").filter(has_text="succeeded").wait_for()
    assert row.locator(".schedule-skip").count() == 0
    assert "not started yet" not in row.inner_text()
    page.context.close()
