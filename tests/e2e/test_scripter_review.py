"""The scripter's and member's pages in Debian's Chromium: what a fresh walk through them found
(controls that came only after a reload, waits for a sign-in that went missing, ...)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from app import db
from app.models import Facility, Role, Run, Script, User
from app.testing import LiveServer
from tests.conftest import (
    add_member,
    create_integration,
    create_user,
)
from tests.e2e.people import (
    WIDTHS,
    add_lab_member,
    add_script,
    fits,
    scripter_lab,
    signed_in,
    todays_time_shown,
)

pytestmark = pytest.mark.browser


@pytest.fixture
def live_lab(tmp_path: Path) -> Iterator[LiveServer]:
    """A facility `lab` with a scripter sam@example.com, a member mo@example.com and a
    script "Report"."""
    with scripter_lab(tmp_path) as live:
        add_lab_member(live, email="mo@example.com", name="Mo", role=Role.member)
        add_script(live, name="Report", source="result = 42\n", published=True)
        yield live


def scripts_named(live: LiveServer) -> list[str]:
    with live.app.app_context():
        return sorted(s.name for s in db.session.query(Script).all())


def test_a_new_script_can_be_duplicated_and_deleted_once_first_saved(
    browser: Any, live_lab: LiveServer
) -> None:
    """Duplicate and Delete show once a new script is first saved, as History does; no
    reload, and they act on the script that save made."""
    live = live_lab
    page = signed_in(browser, live, "sam@example.com")
    page.goto(f"{live.url}/f/lab/editor")
    page.locator(".cm-content").wait_for()
    duplicate = page.get_by_role("button", name="Duplicate")
    delete = page.get_by_role("button", name="Delete")
    assert not duplicate.is_visible() and not delete.is_visible()
    page.fill("#script-name", "Fresh")
    page.click("#save-script")
    page.wait_for_url(re.compile(r"/f/lab/editor/\d+$"))
    first = page.url
    duplicate.wait_for()
    duplicate.click()
    page.wait_for_url(lambda url: url != first and re.search(r"/editor/\d+$", url) is not None)
    assert page.locator("#script-name").input_value() == "Fresh (copy)"
    assert scripts_named(live) == ["Fresh", "Fresh (copy)", "Report"]
    page.goto(f"{live.url}/f/lab/editor")
    page.fill("#script-name", "Short-lived")
    page.click("#save-script")
    page.wait_for_url(re.compile(r"/f/lab/editor/\d+$"))
    page.once("dialog", lambda dialog: dialog.accept())
    delete.click()
    page.wait_for_url(f"{live.url}/f/lab/editor")
    assert scripts_named(live) == ["Fresh", "Fresh (copy)", "Report"]
    page.context.close()


def report_id(live: LiveServer) -> int:
    with live.app.app_context():
        return db.session.query(Script).filter_by(name="Report").one().id


def test_the_editors_shortcuts_work_outside_the_code(browser: Any, live_lab: LiveServer) -> None:
    """Ctrl-S saves and Ctrl-Enter runs from the name, the test input and the declared
    inputs as from the code (the help says so); Enter in the name saves it."""
    live = live_lab
    page = signed_in(browser, live, "sam@example.com")
    page.goto(f"{live.url}/f/lab/editor/{report_id(live)}")
    page.locator(".cm-content").wait_for()
    status = page.locator("#save-status")
    page.fill("#script-name", "Weekly report")
    page.press("#script-name", "Control+s")
    status.filter(has_text=re.compile(r"^Saved")).wait_for()
    assert scripts_named(live) == ["Weekly report"]
    page.fill("#script-name", "Monthly report")
    page.press("#script-name", "Enter")
    page.locator(".script-list a", has_text="Monthly report").wait_for()
    assert scripts_named(live) == ["Monthly report"]
    page.click("#inputs-editor summary")
    page.click("#add-input")
    page.fill(".input-name", "who")
    page.press(".input-name", "Meta+s")
    status.filter(has_text=re.compile(r"^Saved")).wait_for()
    page.fill("#run-input", '{"who": "x"}')
    page.press("#run-input", "Control+Enter")
    page.locator("#run-status", has_text="succeeded").wait_for(timeout=30000)
    assert page.locator("#run-result").inner_text() == "42"
    # A new script saved with no name is called "Untitled script", and its field says so.
    page.goto(f"{live.url}/f/lab/editor")
    page.locator(".cm-content").wait_for()
    page.press("#run-input", "Control+s")
    page.locator(".script-list a", has_text="Untitled script").wait_for()
    assert page.locator("#script-name").input_value() == "Untitled script"
    page.context.close()


def test_run_on_a_phone_shows_the_run_it_started(browser: Any, live_lab: LiveServer) -> None:
    """At 390 px the run panel is below the editor: pressing Run brings its status into
    view, so the press visibly did something."""
    live = live_lab
    page = signed_in(browser, live, "sam@example.com", width=390)
    page.goto(f"{live.url}/f/lab/editor/{report_id(live)}")
    page.locator(".cm-content").wait_for()
    status = page.locator("#run-status")
    assert not in_view(page, status)
    page.click("#run-script")
    status.filter(has_text="succeeded").wait_for(timeout=30000)
    assert in_view(page, status)
    page.context.close()


def in_view(page: Any, locator: Any) -> bool:
    box = locator.bounding_box()
    if not box:
        return False
    return bool(box["y"] >= 0 and box["y"] + box["height"] <= page.viewport_size["height"])



def test_fixing_a_failed_runs_line_breaks_no_content_security_policy(
    browser: Any, live_lab: LiveServer
) -> None:
    """After a run fails at a line, its marker and tooltip show, and typing over the marked
    line (a keyword first) fixes it without an inline style the page's CSP refuses: Chrome
    carried the replaced token's colour over as a style attribute and logged a violation."""
    live = live_lab
    page = signed_in(browser, live, "sam@example.com")
    violations: list[str] = []
    page.on("console", lambda message: violations.append(message.text)
            if "Content Security Policy" in message.text else None)
    page.add_init_script(
        "document.addEventListener('securitypolicyviolation', (event) => console.error("
        "`Content Security Policy: ${event.violatedDirective} refused`));")
    page.goto(f"{live.url}/f/lab/editor/{report_id(live)}")
    code = page.locator(".cm-content")
    code.wait_for()
    code.click()
    page.keyboard.press("Control+a")
    page.keyboard.type("x = 1\nraise ValueError('nope')\n")
    page.click("#run-script")
    page.locator("#run-status", has_text="failed").wait_for(timeout=30000)
    page.locator(".cm-lint-marker-error").hover()
    page.locator(".cm-tooltip-lint", has_text="ValueError: nope").wait_for()
    # Select the marked line and type its fix over it; a bracket typed over a selection
    # still wraps it, as CodeMirror's typing does.
    page.locator(".cm-lintRange-error").click()
    page.keyboard.press("Home")
    page.keyboard.press("Shift+End")
    page.keyboard.type("result = x")
    page.keyboard.press("Shift+Home")
    page.keyboard.type("(")
    page.wait_for_timeout(200)  # a refused style is reported as an event after the edit
    assert code.locator(".cm-line").all_inner_texts()[:2] == ["x = 1", "(result = x)"]
    assert violations == []
    page.context.close()


