"""The editor's Store panel in Debian's Chromium: after a run of the script stores values,
the panel lists them (key, value as JSON, size); Delete asks first and forgets one key,
Clear the store asks and empties it, and the panel says nothing is stored; axe-core finds
nothing serious in it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.testing import LiveServer
from tests.e2e.people import add_script, scripter_lab, signed_in
from tests.e2e.test_accessibility import axe_violations

pytestmark = pytest.mark.browser

SOURCE = 'store.set("cursor", store.get("cursor", 0) + 1)\nstore.set("seen", ["a", "b"])\n'


@pytest.fixture
def live_lab(tmp_path: Path) -> Iterator[tuple[LiveServer, int]]:
    """Facility `lab`, its scripter sam@example.com and a script "Poller" that stores."""
    with scripter_lab(tmp_path) as live:
        yield live, add_script(live, name="Poller", source=SOURCE)


def test_the_store_panel_lists_deletes_and_clears_what_runs_stored(
    browser: Any, live_lab: tuple[LiveServer, int]
) -> None:
    live, script_id = live_lab
    page = signed_in(browser, live, "sam@example.com", bypass_csp=True)  # for axe-core
    page.goto(f"{live.url}/f/lab/editor/{script_id}")
    panel = page.locator("#store-panel")
    panel.locator("summary").click()
    panel.locator("#store-empty").wait_for()
    assert panel.locator("#store-empty").inner_text() == "Nothing stored yet."

    page.locator("#run-script").click()
    page.locator("#run-status", has_text="succeeded").wait_for()
    rows = panel.locator("#store-table tbody tr")
    rows.nth(1).wait_for()  # reloaded once the run ended
    assert [rows.nth(n).locator(".store-key").inner_text() for n in range(2)] == [
        "cursor", "seen"]
    assert rows.nth(1).locator(".store-value").inner_text() == '["a","b"]'
    assert rows.nth(1).locator(".store-size").inner_text() == "9 B"
    assert panel.locator("summary").inner_text() == "Store (2)"
    assert panel.locator("#store-empty").is_hidden()
    assert axe_violations(page, include="#store-panel") == []

    page.once("dialog", lambda dialog: dialog.accept())
    rows.nth(0).locator(".store-delete").click()
    panel.locator("#store-table tbody tr[data-key='cursor']").wait_for(state="detached")
    assert rows.count() == 1

    page.once("dialog", lambda dialog: dialog.accept())
    panel.locator("#store-clear").click()
    panel.locator("#store-empty").wait_for()
    assert panel.locator("#store-table").is_hidden()
    assert panel.locator("summary").inner_text() == "Store"
    page.context.close()
