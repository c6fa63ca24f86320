"""Controls (issue 11, item 3) in Debian's Chromium: rename, duplicate and delete a script in
the editor, the unsaved-changes warning, stopping a parked run, the live timer beside a run."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from app import db
from app.models import Run, Script, User
from app.services import people, sessions
from app.services.inputs import schema_from_fields
from app.testing import LiveServer
from tests.conftest import (
    create_integration,
)
from tests.e2e.people import (
    WIDTHS,
    add_script,
    fits,
    lands_on,
    scripter_lab,
    signed_in,
    todays_time_shown,
)
from tests.e2e.test_runs_page import start_run

pytestmark = pytest.mark.browser
SPINNER = 'print("spinning")\nwhile True:\n    pass\n'
NEEDS_KEY = 'result = integrations.get("keyed", "/echo").status\n'


@pytest.fixture
def live_lab(tmp_path: Path) -> Iterator[tuple[LiveServer, dict[str, int]]]:
    with scripter_lab(tmp_path, PARK_AFTER_S=0, HEARTBEAT_S=0.2) as live:
        with live.app.app_context():
            session = db.session()
            create_integration(session, facility=people.facility_by_slug(session, "lab"),
                               key="keyed")
            session.commit()
        ids = {name: add_script(live, name=name, source=source, published=True)
               for name, source in (("Report", "result = 42\n"), ("Spinner", SPINNER),
                                    ("Needs key", NEEDS_KEY))}
        yield live, ids


def scripts_named(live: LiveServer) -> list[str]:
    with live.app.app_context():
        return sorted(s.name for s in db.session.query(Script).all())


@pytest.mark.parametrize("width", WIDTHS)
def test_rename_duplicate_and_delete_a_script(
    browser: Any, live_lab: tuple[LiveServer, dict[str, int]], width: int
) -> None:
    live, ids = live_lab
    page = signed_in(browser, live, "sam@example.com", width=width)
    page.goto(f"{live.url}/f/lab/editor/{ids['Report']}")
    page.fill("#script-name", "Weekly report")
    page.click("#save-script")
    page.locator(".script-list a", has_text="Weekly report").wait_for()
    fits(page, f"editor-controls-{width}")
    page.click("#duplicate-script")
    page.wait_for_url(lambda url: url.rstrip("/").split("/")[-1] not in (str(ids["Report"]),))
    assert page.locator("#script-name").input_value() == "Weekly report (copy)"
    assert scripts_named(live) == ["Needs key", "Spinner", "Weekly report",
                                   "Weekly report (copy)"]
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#delete-script")
    page.wait_for_url(f"{live.url}/f/lab/editor")
    assert scripts_named(live) == ["Needs key", "Spinner", "Weekly report"]
    page.context.close()


def test_leaving_the_editor_with_unsaved_changes_asks_first(
    browser: Any, live_lab: tuple[LiveServer, dict[str, int]]
) -> None:
    live, ids = live_lab
    page = signed_in(browser, live, "sam@example.com")
    page.goto(f"{live.url}/f/lab/editor/{ids['Report']}")
    page.click(".cm-content")
    page.keyboard.type("# more\n")
    assert page.locator("#save-status").inner_text() == "Unsaved changes"
    asked = []

    def stay(dialog: Any) -> None:
        asked.append(dialog.type)
        dialog.dismiss()

    page.once("dialog", stay)
    page.click("nav a:has-text('Runs')", no_wait_after=True)
    page.wait_for_function("() => true")
    assert asked == ["beforeunload"]
    assert "/editor/" in page.url  # stayed
    page.click("#save-script")
    page.locator("#save-status", has_text="Saved").wait_for()
    page.click("nav a:has-text('Runs')")
    page.wait_for_url("**/f/lab/runs")  # saved: no question
    assert asked == ["beforeunload"]
    page.context.close()


def test_stop_a_parked_run_from_its_page(
    browser: Any, live_lab: tuple[LiveServer, dict[str, int]]
) -> None:
    live, ids = live_lab
    page = signed_in(browser, live, "sam@example.com", width=375)
    page.goto(f"{live.url}/f/lab/runs")
    page.locator("body[data-live=yes]").wait_for()  # an open page: the run may ask
    run_id = start_run(page, ids["Needs key"])
    # Leave only once the prompt is pending: a run that asks while no page of its user is
    # open is refused at once (DESIGN §4), and would never park.
    page.locator(".grant-prompt").wait_for(timeout=60000)
    page.goto(f"{live.url}/f/lab/runs/{run_id}")
    page.locator("#run-status", has_text="parked").wait_for(timeout=30000)
    fits(page, "run-parked-375")
    page.click("#stop-run")
    page.locator("#run-status", has_text="cancelled").wait_for(timeout=30000)
    with live.app.app_context():
        run = db.session.get(Run, run_id)
        assert run is not None and run.status == "cancelled"
    page.context.close()


def test_a_card_whose_parked_run_is_cancelled_leaves_no_timer_so_far(
    browser: Any, live_lab: tuple[LiveServer, dict[str, int]]
) -> None:
    """A run that ended without a duration kept "0:00 so far" beside "cancelled"."""
    live, _ = live_lab
    page = signed_in(browser, live, "sam@example.com")
    page.goto(f"{live.url}/f/lab/scripts")
    card = page.locator(".script-card", has_text="Needs key")
    card.locator(".run-script").click()
    card.locator(".run-status", has_text="parked").wait_for(timeout=30000)
    card.locator(".run-elapsed", has_text="so far").wait_for()
    card.locator(".cancel-run").click()
    card.locator(".run-status", has_text="cancelled").wait_for(timeout=30000)
    elapsed = card.locator(".run-elapsed")
    assert elapsed.is_hidden() or "so far" not in elapsed.inner_text(), elapsed.inner_text()
    page.context.close()


def test_a_running_run_shows_a_live_timer_on_the_scripts_page(
    browser: Any, live_lab: tuple[LiveServer, dict[str, int]]
) -> None:
    live, _ = live_lab
    page = signed_in(browser, live, "sam@example.com")
    page.goto(f"{live.url}/f/lab/scripts")
    card = page.locator(".script-card", has_text="Spinner")
    card.locator(".run-script").click()
    card.locator(".run-output", has_text="spinning").wait_for(timeout=30000)
    timer = card.locator(".run-elapsed")
    first = timer.inner_text()
    assert first.startswith("0:0")
    timer.locator(f"xpath=self::*[not(text()='{first}')]").wait_for()
    card.locator(".cancel-run").click()
    card.locator(".run-status", has_text="cancelled").wait_for(timeout=30000)
    assert card.locator(".run-elapsed").inner_text().endswith(" ms")
    assert card.locator(".run-link").get_attribute("href").startswith("/f/lab/runs/")
    page.context.close()


def _running_run(live: LiveServer, script_id: int, other_than: str | None = None) -> str:
    """The id of the script's run that is running now (not `other_than`)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with live.app.app_context():
            found = db.session.query(Run.id).filter(
                Run.script_id == script_id, Run.status == "running", Run.id != (other_than or "")
            ).first()
            db.session.remove()
        if found is not None:
            return str(found[0])
        time.sleep(0.1)
    raise AssertionError("the run never started")