def test_a_cancelled_run_says_so_once(browser: Any, live_lab: LiveServer) -> None:
    """The editor and the run page said "cancelled the run was cancelled" (the code, then a
    message saying the same): a message that says its code is shown alone."""
    live = live_lab
    page = signed_in(browser, live, "sam@example.com")
    page.goto(f"{live.url}/f/lab/editor/{report_id(live)}")
    code = page.locator(".cm-content")
    code.click()
    page.keyboard.press("Control+a")
    page.keyboard.type("while True:\npass\n")
    page.click("#run-script")
    page.locator("#run-status", has_text="running").wait_for(timeout=30000)
    page.click("#cancel-run")
    page.locator("#run-status", has_text="cancelled").wait_for(timeout=30000)
    assert page.locator("#run-error").inner_text() == "The run was cancelled"
    page.click("#run-link")
    page.locator("#run-error").wait_for()
    assert page.locator("#run-error").inner_text().strip() == "The run was cancelled"
    page.context.close()


def parked_run(live: LiveServer, *, ran_s: int, waiting_s: int) -> str:
    """A run of Sam's parked for a sign-in: it ran `ran_s` seconds, then has waited
    `waiting_s`; its id."""
    now = datetime.now(UTC)
    script_id = report_id(live)  # its own app context: not inside the one below
    with live.app.app_context():
        session = db.session()
        lab = session.query(Facility).filter_by(slug="lab").one()
        sam = session.query(User).filter_by(email="sam@example.com").one()
        run = Run(facility_id=lab.id, script_id=script_id, user_id=sam.id,
                  source="result = 42\n", input={}, status="parked", calls=0,
                  created_at=now - timedelta(seconds=ran_s + waiting_s),
                  started_at=now - timedelta(seconds=ran_s + waiting_s),
                  paused_at=now - timedelta(seconds=waiting_s))
        session.add(run)
        session.commit()
        return run.id


