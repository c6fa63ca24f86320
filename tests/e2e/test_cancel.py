"""Cancel from the page (DESIGN §2): the Scripts page's Cancel button stops a running run
and a run waiting for a sign-in prompt, in Debian's Chromium via Playwright."""

from __future__ import annotations

from typing import Any

import pytest

from app import db
from app.models import Role, Script
from app.testing import LiveServer
from tests.conftest import add_member, create_facility, create_integration, create_user
from tests.e2e.conftest import shot
from tests.e2e.people import signed_in

pytestmark = pytest.mark.browser
SCRIPTS = {
    "Spinner": "print('spinning')\nwhile True:\n    pass\n",
    "Needs keyed": 'result = integrations.get("keyed", "/echo").status\n',
}


@pytest.fixture
def member_page(browser: Any, live: LiveServer) -> Any:
    """A member signed in, on the Scripts page of a facility with the scripts above."""
    with live.app.app_context():
        session = db.session()
        lab = create_facility(session, slug="lab")
        member = create_user(session, email="member@example.com")
        add_member(session, user=member, facility=lab, role=Role.member)
        create_integration(session, facility=lab, key="keyed")
        for name, source in SCRIPTS.items():
            session.add(Script(facility_id=lab.id, name=name, source=source, published=True))
        session.commit()
    page = signed_in(browser, live, "member@example.com", height=800)
    page.goto(f"{live.url}/f/lab/scripts")
    yield page
    page.context.close()


def test_cancel_stops_a_running_script(member_page: Any) -> None:
    card = member_page.locator(".script-card", has_text="Spinner")
    card.locator(".run-script").click()
    card.locator(".run-output", has_text="spinning").wait_for(timeout=20000)
    card.locator(".cancel-run").click()
    card.locator(".run-status", has_text="cancelled").wait_for(timeout=20000)
    assert card.locator(".cancel-run").is_hidden()
    # A member reads why in words (scripters get the code, `cancelled`).
    card.locator(".run-error", has_text="The run was stopped.").wait_for()
    shot(member_page, "scripts-cancelled-running")


def test_cancel_stops_a_run_waiting_for_a_prompt(member_page: Any) -> None:
    card = member_page.locator(".script-card", has_text="Needs keyed")
    card.locator(".run-script").click()
    card.locator(".run-status", has_text="waiting for sign-in").wait_for(timeout=20000)
    member_page.locator(".grant-prompt").wait_for(timeout=20000)
    card.locator(".cancel-run").click()
    card.locator(".run-status", has_text="cancelled").wait_for(timeout=20000)
    shot(member_page, "scripts-cancelled-waiting")
