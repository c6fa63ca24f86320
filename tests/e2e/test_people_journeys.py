"""Scripter and admin journeys in a real browser: saving scripts, managing members."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from app import db
from app.models import Role, Script
from app.testing import LiveServer
from tests.conftest import PASSWORD, add_member, create_facility, create_user
from tests.e2e.conftest import shot

pytestmark = pytest.mark.browser


@pytest.fixture
def site(live: LiveServer) -> Iterator[LiveServer]:
    """A facility `lab` with one admin, one scripter and one member."""
    with live.app.app_context():
        session = db.session()
        lab = create_facility(session, slug="lab", name="The Lab")
        for email, name, role in (
            ("admin@example.com", "Avery Admin", Role.admin),
            ("scripter@example.com", "Sam Scripter", Role.scripter),
            ("member@example.com", "Mia Member", Role.member),
        ):
            add_member(session, user=create_user(session, email=email, name=name), facility=lab,
                       role=role)
        session.commit()
    yield live


def sign_in(browser: Any, live: LiveServer, email: str) -> Any:
    """A fresh browser context signed in as `email`."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.goto(f"{live.url}/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("#login-form button[type=submit]")
    page.wait_for_url(lambda url: "/login" not in url)
    return page


def saved_scripts(live: LiveServer) -> list[tuple[str, bool]]:
    """(name, published) of every script in the database."""
    with live.app.app_context():
        rows = db.session.scalars(select(Script).order_by(Script.id)).all()
        result = [(s.name, s.published) for s in rows]
        db.session.remove()
        return result


def test_a_new_script_saved_with_published_ticked_is_published(
    browser: Any, site: LiveServer
) -> None:
    page = sign_in(browser, site, "scripter@example.com")
    page.goto(f"{site.url}/f/lab/editor")
    page.fill("#script-name", "Fresh report")
    page.check("#script-published")
    page.click("#save-script")
    page.wait_for_url("**/f/lab/editor/*")
    page.locator("#save-status", has_text="Saved").wait_for()
    shot(page, "editor-saved-published")
    assert saved_scripts(site) == [("Fresh report", True)]
    member = sign_in(browser, site, "member@example.com")
    member.goto(f"{site.url}/f/lab/scripts")
    member.locator(".script-card", has_text="Fresh report").wait_for()