@pytest.mark.parametrize("where", ["card", "editor"])
def test_details_links_the_run_going_on_not_the_last_one(
    browser: Any, live_lab: tuple[LiveServer, dict[str, int]], where: str
) -> None:
    """The link used to show the last run's page until the new run ended."""
    live, ids = live_lab
    page = signed_in(browser, live, "sam@example.com")
    if where == "card":
        page.goto(f"{live.url}/f/lab/scripts")
        panel = page.locator(".script-card", has_text="Spinner")
        run, stop, link, status = ".run-script", ".cancel-run", ".run-link", ".run-status"
    else:
        page.goto(f"{live.url}/f/lab/editor/{ids['Spinner']}")
        panel = page.locator("body")
        run, stop, link, status = "#run-script", "#cancel-run", "#run-link", "#run-status"
    panel.locator(run).click()
    first = _running_run(live, ids["Spinner"])
    panel.locator(f"{link}[href='/f/lab/runs/{first}']").wait_for()  # from its start
    panel.locator(stop).click()
    panel.locator(status, has_text="cancelled").wait_for(timeout=30000)
    panel.locator(run).click()
    second = _running_run(live, ids["Spinner"], other_than=first)
    panel.locator(f"{link}[href='/f/lab/runs/{second}']").wait_for()
    assert panel.locator(link).is_visible()
    panel.locator(stop).click()
    panel.locator(status, has_text="cancelled").wait_for(timeout=30000)
    page.context.close()


