"""Settings → API tokens in a real browser: a token is made once however often the button
is pressed, listed at once, and revoked in place; a blank name or a refusal is said."""

from __future__ import annotations

from typing import Any

import pytest

from app import db
from app.models import ApiToken
from app.testing import LiveServer
from tests.conftest import create_user
from tests.e2e.people import signed_in

pytestmark = pytest.mark.browser


def tokens(live: LiveServer) -> list[str]:
    with live.app.app_context():
        names = [token.name for token in db.session.query(ApiToken).order_by(ApiToken.id)]
        db.session.remove()
    return names


def test_a_token_is_made_once_listed_at_once_and_revoked_in_place(
    browser: Any, live: LiveServer
) -> None:
    with live.app.app_context():
        create_user(db.session(), email="tess@example.com")
        db.session.commit()
        db.session.remove()
    page = signed_in(browser, live, "tess@example.com")
    page.goto(f"{live.url}/settings/tokens")

    page.fill("input[name=name]", "   ")
    page.click("#new-token button[type=submit]")
    assert page.locator("#token-error").inner_text() == "Name the token: what it is for."
    assert tokens(live) == []

    page.fill("input[name=name]", "nightly export")
    page.dblclick("#new-token button[type=submit]")
    page.locator("#token-shown").wait_for(state="visible")
    assert "sbx_" in page.locator("#token-shown").inner_text()
    row = page.locator("#tokens tbody tr", has_text="nightly export")
    row.wait_for()
    assert tokens(live) == ["nightly export"]
    assert page.locator("#tokens tbody tr").count() == 1
    assert page.locator("#token-error").is_hidden()

    row.locator(".revoke-token").click()
    row.wait_for(state="detached")
    assert tokens(live) == []
    page.context.close()