SO_FAR = re.compile(r"(\d+:\d\d) so far(?:, (\d+:\d\d) waiting for a sign-in)?")


def timer_parts(locator: Any) -> tuple[int, int | None]:
    """A live timer's own time and wait for a sign-in, in seconds (None: not waiting)."""
    found = SO_FAR.fullmatch(locator.inner_text())
    assert found, locator.inner_text()

    def seconds(text: str) -> int:
        minutes, secs = text.split(":")
        return int(minutes) * 60 + int(secs)

    return seconds(found[1]), None if found[2] is None else seconds(found[2])


def test_live_timers_leave_a_wait_for_a_sign_in_out(
    browser: Any, live_lab: LiveServer
) -> None:
    """A run's final duration leaves its waits for a sign-in out (078951a), and its live
    timers counted them: a parked run's page and row and the editor's panel now count the
    run's own time and show the wait apart."""
    live = live_lab
    run_id = parked_run(live, ran_s=10, waiting_s=60)
    made = time.monotonic()

    def waited_at_most() -> float:
        """The wait shown can only have grown by the time since the run was made (a
        loaded machine takes seconds to sign in and load a page); its own time not."""
        return 60 + (time.monotonic() - made) + 1

    page = signed_in(browser, live, "sam@example.com")
    page.goto(f"{live.url}/f/lab/runs/{run_id}")
    timer = page.locator("#run-duration .elapsed", has_text="so far")
    own, waiting = timer_parts(timer)
    assert 10 <= own <= 12 and waiting is not None and 60 <= waiting <= waited_at_most()
    page.goto(f"{live.url}/f/lab/runs")
    row_timer = page.locator(f"tr[data-run-id='{run_id}'] .elapsed", has_text="so far")
    own, waiting = timer_parts(row_timer)
    assert 10 <= own <= 12 and waiting is not None and 60 <= waiting <= waited_at_most()
    # The editor's panel: its run stops counting while it waits for Sam to sign in. The
    # parked run ends first: the editor would pick it up (Sam's run of the draft goes on).
    with live.app.app_context():
        parked = db.session.get(Run, run_id)
        assert parked is not None
        parked.status = "cancelled"
        create_integration(db.session(), facility=db.session.query(Facility).one(),
                           key="keyed", name="Keyed API")
        db.session.commit()
    page.goto(f"{live.url}/f/lab/editor/{report_id(live)}")
    page.locator(".cm-content").click()
    page.keyboard.press("Control+a")
    page.keyboard.type('result = integrations.get("keyed", "/me").status\n')
    page.click("#run-script")
    panel = page.locator("#run-elapsed", has_text="waiting for a sign-in")
    panel.wait_for(timeout=30000)
    own, waiting = timer_parts(panel)
    assert waiting is not None
    # The wait ticks on by two seconds and the run's own time not meanwhile. Polled: a fixed
    # 3.5 s could fail when a loaded machine's browser showed a tick over 1.5 s late.
    deadline = time.monotonic() + 30
    while (later := timer_parts(panel))[1] is None or later[1] < waiting + 2:
        assert time.monotonic() < deadline, later
        page.wait_for_timeout(200)  # polling the page's timer: it ticks each second
    assert later[0] == own
    page.click("#cancel-run")
    page.locator("#run-status", has_text="cancelled").wait_for(timeout=30000)
    page.context.close()