def test_a_run_whose_end_the_socket_missed_shows_it_once_the_page_reconnects(
    browser: Any, live_lab: tuple[LiveServer, dict[str, int]]
) -> None:
    """What is published while a page's socket is down (a server or Redis restart, a
    network drop) never reaches it: a page that connects again reads the runs it follows."""
    live, _ = live_lab
    page = signed_in(browser, live, "sam@example.com")
    connections: list[Any] = []
    missed: list[str] = []

    def route(socket: Any) -> None:
        server = socket.connect_to_server()
        connections.append(socket)
        first = len(connections) == 1

        def from_server(message: str | bytes) -> None:
            if first and "run.finished" in str(message):
                missed.append(str(message))
                socket.close()  # the end never reaches the page; it connects again
                return
            socket.send(message)

        server.on_message(from_server)

    page.route_web_socket(re.compile(r"/ws\b"), route)
    page.goto(f"{live.url}/f/lab/scripts")
    card = page.locator(".script-card", has_text="Report")
    card.locator(".run-script").click()
    card.locator(".run-status", has_text="succeeded").wait_for(timeout=30000)
    assert missed and len(connections) >= 2  # the end came only through the catch-up
    assert card.locator(".run-result").inner_text().strip() == "42"
    assert card.locator(".run-script").is_enabled()
    page.context.close()


def until(page: Any, ready: Callable[[], object], seconds: float = 15.0) -> None:
    """Let the page run until `ready()` (a check of what this test saw of it) is true."""
    deadline = time.monotonic() + seconds
    while not ready():
        assert time.monotonic() < deadline, "the page never got there"
        page.wait_for_timeout(50)


def test_a_dropped_connection_says_reconnecting_until_it_is_back(
    browser: Any, live_lab: tuple[LiveServer, dict[str, int]]
) -> None:
    """A page whose socket is down for longer than a blip says so (it used to look live
    while hearing nothing), and says when it is back."""
    live, _ = live_lab
    page = signed_in(browser, live, "sam@example.com")
    down = {"on": False}
    open_sockets: list[Any] = []

    frames: list[str | bytes] = []

    def route(socket: Any) -> None:
        if down["on"]:
            socket.close()  # the server cannot be reached
            return
        server = socket.connect_to_server()
        server.on_message(lambda message: (frames.append(message), socket.send(message)))
        open_sockets.append(socket)

    page.route_web_socket(re.compile(r"/ws\b"), route)
    page.goto(f"{live.url}/f/lab/scripts")
    until(page, lambda: frames)  # its hello went through: the page is live
    assert len(open_sockets) == 1
    down["on"] = True
    open_sockets[0].close()
    lost = page.locator("#toasts .toast.warn[role=status]",
                        has_text="Connection to Scriptbox lost; reconnecting…")
    lost.wait_for(timeout=15000)
    down["on"] = False
    page.locator("#toasts .toast.ok", has_text="Reconnected").wait_for(timeout=20000)
    assert lost.count() == 0
    assert len(open_sockets) == 2
    page.context.close()


