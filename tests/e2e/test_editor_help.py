"""Editor help (issue 11, item 4) in Debian's Chromium: completion of a response's members and
of the user's account labels, the help panel with the API, examples and shortcuts, and the
script's traceback under a failed run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app import db
from app.models import Account, Role, Script
from app.testing import LiveServer
from tests.conftest import (
    add_member,
    close_live,
    create_facility,
    create_integration,
    create_user,
    make_app,
)
from tests.e2e.people import WIDTHS, fits, signed_in

pytestmark = pytest.mark.browser
NESTED = "def inner():\n    return 1 / 0\n\ndef outer():\n    return inner()\n\nresult = outer()\n"


@pytest.fixture
def live_lab(tmp_path: Path) -> Iterator[tuple[LiveServer, int]]:
    app = make_app(tmp_path)
    live = LiveServer(app)
    with app.app_context():
        session = db.session()
        lab = create_facility(session, slug="lab")
        sam = create_user(session, email="sam@example.com", name="Sam")
        add_member(session, user=sam, facility=lab, role=Role.scripter)
        keyed = create_integration(session, facility=lab, key="keyed", name="Keyed API")
        session.add(Account(facility_id=lab.id, integration_id=keyed.id, owner_kind="user",
                            user_id=sam.id, label="work"))
        script = Script(facility_id=lab.id, name="Nested", source=NESTED)
        session.add(script)
        session.commit()
        script_id = script.id
    yield live, script_id
    close_live(live)


def completions(page: Any, expected: str) -> list[str]:
    """The labels offered once `expected` is among them (a stale list may show first)."""
    page.locator(".cm-completionLabel", has_text=expected).first.wait_for()
    labels: list[str] = page.locator(".cm-completionLabel").all_inner_texts()
    return labels


@pytest.mark.parametrize("width", WIDTHS)
def test_completion_help_panel_and_traceback(
    browser: Any, live_lab: tuple[LiveServer, int], width: int
) -> None:
    live, script_id = live_lab
    page = signed_in(browser, live, "sam@example.com", width=width)
    page.goto(f"{live.url}/f/lab/editor/{script_id}")
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
