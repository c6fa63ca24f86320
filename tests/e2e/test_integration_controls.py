"""Switch off and delete an integration (issue 11, item 3) in Debian's Chromium: the page and
the question both say what depends on it first; a switched-off integration refuses calls."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app import db
from app.models import Account, Integration, Role, Script
from app.testing import LiveServer, WebClient
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
CALLER = 'result = integrations.get("keyed", "/echo").status\n'


@pytest.fixture
def live_lab(tmp_path: Path) -> Iterator[tuple[LiveServer, int]]:
    app = make_app(tmp_path)
    live = LiveServer(app)
    with app.app_context():
        session = db.session()
        lab = create_facility(session, slug="lab")
        ada = create_user(session, email="ada@example.com", name="Ada")
        add_member(session, user=ada, facility=lab, role=Role.admin)
        keyed = create_integration(session, facility=lab, key="keyed", name="Keyed API")
        create_integration(session, facility=lab, key="spare", name="Spare API")
        session.add(Script(facility_id=lab.id, name="Uses keyed", source=CALLER))
        session.add(Script(facility_id=lab.id, name="Pure", source="result = 1\n"))
        session.add(Account(facility_id=lab.id, integration_id=keyed.id, owner_kind="user",
                            user_id=ada.id))
        session.commit()
        ada_id = ada.id
    yield live, ada_id
    close_live(live)


@pytest.mark.parametrize("width", WIDTHS)
def test_switch_off_and_delete_say_what_depends_first(
    browser: Any, live_lab: tuple[LiveServer, int], width: int
) -> None:
    live, ada_id = live_lab
    page = signed_in(browser, live, "ada@example.com", width=width)
    page.goto(f"{live.url}/f/lab/manage/integrations/keyed")
    deps = page.locator("#dependents")
    deps.locator("li", has_text="1 script calls it (Uses keyed)").wait_for()
    assert "1 connected account (0 master, 1 personal)" in deps.inner_text()
    fits(page, f"integration-controls-{width}")

    questions: list[str] = []
    page.on("dialog", lambda dialog: (questions.append(dialog.message), dialog.accept()))
    page.click("#toggle-integration")
    page.locator("#integration-state .badge", has_text="off").wait_for()
    assert "Uses keyed" in questions[0] and "integration_unavailable" in questions[0]

    client = WebClient(live.app, live.url, ada_id)
    with live.app.app_context():
        script_id = db.session.query(Script).filter_by(name="Uses keyed").one().id
    run = client.api("POST", "/api/f/lab/runs", json={"script_id": script_id, "wait": 60}).json()
    assert run["error"]["code"] == "integration_unavailable"
    assert "Keyed API is switched off" in run["error"]["message"]

    page.click("#toggle-integration")  # on again: no question needed
    page.locator("#integration-state .badge", has_text="on").wait_for()
    assert len(questions) == 1

    page.click("#delete-integration")
    page.wait_for_url(f"{live.url}/f/lab/manage", timeout=60000)
    assert "Uses keyed" in questions[1] and "1 connected account" in questions[1]
    with live.app.app_context():
        assert [i.key for i in db.session.query(Integration).all()] == ["spare"]
    page.context.close()


def test_an_unused_integration_says_nothing_uses_it(
    browser: Any, live_lab: tuple[LiveServer, int]
) -> None:
    live, _ = live_lab
    page = signed_in(browser, live, "ada@example.com")
    page.goto(f"{live.url}/f/lab/manage/integrations/spare")
    page.get_by_text("Nothing uses Spare API yet").wait_for()
    page.context.close()


def test_the_buttons_wait_for_the_pages_script(
    browser: Any, live_lab: tuple[LiveServer, int]
) -> None:
    """Until the page's script listens, a click on Switch off or Delete would do nothing (a
    slow connection, or a test clicking the moment the reloaded page shows): the buttons
    are disabled until then."""
    live, _ = live_lab
    page = signed_in(browser, live, "ada@example.com")
    page.route("**/js/integration-controls.js", lambda route: route.abort())
    page.goto(f"{live.url}/f/lab/manage/integrations/keyed")
    for button in ("#toggle-integration", "#delete-integration"):
        assert page.locator(button).is_disabled()
    page.unroute("**/js/integration-controls.js")
    page.reload()
    page.locator("#dependents li").first.wait_for()
    for button in ("#toggle-integration", "#delete-integration"):
        assert page.locator(button).is_enabled()
    page.context.close()