def test_a_page_refused_after_a_drop_says_why_and_not_that_it_is_back(
    browser: Any, live_lab: tuple[LiveServer, dict[str, int]]
) -> None:
    """Down, then refused on reconnecting (signed out meanwhile): the reconnecting notice
    gives way to the refusal's words, not to "Reconnected"."""
    live, _ = live_lab
    page = signed_in(browser, live, "sam@example.com")
    state = {"mode": "through"}
    open_sockets: list[Any] = []
    refusal = json.dumps({"type": "error", "code": "session_ended", "closing": True,
                          "message": "you were signed out or removed from this facility"})

    def route(socket: Any) -> None:
        if state["mode"] == "down":
            socket.close()
        elif state["mode"] == "refuse":
            socket.send(refusal)  # as the server says it (app/web/ws.py _refuse)
            socket.close()
        else:
            socket.connect_to_server()
            open_sockets.append(socket)

    page.route_web_socket(re.compile(r"/ws\b"), route)
    page.goto(f"{live.url}/f/lab/scripts")
    until(page, lambda: open_sockets)
    page.wait_for_timeout(300)  # its socket opened
    state["mode"] = "down"
    open_sockets[0].close()
    lost = page.locator("#toasts .toast.warn", has_text="reconnecting")
    lost.wait_for(timeout=15000)
    state["mode"] = "refuse"
    page.locator("#toasts .toast.error[role=alert]",
                 has_text="Live updates stopped").wait_for(timeout=20000)
    assert lost.count() == 0
    assert page.locator("#toasts .toast.ok", has_text="Reconnected").count() == 0
    page.context.close()


def test_a_page_whose_session_ended_says_so_and_offers_a_reload(
    browser: Any, live_lab: tuple[LiveServer, dict[str, int]]
) -> None:
    """Signed out elsewhere: the server refuses the page's socket with its reason, which the
    page used to drop, reconnecting (and being refused) for as long as it stayed open."""
    live, _ = live_lab
    page = signed_in(browser, live, "sam@example.com")
    attempts: list[Any] = []
    frames: list[Any] = []

    def opened(socket: Any) -> None:
        attempts.append(socket)
        socket.on("framereceived", lambda frame: frames.append(frame))

    page.on("websocket", opened)
    page.goto(f"{live.url}/f/lab/scripts")
    until(page, lambda: frames)  # its hello came: the page is served
    with live.app.app_context():
        sam = db.session.query(User).filter_by(email="sam@example.com").one()
        sessions.end_sessions(db.session(), user_id=sam.id)
        db.session.commit()
        db.session.remove()
    alert = page.locator("#toasts .toast.error[role=alert]")
    alert.wait_for(timeout=30000)
    # Said by the open socket's recheck, or (had the page just connected) at its connect.
    assert alert.inner_text() in {
        "Live updates stopped: you were signed out or removed from this facility; reload "
        "the page. Reload",
        "Live updates stopped: sign in to continue. Reload",
    }
    tried = len(attempts)
    page.wait_for_timeout(1500)  # longer than its first reconnecting delays
    assert len(attempts) == tried  # it stopped trying
    alert.get_by_role("button", name="Reload").click()
    page.wait_for_url(re.compile(r"/login"))
    page.context.close()


def drop_run_ends(page: Any) -> list[str]:
    """Drop every `run.finished` the server sends this page (its socket stays open);
    the dropped messages."""
    lost: list[str] = []

    def route(socket: Any) -> None:
        server = socket.connect_to_server()

        def from_server(message: str | bytes) -> None:
            if "run.finished" in str(message):
                lost.append(str(message))
                return
            socket.send(message)

        server.on_message(from_server)

    page.route_web_socket(re.compile(r"/ws\b"), route)
    return lost


def cancel_from(page: Any, run_id: str) -> int:
    """Cancel the run by the API from the page (not its buttons); the answer's status."""
    status: int = page.evaluate(
        """async (runId) => {
            const csrf = document.querySelector('meta[name="csrf-token"]').content;
            const r = await fetch(`/api/f/lab/runs/${runId}/cancel`,
                                  {method: 'POST', headers: {'X-CSRF-Token': csrf}});
            return r.status;
        }""",
        run_id,
    )
    return status