def test_the_scripts_page_links_a_members_settings_where_they_can_connect(
    browser: Any, live_lab: LiveServer
) -> None:
    """A member who refused a sign-in reads "connect your account in Settings →
    Integrations" on the Scripts page and the run page, now a link as in the editor; a
    facility account nobody connected is an admin's to fix: no link."""
    live = live_lab
    with live.app.app_context():
        session = db.session()
        lab = session.query(Facility).one()
        create_integration(session, facility=lab, key="keyed", name="Keyed API")
        session.add(Script(facility_id=lab.id, name="Needs key", published=True,
                           source='result = integrations.get("keyed", "/me").status\n'))
        session.add(Script(facility_id=lab.id, name="Needs master", published=True,
                           source='integrations.get("keyed", "/me", account="master")\n'))
        session.commit()
    page = signed_in(browser, live, "mo@example.com")
    page.goto(f"{live.url}/f/lab/scripts")
    card = page.locator(".script-card", has_text="Needs key")
    card.locator(".run-script").click()
    page.locator(".grant-refuse").click(timeout=60000)
    link = card.locator(".error-words a", has_text="Settings → Integrations")
    link.wait_for(timeout=30000)
    assert link.get_attribute("href") == "/settings/integrations"
    assert card.locator(".error-words").inner_text().startswith("You chose not to sign in")
    card.locator(".run-link").click()
    run_link = page.locator("#run-error a", has_text="Settings → Integrations")
    assert run_link.get_attribute("href") == "/settings/integrations"
    page.goto(f"{live.url}/f/lab/scripts")
    card = page.locator(".script-card", has_text="Needs master")
    card.locator(".run-script").click()
    words = card.locator(".error-words", has_text="Ask an admin")
    words.wait_for(timeout=30000)
    assert words.locator("a").count() == 0
    page.context.close()


def test_the_editors_history_says_whose_runs_it_lists(browser: Any, live_lab: LiveServer) -> None:
    """A scripter sees only their own runs (members' runs are an admin's to see, as on the
    runs page), so a script only members ran said "No runs yet": the history says it lists
    the scripter's own runs; an admin's lists everyone's."""
    live = live_lab
    script_id = report_id(live)
    with live.app.app_context():
        session = db.session()
        lab = session.query(Facility).one()
        mo = session.query(User).filter_by(email="mo@example.com").one()
        ada = create_user(session, email="ada@example.com", name="Ada")
        add_member(session, user=ada, facility=lab, role=Role.admin)
        session.add(Run(facility_id=lab.id, script_id=script_id, user_id=mo.id,
                        source="result = 42\n", input={}, status="succeeded", calls=0,
                        result=42, duration_ms=3.0))
        session.commit()
    sam = signed_in(browser, live, "sam@example.com")
    sam.goto(f"{live.url}/f/lab/editor/{script_id}")
    history = sam.locator("#run-history tbody")
    history.get_by_text("No runs of yours yet").wait_for()
    sam.goto(f"{live.url}/f/lab/runs?script_id={script_id}")
    assert sam.locator("#runs-table tbody tr").count() == 0  # the runs page agrees
    sam.context.close()
    ada_page = signed_in(browser, live, "ada@example.com")
    ada_page.goto(f"{live.url}/f/lab/editor/{script_id}")
    ada_page.locator("#run-history tbody tr", has_text="succeeded").wait_for()
    ada_page.context.close()


# A name as long as some are: it must wrap in the History, not widen it past the card.
LONG_NAME = "Maximiliana Wolfeschlegelsteinhausenbergerdorff-Featherstonehaugh"


