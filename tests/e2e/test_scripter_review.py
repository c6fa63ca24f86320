"""The scripter's and member's pages in Debian's Chromium: what a fresh walk through them found
(controls that came only after a reload, waits for a sign-in that went missing, ...)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app import db
from app.models import Role, Script
from app.testing import LiveServer
from tests.conftest import add_member, create_facility, create_user, make_app
from tests.e2e.people import signed_in

pytestmark = pytest.mark.browser


@pytest.fixture
def live_lab(tmp_path: Path) -> Iterator[LiveServer]:
    """A facility `lab` with a scripter sam@example.com, a member mo@example.com and a
    script "Report"."""
    app = make_app(tmp_path)
    live = LiveServer(app)
    with app.app_context():
        session = db.session()
        lab = create_facility(session, slug="lab")
        sam = create_user(session, email="sam@example.com", name="Sam")
        add_member(session, user=sam, facility=lab, role=Role.scripter)
        mo = create_user(session, email="mo@example.com", name="Mo")
        add_member(session, user=mo, facility=lab, role=Role.member)
        session.add(Script(facility_id=lab.id, name="Report", source="result = 42\n",
                           published=True))
        session.commit()
    yield live
    live.close()
    app.extensions["heartbeat"].stop()
    executor = app.extensions.get("sandbox")
    if executor is not None:
        executor.close()


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