def test_a_run_page_shows_the_end_even_when_its_event_is_lost(
    browser: Any, live_lab: tuple[LiveServer, dict[str, int]]
) -> None:
    """The run page reads the run now and then while it goes on: an end whose event never
    arrives (lost on an open socket) still shows."""
    live, ids = live_lab
    page = signed_in(browser, live, "sam@example.com")
    lost = drop_run_ends(page)
    page.goto(f"{live.url}/f/lab/runs")
    run_id = start_run(page, ids["Spinner"])
    page.goto(f"{live.url}/f/lab/runs/{run_id}")
    page.locator("#run-output", has_text="spinning").wait_for(timeout=30000)
    # Past the catch-ups that follow the socket's hello (at once, and after the server
    # stored the output: data-store-ms + 0.5 s), so only a later reading can see the end.
    store_ms = int(page.locator("#run-page").get_attribute("data-store-ms") or 2000)
    page.wait_for_timeout(store_ms + 1500)
    assert cancel_from(page, run_id) == 200
    page.locator("#run-status", has_text="cancelled").wait_for(timeout=30000)
    assert lost  # the end came by the page's own reading, not by its event
    page.context.close()


def test_a_script_card_shows_the_end_even_when_its_event_is_lost(
    browser: Any, live_lab: tuple[LiveServer, dict[str, int]]
) -> None:
    """A card following its run reads it now and then too (runs.js), not only when its
    socket connects again: an end lost on an open socket still shows."""
    live, _ = live_lab
    page = signed_in(browser, live, "sam@example.com")
    lost = drop_run_ends(page)
    page.goto(f"{live.url}/f/lab/scripts")
    card = page.locator(".script-card", has_text="Spinner")
    card.locator(".run-script").click()
    card.locator(".run-output", has_text="spinning").wait_for(timeout=30000)
    with live.app.app_context():
        run_id = db.session.query(Run.id).filter(Run.status == "running").scalar()
    assert cancel_from(page, run_id) == 200
    card.locator(".run-status", has_text="cancelled").wait_for(timeout=30000)
    assert lost  # the end came by the card's own reading, not by its event
    page.context.close()


def on_top(page: Any, selector: str) -> bool:
    """Whether a press at the middle of `selector`, the page scrolled to its top, lands on it."""
    page.evaluate("window.scrollTo(0, 0)")
    return lands_on(page, selector)


@pytest.mark.parametrize("width", WIDTHS)
def test_a_pending_sign_in_prompt_covers_no_control(
    browser: Any, live_lab: tuple[LiveServer, dict[str, int]], width: int
) -> None:
    """The prompt sits in the page's flow: while it waits for an answer, the run page's Stop
    (on a laptop, beside the title) and the phone's menu links can still be pressed."""
    live, ids = live_lab
    runs = signed_in(browser, live, "sam@example.com", width=width)
    runs.goto(f"{live.url}/f/lab/runs")
    runs.locator("body[data-live=yes]").wait_for()  # an open page: the run may ask
    run_id = start_run(runs, ids["Needs key"])
    # Another tab of the same browser: the runs page stays open, so the run never asks
    # while no page is (navigating this one away would close its socket for a moment).
    page = runs.context.new_page()
    page.goto(f"{live.url}/f/lab/runs/{run_id}")
    page.locator(".grant-prompt").wait_for(timeout=60000)
    page.locator("#run-status", has_text="parked").wait_for(timeout=30000)
    fits(page, f"run-prompt-pending-{width}")
    if width < 640:
        page.click(".nav-toggle-label")
        for link in ("/f/lab/scripts", "/f/lab/runs", "/f/lab/editor", "/settings/integrations"):
            assert on_top(page, f"nav a[href='{link}']"), link
        page.click(".nav-toggle-label")
    assert on_top(page, "#stop-run") and on_top(page, "#rerun")
    page.click("#stop-run")
    page.locator("#run-status", has_text="cancelled").wait_for(timeout=30000)
    assert page.locator(".grant-prompt").count() == 0  # withdrawn with its run
    page.context.close()


