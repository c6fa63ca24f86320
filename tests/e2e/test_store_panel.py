"""The editor's Store panel in Debian's Chromium: after a run of the script stores values,
the panel lists them (key, value as JSON, size); Delete asks first and forgets one key,
Clear the store asks and empties it, and the panel says nothing is stored; axe-core finds
nothing serious in it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app import db
from app.models import Role, Script
from app.testing import LiveServer
from tests.conftest import add_member, close_live, create_facility, create_user, make_app
from tests.e2e.people import signed_in
from tests.e2e.test_accessibility import axe_violations

pytestmark = pytest.mark.browser

SOURCE = 'store.set("cursor", store.get("cursor", 0) + 1)\nstore.set("seen", ["a", "b"])\n'


@pytest.fixture
def live_lab(tmp_path: Path) -> Iterator[tuple[LiveServer, int]]:
    """Facility `lab`, its scripter sam@example.com and a script "Poller" that stores."""
    app = make_app(tmp_path)
    live = LiveServer(app)
    with app.app_context():
        session = db.session()
        lab = create_facility(session, slug="lab")
        sam = create_user(session, email="sam@example.com", name="Sam")
        add_member(session, user=sam, facility=lab, role=Role.scripter)
        script = Script(facility_id=lab.id, name="Poller", source=SOURCE)
        session.add(script)
        session.commit()
        script_id = script.id
    yield live, script_id
    close_live(live)


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
