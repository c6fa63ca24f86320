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
    """A facility `lab` with a scripter sam@example.com and a member mo@example.com."""
    app = make_app(tmp_path)
    live = LiveServer(app)
    with app.app_context():
        session = db.session()
        lab = create_facility(session, slug="lab")
        sam = create_user(session, email="sam@example.com", name="Sam")
        add_member(session, user=sam, facility=lab, role=Role.scripter)
        mo = create_user(session, email="mo@example.com", name="Mo")
        add_member(session, user=mo, facility=lab, role=Role.member)
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
    assert scripts_named(live) == ["Fresh", "Fresh (copy)"]
    page.goto(f"{live.url}/f/lab/editor")
    page.fill("#script-name", "Short-lived")
    page.click("#save-script")
    page.wait_for_url(re.compile(r"/f/lab/editor/\d+$"))
    page.once("dialog", lambda dialog: dialog.accept())
    delete.click()
    page.wait_for_url(f"{live.url}/f/lab/editor")
    assert scripts_named(live) == ["Fresh", "Fresh (copy)"]
    page.context.close()