def test_a_double_click_on_save_keeps_one_new_script(
    browser: Any, live_lab: tuple[LiveServer, dict[str, int]]
) -> None:
    """The second save of a new script waits for the first, so it updates the script the
    first made instead of making another one."""
    live, _ = live_lab
    page = signed_in(browser, live, "sam@example.com")
    page.goto(f"{live.url}/f/lab/editor")
    page.locator(".cm-content").wait_for()
    page.fill("#script-name", "Tally")
    page.dblclick("#save-script")
    page.locator("#save-status", has_text="Saved").wait_for()
    page.wait_for_url(re.compile(r"/f/lab/editor/\d+$"))
    page.wait_for_load_state("networkidle")
    assert scripts_named(live) == ["Needs key", "Report", "Spinner", "Tally"]
    assert page.locator(".script-list a", has_text="Tally").count() == 1
    page.context.close()


def test_a_run_the_server_refuses_to_start_is_not_shown_as_queued(
    browser: Any, live_lab: tuple[LiveServer, dict[str, int]]
) -> None:
    """Input the declared inputs refuse starts no run: the editor says why, and its status
    does not claim a run is queued."""
    live, ids = live_lab
    page = signed_in(browser, live, "sam@example.com")
    page.goto(f"{live.url}/f/lab/editor/{ids['Report']}")
    page.click("#inputs-editor summary")
    page.click("#add-input")
    page.locator(".input-row .input-name").fill("who")
    page.locator(".input-row .input-required").check()
    page.click("#save-script")
    page.locator("#save-status", has_text="Saved").wait_for()
    page.fill("#run-input", "{}")
    page.click("#run-script")
    page.locator("#run-error", has_text="who").wait_for()
    assert page.locator("#run-status").inner_text() == "not run"
    assert page.locator("#run-script").is_enabled()
    page.fill("#run-input", '{"who": "Ada"}')
    page.click("#run-script")
    page.locator("#run-status", has_text="succeeded").wait_for(timeout=30000)
    page.context.close()


def test_a_script_card_whose_run_is_refused_is_not_shown_as_queued(
    browser: Any, live_lab: tuple[LiveServer, dict[str, int]]
) -> None:
    """A card whose script went away since the page loaded says so, and claims no run."""
    live, ids = live_lab
    page = signed_in(browser, live, "sam@example.com")
    page.goto(f"{live.url}/f/lab/scripts")
    with live.app.app_context():
        db.session.delete(db.session.get(Script, ids["Report"]))
        db.session.commit()
    card = page.locator(".script-card", has_text="Report")
    card.locator(".run-script").click()
    card.locator(".run-error").wait_for()
    assert card.locator(".run-status").inner_text() == "not run"
    assert card.locator(".run-script").is_enabled()
    page.context.close()


def test_an_error_only_an_admin_can_fix_does_not_send_the_scripter_to_their_accounts(
    browser: Any, live_lab: tuple[LiveServer, dict[str, int]]
) -> None:
    """A call for the facility's master account, which nobody connected: the error says an
    admin must connect it; the link to one's own accounts (what every missing account used
    to get) would not help."""
    live, _ids = live_lab
    with live.app.app_context():
        session = db.session()
        lab_id = session.query(Script).first().facility_id  # type: ignore[union-attr]
        script = Script(facility_id=lab_id, name="Needs master",
                        source='integrations.get("keyed", "/echo", account="master")\n')
        session.add(script)
        session.commit()
        script_id = script.id
        db.session.remove()
    page = signed_in(browser, live, "sam@example.com")
    page.goto(f"{live.url}/f/lab/editor/{script_id}")
    page.click("#run-script")
    error = page.locator("#run-error", has_text="no master account")
    error.wait_for(timeout=30000)
    assert error.locator("a", has_text="Connect the account").count() == 0
    page.context.close()


