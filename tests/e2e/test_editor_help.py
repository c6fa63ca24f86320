"""Editor help (issue 11, item 4) in Debian's Chromium: completion of a response's members and
of the user's account labels, the help panel with the API, examples and shortcuts, and the
script's traceback under a failed run, and on the run's page, a recursion's repeats folded
and a trace too deep to keep cut between its outermost and innermost frames."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app import db
from app.models import Account
from app.services import people
from app.testing import LiveServer
from tests.conftest import (
    create_integration,
)
from tests.e2e.people import WIDTHS, add_script, fits, scripter_lab, signed_in

pytestmark = pytest.mark.browser
NESTED = "def inner():\n    return 1 / 0\n\ndef outer():\n    return inner()\n\nresult = outer()\n"
WALKS = "def walk(n):\n    return walk(n + 1)\n\nwalk(0)\n"
# ping and pong call each other 81 times: nothing repeats right after itself, so it is cut.
PING_PONG = """def ping(n):
    if n == 0:
        return 1 / 0
    return pong(n - 1)

def pong(n):
    return ping(n)

ping(40)
"""


@pytest.fixture
def live_lab(tmp_path: Path) -> Iterator[tuple[LiveServer, dict[str, int]]]:
    with scripter_lab(tmp_path) as live:
        with live.app.app_context():
            session = db.session()
            lab = people.facility_by_slug(session, "lab")
            sam = people.user_by_email(session, "sam@example.com")
            keyed = create_integration(session, facility=lab, key="keyed", name="Keyed API")
            session.add(Account(facility_id=lab.id, integration_id=keyed.id, owner_kind="user",
                                user_id=sam.id, label="work"))
            session.commit()
        ids = {name: add_script(live, name=name, source=source)
               for name, source in (("Nested", NESTED), ("Walks", WALKS),
                                    ("Ping pong", PING_PONG))}
        yield live, ids


def completions(page: Any, expected: str) -> list[str]:
    """The labels offered once `expected` is among them (a stale list may show first)."""
    page.locator(".cm-completionLabel", has_text=expected).first.wait_for()
    labels: list[str] = page.locator(".cm-completionLabel").all_inner_texts()
    return labels


@pytest.mark.parametrize("width", WIDTHS)
def test_completion_help_panel_and_traceback(
    browser: Any, live_lab: tuple[LiveServer, dict[str, int]], width: int
) -> None:
    live, scripts = live_lab
    page = signed_in(browser, live, "sam@example.com", width=width)
    page.goto(f"{live.url}/f/lab/editor/{scripts['Nested']}")
    page.click("#run-script")
    trace = page.locator("#run-error .traceback li")
    trace.first.wait_for(timeout=30000)
    assert trace.all_inner_texts() == ["line 7, in <script>", "line 5, in outer",
                                       "line 2, in inner"]

    page.click(".cm-content")
    page.keyboard.press("Control+End")
    page.keyboard.type('\nresp = integrations.get("keyed", "/x")\nresp.')
    found = completions(page, "raise_for_status")
    assert {"status", "ok", "json", "raise_for_status", "headers", "text"} <= set(found)
    page.keyboard.press("Escape")
    page.keyboard.type('\nintegrations.get("keyed", "/", account="')
    assert {"user", "master", "work"} <= set(completions(page, "work"))
    page.keyboard.press("Escape")

    page.click("#help-panel summary")
    help_text = page.locator("#help-panel").inner_text()
    assert "Enter run" in help_text and "S save" in help_text
    assert 'integrations.get("keyed", "/")' in help_text and "NoIntegrationGrant" in help_text
    fits(page, f"editor-help-{width}")
    page.context.close()


def test_a_deep_tracebacks_repeats_and_cut_frames_are_said(
    browser: Any, live_lab: tuple[LiveServer, dict[str, int]]
) -> None:
    # It showed 20 identical "line 2, in walk": the call on line 4 was lost, and nothing
    # said frames were cut.
    live, scripts = live_lab
    page = signed_in(browser, live, "sam@example.com")
    page.goto(f"{live.url}/f/lab/editor/{scripts['Walks']}")
    page.click("#run-script")
    trace = page.locator("#run-error .traceback li")
    trace.first.wait_for(timeout=30000)
    shown = trace.all_inner_texts()
    assert shown[0] == "line 4, in <script>" and len(shown) == 2
    assert re.fullmatch(r"line 2, in walk \(repeated \d{3,} more times\)", shown[1])

    page.click("#run-link")  # the run's own page says it the same way, with the lines
    page.locator("#run-error .traceback").wait_for()
    frames = page.locator("#run-error .traceback li")
    assert frames.count() == 2
    assert frames.first.inner_text().startswith("line 4, in <script>")
    assert "walk(0)" in frames.first.inner_text()
    assert re.match(r"line 2, in walk \(repeated \d{3,} more times\)",
                    frames.nth(1).inner_text())

    page.goto(f"{live.url}/f/lab/editor/{scripts['Ping pong']}")
    page.click("#run-script")
    page.locator("#run-error .traceback .trace-omitted").wait_for(timeout=30000)
    shown = page.locator("#run-error .traceback li").all_inner_texts()
    # 1 + 81 frames: the outermost 5 and innermost 15 stay, 62 are left out after the 5th.
    assert shown[:6] == ["line 9, in <script>", "line 4, in ping", "line 7, in pong",
                         "line 4, in ping", "line 7, in pong", "… 62 frames left out …"]
    assert shown[-1] == "line 3, in ping" and len(shown) == 21
    page.click("#run-link")
    page.locator("#run-error .traceback .trace-omitted", has_text="62 frames left out").wait_for()
    page.context.close()
