"""The editor's completions offer what a script can use: the sandbox's builtins (not open,
eval or __import__, which only end a run `forbidden`), and after a dot an object's members
only (after `integrations.` the API, not every builtin)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from app.testing import LiveServer
from sandbox import policy
from sandbox.script_globals import build_builtins
from tests.e2e.people import scripter_lab, signed_in

EDITOR_SOURCE = Path(__file__).resolve().parents[2] / "static" / "editor" / "src" / "editor.js"


def test_the_editors_builtins_are_the_sandboxes() -> None:
    """The editor's list is the sandbox's allowlist, less refused and private names."""
    text = EDITOR_SOURCE.read_text()
    listed = re.search(r"const SCRIPT_BUILTINS = new Set\(`([^`]*)`", text)
    assert listed is not None
    usable = {
        name for name in build_builtins(policy.Modules(), policy.OwnedClasses())
        if not name.startswith("_") and name not in policy.REFUSED_BUILTINS
    }
    assert set(listed.group(1).split()) == usable


@pytest.fixture
def live_lab(tmp_path: Path) -> Iterator[LiveServer]:
    with scripter_lab(tmp_path) as live:
        yield live


def offered(page: Any, typed: str, *, wait_ms: int = 15_000) -> list[str]:
    """The labels offered by Ctrl-Space after `typed` on a new line (none: [] after
    `wait_ms`). Long by default: a loaded machine's browser may take seconds to show what
    is offered (2 s made a list that came late an empty one); short only where nothing
    may be offered at all."""
    page.keyboard.press("Escape")
    page.keyboard.type("\n" + typed)
    page.keyboard.press("Control+Space")
    listbox = page.locator(".cm-tooltip-autocomplete")
    try:
        listbox.wait_for(timeout=wait_ms)
    except PlaywrightTimeoutError:  # nothing was offered
        return []
    labels: list[str] = page.locator(".cm-completionLabel").all_inner_texts()
    return labels


@pytest.mark.browser
def test_completions_offer_what_a_script_can_use(browser: Any, live_lab: LiveServer) -> None:
    live = live_lab
    page = signed_in(browser, live, "sam@example.com")
    page.goto(f"{live.url}/f/lab/editor")
    page.click(".cm-content")
    page.keyboard.press("Control+End")
    assert "len" in offered(page, "le")
    assert "open" not in offered(page, "op")
    assert not {"eval", "exec"} & set(offered(page, "ex"))
    assert not [label for label in offered(page, "__", wait_ms=2000) if label.startswith("__")]
    members = offered(page, "x = integrations.")
    assert {"request", "get", "require", "available", "NoIntegrationGrant"} <= set(members)
    # Only members after the dot: no builtins (abs, __import__), no script globals (input).
    assert not {"abs", "__import__", "input", "integrations"} & set(members)
    # The script's store: the global, then its four members only.
    assert "store" in offered(page, "sto")
    assert sorted(offered(page, "x = store.")) == ["delete", "get", "keys", "set"]
    page.context.close()