def test_a_new_script_shows_its_runs_once_first_saved(
    browser: Any, live_lab: tuple[LiveServer, dict[str, int]]
) -> None:
    """After a new script's first save, the editor shows its history and the link to all its
    runs at once, as it does for a script opened saved; no reload."""
    live, _ = live_lab
    page = signed_in(browser, live, "sam@example.com")
    page.goto(f"{live.url}/f/lab/editor")
    page.locator(".cm-content").wait_for()
    assert not page.locator("#run-history").is_visible()
    assert not page.get_by_role("link", name="All runs of this script").is_visible()
    page.click(".cm-content")
    page.keyboard.press("Control+A")
    page.keyboard.type("result = 1\n")
    page.fill("#script-name", "Fresh")
    page.click("#save-script")
    page.wait_for_url(re.compile(r"/f/lab/editor/\d+$"))
    script_id = page.url.rsplit("/", 1)[-1]
    link = page.get_by_role("link", name="All runs of this script")
    link.wait_for()
    assert link.get_attribute("href") == f"/f/lab/runs?script_id={script_id}"
    history = page.locator("#run-history tbody")
    history.get_by_text("No runs of yours yet").wait_for()  # Sam is a scripter
    page.click("#run-script")
    page.locator("#run-status", has_text="succeeded").wait_for(timeout=30000)
    history.locator("tr", has_text="succeeded").wait_for()
    page.click("#script-runs-link")
    page.wait_for_url(f"**/f/lab/runs?script_id={script_id}")
    assert page.locator("#runs-table tbody tr").count() == 1
    page.context.close()


def test_enter_in_a_field_of_a_scripts_form_runs_it_once(
    browser: Any, live_lab: tuple[LiveServer, dict[str, int]]
) -> None:
    """Enter in a field of a card's input form runs the script as Run does: checked first,
    then one run (not one per handler); Run itself still starts one."""
    live, ids = live_lab
    with live.app.app_context():
        report = db.session.get(Script, ids["Report"])
        assert report is not None
        fields = [{"name": "who", "type": "text", "required": True},
                  {"name": "times", "type": "number"}]
        db.session.add(Script(facility_id=report.facility_id, name="Greeter", published=True,
                              source='result = input["who"] * int(input.get("times", 1))\n',
                              input_schema=schema_from_fields(fields)))
        db.session.commit()
    page = signed_in(browser, live, "sam@example.com")
    page.goto(f"{live.url}/f/lab/scripts")
    card = page.locator(".script-card", has_text="Greeter")
    who = card.locator("[data-input=who] input")
    who.press("Enter")
    card.locator("[data-input=who] .field-error", has_text="who is required").wait_for()
    assert card.locator(".run-panel").is_hidden()
    who.fill("Ada")
    card.locator("[data-input=times] input").fill("2")
    card.locator("[data-input=times] input").press("Enter")
    card.locator(".run-status", has_text="succeeded").wait_for(timeout=30000)
    assert card.locator(".run-result").inner_text().strip() == '"AdaAda"'
    first = card.locator(".run-link").get_attribute("href")
    card.locator(".run-script").click()
    card.locator(f".run-link:not([href='{first}'])").wait_for()
    card.locator(".run-status", has_text="succeeded").wait_for(timeout=30000)
    with live.app.app_context():
        inputs = [r.input for r in db.session.query(Run).order_by(Run.created_at)]
    assert inputs == [{"who": "Ada", "times": 2}] * 2  # one run per Enter or press
    page.context.close()