@pytest.mark.parametrize("width", WIDTHS)
def test_an_admins_history_says_who_ran_each_run(
    browser: Any, live_lab: LiveServer, width: int
) -> None:
    """An admin sees members' runs in the editor's History: each row names who started it
    ("you" for their own), on a desktop and a phone; a scripter's lists only their own
    runs and has no such column."""
    live = live_lab
    script_id = report_id(live)
    with live.app.app_context():
        session = db.session()
        lab = session.query(Facility).one()
        mo = session.query(User).filter_by(email="mo@example.com").one()
        ada = create_user(session, email="ada@example.com", name="Ada")
        add_member(session, user=ada, facility=lab, role=Role.admin)
        max_ = create_user(session, email="max@example.com", name=LONG_NAME)
        add_member(session, user=max_, facility=lab, role=Role.member)
        earlier = datetime.now(UTC) - timedelta(minutes=5)
        for who, minutes in ((mo, 1), (max_, 2)):
            session.add(Run(facility_id=lab.id, script_id=script_id, user_id=who.id,
                            source="result = 42\n", input={}, status="succeeded", calls=0,
                            result=42, duration_ms=3.0,
                            created_at=earlier + timedelta(minutes=minutes)))
        session.commit()
    page = signed_in(browser, live, "ada@example.com", width=width)
    page.goto(f"{live.url}/f/lab/editor/{script_id}")
    history = page.locator("#run-history")
    history.locator("tbody tr", has_text="Mo").wait_for()
    assert history.locator("thead th").all_inner_texts()[:2] == ["When", "By"]
    page.click("#run-script")
    page.locator("#run-status", has_text="succeeded").wait_for(timeout=30000)
    history.locator("tbody tr td.runner", has_text="you").wait_for()
    # The row shows the run as running at once and its end when the list is read again,
    # which may come a moment after the status line (seen in CI): waited for, not assumed.
    history.locator("tbody tr").first.locator("td", has_text="succeeded").wait_for()
    # Newest first: Ada's run, Max's, Mo's; each name in the By column, beside its status.
    rows = [row.locator("td").all_inner_texts() for row in history.locator("tbody tr").all()]
    assert [cells[1:3] for cells in rows] == [
        ["you", "succeeded"], [LONG_NAME, "succeeded"], ["Mo", "succeeded"]
    ]
    assert "@example.com" not in history.inner_text()
    # A run of today says its hour and minute (the date and seconds took 2-3 lines of the
    # narrow column); the whole time on hover.
    todays_time_shown(page, history.locator("tbody tr").first.locator("td time"))
    # The History stays inside its card's padding (the long name wraps in its cell).
    overflow = page.evaluate("""() => {
        const card = document.querySelector(".run-side");
        const inside = card.getBoundingClientRect().right
            - parseFloat(getComputedStyle(card).paddingRight);
        return document.getElementById("run-history").getBoundingClientRect().right - inside;
    }""")
    assert overflow <= 0.5, f"the History runs {overflow}px past its card"
    fits(page, f"editor-history-runners-{width}")
    page.context.close()
    sam = signed_in(browser, live, "sam@example.com", width=width)
    sam.goto(f"{live.url}/f/lab/editor/{script_id}")
    sam.locator("#run-history tbody td", has_text="No runs of yours yet").wait_for()
    assert sam.locator("#run-history thead th").all_inner_texts() == [
        "When", "Status", "ms", "Calls"
    ]
    sam.context.close()


def test_a_member_never_sees_a_failed_runs_code_while_its_words_come(
    browser: Any, live_lab: LiveServer
) -> None:
    """On the Scripts page a member's failed run showed the code, message and traceback
    ("script_error ValueError: nope") until the server's words for it came: the words'
    request is held here, and the card says only that the script failed meanwhile."""
    live = live_lab
    with live.app.app_context():
        session = db.session()
        lab = session.query(Facility).one()
        session.add(Script(facility_id=lab.id, name="Fails", published=True,
                           source='def f():\n    raise ValueError("nope")\nf()\n'))
        session.commit()
    page = signed_in(browser, live, "mo@example.com")
    held: list[Any] = []
    page.route("**/explain", lambda route: held.append(route))
    page.goto(f"{live.url}/f/lab/scripts")
    card = page.locator(".script-card", has_text="Fails")
    with page.expect_request("**/explain", timeout=30000):  # held: no answer yet
        card.locator(".run-script").click()
    card.locator(".run-status", has_text="failed").wait_for()
    assert card.locator(".run-error").inner_text() == "The script failed."
    assert card.locator(".run-error .traceback").count() == 0
    assert len(held) == 1
    held[0].continue_()
    words = card.locator(".error-words")
    words.wait_for(timeout=30000)
    assert words.inner_text().startswith("The script failed. Tell a scripter")
    assert "script_error" not in card.locator(".run-error").inner_text()
    page.context.close()
