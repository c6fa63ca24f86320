"""An admin's journeys through Management in a real browser: what each action shows next,
without a reload."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from app import db
from app.models import Integration, Role
from app.testing import LiveServer
from tests.conftest import PASSWORD, add_member, create_facility, create_user
from tests.e2e.conftest import shot

pytestmark = pytest.mark.browser


@pytest.fixture
def admin_page(browser: Any, live: LiveServer) -> Iterator[Any]:
    """A browser page signed in as the admin of facility `lab`; dialogs are accepted."""
    with live.app.app_context():
        session = db.session()
        lab = create_facility(session, slug="lab", name="The Lab")
        admin = create_user(session, email="admin@example.com", name="Avery Admin")
        add_member(session, user=admin, facility=lab, role=Role.admin)
        session.commit()
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto(f"{live.url}/login")
    page.fill("input[name=email]", "admin@example.com")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/login" not in url)
    yield page
    context.close()


def test_the_credential_fields_follow_the_auth_mode_until_edited(
    admin_page: Any, live: LiveServer
) -> None:
    page = admin_page
    page.goto(f"{live.url}/f/lab/manage/integrations/new")
    form = page.locator("#custom-integration-form")
    fields = form.locator("[name=credential_fields]")
    form.locator("[name=auth_mode]").select_option("api_key")
    assert fields.input_value() == "api_key"
    # Switching on used to keep "api_key", and Basic then asked for a placement.
    form.locator("[name=auth_mode]").select_option("basic")
    assert fields.input_value() == "username password"
    form.locator("[name=key]").fill("plain")
    form.locator("[name=name]").fill("Plain API")
    form.locator("[name=base_url]").fill("https://api.example.com")
    form.locator("button[type=submit]").click()
    page.wait_for_url("**/manage/integrations/plain")
    with live.app.app_context():
        stored = db.session.query(Integration).filter_by(key="plain").one()
        assert stored.credential_fields == ["username", "password"]
        db.session.remove()
    # What the admin typed stays when the mode changes.
    page.goto(f"{live.url}/f/lab/manage/integrations/new")
    form.locator("[name=auth_mode]").select_option("api_key")
    fields.fill("api_key username")
    form.locator("[name=auth_mode]").select_option("api_key_secret")
    assert fields.input_value() == "api_key username"
    shot(page, "management-new-credential-fields")