def test_a_scripts_recent_runs_open_under_its_card(
    browser: Any, live_lab: tuple[LiveServer, dict[str, int]]
) -> None:
    """The Scripts page's "Your recent runs": the run just made, its time of today as hour
    and minute (the whole time on hover), status, duration and calls."""
    live, _ = live_lab
    page = signed_in(browser, live, "sam@example.com")
    page.goto(f"{live.url}/f/lab/scripts")
    card = page.locator(".script-card", has_text="Report")
    card.locator(".run-script").click()
    card.locator(".run-status", has_text="succeeded").wait_for(timeout=30000)
    card.locator("details.history summary").click()
    row = card.locator("details.history tbody tr")
    row.first.wait_for()
    cells = row.first.locator("td").all_inner_texts()
    assert row.count() == 1 and cells[1:2] == ["succeeded"] and cells[3] == "0"
    assert re.fullmatch(r"\d+ ms", cells[2])
    todays_time_shown(page, row.first.locator("td time"))
    page.context.close()


def test_open_recent_runs_list_the_run_the_card_just_ran(
    browser: Any, live_lab: tuple[LiveServer, dict[str, int]]
) -> None:
    """"Your recent runs", open while its card runs the script, lists that run once it
    ends: it kept what it showed when opened (nothing, here)."""
    live, _ = live_lab
    page = signed_in(browser, live, "sam@example.com")
    page.goto(f"{live.url}/f/lab/scripts")
    card = page.locator(".script-card", has_text="Report")
    card.locator("details.history summary").click()
    card.locator("details.history").get_by_text("No runs yet").wait_for()
    card.locator(".run-script").click()
    card.locator(".run-status", has_text="succeeded").wait_for(timeout=30000)
    row = card.locator("details.history tbody tr", has_text="succeeded")
    row.wait_for()
    assert card.locator("details.history tbody tr").count() == 1
    page.context.close()


def test_recent_runs_say_a_status_as_its_badge_does(
    browser: Any, live_lab: tuple[LiveServer, dict[str, int]]
) -> None:
    """The Scripts page's "Your recent runs" and the editor's History say a status in the
    words of wording.STATUS_WORDS, as the badges do, and what started it as the Runs page
    marks it: they showed the API's values ("timed_out (on_failure)")."""
    live, ids = live_lab
    with live.app.app_context():
        session = db.session()
        sam = session.query(User).filter_by(email="sam@example.com").one()
        session.add(Run(facility_id=people.facility_by_slug(session, "lab").id, user_id=sam.id,
                        script_id=ids["Report"], version=1, source="result = 42\n", input={},
                        status="timed_out", trigger="on_failure"))
        session.commit()
    page = signed_in(browser, live, "sam@example.com")
    page.goto(f"{live.url}/f/lab/scripts")
    card = page.locator(".script-card", has_text="Report")
    card.locator("details.history summary").click()
    row = card.locator("details.history tbody tr").first
    row.wait_for()
    assert row.locator("td").all_inner_texts()[1] == "timed out (on failure)"
    page.goto(f"{live.url}/f/lab/editor/{ids['Report']}")
    row = page.locator("#run-history tbody tr").first
    row.wait_for()
    assert "timed out (on failure)" in row.locator("td").all_inner_texts()
    page.context.close()


def test_the_editors_history_follows_a_run_that_had_not_ended_when_the_page_opened(
    browser: Any, live_lab: tuple[LiveServer, dict[str, int]]
) -> None:
    """The editor reloaded mid-run (or opened during a schedule's run) listed the run as
    running, and still did once it had ended: the History was read once."""
    live, _ = live_lab
    spinner = add_script(live, name="Spinner", source="while True:\n    pass\n")
    page = signed_in(browser, live, "sam@example.com")
    page.goto(f"{live.url}/f/lab/editor/{spinner}")
    run_id = start_run(page, spinner)
    page.reload()
    row = page.locator("#run-history tbody tr").first
    row.locator("td", has_text="running").wait_for(timeout=30000)
    page.evaluate(
        """async (runId) => {
            const csrf = document.querySelector('meta[name="csrf-token"]').content;
            await fetch(`/api/f/lab/runs/${runId}/cancel`, {method: 'POST',
              headers: {'Content-Type': 'application/json', 'X-CSRF-Token': csrf}});
        }""",
        run_id,
    )
    row.locator("td", has_text="cancelled").wait_for()
    assert page.locator("#run-history tbody tr").count() == 1
    page.context.close()
