"""In the browser, at a phone's width: a person about to sign in or type a key reads where
it goes, near the button and as the button's own description (a screen reader says it with
the button), within the screen, before they press it: an admin chooses these origins."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from app import db
from app.models import User
from app.services import connect_links
from app.services.people import facility_by_slug
from app.testing import LiveServer
from tests.conftest import create_integration
from tests.e2e.people import add_script, fits, scripter_lab, signed_in
from tests.e2e.test_accessibility import axe_violations

pytestmark = pytest.mark.browser
# Long enough to need wrapping at 375 px.
SIGN_IN_AT = "https://sign-in.a-rather-long-identity-provider-name.example.org:8443"
API = "https://api.example.org"
KEYS = "https://keys.example.net:8443"


HUB = {
    "name": "Hub", "auth_mode": "oauth2", "base_url": f"{API}/v2",
    "authorization_url": f"{SIGN_IN_AT}/authorize", "token_url": f"{SIGN_IN_AT}/token",
    "credential_fields": [], "placements": [],
}


def _link(live: LiveServer, key: str, **fields: Any) -> str:
    """A connect link for Sam to a new integration `key` of `fields`; its URL."""
    with live.app.app_context():
        session = db.session()
        lab = facility_by_slug(session, "lab")
        integration = create_integration(session, facility=lab, key=key, **fields)
        sam = session.scalar(select(User.id).where(User.email == "sam@example.com"))
        assert sam is not None
        _row, token = connect_links.issue(
            session, facility_id=lab.id, user_id=sam, integration=integration,
            created_by=None, label="", return_to=None)
        session.commit()
        db.session.remove()
    return f"{live.url}/connect/{token}"


def _said_on_screen(page: Any, button: Any, words: str, name: str) -> None:
    """`words` describe the button, are shown whole within the screen, and the page passes
    axe's checks and does not scroll sideways."""
    expect(button).to_have_accessible_description(re.compile(re.escape(words)))
    said = page.locator(".secret-destination")
    expect(said).to_be_visible()
    expect(said).to_contain_text(words)
    box = said.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 375
    problems = axe_violations(page)
    assert not problems, "\n".join(problems)
    fits(page, name)


def test_a_person_reads_where_they_sign_in_and_where_a_key_goes_before_pressing(
    browser: Any, tmp_path: Path
) -> None:
    with scripter_lab(tmp_path) as live:
        oauth = _link(live, "hub", **HUB)
        keyed = _link(live, "keyed", name="Keyed", base_url=f"{KEYS}/v1")
        # bypass_csp: the accessibility checker is added to the page as an inline script.
        context = browser.new_context(viewport={"width": 375, "height": 800}, bypass_csp=True)
        try:
            page = context.new_page()
            page.goto(oauth)
            _said_on_screen(
                page,
                page.get_by_role("button", name="Continue to Hub"),
                f"You will sign in at {SIGN_IN_AT}; scripts then use the access you grant "
                f"at {API}.",
                "connect link oauth destination 375",
            )
            page.goto(keyed)
            _said_on_screen(
                page,
                page.get_by_role("button", name="Connect", exact=True),
                f"What you enter here is sent only to {KEYS}.",
                "connect link key destination 375",
            )
        finally:
            context.close()


def test_the_sign_in_prompt_says_where_sign_in_goes_before_it_is_pressed(
    browser: Any, tmp_path: Path
) -> None:
    # Its Sign in goes straight to the provider: no form of Scriptbox's comes in between.
    with scripter_lab(tmp_path) as live:
        with live.app.app_context():
            create_integration(db.session(), facility=facility_by_slug(db.session(), "lab"),
                               key="hub", **HUB)
            db.session.commit()
            db.session.remove()
        add_script(live, name="Needs hub", published=True,
                   source='result = integrations.get("hub", "/me").status\n')
        page = signed_in(browser, live, "sam@example.com", width=375, bypass_csp=True)
        try:
            page.goto(f"{live.url}/f/lab/scripts")
            page.locator(".script-card", has_text="Needs hub").locator(".run-script").click()
            prompt = page.locator(".grant-prompt")
            prompt.locator(".grant-summary").click()  # a phone's one-line bar opens
            words = (f"You will sign in at {SIGN_IN_AT}; scripts then use the access you "
                     f"grant at {API}.")
            said = prompt.locator(".grant-destination")
            expect(said).to_have_text(words)
            expect(prompt.locator(".grant-sign-in")).to_have_accessible_description(words)
            box = said.bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 375
            problems = axe_violations(page, include=".grant-prompt")
            assert not problems, "\n".join(problems)
            fits(page, "sign-in prompt destination 375")
            prompt.locator(".grant-refuse").click()
            expect(prompt).to_have_count(0)
        finally:
            page.context.close()
