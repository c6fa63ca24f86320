"""A connect link that opens no more offers a button back to the app that sent it: in
Debian's Chromium via Playwright, with the page's own script (sign-in-result.js) loaded,
pressing it lands on the app's return_to with the link's status."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from app import db
from app.models import Role
from app.models._types import utcnow
from app.services import connect_links
from app.testing import LiveServer
from tests.conftest import add_member, create_facility, create_integration, create_user

pytestmark = pytest.mark.browser
EMBEDDER = "https://embedder.example"


def test_an_expired_links_button_goes_back_to_the_app_with_its_status(
    browser: Any, live: LiveServer
) -> None:
    with live.app.app_context():
        session = db.session()
        lab = create_facility(session, slug="lab")
        mia = create_user(session, email="mia@example.com")
        add_member(session, user=mia, facility=lab, role=Role.member)
        integration = create_integration(session, facility=lab, key="keyed")
        link, token = connect_links.issue(
            session, facility_id=lab.id, user_id=mia.id, integration=integration,
            created_by=None, label="", return_to=f"{EMBEDDER}/done?job=7")
        link.expires_at = utcnow() - timedelta(seconds=1)
        session.commit()
    context = browser.new_context()
    page = context.new_page()
    # The app is not on loopback: the browser's request to it is answered here.
    page.route(f"{EMBEDDER}/**", lambda route: route.fulfill(body="the app", status=200))
    page.goto(f"{live.url}/connect/{token}")
    assert page.url == f"{live.url}/connect/{token}"  # no redirect of its own
    page.get_by_text("This connect link expired.").wait_for()
    page.get_by_role("link", name="Back to embedder.example").click()
    page.wait_for_url(f"{EMBEDDER}/**")
    assert parse_qs(urlsplit(page.url).query) == {"job": ["7"], "status": ["expired"]}
    context.close()
